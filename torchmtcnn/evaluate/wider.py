"""The official WIDER FACE validation protocol (easy / medium / hard AP), in numpy.

Reads the official ground truth (``wider_face_val.mat`` and ``wider_{easy,medium,hard}_val.mat``
from the eval_tools) and scores a prediction set the way ``evaluation.m`` does; see
:mod:`.ap` for the exact rules.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Sequence

import numpy as np

from ..errors import AnnotationError
from .ap import THRESH_NUM, PRCurve, pr_curve
from ..faces import Faces
from .predictions import match_images

log = logging.getLogger(__name__)

SETTINGS = ("easy", "medium", "hard")


@dataclass
class WiderGroundTruth:
    """The WIDER FACE validation ground truth.

    Attributes:
        images: ``event/name`` of each image (no extension), [I].
        boxes: per image float64 [M_i, 4] (x1, y1, x2, y2) = (x, y, x + w, y + h).
        keep: setting -> per image bool [M_i], True for the faces the setting counts.
        attributes: per image dict of int arrays [M_i] (blur, occlusion, pose, invalid...).
    """

    images: list[str]
    boxes: list[np.ndarray]
    keep: dict[str, list[np.ndarray]]
    attributes: list[dict[str, np.ndarray]] = field(default_factory=list)

    @property
    def num_boxes(self) -> int:
        return int(sum(len(b) for b in self.boxes))


def _cell(x: np.ndarray, *idx: int):
    for i in idx:
        x = x[i]
    return x


def load_wider_gt(gt_dir: str | Path) -> WiderGroundTruth:
    """Load the official ``.mat`` ground truth from ``gt_dir``.

    Raises AnnotationError naming the file when one is missing or unreadable.
    """
    from scipy.io import loadmat

    gt_dir = Path(gt_dir)

    def load(name: str) -> dict:
        path = gt_dir / name
        if not path.is_file():
            raise AnnotationError(f"{path}: WIDER FACE ground-truth file not found")
        try:
            return loadmat(str(path))
        except Exception as exc:  # scipy raises several types on a bad file
            raise AnnotationError(f"{path}: not a readable MATLAB file ({exc})") from exc

    full = load("wider_face_val.mat")
    settings = {s: load(f"wider_{s}_val.mat")["gt_list"] for s in SETTINGS}
    events = full["event_list"]
    files = full["file_list"]
    bbx = full["face_bbx_list"]
    label_keys = [k for k in full if k.endswith("_label_list")]
    images: list[str] = []
    boxes: list[np.ndarray] = []
    keep: dict[str, list[np.ndarray]] = {s: [] for s in SETTINGS}
    attrs: list[dict[str, np.ndarray]] = []
    for e in range(len(events)):
        event = str(_cell(events, e, 0, 0))
        names = _cell(files, e, 0)
        for j in range(len(names)):
            images.append(f"{event}/{str(_cell(names, j, 0, 0))}")
            xywh = np.asarray(_cell(bbx, e, 0, j, 0), np.float64).reshape(-1, 4)
            xyxy = xywh.copy()
            xyxy[:, 2:] += xyxy[:, :2]
            boxes.append(xyxy)
            for s in SETTINGS:
                idx = np.asarray(_cell(settings[s], e, 0, j, 0), np.int64).reshape(-1)
                mask = np.zeros(len(xyxy), dtype=bool)
                mask[idx - 1] = True  # MATLAB indices are 1-based
                keep[s].append(mask)
            attrs.append({
                k[: -len("_label_list")]: np.asarray(_cell(full[k], e, 0, j, 0)).reshape(-1)
                for k in label_keys
            })
    log.info("WIDER ground truth: %d images, %d boxes", len(images), sum(map(len, boxes)))
    return WiderGroundTruth(images, boxes, keep, attrs)


@dataclass
class WiderResult:
    """AP and PR curve per setting, plus the images that had no prediction.

    Attributes:
        curves: setting ("easy", "medium", "hard") -> PRCurve.
        missing: ``event/name`` of ground-truth images without a prediction.
        unused: prediction images that match no ground-truth image.
    """

    curves: dict[str, PRCurve]
    missing: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)

    @property
    def ap(self) -> dict[str, float]:
        return {s: c.ap for s, c in self.curves.items()}


def evaluate_wider(
    preds: Sequence[Faces],
    gt: WiderGroundTruth,
    iou_thresh: float = 0.5,
    thresh_num: int = THRESH_NUM,
    settings: Sequence[str] = SETTINGS,
) -> WiderResult:
    """Score a prediction set with the official WIDER FACE protocol.

    Predictions are paired with images by name (see :func:`match_images`); images with no
    prediction count as having no detections, as in the official code. Scores are min-max
    normalised over the predictions of the matched images.
    """
    matching = match_images(gt.images, [p.image for p in preds])
    if matching.missing:
        log.warning("%d of %d WIDER images have no prediction (e.g. %s)",
                    len(matching.missing), len(gt.images), matching.missing[0])
    empty = (np.zeros((0, 4)), np.zeros(0))
    pred_list = [(preds[p].boxes, preds[p].scores) if p >= 0 else empty for p in matching.pairs]
    curves = {}
    for s in settings:
        gts = list(zip(gt.boxes, gt.keep[s]))
        curves[s] = pr_curve(pred_list, gts, iou_thresh, thresh_num, skip_empty=True, offset=1.0)
        log.info("WIDER %s AP %.4f", s, curves[s].ap)
    return WiderResult(curves, matching.missing, matching.unused)
