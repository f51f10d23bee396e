"""The MTCNN multi-task loss: face classification with online hard example mining, box
regression and landmark regression, weighted per stage.

Which samples each task sees (labels of :mod:`torchmtcnn.data.samples`):

=============  ===========================  ==============================================
task           samples                      loss per sample
=============  ===========================  ==============================================
face / not     negatives (0), positives (1) cross-entropy of the 2 logits; only the
                                            hardest ``ohem_ratio`` of them are averaged
box            positives (1), parts (-1)    squared error summed over the 4 offsets
landmarks      landmark samples (-2)        squared error (or wing loss) summed over the
                                            10 coordinates
=============  ===========================  ==============================================

Each task's loss is the mean over its samples; a batch without any sample of a task gives a
0 for that task (a tensor that still carries a gradient path, never NaN). The total is
``cls_weight * cls + box_weight * box + landmark_weight * landmarks`` (the paper's 1 : 0.5 :
0.5 for P-Net and R-Net, 1 : 0.5 : 1 for O-Net).

Online hard example mining keeps ``k = ceil(ohem_ratio * n)`` of the n classification samples
(ceil, so that a batch with one classification sample keeps it; the reference floors, which
drops every sample of a batch with one). The product is rounded to 6 decimals before the
ceil so that float noise (0.7 * 10 = 7.000000000000001) cannot add a sample.

Wing loss (Feng et al. 2018, "Wing Loss for Robust Facial Landmark Localisation with
Convolutional Neural Networks"), per coordinate error x in crop sides::

    wing(x) = w * ln(1 + |x| / eps)      if |x| < w
              |x| - C                    otherwise, C = w - w * ln(1 + w / eps)

Squared error gives small errors almost no gradient (2x), so once the points are roughly
right they stop improving; the wing's logarithm keeps a gradient of about w / eps for them
and grows only linearly for outliers. ``LossWeights(landmark_loss="wing")`` selects it.

Landmark layouts: the dataset gives points as [N, 5, 2] (x, y) pairs in [0, 1] of the crop;
the networks output [N, 10] as x1..x5 then y1..y5. :func:`landmark_targets` is the one place
that converts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..data.samples import LABEL_LANDMARK, LABEL_NEGATIVE, LABEL_PART, LABEL_POSITIVE


LANDMARK_LOSSES = ("l2", "wing")


@dataclass
class LossWeights:
    """Weights of the three tasks, the share of classification samples OHEM keeps, and the
    landmark loss: ``"l2"`` (squared error, the paper's) or ``"wing"`` with its width and
    curvature ``wing_w`` and ``wing_eps`` in crop sides (module docstring)."""

    cls: float = 1.0
    box: float = 0.5
    landmark: float = 0.5
    ohem_ratio: float = 0.7
    landmark_loss: str = "l2"
    wing_w: float = 0.15
    wing_eps: float = 0.03

    def __post_init__(self) -> None:
        if self.landmark_loss not in LANDMARK_LOSSES:
            raise ValueError(f"landmark_loss must be one of {LANDMARK_LOSSES}, got "
                             f"{self.landmark_loss!r}")
        if not (self.wing_w > 0 and self.wing_eps > 0):
            raise ValueError(f"wing_w and wing_eps must be positive, got {self.wing_w!r} and "
                             f"{self.wing_eps!r}")


@dataclass
class LossParts:
    """The weighted total and its three unweighted parts (0-dim tensors), and how many
    samples each task used in the batch."""

    total: Tensor
    cls: Tensor
    box: Tensor
    landmark: Tensor
    n_cls: int
    n_box: int
    n_landmark: int


def ohem_count(n: int, ratio: float) -> int:
    """How many of n classification samples OHEM keeps: ceil(ratio * n), 0 <= k <= n."""
    if n <= 0:
        return 0
    return min(n, max(0, math.ceil(round(ratio * n, 6))))


def flatten_outputs(*outputs: Tensor) -> tuple[Tensor, ...]:
    """P-Net on 12x12 inputs gives [N, C, 1, 1]: -> [N, C]. [N, C] stays as it is."""
    flat = []
    for out in outputs:
        if out.dim() == 4:
            if out.shape[2:] != (1, 1):
                raise ValueError(f"expected [N, C, 1, 1] outputs for 12x12 crops, got "
                                 f"{tuple(out.shape)}")
            out = out.flatten(1)
        flat.append(out)
    return tuple(flat)


def landmark_targets(points: Tensor) -> Tensor:
    """Dataset points [N, 5, 2] (x, y pairs) -> network layout [N, 10] (x1..x5, y1..y5)."""
    return points.transpose(1, 2).reshape(points.shape[0], 10)


def landmark_points(output: Tensor) -> Tensor:
    """Network landmarks [N, 10] (x1..x5, y1..y5) -> [N, 5, 2] (x, y) pairs."""
    return output.reshape(output.shape[0], 2, 5).transpose(1, 2)


def _zero(like: Tensor) -> Tensor:
    # 0 that keeps the graph (and dtype / device) of the outputs, so backward always works
    return like.sum() * 0.0


def cls_loss(logits: Tensor, labels: Tensor, ohem_ratio: float = 0.7) -> tuple[Tensor, int]:
    """Cross-entropy over negatives and positives, mean of the hardest ohem_ratio.

    logits: [N, 2]; labels: int [N]. Returns (loss, samples kept).
    """
    mask = (labels == LABEL_NEGATIVE) | (labels == LABEL_POSITIVE)
    n = int(mask.sum())
    k = ohem_count(n, ohem_ratio)
    if k == 0:
        return _zero(logits), 0
    per_sample = F.cross_entropy(logits[mask].float(), labels[mask].long(), reduction="none")
    hardest = torch.topk(per_sample, k, sorted=False).values
    return hardest.mean(), k


def box_loss(pred: Tensor, target: Tensor, labels: Tensor) -> tuple[Tensor, int]:
    """Squared error summed over the 4 offsets, mean over positives and parts.

    pred, target: [N, 4]; labels: int [N]. Returns (loss, samples used).
    """
    mask = (labels == LABEL_POSITIVE) | (labels == LABEL_PART)
    n = int(mask.sum())
    if n == 0:
        return _zero(pred), 0
    diff = pred[mask].float() - target[mask].float()
    return (diff * diff).sum(1).mean(), n


def wing(diff: Tensor, w: float = 0.15, eps: float = 0.03) -> Tensor:
    """Element-wise wing loss of errors ``diff`` (any shape; module docstring)."""
    x = diff.abs()
    c = w - w * math.log1p(w / eps)
    return torch.where(x < w, w * torch.log1p(x / eps), x - c)


def landmark_loss(pred: Tensor, points: Tensor, labels: Tensor,
                  weights: LossWeights | None = None) -> tuple[Tensor, int]:
    """Squared error (or the wing loss) summed over the 10 coordinates, mean over landmark
    samples.

    pred: [N, 10] network layout; points: [N, 5, 2] dataset layout; labels: int [N];
    weights: picks the loss (default squared error).
    """
    mask = labels == LABEL_LANDMARK
    n = int(mask.sum())
    if n == 0:
        return _zero(pred), 0
    diff = pred[mask].float() - landmark_targets(points[mask].float())
    if weights is not None and weights.landmark_loss == "wing":
        return wing(diff, weights.wing_w, weights.wing_eps).sum(1).mean(), n
    return (diff * diff).sum(1).mean(), n


def mtcnn_loss(
    outputs: tuple[Tensor, Tensor, Tensor],
    labels: Tensor,
    boxes: Tensor,
    points: Tensor,
    weights: LossWeights | None = None,
) -> LossParts:
    """The weighted multi-task loss of one batch.

    outputs: (logits [N, 2], box [N, 4], landmarks [N, 10]), or P-Net's [N, C, 1, 1];
    labels: int [N]; boxes: [N, 4] targets; points: [N, 5, 2] targets in [0, 1].
    """
    w = weights or LossWeights()
    logits, box, marks = flatten_outputs(*outputs)
    lc, n_cls = cls_loss(logits, labels, w.ohem_ratio)
    lb, n_box = box_loss(box, boxes, labels)
    ll, n_lm = landmark_loss(marks, points, labels, w)
    total = w.cls * lc + w.box * lb + w.landmark * ll
    return LossParts(total, lc, lb, ll, n_cls, n_box, n_lm)
