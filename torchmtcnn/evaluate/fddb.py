"""FDDB: ellipse annotations and the discrete score (true positive rate at N false positives).

FDDB annotates each face by an ellipse, in ``FDDB-fold-XX-ellipseList.txt`` files::

    2002/08/11/big/img_591
    1
    123.583300 85.549500 1.265839 269.693400 161.781200  1

(major radius, minor radius, angle of the major axis in radians, centre x, centre y, 1).
Each ellipse is turned into its bounding box; a detection is a true positive for a face when
their IoU is above 0.5. Within an image, the true positives among the detections scoring at
least a threshold are the maximum one-to-one matching of those detections and the faces (as
FDDB's bipartite matching), so the count never depends on the visiting order.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Sequence

import numpy as np

from ..data.records import FaceRecord
from ..errors import AnnotationError
from .ap import overlaps
from .predictions import fddb_blocks

log = logging.getLogger(__name__)


def ellipse_to_box(major: float, minor: float, angle: float, cx: float, cy: float) -> np.ndarray:
    """Bounding box (x1, y1, x2, y2) of an ellipse; float64 [4]."""
    c, s = np.cos(angle), np.sin(angle)
    half_w = np.sqrt((major * c) ** 2 + (minor * s) ** 2)
    half_h = np.sqrt((major * s) ** 2 + (minor * c) ** 2)
    return np.array([cx - half_w, cy - half_h, cx + half_w, cy + half_h])


def read_fddb_ellipses(paths: str | Path | Sequence[str | Path]) -> list[FaceRecord]:
    """Read one or several FDDB ellipse lists into records (boxes are the ellipses' boxes).

    Image paths are kept as written (``2002/08/11/big/img_591``, no extension); they match
    the images under an FDDB root by their trailing components.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    records: list[FaceRecord] = []
    for path in map(Path, paths):
        if not path.is_file():
            raise AnnotationError(f"{path}: FDDB ellipse list not found")
        for lineno, name, block in fddb_blocks(path, AnnotationError):
            boxes = []
            for k, line in enumerate(block):
                try:
                    vals = [float(v) for v in line.split()[:5]]
                    if len(vals) < 5:
                        raise ValueError("fewer than 5 numbers")
                except ValueError as exc:
                    raise AnnotationError(f"{path}:{lineno + 2 + k}: expected an ellipse "
                                          f"'major minor angle cx cy 1' ({exc})") from exc
                boxes.append(ellipse_to_box(*vals))
            records.append(FaceRecord(image=Path(name), boxes=np.asarray(boxes).reshape(-1, 4),
                                      source=f"{path}:{lineno}"))
    return records


def _incremental_matching(adj: list[list[int]], num_gt: int) -> np.ndarray:
    """Maximum matching size after adding detections 0..h one at a time (Kuhn's algorithm).

    adj[h]: faces detection h may match. Returns int64 [N], cumulative matching size.
    """
    match_gt = [-1] * num_gt
    out = np.zeros(len(adj), np.int64)
    size = 0

    def augment(h: int, seen: list[bool]) -> bool:
        for g in adj[h]:
            if not seen[g]:
                seen[g] = True
                if match_gt[g] < 0 or augment(match_gt[g], seen):
                    match_gt[g] = h
                    return True
        return False

    for h in range(len(adj)):
        if adj[h] and augment(h, [False] * num_gt):
            size += 1
        out[h] = size
    return out


@dataclass
class DiscreteROC:
    """FDDB's discrete ROC: one point per distinct score, high to low.

    Attributes:
        scores: float64 [K] thresholds.
        tp, fp: int64 [K] true and false positives at each threshold.
        num_faces: faces counted.
    """

    scores: np.ndarray
    tp: np.ndarray
    fp: np.ndarray
    num_faces: int

    @property
    def tpr(self) -> np.ndarray:
        return self.tp / max(self.num_faces, 1)

    def tpr_at(self, max_fp: int = 1000) -> float:
        """The true positive rate at ``max_fp`` false positives (the best with fp <= max_fp)."""
        ok = self.fp <= max_fp
        return float(self.tpr[ok].max()) if ok.any() else 0.0


def discrete_roc(
    preds: Sequence[tuple[np.ndarray, np.ndarray]],
    gts: Sequence[tuple[np.ndarray, np.ndarray]],
    iou_thresh: float = 0.5,
) -> DiscreteROC:
    """FDDB's discrete-score ROC of a prediction set.

    preds: per image (boxes [N, 4] x1,y1,x2,y2, scores [N]); gts: per image (boxes [M, 4],
    keep bool [M]). A detection that adds nothing to the matching but overlaps an ignored
    face (keep False) above the threshold is dropped, neither true nor false positive.
    """
    all_scores, all_tp, all_fp = [], [], []
    num_faces = 0
    for (boxes, scores), (gt, keep) in zip(preds, gts):
        keep = np.asarray(keep, bool).reshape(-1)
        num_faces += int(keep.sum())
        scores = np.asarray(scores, np.float64).reshape(-1)
        if len(scores) == 0:
            continue
        order = np.argsort(-scores, kind="stable")
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)[order]
        iou = overlaps(boxes, gt, offset=0.0) if len(gt) else np.zeros((len(boxes), 0))
        hit = iou > iou_thresh
        adj = [np.nonzero(row & keep)[0].tolist() for row in hit]
        cum = _incremental_matching(adj, len(gt))
        gain = np.diff(np.concatenate(([0], cum)))
        on_ignored = (hit & ~keep[None, :]).any(axis=1) if len(gt) else np.zeros(len(boxes), bool)
        all_scores.append(scores[order])
        all_tp.append(gain)
        all_fp.append(((gain == 0) & ~on_ignored).astype(np.int64))
    if not all_scores:
        z = np.zeros(0, np.int64)
        return DiscreteROC(np.zeros(0), z, z, num_faces)
    scores = np.concatenate(all_scores)
    order = np.argsort(-scores, kind="stable")
    scores = scores[order]
    tp = np.cumsum(np.concatenate(all_tp)[order])
    fp = np.cumsum(np.concatenate(all_fp)[order])
    last = np.nonzero(np.append(scores[1:] != scores[:-1], True))[0]  # end of each tie group
    return DiscreteROC(scores[last], tp[last], fp[last], num_faces)
