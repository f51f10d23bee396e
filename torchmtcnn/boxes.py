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
NMS_BLOCK = 4096


def box_area(boxes: Tensor, offset: float = 0.0) -> Tensor:
    """boxes: Tensor[N, 4] -> Tensor[N] of areas (negative sizes count as 0)."""
    w = (boxes[:, 2] - boxes[:, 0] + offset).clamp(min=0)
    h = (boxes[:, 3] - boxes[:, 1] + offset).clamp(min=0)
    return w * h


def box_overlap(a: Tensor, b: Tensor, mode: str = "union", offset: float = 0.0) -> Tensor:
    """Pairwise overlap of a: Tensor[N, 4] and b: Tensor[M, 4] -> Tensor[N, M].

    mode "union" is IoU (intersection / union); "min" is intersection / the smaller area,
    which the original O-Net stage uses to merge a face with boxes inside it.
    """
    if mode not in ("union", "min"):
        raise ValueError(f"overlap mode must be 'union' or 'min', got {mode!r}")
    lt = torch.maximum(a[:, None, :2], b[None, :, :2])
    rb = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = (rb - lt + offset).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    area_a, area_b = box_area(a, offset), box_area(b, offset)
    if mode == "union":
        denom = area_a[:, None] + area_b[None, :] - inter
    else:
        denom = torch.minimum(area_a[:, None], area_b[None, :])
    return inter / denom.clamp(min=torch.finfo(inter.dtype).tiny)


def box_iou(a: Tensor, b: Tensor, offset: float = 0.0) -> Tensor:
    """IoU of a: Tensor[N, 4] and b: Tensor[M, 4] -> Tensor[N, M]."""
    return box_overlap(a, b, "union", offset)


def nms(
    boxes: Tensor, scores: Tensor, threshold: float, mode: str = "union", offset: float = 0.0
) -> Tensor:
    """Greedy non-maximum suppression.

    Visits boxes from the highest score down and drops every box whose overlap with an
    already kept one is above ``threshold``.

    boxes: Tensor[N, 4], scores: Tensor[N] -> Tensor[K] int64 indices of kept boxes, by
    decreasing score.
    """
    n = boxes.shape[0]
    if n == 0:
        return torch.empty(0, dtype=torch.long, device=boxes.device)
    order = torch.argsort(scores, descending=True, stable=True)
    ordered = boxes[order]
    kept_parts: list[Tensor] = []
    for start in range(0, n, NMS_BLOCK):
        block = ordered[start : start + NMS_BLOCK]
        removed = torch.zeros(block.shape[0], dtype=torch.bool, device=boxes.device)
        if kept_parts:
            kept = torch.cat(kept_parts)
            removed |= (box_overlap(block, kept, mode, offset) > threshold).any(1)
        # The greedy walk itself is inherently sequential; on a boolean mask in numpy it
        # costs a few microseconds per kept box.
        suppresses = (box_overlap(block, block, mode, offset) > threshold).cpu().numpy()
        removed_np = removed.cpu().numpy()
        for i in range(block.shape[0]):
            if not removed_np[i]:
                removed_np[i + 1 :] |= suppresses[i, i + 1 :]
        keep_block = torch.from_numpy(~removed_np).to(boxes.device)
        kept_parts.append(block[keep_block])
        if start == 0:
            keep_mask = keep_block
        else:
            keep_mask = torch.cat([keep_mask, keep_block])
    return order[keep_mask]


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
    return nms(boxes + shift, scores, threshold, mode, offset)


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
