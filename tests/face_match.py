"""The agreement the cascade graph must keep with the Python cascade (issue 20): the same
faces, each matched at IoU >= 0.9, landmarks within 2 px, scores within 0.01."""

from __future__ import annotations

import numpy as np

from torchmtcnn.boxes import iou_numpy

MIN_IOU = 0.9
MAX_POINT_PX = 2.0
MAX_SCORE = 0.01


def assert_same_faces(boxes, scores, landmarks, want) -> dict[str, float]:
    """boxes [N, 4], scores [N], landmarks [N, 5, 2] against ``want`` (a Faces): every face
    paired one to one with the best-overlapping one -> the worst IoU, point and score
    differences found."""
    boxes, scores, landmarks = (np.asarray(a, np.float64) for a in (boxes, scores, landmarks))
    assert len(boxes) == len(want), f"{len(boxes)} faces, the Python cascade found {len(want)}"
    worst = {"iou": 1.0, "points_px": 0.0, "score": 0.0}
    if len(want) == 0:
        return worst
    iou = iou_numpy(boxes, want.boxes)
    taken: set[int] = set()
    for i in np.argsort(-iou.max(1)):
        j = int(np.argmax(np.where(np.isin(np.arange(len(want)), list(taken)), -1, iou[i])))
        taken.add(j)
        assert iou[i, j] >= MIN_IOU, (i, j, boxes[i], want.boxes[j], iou[i, j])
        points = float(np.abs(landmarks[i] - want.landmarks[j]).max())
        score = float(abs(scores[i] - want.scores[j]))
        assert points <= MAX_POINT_PX, (i, landmarks[i], want.landmarks[j])
        assert score <= MAX_SCORE, (i, scores[i], want.scores[j])
        worst = {"iou": min(worst["iou"], float(iou[i, j])), "points_px": max(worst["points_px"], points),
                 "score": max(worst["score"], score)}
    return worst
