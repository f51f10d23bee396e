"""Resizing in ONNX operators as OpenCV's INTER_AREA does it: the pyramid levels (uint8, whole
image) and the R-Net / O-Net crops (float32, zero outside the image).

ONNX's Resize has no area mode, so both are built from sums:

* a pyramid level is separable: per axis, the sum of the source pixels under each output cell
  is the difference of the cumulative sum at the cell's two edges, each read by linear
  interpolation (exact for a piecewise-constant image). Rows first, then columns, in float64,
  then rounded half to even to uint8 as ``cv2.resize`` does;
* a crop that shrinks on both axes reads the image's summed-area table at its cells' corners
  (bilinear reads: exact), as ``crops._area_crops`` does; a crop enlarged on any axis uses
  OpenCV's INTER_AREA rule for enlarging (two taps per axis), as ``crops._enlarged_crops`` does.

What differs from OpenCV: it accumulates in float32 and ignores a partial pixel covering less
than 1e-3 of a cell; these sums are exact to float64. Measured on the test photos (tests/
test_cascade_graph.py): a few pyramid pixels in 10,000 differ by 1 grey level, crops by < 1e-3.
"""

from __future__ import annotations

import numpy as np

from .builder import DOUBLE, FLOAT, INT64, Graph, V


def cumulative(g: Graph, x: V, axis: int) -> V:
    """Cumulative sum along ``axis`` with a zero first entry: [.., n, ..] -> [.., n + 1, ..]."""
    pads = [0] * 6
    pads[axis] = 1
    return g.op("Pad", g.op("CumSum", x, g.const(np.int64(axis))), g.ints(pads))


def sums_before(g: Graph, x: V) -> V:
    """Exclusive cumulative sum down axis 0: entry i is the sum of entries 0..i-1."""
    return g.op("CumSum", x, g.const(np.int64(0)), exclusive=1)


def _cell_sums(g: Graph, before: V, pixels: V, src: V, dst: V) -> V:
    """Area sums along axis 0 of ``pixels`` [n, m, 3] for ``dst`` equal cells over its ``src``
    entries (float64 scalars), unnormalised -> [dst, m, 3] of pixels' type.

    before: ``sums_before(pixels)``. A cell's sum is the difference of the sums before its two
    edges, each edge read as the whole entries before it plus a fraction of the entry it cuts;
    the whole-entry difference is taken first (exact when ``before`` holds exact integers, as
    for uint8 pixels in float32), then the fractions' difference is added.
    """
    scale = src / dst
    n = g.cast(dst, INT64) + g.const(np.int64(1))
    pos = g.minimum(g.arange(n, DOUBLE) * scale, src)
    first = g.minimum(g.floor(pos), src - 1.0)
    frac = g.op("Reshape", g.cast(pos - first, pixels.dtype), g.ints([-1, 1, 1]))
    index = g.cast(first, INT64)
    whole = g.select(before, index)
    part = frac * g.select(pixels, index)
    end = g.unsqueeze(n, [0])
    count = g.unsqueeze(g.cast(dst, INT64), [0])

    def diff(v: V) -> V:
        return g.slice(v, [1], end, [0]) - g.slice(v, [0], count, [0])

    return diff(whole) + diff(part)


def pyramid_level(g: Graph, pixels: V, rows_before: V, height: V, width: V, level_h: V, level_w: V) -> V:
    """One pyramid level as ``cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)``.

    pixels: float32 [H, W, 3] (the image), rows_before: ``sums_before(pixels)``; height, width,
    level_h, level_w: float64 scalars, the level no larger than the image -> float32
    [3, h, w] (channels first, for P-Net) of whole grey levels 0..255.

    Rows first in float32 (the whole-pixel sums are exact integers there, under 2**24 for any
    height below 65,793), then columns in float64 (their inputs are fractional), the array
    turned on its side so that both passes read whole rows of memory.
    """
    rows = _cell_sums(g, rows_before, pixels, height, level_h)  # [h, W, 3]
    side = g.cast(g.op("Transpose", rows, perm=[1, 0, 2]), DOUBLE)  # [W, h, 3]
    cols = _cell_sums(g, sums_before(g, side), side, width, level_w)  # [w, h, 3]
    level = g.op("Round", cols / ((height / level_h) * (width / level_w)))
    level = g.op("Clip", level, g.const(0.0), g.const(255.0))
    return g.cast(g.op("Transpose", level, perm=[2, 1, 0]), FLOAT)


def _column(g: Graph, boxes: V, k: int) -> V:
    return g.unsqueeze(g.take(boxes, k, 1), [1])  # [K, 1]


