"""Batched crop-and-resize of many regions from many images at once, exactly as OpenCV's
``cv2.resize(..., interpolation=INTER_AREA)`` would resize each zero-padded crop.

The original MTCNN cuts each candidate out of the photo (zero-padding what falls outside),
then resizes it with INTER_AREA, one face at a time. Here all candidates go in one call:

* a region shrunk on both axes averages the pixels under each output cell. That average is
  read from the image's integral image (summed-area table) at the cell's four corners, so it
  costs four bilinear look-ups per corner whatever the region's size; corners are shared by
  neighbouring cells;
* a region enlarged on any axis uses OpenCV's INTER_AREA rule for enlarging: per axis, the
  two nearest source pixels weighted by how much of the output cell each covers.

Regions are (left, top, right, bottom) in continuous pixel coordinates (pixel i spans
[i, i+1)); outside the image counts as zero, like the original's padding.

The training data's square crops (``crop_square``, ``resize_square``) live here too: the one
home of cutting and resizing, with ``padded_crop`` the zero padding both use.

On the CPU the same crops come from OpenCV itself, one C++ resize per region: measured on a
2-core machine, 285 R-Net crops took 7 ms that way against 60 ms for the vectorised torch
path, whose many elementwise passes cost more than the resizes. Other devices (GPUs) take
the vectorised path. Both are tested against a crop-by-crop cv2.resize.

OpenCV's INTER_AREA resize of a whole image runs on one core; ``opencv_map`` spreads such
resizes over torch's thread count (cv2 releases the GIL while it works). Measured on 2 cores:
the 10 pyramid levels of a 640x480 photo in 7.8 ms instead of 15.6 ms (10 ms instead of 14
right after torch ran, whose idle threads still spin for a while). The crops stay serial:
each costs ~15 us, mostly Python, and threads sharing the GIL made them slower.
"""

from __future__ import annotations

import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar
from collections.abc import Callable, Sequence

import cv2
import numpy as np
import torch
from torch import Tensor


T = TypeVar("T")
R = TypeVar("R")
_pool: ThreadPoolExecutor | None = None
_pool_workers = 0
_pool_pid = 0  # a forked child inherits the pool object but not its threads: it makes its own
_pool_lock = threading.Lock()


