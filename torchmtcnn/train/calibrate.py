"""Score calibration: put the detector's default thresholds on a chosen operating point.

Networks trained with online hard example mining on three negatives per face score faces
lower than the original weights do, so at the default thresholds (0.6, 0.7, 0.7) they miss
faces they would find at lower ones, while making few false detections. Calibration moves
R-Net's and O-Net's face logit by a constant each, chosen on validation photos (never trained
on, never held out): the shifts that find the most faces there with at most
``max_false_positives`` false detections per photo. Adding ``d`` to a stage's face logit is
the same as moving its threshold from ``t`` to ``sigmoid(logit(t) - d)``, so the search runs
over thresholds and the chosen ones are folded into the weights. P-Net is left as it is: a
lower P-Net threshold sends more crops to R-Net (slower) for little recall.

The O-Net threshold is searched without re-running the detector: the final NMS keeps boxes in
order of score, so a run at a low threshold, cut at a higher one, keeps exactly the boxes a
run at the higher threshold keeps. Each R-Net threshold needs one run over the photos.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from torch import Tensor

from ..cascade_config import CascadeConfig
from ..data.records import FaceRecord
from ..errors import MTCNNError
from ..weights import read_metadata, read_weights, save_weights

log = logging.getLogger(__name__)

DEFAULT_THRESHOLDS = CascadeConfig().thresholds  # MTCNN()'s
# down to 0.02: weights trained on three negatives per face may score some faces that low
RNET_GRID = (0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.02)
ONET_GRID = tuple(round(t, 2) for t in np.arange(0.02, 1.0, 0.01))


@dataclass
class Calibration:
    """The chosen operating point.

    Attributes:
        thresholds: thresholds on the input weights' scores that the defaults now mean.
        shifts: added to each network's face logit (P-Net, R-Net, O-Net).
        recall: share of the validation faces found (IoU >= 0.5) at the defaults after the shift.
        false_positives: false detections per validation photo, likewise.
        before: (recall, false positives per photo) of the input weights at the defaults.
        photos / faces: validation photos and faces searched on.
        max_false_positives: the budget the search kept to.
    """

    thresholds: tuple[float, float, float]
    shifts: tuple[float, float, float]
    recall: float
    false_positives: float
    before: tuple[float, float]
    photos: int
    faces: int
    max_false_positives: float


def logit(p: float) -> float:
    return math.log(p / (1.0 - p))


def shift_face_logits(tensors: Mapping[str, Tensor], shifts: Sequence[float]) -> dict[str, Tensor]:
    """Weights whose face logit (class 1 of each ``cls`` head) is raised by ``shifts``
    (P-Net, R-Net, O-Net); a face probability p becomes sigmoid(logit(p) + shift)."""
    out = dict(tensors)
    for net, shift in zip(("pnet", "rnet", "onet"), shifts):
        key = f"{net}.cls.bias"
        if key not in tensors:
            raise MTCNNError(f"the weights have no {key}: not an MTCNN weight file")
        bias = tensors[key].clone()
        bias[1] += shift
        out[key] = bias
    return out


def found_and_false(records: Sequence[FaceRecord], boxes: Sequence[np.ndarray],
                    scores: Sequence[np.ndarray], cuts: Sequence[float]) -> np.ndarray:
    """For each score cut: (faces found at IoU >= 0.5, false detections), summed over photos.

    boxes[i]: [N, 4], scores[i]: [N] of photo i -> [len(cuts), 2]. Faces marked ignore are
    neither counted nor make a detection false.
    """
    from ..evaluate.landmarks import match_faces

    totals = np.zeros((len(cuts), 2), np.int64)
    for rec, b, s in zip(records, boxes, scores):
        for k, cut in enumerate(cuts):
            kept = b[s >= cut]
            pairs = match_faces(rec.boxes, kept, 0.5)
            used = np.zeros(len(kept), bool)
            used[pairs[pairs >= 0]] = True
            totals[k, 0] += int(((pairs >= 0) & ~rec.ignore).sum())
            totals[k, 1] += int((~used).sum())
    return totals


def _detections(weights: Path, thresholds: tuple[float, float, float],
                records: Sequence[FaceRecord], device: str | None, progress: bool):
    from ..detector import MTCNN
    from ..evaluate.runner import run_detector

    detector = MTCNN(weights=weights, thresholds=thresholds, device=device)
    preds, failed = run_detector(detector, [str(r.image) for r in records], progress=progress)
    if failed:
        raise MTCNNError(f"calibration photo {failed[0][0]}: {failed[0][1]}")
    return ([np.asarray(p.boxes, np.float64).reshape(-1, 4) for p in preds],
            [np.asarray(p.scores, np.float64).reshape(-1) for p in preds])


def calibrate(weights: str | Path, records: Sequence[FaceRecord],
              max_false_positives: float = 0.05, defaults: Sequence[float] = DEFAULT_THRESHOLDS,
              rnet_grid: Sequence[float] = RNET_GRID, onet_grid: Sequence[float] = ONET_GRID,
              device: str | None = None, progress: bool = True) -> Calibration:
    """Search R-Net and O-Net thresholds on ``records`` (validation photos) for the most
    faces found with at most ``max_false_positives`` false detections per photo (ties: fewer
    false detections, then the thresholds nearest the defaults); returns the shifts that
    make ``defaults`` mean those thresholds."""
    if not records:
        raise MTCNNError("calibration needs validation photos; none given")
    if not max_false_positives >= 0:
        raise MTCNNError(f"max_false_positives must be >= 0, got {max_false_positives}")
    d1, d2, d3 = (float(t) for t in defaults)
    rnet_grid = sorted({*rnet_grid, d2}, reverse=True)
    onet_grid = sorted({*onet_grid, d3}, reverse=True)
    faces = sum(int((~r.ignore).sum()) for r in records)
    n = len(records)
    before = None
    points = []  # (recall, false positives per photo, (t1, t2, t3))
    for t2 in rnet_grid:
        log.info("calibration: R-Net threshold %.2f on %d photos", t2, n)
        boxes, scores = _detections(Path(weights), (d1, t2, min(onet_grid)), records, device,
                                    progress)
        for t3, (found, false) in zip(onet_grid, found_and_false(records, boxes, scores, onet_grid)):
            points.append((found / max(faces, 1), false / n, (d1, t2, t3)))
            if t2 == d2 and t3 == d3:
                before = points[-1][:2]
    assert before is not None
    within = [p for p in points if p[1] <= max_false_positives]
    if not within:  # even the highest thresholds exceed the budget: keep the defaults
        within = [(*before, (d1, d2, d3))]

    def moved(t: tuple[float, float, float]) -> float:
        return abs(logit(t[1]) - logit(d2)) + abs(logit(t[2]) - logit(d3))

    # most faces, then fewest false detections, then the least change from the defaults
    recall, false_pos, chosen = min(within, key=lambda p: (-p[0], p[1], moved(p[2])))
    shifts = (0.0, logit(d2) - logit(chosen[1]), logit(d3) - logit(chosen[2]))
    thresholds = (float(chosen[0]), float(chosen[1]), float(chosen[2]))
    return Calibration(thresholds=thresholds, shifts=shifts, recall=recall, false_positives=false_pos,
                       before=before, photos=n, faces=faces, max_false_positives=max_false_positives)


def calibrate_file(weights: str | Path, records: Sequence[FaceRecord], out: str | Path,
                   **options) -> Calibration:
    """Calibrate ``weights`` on ``records`` and write the shifted weights to ``out``, with the
    calibration in the metadata (key "calibration")."""
    weights, out = Path(weights), Path(out)
    result = calibrate(weights, records, **options)
    tensors = shift_face_logits(read_weights(weights), result.shifts)
    metadata = read_metadata(weights)
    metadata.pop("format", None)
    metadata["calibration"] = json.dumps(asdict(result))
    staged = save_weights(tensors, out.with_name(out.name + ".tmp"), metadata)
    staged.replace(out)  # out may be the input file
    log.info("calibrated %s -> %s: thresholds %s, recall %.4f -> %.4f, false positives per photo "
             "%.3f -> %.3f", weights, out, result.thresholds, result.before[0], result.recall,
             result.before[1], result.false_positives)
    return result