def _area_crops(g: Graph, table: V, height: V, width: V, regions: V, size: int) -> V:
    """Crops that shrink on both axes: the summed-area table ``table`` (float64, flat
    [(H + 1) * (W + 1), 3]) read bilinearly at the corners of each output cell.

    regions: float64 [K, 4] (left, top, right, bottom); height, width: float64 scalars
    -> float64 [K, size, size, 3].
    """
    left, top, right, bottom = (_column(g, regions, k) for k in range(4))
    lin = g.const(np.linspace(0.0, 1.0, size + 1))
    # torch.linspace(0, 1, n) in crops._area_crops: the same float64 values as numpy's
    ty = g.minimum(g.maximum(top + (bottom - top) * lin, g.const(0.0)), height)
    tx = g.minimum(g.maximum(left + (right - left) * lin, g.const(0.0)), width)
    zero = g.const(0.0)
    y0 = g.minimum(g.floor(ty), g.maximum(height - 1.0, zero))
    x0 = g.minimum(g.floor(tx), g.maximum(width - 1.0, zero))
    fy = g.op("Clip", ty - y0, zero, g.const(1.0))
    fx = g.op("Clip", tx - x0, zero, g.const(1.0))
    stride = width + 1.0
    corners = None
    for dy, wy in ((0.0, 1.0 - fy), (1.0, fy)):
        rows = g.minimum(y0 + dy, height) * stride  # [K, S+1]
        for dx, wx in ((0.0, 1.0 - fx), (1.0, fx)):
            cols = g.minimum(x0 + dx, width)
            flat = g.cast(g.unsqueeze(rows, [2]) + g.unsqueeze(cols, [1]), INT64)  # [K, S+1, S+1]
            weight = g.unsqueeze(g.unsqueeze(wy, [2]) * g.unsqueeze(wx, [1]), [3])
            term = g.select(table, flat) * weight
            corners = term if corners is None else corners + term
    assert corners is not None
    s = size + 1
    c11 = g.slice(corners, [1, 1], [s, s], [1, 2])
    c01 = g.slice(corners, [0, 1], [s - 1, s], [1, 2])
    c10 = g.slice(corners, [1, 0], [s, s - 1], [1, 2])
    c00 = g.slice(corners, [0, 0], [s - 1, s - 1], [1, 2])
    cell = ((bottom - top) / float(size)) * ((right - left) / float(size))  # [K, 1]
    return (c11 - c01 - c10 + c00) / g.unsqueeze(cell, [2, 3])


def _enlarge_taps(g: Graph, start: V, size: V, out: int) -> tuple[V, V]:
    """OpenCV's INTER_AREA taps for an enlarged axis (``crops._enlarge_taps``).

    start, size: float64 [K, 1] -> (first tap's pixel index [K, out], second tap's weight)."""
    d = g.const(np.arange(out, dtype=np.float64))
    scale = size / float(out)
    sx = g.floor(d * scale)
    fx = (d + 1.0) - (sx + 1.0) / scale
    fx = g.where(fx <= 0.0, 0.0, fx - g.floor(fx))
    fx = g.where(sx >= size - 1.0, 0.0, fx)
    sx = g.maximum(g.minimum(sx, size - 1.0), g.const(0.0))
    return start + sx, fx


def _enlarged_crops(g: Graph, pixels: V, height: V, width: V, regions: V, size: int) -> V:
    """Crops enlarged on some axis: two taps per axis on the pixels (flat float64 [H * W, 3]),
    zero outside the image -> float64 [K, size, size, 3]."""
    left, top, right, bottom = (_column(g, regions, k) for k in range(4))
    ys, fy = _enlarge_taps(g, g.floor(top), bottom - top, size)
    xs, fx = _enlarge_taps(g, g.floor(left), right - left, size)
    zero = g.const(0.0)
    out = None
    for dy, wy in ((0.0, 1.0 - fy), (1.0, fy)):
        rows = ys + dy
        row_in = g.cast((rows >= 0.0) & (rows < height), DOUBLE)
        for dx, wx in ((0.0, 1.0 - fx), (1.0, fx)):
            cols = xs + dx
            col_in = g.cast((cols >= 0.0) & (cols < width), DOUBLE)
            flat = (g.unsqueeze(g.maximum(rows, zero) * width, [2])
                    + g.unsqueeze(g.maximum(cols, zero), [1]))
            inside = g.unsqueeze(row_in, [2]) * g.unsqueeze(col_in, [1])
            flat = g.cast(flat * inside, INT64)  # outside: index 0, weight 0
            weight = g.unsqueeze(g.unsqueeze(wy, [2]) * g.unsqueeze(wx, [1]) * inside, [3])
            term = g.select(pixels, flat) * weight
            out = term if out is None else out + term
    assert out is not None
    return out


def crop_resize(g: Graph, table: V, pixels: V, height: V, width: V, regions: V, size: int) -> V:
    """``crops.crop_resize(images, index, regions, size)`` for one image, in ONNX operators.

    table: the image's summed-area table, float64 flat [(H + 1) * (W + 1), 3]; pixels: the
    image, float64 flat [H * W, 3]; height, width: float64 scalars; regions: float64 [K, 4]
    (left, top, right, bottom), whole pixels -> float32 [K, size, size, 3] in 0..255.
    Each crop takes the area rule or the enlarging rule as OpenCV would; the two groups are
    computed apart and put back in place.
    """
    w = g.take(regions, 2, 1) - g.take(regions, 0, 1)
    h = g.take(regions, 3, 1) - g.take(regions, 1, 1)
    shrink = (w >= float(size)) & (h >= float(size))
    k = g.op("Shape", regions, end=1)
    out = g.op("ConstantOfShape", g.concat([k, g.ints([size, size, 3])], 0),
               value=_double_zero(), dtypes=[DOUBLE])
    for mask, fn in ((shrink, "area"), (~shrink, "enlarged")):
        index = g.nonzero(mask)
        part = g.select(regions, index)
        if fn == "area":
            values = _area_crops(g, table, height, width, part, size)
        else:
            values = _enlarged_crops(g, pixels, height, width, part, size)
        out = g.op("ScatterND", out, g.unsqueeze(index, [1]), values)
    return g.cast(out, FLOAT)


def _double_zero():
    from ..export import _import_onnx

    return _import_onnx().helper.make_tensor("zero", DOUBLE, [1], [0.0])
