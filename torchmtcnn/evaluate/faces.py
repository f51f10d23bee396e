"""AP of a detector on any annotation source (a list of :class:`FaceRecord`).

The same protocol as the WIDER FACE evaluation (:mod:`.ap`), with each record's ``ignore``
mask in the place of WIDER's per-setting ``gt_list``; the FDDB discrete ROC is computed on
the same pairs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from collections.abc import Sequence

import numpy as np

from ..data.records import FaceRecord
from .ap import THRESH_NUM, PRCurve, pr_curve
from .fddb import DiscreteROC, discrete_roc
from ..faces import Faces
from .predictions import match_images

log = logging.getLogger(__name__)


@dataclass
class FacesResult:
    """Detection quality of one prediction set on one annotation set.

    Attributes:
        curve: the precision-recall curve and AP.
        roc: FDDB's discrete ROC (true positives against false positives).
        num_images: ground-truth images evaluated.
        missing: ground-truth images with no prediction (they count as no detections).
        unused: prediction images matching no ground-truth image.
    """

    curve: PRCurve
    roc: DiscreteROC
    num_images: int
    missing: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)

    @property
    def ap(self) -> float:
        return self.curve.ap


def pair_predictions(
    records: Sequence[FaceRecord], preds: Sequence[Faces]
) -> tuple[list[Faces | None], list[str], list[str]]:
    """For each record, its prediction (or None); plus the missing and unused image names."""
    matching = match_images([r.image for r in records], [p.image for p in preds])
    if matching.ambiguous:
        log.warning("%d images match several predictions or the reverse (e.g. %s); "
                    "they count as without prediction", len(matching.ambiguous),
                    matching.ambiguous[0])
    if matching.missing:
        log.warning("%d of %d images have no prediction (e.g. %s)", len(matching.missing),
                    len(records), matching.missing[0])
    paired = [preds[p] if p >= 0 else None for p in matching.pairs]
    return paired, matching.missing, matching.unused


def evaluate_faces(
    records: Sequence[FaceRecord],
    preds: Sequence[Faces],
    iou_thresh: float = 0.5,
    thresh_num: int = THRESH_NUM,
    skip_empty: bool = True,
    offset: float = 1.0,
) -> FacesResult:
    """AP (WIDER protocol) of ``preds`` on ``records``, faces with ``ignore`` set ignored.

    ``skip_empty`` (the official rule) leaves out images without annotated faces, so
    detections there are not false positives; pass False for sets with face-free photos.
    ``offset`` 1 is the official "+1" IoU; 0 is continuous coordinates.
    """
    paired, missing, unused = pair_predictions(records, preds)
    empty = (np.zeros((0, 4)), np.zeros(0))
    pred_list = [(p.boxes, p.scores) if p is not None else empty for p in paired]
    gts = [(r.boxes.astype(np.float64), ~np.asarray(r.ignore, bool)) for r in records]
    curve = pr_curve(pred_list, gts, iou_thresh, thresh_num, skip_empty=skip_empty, offset=offset)
    if skip_empty:
        roc_pairs = [(p, g) for p, g in zip(pred_list, gts) if len(g[0])]
    else:
        roc_pairs = list(zip(pred_list, gts))
    roc = discrete_roc([p for p, _ in roc_pairs], [g for _, g in roc_pairs], iou_thresh)
    return FacesResult(curve, roc, len(records), missing, unused)
