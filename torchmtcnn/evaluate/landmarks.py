"""Landmark error: inter-ocular normalised mean error, failure rate, CED curve and its AUC.

The five points are, in order, left eye, right eye, nose, left mouth corner, right mouth
corner ([N, 5, 2] arrays of (x, y)). For one face the normalised mean error (NME) is the mean
over its points of the distance between predicted and true point, divided by the distance
between the two true eye points. A face fails when its NME is above 10 %; the cumulative
error distribution (CED) is the fraction of faces with NME <= x, and its AUC up to 10 % is
the area under it from 0 to 0.1, divided by 0.1 (1 for a perfect detector).

Detected faces are paired with ground-truth faces first (IoU >= 0.5, each ground-truth face
takes its best-overlapping prediction one-to-one); ground-truth faces left unpaired are
counted as missed, apart from the error statistics.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from collections.abc import Sequence

import numpy as np

from ..data.records import FaceRecord
from .ap import overlaps
from .faces import pair_predictions
from ..faces import Faces

log = logging.getLogger(__name__)

FAILURE_THRESHOLD = 0.10


def match_faces(
    gt_boxes: np.ndarray, pred_boxes: np.ndarray, iou_thresh: float = 0.5
) -> np.ndarray:
    """Pair ground-truth faces with predictions one-to-one by decreasing IoU.

    gt_boxes: [M, 4], pred_boxes: [N, 4] (x1, y1, x2, y2, x2 exclusive) -> int64 [M], the
    prediction index of each ground-truth face, or -1 when no free prediction overlaps it
    with IoU >= iou_thresh.
    """
    m = len(gt_boxes)
    out = np.full(m, -1, np.int64)
    if m == 0 or len(pred_boxes) == 0:
        return out
    iou = overlaps(gt_boxes, pred_boxes, offset=0.0)
    gi, pj = np.nonzero(iou >= iou_thresh)
    order = np.argsort(-iou[gi, pj], kind="stable")
    used = np.zeros(len(pred_boxes), bool)
    for k in order:
        g, p = gi[k], pj[k]
        if out[g] < 0 and not used[p]:
            out[g] = p
            used[p] = True
    return out


def nme(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """Inter-ocular normalised mean error per face.

    pred, gt: [K, 5, 2] -> float64 [K]. Points missing (NaN) in gt are left out of the mean;
    a face whose true eyes are missing or coincide, or with a predicted point missing where
    the truth has one, gets NaN.
    """
    pred = np.asarray(pred, np.float64).reshape(-1, 5, 2)
    gt = np.asarray(gt, np.float64).reshape(-1, 5, 2)
    iod = np.linalg.norm(gt[:, 0] - gt[:, 1], axis=1)  # [K]
    dist = np.linalg.norm(pred - gt, axis=2)  # [K, 5]
    valid_gt = np.isfinite(gt).all(axis=2)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(valid_gt, dist, 0.0).sum(1) / valid_gt.sum(1)
        err = mean / iod
    bad = ~np.isfinite(iod) | (iod <= 0) | np.any(valid_gt & ~np.isfinite(dist), axis=1)
    err[bad] = np.nan
    return err


def ced_curve(errors: np.ndarray, max_error: float = FAILURE_THRESHOLD,
              steps: int = 1000) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative error distribution: x float64 [steps + 1] in [0, max_error], y = P(err <= x)."""
    errors = np.sort(np.asarray(errors, np.float64))
    x = np.linspace(0.0, max_error, steps + 1)
    if len(errors) == 0:
        return x, np.zeros_like(x)
    y = np.searchsorted(errors, x, side="right") / len(errors)
    return x, y


def ced_auc(errors: np.ndarray, max_error: float = FAILURE_THRESHOLD) -> float:
    """Area under the CED from 0 to max_error, divided by max_error (exact, in [0, 1])."""
    errors = np.asarray(errors, np.float64)
    if len(errors) == 0:
        return float("nan")
    return float(np.mean(np.clip(max_error - errors, 0.0, None)) / max_error)


@dataclass
class LandmarkResult:
    """Landmark quality of one prediction set.

    Attributes:
        errors: float64 [K] NME of each paired face that has true points.
        num_faces: ground-truth faces with points (not ignored).
        num_missed: of those, faces no prediction was paired with.
        num_no_points: paired faces whose prediction has no points (not in ``errors``).
        missing_images: images without any prediction.
        max_error: the failure threshold (0.1).
    """

    errors: np.ndarray
    num_faces: int
    num_missed: int
    num_no_points: int = 0
    missing_images: list[str] = field(default_factory=list)
    max_error: float = FAILURE_THRESHOLD

    @property
    def mean_nme(self) -> float:
        return float(np.mean(self.errors)) if len(self.errors) else float("nan")

    @property
    def failure_rate(self) -> float:
        """Fraction of paired faces with NME above max_error."""
        return float(np.mean(self.errors > self.max_error)) if len(self.errors) else float("nan")

    @property
    def auc(self) -> float:
        return ced_auc(self.errors, self.max_error)

    def ced(self, steps: int = 1000) -> tuple[np.ndarray, np.ndarray]:
        return ced_curve(self.errors, self.max_error, steps)


def evaluate_landmarks(
    records: Sequence[FaceRecord],
    preds: Sequence[Faces],
    iou_thresh: float = 0.5,
    max_error: float = FAILURE_THRESHOLD,
) -> LandmarkResult:
    """Landmark error of ``preds`` on the faces of ``records`` that have points.

    Faces marked ignore, and faces whose true eyes are missing, are left out entirely.
    """
    paired, missing, _ = pair_predictions(records, preds)
    errors: list[np.ndarray] = []
    num_faces = num_missed = num_no_points = 0
    for rec, pred in zip(records, paired):
        if rec.landmarks is None or len(rec) == 0:
            continue
        gt_pts = rec.landmarks.astype(np.float64)
        usable = ~np.asarray(rec.ignore, bool) & np.isfinite(gt_pts[:, :2]).all(axis=(1, 2))
        if not usable.any():
            continue
        idx = np.nonzero(usable)[0]
        num_faces += len(idx)
        if pred is None or len(pred) == 0:
            num_missed += len(idx)
            continue
        pairs = match_faces(rec.boxes[idx], pred.boxes, iou_thresh)
        num_missed += int((pairs < 0).sum())
        hit = pairs >= 0
        if not hit.any():
            continue
        if pred.landmarks is None:
            num_no_points += int(hit.sum())
            continue
        err = nme(pred.landmarks[pairs[hit]], gt_pts[idx[hit]])
        num_no_points += int(np.isnan(err).sum())
        errors.append(err[~np.isnan(err)])
    all_err = np.concatenate(errors) if errors else np.zeros(0)
    if num_no_points:
        log.warning("%d paired faces have no predicted points", num_no_points)
    return LandmarkResult(all_err, num_faces, num_missed, num_no_points, missing, max_error)
