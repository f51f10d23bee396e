"""Drawing faces on an image: boxes, scores and the five landmarks."""

from __future__ import annotations

import cv2
import numpy as np

from .images import ImageInput, load

BOX_COLOUR = (0, 200, 255)
LANDMARK_COLOURS = ((255, 60, 60), (60, 255, 60), (255, 255, 255), (255, 60, 255), (60, 160, 255))


def draw_faces(image: ImageInput, faces, scores: bool = True, landmarks: bool = True) -> np.ndarray:
    """A copy of the image (uint8 RGB [H, W, 3]) with each face's box, score (and track id,
    when the faces have them) and landmarks.

    faces: a ``Faces`` (anything with boxes [N, 4], scores [N], landmarks [N, 5, 2]).
    """
    img = load(image)
    img = img.cpu().numpy().copy() if hasattr(img, "cpu") else img.copy()
    h, w = img.shape[:2]
    thick = max(1, round(max(h, w) / 400))
    track_ids = getattr(faces, "track_ids", None)
    for k, (box, score, points) in enumerate(zip(faces.boxes, faces.scores, faces.landmarks)):
        x1, y1, x2, y2 = (int(round(float(v))) for v in box)
        cv2.rectangle(img, (x1, y1), (x2, y2), BOX_COLOUR, thick, cv2.LINE_AA)
        if scores:
            text = f"{float(score):.2f}" + ("" if track_ids is None else f" #{int(track_ids[k])}")
            scale = max(0.4, thick * 0.4)
            (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
            ty = y1 - 3 if y1 - th - 3 >= 0 else y1 + th + 3
            cv2.rectangle(img, (x1, ty - th - 2), (x1 + tw + 2, ty + base - 1), BOX_COLOUR, -1)
            cv2.putText(img, text, (x1 + 1, ty - 1), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thick, cv2.LINE_AA)
        if landmarks:
            for (px, py), colour in zip(points, LANDMARK_COLOURS):
                cv2.circle(img, (int(round(float(px))), int(round(float(py)))), thick + 1, colour, -1, cv2.LINE_AA)
    return img
