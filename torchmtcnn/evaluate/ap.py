"""Matching, precision-recall and average precision, the way the WIDER FACE eval_tools do it.

This is the core shared by the WIDER protocol (:mod:`.wider`), AP on any annotation source
(:func:`evaluate_faces`) and the FDDB score (:mod:`.fddb`). The semantics follow the official
MATLAB ``evaluation.m``:

* the scores of every prediction of the whole set are min-max normalised to [0, 1];
* in each image the predictions are visited by decreasing score; each takes the ground-truth
  face it overlaps most (IoU with the "+1" pixel convention of ``boxoverlap.m``); at IoU >=
  0.5 it recalls that face if the face counts in this setting, and if the face is ignored the
  prediction is dropped (neither true nor false positive); anything else (no overlap, or a
  face already recalled) stays a proposal that recalls nothing, i.e. a false positive;
* 1000 thresholds ``1 - t/1000`` (t = 1..1000); at each, an image contributes its proposals
  and recalled faces among the predictions scoring >= the threshold;
* precision = recalled / proposals, recall = recalled / faces counted in the setting; AP is
  the official ``VOCap`` (area under the precision envelope), where, as MATLAB's ``max``
  does, a 0/0 precision is skipped.

An image without ground-truth faces or without predictions is skipped by the official code
(its predictions are not false positives); ``skip_empty=False`` counts them instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)

THRESH_NUM = 1000


@dataclass
class PRCurve:
    """A precision-recall curve over the thresholds ``1 - t/n`` (t = 1..n), high to low.

    Attributes:
        thresholds: float64 [T].
        precision: float64 [T] (NaN where no prediction passes the threshold).
        recall: float64 [T].
        ap: the VOC-style average precision.
        proposals: int64 [T] predictions counted at each threshold (ignored ones excluded).
        recalled: int64 [T] faces recalled at each threshold.
        num_faces: faces counted (not ignored).
    """

    thresholds: np.ndarray
    precision: np.ndarray
    recall: np.ndarray
    ap: float
    proposals: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    recalled: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    num_faces: int = 0


def overlaps(a: np.ndarray, b: np.ndarray, offset: float = 1.0) -> np.ndarray:
    """IoU of boxes a: [N, 4] and b: [M, 4] (x1, y1, x2, y2) -> float64 [N, M].

    ``offset`` 1 is the official ``boxoverlap.m`` (width = x2 - x1 + 1); 0 is continuous.
    Pairs with no positive intersection overlap 0.
    """
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = rb - lt + offset
    inter = wh[..., 0] * wh[..., 1]
    area_a = (a[:, 2] - a[:, 0] + offset) * (a[:, 3] - a[:, 1] + offset)
    area_b = (b[:, 2] - b[:, 0] + offset) * (b[:, 3] - b[:, 1] + offset)
    union = area_a[:, None] + area_b[None, :] - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    iou[(wh[..., 0] <= 0) | (wh[..., 1] <= 0)] = 0.0
    return iou


def normalize_scores(scores: list[np.ndarray]) -> list[np.ndarray]:
    """Min-max normalise the scores of a whole prediction set to [0, 1].

    scores: one float array [N_i] per image -> the same shapes, float64. When every score is
    the same the result is all ones (every prediction passes every threshold).
    """
    nonempty = [np.asarray(s, np.float64) for s in scores if len(s)]
    if not nonempty:
        return [np.asarray(s, np.float64) for s in scores]
    lo = min(float(s.min()) for s in nonempty)
    hi = max(float(s.max()) for s in nonempty)
    if hi <= lo:
        log.warning("all %d prediction scores are equal; they are normalised to 1", len(nonempty))
        return [np.ones(len(s)) for s in scores]
    return [(np.asarray(s, np.float64) - lo) / (hi - lo) for s in scores]


def match_image(
    boxes: np.ndarray,
    gt: np.ndarray,
    keep: np.ndarray,
    iou_thresh: float = 0.5,
    offset: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Match one image's predictions, already sorted by decreasing score, to its faces.

    boxes: [N, 4] predictions (x1, y1, x2, y2); gt: [M, 4] faces; keep: bool [M], False for
    ignored faces.

    Returns (proposal bool [N]: False for a prediction dropped on an ignored face;
    recalled int64 [N]: faces recalled by predictions 0..h, cumulative).
    """
    n = len(boxes)
    proposal = np.ones(n, dtype=bool)
    recalled = np.zeros(n, dtype=np.int64)
    if n == 0 or len(gt) == 0:
        return proposal, recalled
    iou = overlaps(boxes, gt, offset)
    best = iou.argmax(axis=1)
    best_iou = iou[np.arange(n), best]
    state = np.zeros(len(gt), dtype=np.int8)  # 0 free, 1 recalled, -1 ignored face hit
    count = 0
    for h in range(n):
        if best_iou[h] >= iou_thresh:
            j = best[h]
            if not keep[j]:
                state[j] = -1
                proposal[h] = False
            elif state[j] == 0:
                state[j] = 1
                count += 1
        recalled[h] = count
    return proposal, recalled


