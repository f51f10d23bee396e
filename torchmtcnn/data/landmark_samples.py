"""Landmark samples (label -2) for any stage, as the reference's gen_landmark_aug_*.py.

For each usable face with all five points, ``landmark_jitters_per_face`` square crops are
jittered around the face (side in [0.8 min(w, h), 1.25 max(w, h)], centre moved by up to 0.2
of the face size); a crop is kept when its IoU with the face is >= positive_iou and, after the
random rotation and flip, all five points lie inside it. Each kept crop is, at random:

* rotated about its centre by an angle uniform in +-max_rotation degrees (the image and the
  points together, by one affine map; the corners left empty by the rotation are zero);
* mirrored left-right, the points mirrored too and the left / right eyes and the left / right
  mouth corners swapped, so that every index keeps naming the same feature.

Coordinates are continuous (pixel i covers [i, i + 1)); the points are stored as (x, y) pairs
[5, 2] divided by the crop side, in [0, 1]. The stored crop box is the square before rotation.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..boxes import iou_numpy
from ..crops import resize_square
from .records import FaceRecord
from .samples import LABEL_LANDMARK, SampleConfig, Samples, usable_faces

# Index permutation of the five points under a horizontal flip: left eye <-> right eye,
# nose stays, left mouth corner <-> right mouth corner.
FLIP_ORDER = np.array([1, 0, 2, 4, 3])


def rotation_matrix(x1: float, y1: float, side: float, angle: float) -> np.ndarray:
    """Affine map [2, 3] from photo coordinates to the crop's (continuous coordinates): rotate
    by ``angle`` degrees (counter-clockwise on screen for positive angles, as
    cv2.getRotationMatrix2D) about the centre of the square (x1, y1, side), then move its
    corner to the origin."""
    c = (x1 + side / 2.0, y1 + side / 2.0)
    m = cv2.getRotationMatrix2D(c, angle, 1.0)
    m[:, 2] -= np.array([x1, y1])
    return m


def warp_crop(image: np.ndarray, matrix: np.ndarray, side: int) -> np.ndarray:
    """Apply a continuous-coordinate affine map [2, 3] to image [H, W, 3] -> [side, side, 3].

    cv2 maps pixel indices (pixel centres at integers); the map is converted to that convention
    first (p_idx = p - 0.5), so that a point at (x, y) in the photo lands exactly at
    matrix @ (x, y, 1) in the crop. Outside the photo is zero.
    """
    m = matrix.astype(np.float64).copy()
    m[:, 2] += m[:, :2] @ np.array([0.5, 0.5]) - 0.5
    return cv2.warpAffine(image, m, (side, side), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))


def flip_points(points: np.ndarray) -> np.ndarray:
    """Mirror normalised points [..., 5, 2] in [0, 1] left-right and swap left / right."""
    out = points[..., FLIP_ORDER, :].copy()
    out[..., 0] = 1.0 - out[..., 0]
    return out


def landmark_samples(
    image: np.ndarray, record: FaceRecord, rng: np.random.Generator, size: int,
    config: SampleConfig, photo: int = 0,
) -> Samples:
    """Landmark samples of one photo.

    image: uint8 [H, W, 3] RGB; record: its faces (faces without five finite points, ignored
    or smaller than config.min_face give none) -> Samples of size x size, label -2, landmarks
    [N, 5, 2] in [0, 1], boxes zero.
    """
    if record.landmarks is None or len(record) == 0:
        return Samples.empty(size)
    has_points = np.isfinite(record.landmarks).all((1, 2)) & usable_faces(record, config)
    images, points, crops = [], [], []
    for i in np.flatnonzero(has_points):
        face = record.boxes[i].astype(np.float64)
        fx1, fy1, fx2, fy2 = face
        w, h = fx2 - fx1, fy2 - fy1
        lo, hi = int(min(w, h) * 0.8), int(np.ceil(1.25 * max(w, h)))
        pts = record.landmarks[i].astype(np.float64)
        for _ in range(config.landmark_jitters_per_face):
            side = int(rng.integers(max(lo, 1), max(hi, lo + 1) + 1))
            dx, dy = rng.uniform(-0.2 * w, 0.2 * w), rng.uniform(-0.2 * h, 0.2 * h)
            x1 = int(np.floor(fx1 + w / 2 + dx - side / 2))
            y1 = int(np.floor(fy1 + h / 2 + dy - side / 2))
            angle = (rng.uniform(-config.max_rotation, config.max_rotation)
                     if rng.random() < config.rotation_prob else 0.0)
            flip = bool(rng.random() < config.flip_prob)
            box = np.array([[x1, y1, x1 + side, y1 + side]], np.float64)
            if iou_numpy(box, face[None])[0, 0] < config.positive_iou:
                continue
            m = rotation_matrix(x1, y1, side, angle)
            moved = (pts @ m[:, :2].T + m[:, 2]) / side
            if not ((moved >= 0) & (moved <= 1)).all():
                continue
            patch = warp_crop(image, m, side)
            if flip:
                patch = patch[:, ::-1]
                moved = flip_points(moved)
            images.append(resize_square(patch, size))
            points.append(moved)
            crops.append(box[0])
    n = len(images)
    if n == 0:
        return Samples.empty(size)
    return Samples(
        np.stack(images).astype(np.uint8), np.full(n, LABEL_LANDMARK, np.int8),
        np.zeros((n, 4), np.float32), np.stack(points).astype(np.float32),
        np.stack(crops).astype(np.float32), np.full(n, photo, np.int32),
    )
