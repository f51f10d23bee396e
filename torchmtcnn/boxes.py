"""Pure tensor functions on boxes: area, IoU, NMS, regression (``apply_regression``), squaring,
clipping.

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


def nms(boxes: Tensor, scores: Tensor, threshold: float, mode: str = "union", offset: float = 0.0) -> Tensor:
    """Greedy non-maximum suppression.

    Visits boxes from the highest score down (ties: lower index first) and drops every box
    whose overlap with an already kept one is above ``threshold`` (>= 0).

    boxes: Tensor[N, 4], scores: Tensor[N] -> Tensor[K] int64 indices of kept boxes, by
    decreasing score.

    Only boxes whose vertical extents meet can overlap. After sorting by top edge, a box
    need only be compared with the boxes after it whose tops lie above its bottom (of two
    boxes that meet, the lower top lies within the other): the cost is the number of such
    pairs, not N x N, computed in steps of at most NMS_BLOCK**2 pairs.
    """
    device = boxes.device
    kept = _greedy_nms(_as_numpy(boxes), _as_numpy(scores), threshold, mode, offset)
    return torch.from_numpy(kept).to(device)


def _as_numpy(t: Tensor) -> np.ndarray:
    """A CPU numpy copy or view; float16 / bfloat16 (which numpy lacks or ranks oddly) as float64."""
    t = t.detach().cpu()
    return (t if t.dtype in (torch.float32, torch.float64) else t.double()).numpy()


def _greedy_nms(boxes: np.ndarray, scores: np.ndarray, threshold: float, mode: str, offset: float) -> np.ndarray:
    """nms on numpy arrays, whatever the tensors' device: the work is many small steps, where
    numpy's per-call cost is a fraction of torch's, and the greedy walk runs on the CPU anyway
    (measured on 2 cores: the four NMS of a 640x480 detection 2.2 -> 1.3 ms, of a 1080p one
    12.9 -> 8.7 ms)."""
    if mode not in ("union", "min"):
        raise ValueError(f"overlap mode must be 'union' or 'min', got {mode!r}")
    n = boxes.shape[0]
    if n == 0:
        return np.zeros(0, np.int64)
    by_top = np.argsort(boxes[:, 1], kind="stable")
    ordered = boxes[by_top]
    x1, y1, x2, y2 = (np.ascontiguousarray(ordered[:, k]) for k in range(4))
    area = np.clip(x2 - x1 + offset, 0, None) * np.clip(y2 - y1 + offset, 0, None)
    # Box i meets the boxes i+1 .. reach[i]-1 (top < its bottom + offset; else no overlap).
    reach = np.searchsorted(y1, y2 + offset)
    position = np.arange(n)
    count = np.clip(reach - position - 1, 0, None)
    ends = np.cumsum(count)
    first_edges, second_edges = [], []
    step = NMS_BLOCK * NMS_BLOCK
    start_box = 0
    while start_box < n:
        done = int(ends[start_box - 1]) if start_box else 0
        stop_box = max(start_box + 1, int(np.searchsorted(ends, done + step, side="right")))
        pairs = int(ends[stop_box - 1]) - done
        if pairs:
            i = np.repeat(position[start_box:stop_box], count[start_box:stop_box])
            j = np.arange(done, done + pairs) - (ends[i] - count[i]) + i + 1
            # Pairs apart horizontally overlap by 0, never above threshold (>= 0): drop them
            # first, and compute the rest of the overlap only for the pairs that meet.
            w = np.minimum(x2[i], x2[j]) - np.maximum(x1[i], x1[j]) + offset
            meet = w > 0
            i, j, w = i[meet], j[meet], w[meet]
            h = np.clip(np.minimum(y2[i], y2[j]) - np.maximum(y1[i], y1[j]) + offset, 0, None)
            inter = w * h
            denom = area[i] + area[j] - inter if mode == "union" else np.minimum(area[i], area[j])
            over = inter / np.clip(denom, np.finfo(denom.dtype).tiny, None) > threshold
            first_edges.append(i[over])
            second_edges.append(j[over])
        start_box = stop_box
    # Rank by score with ties to the lower original index, in top-sorted positions.
    by_score = np.argsort(-scores, kind="stable")
    top_position = np.empty_like(by_top)
    top_position[by_top] = position
    visit = top_position[by_score].tolist()
    # Who each box would suppress, both ways, as one flat list with row starts.
    first = np.concatenate(first_edges) if first_edges else np.zeros(0, np.int64)
    second = np.concatenate(second_edges) if second_edges else np.zeros(0, np.int64)
    rows = np.concatenate([first, second])
    by_row = np.argsort(rows, kind="stable")
    targets = np.concatenate([second, first])[by_row].tolist()
    starts = np.searchsorted(rows[by_row], np.arange(n + 1)).tolist()
    # The greedy walk is inherently sequential; plain Python lists keep it to well under a
    # microsecond per box (numpy indexing per box cost several).
    removed = bytearray(n)
    kept = []
    for p in visit:
        if not removed[p]:
            kept.append(p)
            for q in targets[starts[p] : starts[p + 1]]:
                removed[q] = 1
    return by_top[np.asarray(kept, dtype=np.int64)]


def batched_nms(boxes: Tensor, scores: Tensor, groups: Tensor, threshold: float, mode: str = "union",
                offset: float = 0.0) -> Tensor:
    """NMS applied independently within each group (image, pyramid level...).

    boxes: Tensor[N, 4], scores: Tensor[N], groups: Tensor[N] int -> Tensor[K] kept indices.
    Boxes of different groups are moved apart so that they never overlap.
    """
    if boxes.shape[0] == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    if torch.unique(groups).numel() == groups.numel():  # one box a group (the tracker's faces): all kept
        return torch.from_numpy(np.argsort(-_as_numpy(scores), kind="stable")).to(boxes.device)
    span = (boxes.max() - boxes.min()).item() + 2 * abs(offset) + 2
    return nms(boxes + (groups.to(boxes.dtype) * span)[:, None], scores, threshold, mode, offset)


def apply_regression(boxes: Tensor, regression: Tensor, offset: float = 1.0) -> Tensor:
    """Apply the networks' box regression (what the original code calls "calibrating" a box;
    not the score calibration of ``train.calibrate``).

    boxes: Tensor[N, 4]; regression: Tensor[N, 4], offsets of each side in units of the
    box's width and height -> Tensor[N, 4].
    """
    w = boxes[:, 2] - boxes[:, 0] + offset
    h = boxes[:, 3] - boxes[:, 1] + offset
    return boxes + regression * torch.stack([w, h, w, h], dim=1)


def square(boxes: Tensor, round_side: bool = False) -> Tensor:
    """Grow each box to a square around its centre (side: the longer side, rounded to a whole
    number of pixels with ``round_side``). boxes: Tensor[N, 4] -> Tensor[N, 4]."""
    w = boxes[:, 2] - boxes[:, 0]
    h = boxes[:, 3] - boxes[:, 1]
    side = torch.maximum(w, h)
    if round_side:
        side = side.round()
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
