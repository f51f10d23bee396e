"""Pure tensor functions on boxes: area, IoU, NMS, regression, squaring, clipping.

Every box is (x1, y1, x2, y2). ``offset`` is the width of a one-pixel box: 0 for continuous
coordinates (x2 = x1 + width), 1 for the inclusive pixel indices the original MTCNN code
uses in its NMS and regression (width = x2 - x1 + 1); the cascade passes 1 to match it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

# Candidates per block of the NMS overlap mask: bounds its memory to NMS_BLOCK**2 bytes.
NMS_BLOCK = 2048


def box_area(boxes: Tensor, offset: float = 0.0) -> Tensor:
    """boxes: Tensor[..., 4] -> Tensor[...] of areas (negative sizes count as 0)."""
    w = (boxes[..., 2] - boxes[..., 0] + offset).clamp(min=0)
    h = (boxes[..., 3] - boxes[..., 1] + offset).clamp(min=0)
    return w * h


def _overlap(a: Tensor, b: Tensor, mode: str, offset: float,
             area_a: Tensor | None = None, area_b: Tensor | None = None) -> Tensor:
    """Overlap of boxes a: Tensor[..., 4] and b: Tensor[..., 4] that broadcast together;
    their areas (box_area) when already known."""
    if mode not in ("union", "min"):
        raise ValueError(f"overlap mode must be 'union' or 'min', got {mode!r}")
    w = (torch.minimum(a[..., 2], b[..., 2]) - torch.maximum(a[..., 0], b[..., 0]) + offset).clamp_(min=0)
    h = (torch.minimum(a[..., 3], b[..., 3]) - torch.maximum(a[..., 1], b[..., 1]) + offset).clamp_(min=0)
    inter = w.mul_(h)
    area_a = box_area(a, offset) if area_a is None else area_a
    area_b = box_area(b, offset) if area_b is None else area_b
    denom = area_a + area_b - inter if mode == "union" else torch.minimum(area_a, area_b)
    return inter / denom.clamp(min=torch.finfo(inter.dtype).tiny)


def box_overlap(a: Tensor, b: Tensor, mode: str = "union", offset: float = 0.0) -> Tensor:
    """Pairwise overlap of a: Tensor[N, 4] and b: Tensor[M, 4] -> Tensor[N, M].

    mode "union" is IoU (intersection / union); "min" is intersection / the smaller area,
    which the original O-Net stage uses to merge a face with boxes inside it.
    """
    return _overlap(a[:, None, :], b[None, :, :], mode, offset)


def box_iou(a: Tensor, b: Tensor, offset: float = 0.0) -> Tensor:
    """IoU of a: Tensor[N, 4] and b: Tensor[M, 4] -> Tensor[N, M]."""
    return box_overlap(a, b, "union", offset)


def nms(
    boxes: Tensor,
    scores: Tensor,
    threshold: float,
    mode: str = "union",
    offset: float = 0.0,
    reach: Tensor | None = None,
) -> Tensor:
    """Greedy non-maximum suppression.

    Visits boxes from the highest score down (ties: lower index first) and drops every box
    whose overlap with an already kept one is above ``threshold`` (>= 0).

    boxes: Tensor[N, 4], scores: Tensor[N] -> Tensor[K] int64 indices of kept boxes, by
    decreasing score.

    Only boxes whose vertical extents meet can overlap, so after sorting by top edge each
    box is compared with the band of boxes around it rather than with all N: the cost is
    N x band, not N x N, and memory stays under NMS_BLOCK**2 elements per step.
    reach: Tensor[N], optional: how far above its top a box must look for boxes that may
    overlap it (the tallest box that can meet it; default the tallest of all).
    """
    n = boxes.shape[0]
    device = boxes.device
    if n == 0:
        return torch.empty(0, dtype=torch.long, device=device)
    by_top = torch.argsort(boxes[:, 1], stable=True)
    ordered = boxes[by_top]
    top = ordered[:, 1].contiguous()
    if reach is None:
        reach = (ordered[:, 3] - ordered[:, 1]).max() + offset
    else:
        reach = reach[by_top]
    lo = torch.searchsorted(top, (top - reach - offset).contiguous(), right=True)
    hi = torch.searchsorted(top, (ordered[:, 3] + offset).contiguous(), right=False)
    band = int((hi - lo).max().clamp(min=1))
    rows_per_step = max(1, NMS_BLOCK * NMS_BLOCK // band)
    area = box_area(ordered, offset)  # once per box; each band gathers them
    neighbours, overlapping = [], []
    for start in range(0, n, rows_per_step):
        rows = slice(start, start + rows_per_step)
        idx = lo[rows, None] + torch.arange(band, device=device)[None]
        valid = idx < hi[rows, None]
        idx = idx.clamp_(max=n - 1)
        over = _overlap(ordered[rows, None, :], ordered[idx], mode, offset,
                        area[rows, None], area[idx]) > threshold
        neighbours.append(idx)
        overlapping.append(over & valid)
    neighbour_np = torch.cat(neighbours).cpu().numpy()
    overlap_np = torch.cat(overlapping).cpu().numpy()
    # Rank by score with ties to the lower original index, in top-sorted positions.
    by_score = torch.argsort(scores, descending=True, stable=True)
    rank = torch.empty_like(by_score)
    rank[by_score] = torch.arange(n, device=device)
    visit = torch.argsort(rank[by_top]).tolist()
    # Who each box would suppress, as one flat list with row starts (most rows are empty).
    rows, cols = np.nonzero(overlap_np)
    targets = neighbour_np[rows, cols].tolist()
    starts = np.searchsorted(rows, np.arange(n + 1)).tolist()
    # The greedy walk is inherently sequential; plain Python lists keep it to well under a
    # microsecond per box (numpy indexing per box cost several).
    removed = bytearray(n)
    kept = []
    for p in visit:
        if not removed[p]:
            kept.append(p)
            for q in targets[starts[p] : starts[p + 1]]:
                removed[q] = 1
    return by_top[torch.as_tensor(kept, dtype=torch.long, device=device)]


def batched_nms(
    boxes: Tensor,
    scores: Tensor,
    groups: Tensor,
    threshold: float,
    mode: str = "union",
    offset: float = 0.0,
) -> Tensor:
    """NMS applied independently within each group (image, pyramid level...).

    boxes: Tensor[N, 4], scores: Tensor[N], groups: Tensor[N] int -> Tensor[K] kept indices.
    Boxes of different groups are moved apart so that they never overlap.
    """
    if boxes.shape[0] == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    span = (boxes.max() - boxes.min()).item() + 2 * abs(offset) + 2
    shift = (groups.to(boxes.dtype) * span)[:, None]
    # Each box need only look as far up as the tallest box of its own group.
    heights = boxes[:, 3] - boxes[:, 1] + offset
    _, group_index = torch.unique(groups, return_inverse=True)
    tallest = torch.zeros(int(group_index.max()) + 1, dtype=heights.dtype, device=boxes.device)
    tallest = tallest.scatter_reduce(0, group_index, heights, reduce="amax", include_self=False)
    return nms(boxes + shift, scores, threshold, mode, offset, reach=tallest[group_index])


def calibrate(boxes: Tensor, regression: Tensor, offset: float = 1.0) -> Tensor:
    """Apply the networks' box regression.

    boxes: Tensor[N, 4]; regression: Tensor[N, 4], offsets of each side in units of the
    box's width and height -> Tensor[N, 4].
    """
    w = boxes[:, 2] - boxes[:, 0] + offset
    h = boxes[:, 3] - boxes[:, 1] + offset
    return boxes + regression * torch.stack([w, h, w, h], dim=1)


def square(boxes: Tensor) -> Tensor:
    """Grow each box to a square around its centre. boxes: Tensor[N, 4] -> Tensor[N, 4]."""
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = torch.maximum(w, h)
    x1 = boxes[:, 0] + w * 0.5 - side * 0.5
    y1 = boxes[:, 1] + h * 0.5 - side * 0.5
    return torch.stack([x1, y1, x1 + side, y1 + side], dim=1)


def clip_boxes(boxes: Tensor, width: float, height: float) -> Tensor:
    """Clip boxes: Tensor[N, 4] to the image [0, width] x [0, height] -> Tensor[N, 4]."""
    x = boxes[:, 0::2].clamp(0, width)
    y = boxes[:, 1::2].clamp(0, height)
    return torch.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], dim=1)


def iou_numpy(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of a: [N, 4] and b: [M, 4] numpy boxes (continuous coordinates) -> [N, M]."""
    return box_iou(torch.from_numpy(np.asarray(a, np.float64)).reshape(-1, 4),
                   torch.from_numpy(np.asarray(b, np.float64)).reshape(-1, 4)).numpy()