def thresholds(num: int = THRESH_NUM) -> np.ndarray:
    """The official thresholds ``1 - t/num`` for t = 1..num: float64 [num], high to low."""
    return 1.0 - np.arange(1, num + 1, dtype=np.float64) / num


def image_pr(
    scores: np.ndarray, proposal: np.ndarray, recalled: np.ndarray, thresh: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Proposals and recalled faces of one image at each threshold.

    scores: float [N] normalised, decreasing; proposal: bool [N]; recalled: int [N]
    cumulative; thresh: [T] -> (proposals int64 [T], recalled int64 [T]).
    """
    if len(scores) == 0:
        z = np.zeros(len(thresh), np.int64)
        return z, z.copy()
    # number of predictions scoring >= t (scores are sorted high to low)
    passed = np.searchsorted(-np.asarray(scores, np.float64), -thresh, side="right")
    cum_prop = np.concatenate(([0], np.cumsum(proposal, dtype=np.int64)))
    cum_rec = np.concatenate(([0], np.asarray(recalled, np.int64)))
    return cum_prop[passed], cum_rec[passed]


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """The official ``VOCap``: area under the precision envelope of a PR curve.

    recall, precision: float [T], ordered by increasing recall. NaN precisions (0/0) are
    skipped by the envelope like MATLAB's ``max`` skips NaN.
    """
    mrec = np.concatenate(([0.0], np.asarray(recall, np.float64), [1.0]))
    mpre = np.concatenate(([0.0], np.asarray(precision, np.float64), [0.0]))
    for i in range(len(mpre) - 2, -1, -1):
        mpre[i] = np.fmax(mpre[i], mpre[i + 1])
    idx = np.nonzero(mrec[1:] != mrec[:-1])[0] + 1
    return float(np.sum((mrec[idx] - mrec[idx - 1]) * np.nan_to_num(mpre[idx])))


def pr_curve(
    preds: list[tuple[np.ndarray, np.ndarray]],
    gts: list[tuple[np.ndarray, np.ndarray]],
    iou_thresh: float = 0.5,
    thresh_num: int = THRESH_NUM,
    skip_empty: bool = True,
    offset: float = 1.0,
    normalize: bool = True,
) -> PRCurve:
    """Precision-recall and AP of a whole prediction set against its ground truth.

    preds: per image (boxes [N, 4] x1,y1,x2,y2, scores [N]); gts: per image, same order
    (boxes [M, 4] x1,y1,x2,y2, keep bool [M] with False for ignored faces).
    ``normalize`` min-max normalises the scores over the whole set first (official).
    ``skip_empty`` (official) skips images with no face box or no prediction.
    """
    if len(preds) != len(gts):
        raise ValueError(f"{len(preds)} prediction lists for {len(gts)} images")
    scores = [np.asarray(s, np.float64).reshape(-1) for _, s in preds]
    if normalize:
        scores = normalize_scores(scores)
    thresh = thresholds(thresh_num)
    prop_sum = np.zeros(thresh_num, np.int64)
    rec_sum = np.zeros(thresh_num, np.int64)
    num_faces = 0
    for (boxes, _), score, (gt, keep) in zip(preds, scores, gts):
        keep = np.asarray(keep, bool).reshape(-1)
        gt = np.asarray(gt, np.float64).reshape(-1, 4)
        num_faces += int(keep.sum())
        if len(score) == 0 or (skip_empty and len(gt) == 0):
            continue
        order = np.argsort(-score, kind="stable")
        box_sorted = np.asarray(boxes, np.float64).reshape(-1, 4)[order]
        proposal, recalled = match_image(box_sorted, gt, keep, iou_thresh, offset)
        p, r = image_pr(score[order], proposal, recalled, thresh)
        prop_sum += p
        rec_sum += r
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = rec_sum / prop_sum.astype(np.float64)
        recall = rec_sum / float(num_faces) if num_faces else np.zeros(thresh_num)
    ap = voc_ap(recall, precision) if num_faces else float("nan")
    return PRCurve(thresh, precision, recall, ap, prop_sum, rec_sum, num_faces)