def opencv_map(fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """[fn(x) for x in items], spread over torch.get_num_threads() threads when that is more
    than one: for calls that spend their time in OpenCV with the GIL released."""
    global _pool, _pool_workers, _pool_pid
    workers = min(torch.get_num_threads(), len(items))
    if workers <= 1:
        return [fn(x) for x in items]
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid() or _pool_workers < workers:
            _pool = ThreadPoolExecutor(workers, thread_name_prefix="torchmtcnn-opencv")
            _pool_workers, _pool_pid = workers, os.getpid()
        pool = _pool
    return list(pool.map(fn, items))


def integral_image(image: Tensor) -> Tensor:
    """image: Tensor[H, W, C] uint8 -> Tensor[H+1, W+1, C] of sums over image[:y, :x].

    int32 when the sums fit (< 2**31), else int64, so every value is exact.
    """
    h, w, c = image.shape
    dtype = torch.int32 if h * w * 255 < 2**31 else torch.int64
    if image.device.type == "cpu" and dtype == torch.int32:
        table = cv2.integral(np.ascontiguousarray(image.numpy()), sdepth=cv2.CV_32S)
        return torch.from_numpy(table.reshape(h + 1, w + 1, c))
    sat = torch.zeros((h + 1, w + 1, c), dtype=dtype, device=image.device)
    sat[1:, 1:] = image.to(dtype).cumsum(0).cumsum(1)
    return sat


def _linear_sample(pos: Tensor, length: Tensor) -> tuple[Tensor, Tensor]:
    """Split positions into (lower index, fraction) for a bilinear read of a table whose
    entries sit at 0..length: positions outside are clamped to the ends.

    pos: Tensor[K, P] float64, length: Tensor[K] int64 -> (Tensor[K, P] int64, Tensor[K, P])
    """
    upper = (length - 1).clamp(min=0)[:, None]
    lower = torch.minimum(pos.floor().clamp(min=0).long(), upper)
    frac = (pos - lower).clamp(0, 1)
    return lower, frac


def _enlarge_taps(start: Tensor, size: Tensor, out: int) -> tuple[Tensor, Tensor]:
    """OpenCV's INTER_AREA taps for an axis that is enlarged (or mixed with one that is).

    start: Tensor[K] first source pixel of the region, size: Tensor[K] its length in pixels
    -> (index Tensor[K, out] of the first tap in image pixels, weight of the second tap).
    """
    d = torch.arange(out, dtype=torch.float64, device=start.device)
    scale = size[:, None] / out
    sx = torch.floor(d[None] * scale)
    fx = (d[None] + 1) - (sx + 1) / scale
    fx = torch.where(fx <= 0, torch.zeros_like(fx), fx - torch.floor(fx))
    at_end = sx >= size[:, None] - 1
    fx = torch.where(at_end, torch.zeros_like(fx), fx)
    sx = torch.minimum(sx, size[:, None] - 1).clamp(min=0)
    return start[:, None] + sx, fx


def crop_resize(
    images: list[Tensor],
    image_index: Tensor,
    regions: Tensor,
    size: int | tuple[int, int],
    method: str = "auto",
) -> Tensor:
    """Cut regions out of images and resize each to ``size`` like cv2 INTER_AREA.

    images: list of Tensor[H_i, W_i, C] uint8 (sizes may differ), on one device;
    image_index: Tensor[K] int64, which image each region is cut from;
    regions: Tensor[K, 4] (left, top, right, bottom), integer-valued for OpenCV's semantics;
    size: output side, or (height, width);
    method: "auto" (OpenCV on the CPU, else vectorised), "opencv" or "torch"
    -> Tensor[K, out_h, out_w, C] float32 in 0..255.
    """
    out_h, out_w = (size, size) if isinstance(size, int) else size
    device = images[0].device if images else regions.device
    if method == "auto":
        method = "opencv" if device.type == "cpu" else "torch"
    if method == "opencv":
        return _opencv_crops(images, image_index, regions, out_h, out_w)
    k = regions.shape[0]
    channels = images[0].shape[2] if images else 3
    result = torch.empty((k, out_h, out_w, channels), dtype=torch.float32, device=device)
    if k == 0:
        return result
    regions = regions.to(device=device, dtype=torch.float64)
    image_index = image_index.to(device)
    left, top = regions[:, 0], regions[:, 1]
    width, height = regions[:, 2] - left, regions[:, 3] - top
    shrink = (width >= out_w) & (height >= out_h)
    if shrink.any():
        idx = shrink.nonzero().squeeze(1)
        result[idx] = _area_crops(images, image_index[idx], regions[idx], out_h, out_w)
    if (~shrink).any():
        idx = (~shrink).nonzero().squeeze(1)
        result[idx] = _enlarged_crops(images, image_index[idx], regions[idx], out_h, out_w)
    return result


def area_weights(start: float, step: float, out: int, length: int, device: torch.device | None = None) -> Tensor:
    """INTER_AREA's weights along one axis when shrinking: output cell i averages the source
    span [start + i * step, start + (i + 1) * step) (step >= 1), clipped to 0..length
    -> Tensor[out, length] float64, each pixel weighted by its overlap with the span / step."""
    edges = start + step * torch.arange(out + 1, dtype=torch.float64, device=device)
    lo, hi = edges[:-1, None], edges[1:, None]
    pixel = torch.arange(length, dtype=torch.float64, device=device)[None]
    return (torch.minimum(hi, pixel + 1) - torch.maximum(lo, pixel)).clamp(min=0) / step


def area_resize(image: Tensor, region: tuple[float, float, float, float], size: tuple[int, int]) -> Tensor:
    """The part (left, top, right, bottom; continuous pixel coordinates, inside the image)
    of image Tensor[H, W, C] uint8, shrunk (each side >= its output side) to ``size`` (h, w)
    by averaging the pixels under each output cell, as INTER_AREA does -> Tensor[h, w, C]
    float32. Two small matrix products (the cells' weights per axis), so a window of a
    pyramid level costs far less than resizing the whole image: the tracker's local search
    (``Cascade.propose_window``)."""
    left, top, right, bottom = region
    out_h, out_w = size
    y0, x0 = math.floor(top), math.floor(left)
    y1, x1 = min(image.shape[0], math.ceil(bottom)), min(image.shape[1], math.ceil(right))
    rows = area_weights(top - y0, (bottom - top) / out_h, out_h, y1 - y0, image.device)
    cols = area_weights(left - x0, (right - left) / out_w, out_w, x1 - x0, image.device)
    pixels = image[y0:y1, x0:x1].to(torch.float64)
    across = (rows @ pixels.reshape(y1 - y0, -1)).reshape(out_h, x1 - x0, -1)  # [h, width, C]
    return (cols @ across).float()


def _flat_tables(tables: list[Tensor], image_index: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Concatenate per-image tables [H_i, W_i, C] -> (flat [sum H_i*W_i, C], base offset,
    height, width per region)."""
    heights = torch.tensor([t.shape[0] for t in tables], device=image_index.device)
    widths = torch.tensor([t.shape[1] for t in tables], device=image_index.device)
    sizes = heights * widths
    bases = torch.cumsum(sizes, 0) - sizes
    flat = torch.cat([t.reshape(-1, t.shape[2]) for t in tables])
    return flat, bases[image_index], heights[image_index], widths[image_index]


def _area_crops(images: list[Tensor], image_index: Tensor, regions: Tensor, out_h: int, out_w: int) -> Tensor:
    used = torch.unique(image_index)
    tables = {int(i): integral_image(images[int(i)]) for i in used}
    local = torch.searchsorted(used, image_index)  # position of each region's image in `used`
    flat, base, tab_h, tab_w = _flat_tables([tables[int(i)] for i in used], local)
    # Corner positions of the output cells; the table's entry j sits at image position j.
    ty = regions[:, 1:2] + (regions[:, 3:4] - regions[:, 1:2]) * torch.linspace(
        0, 1, out_h + 1, dtype=torch.float64, device=regions.device)[None]
    tx = regions[:, 0:1] + (regions[:, 2:3] - regions[:, 0:1]) * torch.linspace(
        0, 1, out_w + 1, dtype=torch.float64, device=regions.device)[None]
    ty = torch.minimum(ty.clamp(min=0), (tab_h - 1)[:, None].double())
    tx = torch.minimum(tx.clamp(min=0), (tab_w - 1)[:, None].double())
    y0, fy = _linear_sample(ty, tab_h - 1)
    x0, fx = _linear_sample(tx, tab_w - 1)
    corners = torch.zeros((regions.shape[0], out_h + 1, out_w + 1, flat.shape[1]), dtype=torch.float64,
                          device=regions.device)
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            rows = (y0 + dy).clamp(max=(tab_h - 1)[:, None])
            cols = (x0 + dx).clamp(max=(tab_w - 1)[:, None])
            flat_idx = base[:, None, None] + rows[:, :, None] * tab_w[:, None, None] + cols[:, None, :]
            corners += flat[flat_idx].double() * (wy[:, :, None] * wx[:, None, :])[..., None]
    sums = corners[:, 1:, 1:] - corners[:, :-1, 1:] - corners[:, 1:, :-1] + corners[:, :-1, :-1]
    cell = ((regions[:, 3] - regions[:, 1]) / out_h) * ((regions[:, 2] - regions[:, 0]) / out_w)
    return (sums / cell[:, None, None, None]).float()


def _enlarged_crops(images: list[Tensor], image_index: Tensor, regions: Tensor, out_h: int, out_w: int) -> Tensor:
    flat, base, img_h, img_w = _flat_tables(images, image_index)
    left, top = regions[:, 0].floor(), regions[:, 1].floor()
    ys, fy = _enlarge_taps(top, regions[:, 3] - regions[:, 1], out_h)
    xs, fx = _enlarge_taps(left, regions[:, 2] - regions[:, 0], out_w)
    out = torch.zeros((regions.shape[0], out_h, out_w, flat.shape[1]), dtype=torch.float64, device=regions.device)
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            rows, cols = (ys + dy).long(), (xs + dx).long()
            inside = ((rows >= 0) & (rows < img_h[:, None]))[:, :, None] & (
                (cols >= 0) & (cols < img_w[:, None]))[:, None, :]
            flat_idx = (base[:, None, None] + rows.clamp(min=0)[:, :, None] * img_w[:, None, None]
                        + cols.clamp(min=0)[:, None, :])
            flat_idx = torch.where(inside, flat_idx, torch.zeros_like(flat_idx))
            weight = (wy[:, :, None] * wx[:, None, :]) * inside
            out += flat[flat_idx].double() * weight[..., None]
    return out.float()


def padded_crop(image: np.ndarray, left: int, top: int, right: int, bottom: int, dtype: type = np.uint8) -> np.ndarray:
    """The pixels of image [H, W, C] in rows top..bottom-1, columns left..right-1, as ``dtype``,
    zero where the region falls outside the image -> [bottom - top, right - left, C]."""
    h, w = image.shape[:2]
    out: np.ndarray = np.zeros((bottom - top, right - left, image.shape[2]), dtype)
    y0, x0, y1, x1 = max(top, 0), max(left, 0), min(bottom, h), min(right, w)
    if y1 > y0 and x1 > x0:
        out[y0 - top : y1 - top, x0 - left : x1 - left] = image[y0:y1, x0:x1]
    return out


def resize_square(patch: np.ndarray, size: int) -> np.ndarray:
    """A training crop: uint8 [s, s, 3] -> [size, size, 3], INTER_AREA when shrinking (as the
    detector's pyramid, no aliasing), INTER_LINEAR when enlarging (INTER_AREA would then
    behave like nearest-neighbour)."""
    if patch.shape[0] == size and patch.shape[1] == size:
        return np.ascontiguousarray(patch)
    interp = cv2.INTER_AREA if patch.shape[0] > size else cv2.INTER_LINEAR
    return cv2.resize(patch, (size, size), interpolation=interp)


def crop_square(image: np.ndarray, x1: int, y1: int, side: int, size: int) -> np.ndarray:
    """A training crop: the square (x1, y1, x1 + side, y1 + side) of image [H, W, 3],
    zero-padded outside the photo, resized by ``resize_square`` -> uint8 [size, size, 3]."""
    h, w = image.shape[:2]
    if x1 >= 0 and y1 >= 0 and x1 + side <= w and y1 + side <= h:
        return resize_square(image[y1 : y1 + side, x1 : x1 + side], size)
    return resize_square(padded_crop(image, x1, y1, x1 + side, y1 + side), size)


def _opencv_crops(images: list[Tensor], image_index: Tensor, regions: Tensor, out_h: int, out_w: int) -> Tensor:
    """The CPU path: cv2.resize(INTER_AREA) of each zero-padded float32 crop."""
    k = regions.shape[0]
    channels = images[0].shape[2] if images else 3
    out = np.empty((k, out_h, out_w, channels), np.float32)
    if k == 0:
        return torch.from_numpy(out)
    pixels = {int(n): images[int(n)].numpy() for n in torch.unique(image_index)}
    boxes = regions.round().long().tolist()
    for i, (n, (left, top, right, bottom)) in enumerate(zip(image_index.tolist(), boxes)):
        img = pixels[n]
        h, w = img.shape[:2]
        # float32 like the original's crop buffer; converting each crop, not the whole image
        if left >= 0 and top >= 0 and right <= w and bottom <= h:
            src = img[top:bottom, left:right].astype(np.float32)
        else:  # zero-pad what falls outside the image (few crops: the border's)
            src = padded_crop(img, left, top, right, bottom, np.float32)
        cv2.resize(src, (out_w, out_h), dst=out[i], interpolation=cv2.INTER_AREA)
    return torch.from_numpy(out)
