"""The three stages of ``cascade.Cascade`` for one image, written in ONNX operators.

Each step follows ``cascade.py`` line for line (read them side by side): the same pyramid
rule (``pyramid_scales``), window decoding, thresholds (P-Net ``>=``, R-Net and O-Net ``>``),
NMS overlaps and "+1" widths, integer truncations and crop regions, and the box arithmetic
itself: ``boxes.apply_regression`` and ``boxes.square`` are traced from the torch functions
and spliced in, and the networks are the exported ``export_net`` graphs. Boxes are float64 as
in the cascade.

Control flow without Python:

* the pyramid is unrolled to ``levels`` levels, each in an If: a level the photo does not
  have (the original rule stops when the shorter side falls under 12 px) computes nothing, so
  one graph serves every image size;
* data-dependent counts are tensors of dynamic length (NonZero, Gather);
* the union-overlap NMS steps use ONNX's NonMaxSuppression on boxes grown by one pixel (the
  "+1" widths, exactly), in float32 where the cascade uses float64;
* the last NMS (overlap over the smaller box, which NonMaxSuppression cannot do) is the greedy
  NMS as a fixed point: a box is kept when no kept better box overlaps it; a Loop repeats that
  rule from "all kept" until nothing changes, which gives the greedy result exactly.
"""

from __future__ import annotations

import functools
import io
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from ..boxes import apply_regression, square
from ..cascade_config import CascadeConfig
from ..export import _import_onnx, export_net
from ..nets import PIXEL_MEAN, PIXEL_SCALE
from .builder import BOOL, DOUBLE, FLOAT, INT64, Graph, V
from .resample import crop_resize, cumulative, pyramid_level, sums_before

# The smallest face the graph looks for: below 12 px the pyramid would enlarge the photo,
# which OpenCV does in fixed-point arithmetic the graph does not repeat.
MIN_FACE_FLOOR = 12.0


class _Fn(nn.Module):
    def __init__(self, fn: Callable[..., torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        return self.fn(*args)


@functools.cache
def _traced(name: str, opset: int) -> Any:
    """The torch box function ``name`` as an ONNX model on float64 [N, 4] inputs."""
    onnx = _import_onnx()
    fns: dict[str, tuple[Callable[..., torch.Tensor], int]] = {
        "regression0": (functools.partial(apply_regression, offset=0.0), 2),
        "regression1": (functools.partial(apply_regression, offset=1.0), 2),
        "square": (square, 1),
    }
    fn, n_args = fns[name]
    args = tuple(torch.rand(5, 4, dtype=torch.float64) for _ in range(n_args))
    names = ["boxes", "regression"][:n_args]
    buf = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(_Fn(fn), args, buf, dynamo=False, opset_version=opset,  # type: ignore[arg-type]
                          input_names=names, output_names=["out"],
                          dynamic_axes={n: {0: "n"} for n in [*names, "out"]})
    return onnx.load_from_string(buf.getvalue())


class CascadeGraph:
    """Builds the cascade for one image into a Graph ``g``.

    nets: exported network models {"pnet", "rnet", "onet"} (onnx.ModelProto, normalised
    NCHW input ``image``); config: factor and NMS overlaps (thresholds and smallest face are
    graph inputs); levels: pyramid levels unrolled.
    """

    def __init__(self, g: Graph, nets: Mapping[str, Any], config: CascadeConfig, levels: int, opset: int) -> None:
        self.g, self.nets, self.config, self.levels, self.opset = g, nets, config, levels, opset
        self._splices = 0

    # --- helpers --------------------------------------------------------------------------

    def box_fn(self, name: str, *args: V) -> V:
        model = _traced(name, self.opset)
        self._splices += 1
        feed = dict(zip(["boxes", "regression"], args))
        return self.g.splice(model, feed, f"{name}{self._splices}/", f"{name}/")["out"]

    def network(self, name: str, pixels: V, channels_first: bool = False) -> dict[str, V]:
        """pixels: float32 [N, H, W, 3] (or [N, 3, H, W]) in 0..255 -> the network's outputs."""
        g = self.g
        x = pixels if channels_first else g.op("Transpose", pixels, perm=[0, 3, 1, 2])
        x = (x - PIXEL_MEAN) * PIXEL_SCALE
        self._splices += 1
        return g.splice(self.nets[name], {"image": x}, f"{name}{self._splices}/", f"{name}/")

    def nms(self, boxes: V, scores: V, threshold: float) -> V:
        """Greedy NMS, overlap over the union with "+1" widths: boxes float64 [N, 4], scores
        float32 [N] -> kept indices int64 [K], best first."""
        g = self.g
        grown = g.cast(boxes + np.array([0.0, 0.0, 1.0, 1.0]), FLOAT)  # x2 + 1 - x1 = the "+1" width
        picked = g.op("NonMaxSuppression", g.unsqueeze(grown, [0]), g.unsqueeze(scores, [0, 1]),
                      g.ints([1 << 40]), g.const(np.array([threshold], np.float32)))
        return g.take(picked, 2, 1)

    def nms_min(self, boxes: V, threshold: float) -> V:
        """Greedy NMS, intersection over the smaller box with "+1" widths (``boxes.nms(...,
        mode="min", offset=1)``), of float64 boxes [N, 4] sorted best first -> bool [N] kept."""
        g = self.g
        a, b = g.unsqueeze(boxes, [1]), g.unsqueeze(boxes, [0])
        lo = [g.maximum(g.take(a, k, 2), g.take(b, k, 2)) for k in (0, 1)]
        hi = [g.minimum(g.take(a, k, 2), g.take(b, k, 2)) for k in (2, 3)]
        zero = g.const(0.0)
        inter = g.maximum(hi[0] - lo[0] + 1.0, zero) * g.maximum(hi[1] - lo[1] + 1.0, zero)
        area = (g.maximum(g.take(boxes, 2, 1) - g.take(boxes, 0, 1) + 1.0, zero)
                * g.maximum(g.take(boxes, 3, 1) - g.take(boxes, 1, 1) + 1.0, zero))
        denom = g.minimum(g.unsqueeze(area, [1]), g.unsqueeze(area, [0]))
        over = inter / g.maximum(denom, g.const(np.finfo(np.float64).tiny)) > threshold
        n = g.op("Shape", boxes, start=0, end=1)
        order = g.arange(g.squeeze(n, [0]))
        later = g.unsqueeze(order, [1]) < g.unsqueeze(order, [0])  # [i, j]: box j comes after box i
        suppresses = g.cast(over & later, FLOAT)
        start = g.op("ConstantOfShape", n, value=_tensor(FLOAT, 1.0), dtypes=[FLOAT])
        body = g.body("nms_fixed_point")
        onnx = _import_onnx()
        body.inputs += [onnx.helper.make_tensor_value_info("i", INT64, []),
                        onnx.helper.make_tensor_value_info("go", BOOL, []),
                        onnx.helper.make_tensor_value_info("kept", FLOAT, [None])]
        kept = V(body, "kept", FLOAT)
        with g.building(body):
            hit = g.squeeze(g.op("MatMul", g.unsqueeze(kept, [0]), suppresses), [0])
            new = g.cast(hit < 0.5, FLOAT)
            changed = g.op("ReduceSum", g.op("Abs", new - kept), keepdims=0) > 0.0
        body.output(changed, "go_out", [])
        body.output(new, "kept_out", [None])
        trips = g.op("Add", g.squeeze(n, [0]), g.const(np.int64(1)))
        final = g.op("Loop", trips, g.const(np.bool_(True)), start, body=body.proto(), dtypes=[FLOAT])
        return final > 0.5

    # --- the stages -----------------------------------------------------------------------

    def propose(self, pixels: V, height: V, width: V, min_face_size: V, threshold: V) -> tuple[V, V]:
        """Stage 1 (``Cascade.propose``) -> (boxes float64 [K, 4], P-Net scores float32 [K]).

        pixels: the image, float32 [H, W, 3]; height, width, min_face_size: float64 scalars;
        threshold: float32 scalar."""
        g, cfg = self.g, self.config
        rows_before = sums_before(g, pixels)
        m = 12.0 / g.maximum(min_face_size, g.const(MIN_FACE_FLOOR))
        min_layer = g.minimum(height, width) * m
        found: list[tuple[V, V, V]] = []
        powers = [float(np.power(cfg.factor, k)) for k in range(self.levels)]  # as pyramid_scales
        for k in range(self.levels):
            g.scope = f"level{k}/"
            exists = min_layer >= 12.0
            min_layer = min_layer * cfg.factor
            scale = m * powers[k]
            # A level the photo does not have costs one If: its branch computes nothing.
            present, absent = g.body(f"level{k}"), g.body(f"level{k}_absent")
            present.scope = f"level{k}/"
            with g.building(present):
                windows = self._level(pixels, rows_before, height, width, scale, threshold)
            nothing = (g.const(np.zeros((0, 4))), g.const(np.zeros(0, np.float32)),
                       g.const(np.zeros((0, 4), np.float32)))
            shapes: list[list[int | None]] = [[None, 4], [None], [None, 4]]
            for branch, values in ((present, windows), (absent, nothing)):
                for v, name, shape in zip(values, ("boxes", "scores", "regs"), shapes):
                    branch.output(v, f"{branch.name}_{name}", shape)
            found.append(g.op("If", exists, n_out=3, dtypes=[DOUBLE, FLOAT, FLOAT],
                              then_branch=present.proto(), else_branch=absent.proto()))
        g.scope = "propose/"
        boxes, scores, regs = (g.concat([f[i] for f in found], 0) for i in range(3))  # type: ignore[index]
        keep = self.nms(boxes, scores, cfg.nms_image)
        # The original applies P-Net's regression with width x2 - x1 here (no "+1").
        boxes = self.box_fn("regression0", g.select(boxes, keep), g.cast(g.select(regs, keep), DOUBLE))
        return g.trunc(self.box_fn("square", boxes)), g.select(scores, keep)

    def _level(self, pixels: V, rows_before: V, height: V, width: V, scale: V, threshold: V) -> tuple[V, V, V]:
        """One pyramid level's windows after P-Net, threshold and the level's NMS -> (boxes
        float64 [n, 4], scores float32 [n], regression float32 [n, 4])."""
        g, cfg = self.g, self.config
        level_h, level_w = g.op("Ceil", height * scale), g.op("Ceil", width * scale)
        level = pyramid_level(g, pixels, rows_before, height, width, level_h, level_w)
        out = self.network("pnet", g.unsqueeze(level, [0]), channels_first=True)
        prob = g.squeeze(out["prob"], [0])  # [h, w]
        where = g.op("Transpose", g.op("NonZero", prob >= threshold))  # [n, 2]: y, x
        scores = g.op("GatherND", prob, where)
        regs = g.op("GatherND", g.op("Transpose", g.squeeze(out["box"], [0]), perm=[1, 2, 0]), where)
        yy, xx = (g.cast(g.take(where, i, 1), DOUBLE) for i in (0, 1))
        boxes = g.floor(g.stack([(2.0 * xx + 1.0) / scale, (2.0 * yy + 1.0) / scale,
                                 (2.0 * xx + 12.0) / scale, (2.0 * yy + 12.0) / scale], 1))
        keep = self.nms(boxes, scores, cfg.nms_level)
        return g.select(boxes, keep), g.select(scores, keep), g.select(regs, keep)

    def _crops(self, images: tuple[V, V, V, V], boxes: V, size: int) -> V:
        table, flat, height, width = images
        # The original cuts pixels x1-1 .. x2-1 (1-based indices of MATLAB descent).
        regions = boxes + np.array([-1.0, -1.0, 0.0, 0.0])
        return crop_resize(self.g, table, flat, height, width, regions, size)

    def refine(self, images: tuple[V, V, V, V], boxes: V, threshold: V) -> V:
        """Stage 2 (``Cascade.refine``): boxes float64 [K, 4] -> boxes float64 [K', 4]."""
        g = self.g
        g.scope = "crops24/"
        crops = self._crops(images, boxes, 24)
        g.scope = "refine/"
        out = self.network("rnet", crops)
        passed = g.nonzero(out["prob"] > threshold)
        boxes, scores, regs = g.select(boxes, passed), g.select(out["prob"], passed), g.select(out["box"], passed)
        keep = self.nms(boxes, scores, self.config.nms_rnet)
        boxes = self.box_fn("regression1", g.select(boxes, keep), g.cast(g.select(regs, keep), DOUBLE))
        return self.box_fn("square", boxes)

    def output(self, images: tuple[V, V, V, V], boxes: V, threshold: V) -> tuple[V, V, V]:
        """Stage 3 (``Cascade.output``) -> boxes float64 [N, 4], scores float32 [N], landmarks
        float64 [N, 5, 2], best first."""
        g = self.g
        g.scope = "crops48/"
        boxes = g.trunc(boxes)
        crops = self._crops(images, boxes, 48)
        g.scope = "output/"
        out = self.network("onet", crops)
        passed = g.nonzero(out["prob"] > threshold)
        boxes, scores = g.select(boxes, passed), g.select(out["prob"], passed)
        regs, points = (g.cast(g.select(out[k], passed), DOUBLE) for k in ("box", "landmarks"))
        x1, y1, x2, y2 = (g.unsqueeze(g.take(boxes, k, 1), [1]) for k in range(4))
        xs = (x2 - x1 + 1.0) * g.slice(points, [0], [5], [1]) + x1 - 1.0
        ys = (y2 - y1 + 1.0) * g.slice(points, [5], [10], [1]) + y1 - 1.0
        landmarks = g.stack([xs, ys], 2)
        boxes = self.box_fn("regression1", boxes, regs)
        # Best first (TopK keeps the lower index first among equal scores, like a stable sort).
        order = g.op("TopK", scores, g.op("Shape", scores), n_out=2, dtypes=[FLOAT, INT64], axis=0)[1]
        boxes, scores, landmarks = (g.select(v, order) for v in (boxes, scores, landmarks))
        kept = g.nonzero(self.nms_min(boxes, self.config.nms_onet))
        return g.select(boxes, kept), g.select(scores, kept), g.select(landmarks, kept)


def prelu_as_max(model: Any) -> Any:
    """Rewrite a network's PRelu nodes as Mul and Max (onnx.ModelProto, in place -> model).

    PReLU(x) = max(x, a * x) for a slope a <= 1, the same arithmetic as PReLU's x < 0 ? a * x
    : x. onnxruntime's PRelu is slow on the CPU (it also breaks its blocked convolution layout):
    measured 4-10x slower than Mul + Max on P-Net's and R-Net's first layers. A layer with a
    slope above 1 (the original R-Net's first has 1.30) becomes max(x, b * x) + min(c * x, 0)
    with b = min(a, 1), c = a - b: equal to PReLU up to one rounding.
    """
    onnx = _import_onnx()
    weights = {t.name: t for t in model.graph.initializer}
    nodes = []
    for node in model.graph.node:
        if node.op_type != "PRelu":
            nodes.append(node)
            continue
        x, slope_name = node.input
        slope = onnx.numpy_helper.to_array(weights[slope_name]).astype(np.float32)
        b, c = np.minimum(slope, 1.0), slope - np.minimum(slope, 1.0)
        out = node.output[0]
        below = onnx.numpy_helper.from_array(b, slope_name + "_below1")
        model.graph.initializer.append(below)
        nodes += [onnx.helper.make_node("Mul", [x, below.name], [out + "_bx"]),
                  onnx.helper.make_node("Max", [x, out + "_bx"], [out + "_max" if c.any() else out])]
        if c.any():
            above = onnx.numpy_helper.from_array(c, slope_name + "_above1")
            model.graph.initializer.append(above)
            nodes += [onnx.helper.make_node("Mul", [x, above.name], [out + "_cx"]),
                      onnx.helper.make_node("Min", [out + "_cx", g_zero(model)], [out + "_min"]),
                      onnx.helper.make_node("Add", [out + "_max", out + "_min"], [out])]
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    used = {i for n in model.graph.node for i in n.input}
    keep = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
    return model


def g_zero(model: Any) -> str:
    """The name of a float32 zero initializer of ``model`` (added once)."""
    onnx = _import_onnx()
    if not any(t.name == "prelu_zero" for t in model.graph.initializer):
        model.graph.initializer.append(onnx.numpy_helper.from_array(np.zeros(1, np.float32), "prelu_zero"))
    return "prelu_zero"


def _tensor(dtype: int, value: float) -> Any:
    return _import_onnx().helper.make_tensor("value", dtype, [1], [value])


def build_graph(nets: Mapping[str, nn.Module], config: CascadeConfig, levels: int, opset: int) -> Any:
    """The cascade as one ONNX graph with inputs ``image`` uint8 [H, W, 3], ``min_face_size``
    float32 [] and ``thresholds`` float32 [3] (all three required: onnxruntime-web cannot
    override an input that has a default) and outputs ``boxes`` float32 [N, 4], ``scores``
    float32 [N], ``landmarks`` float32 [N, 5, 2] -> the Graph."""
    onnx = _import_onnx()
    models = {name: prelu_as_max(onnx.load_from_string(export_net(name, nets[name], landmarks=name == "onet",
                                                                  opset=opset)))
              for name in ("pnet", "rnet", "onet")}
    g = Graph("torchmtcnn_cascade")
    image = g.input("image", 2, ["height", "width", 3])
    min_face = g.input("min_face_size", FLOAT, [])
    thresholds = g.input("thresholds", FLOAT, [3])
    shape = g.op("Shape", image)
    height, width = (g.cast(g.take(shape, i, 0), DOUBLE) for i in (0, 1))
    stages = CascadeGraph(g, models, config, levels, opset)
    t = [g.take(thresholds, i, 0) for i in range(3)]
    boxes, _ = stages.propose(g.cast(image, FLOAT), height, width, g.cast(min_face, DOUBLE), t[0])
    g.scope = "table/"
    pixels = g.cast(image, DOUBLE)
    table = g.op("Reshape", cumulative(g, cumulative(g, pixels, 0), 1), g.ints([-1, 3]))
    images = (table, g.op("Reshape", pixels, g.ints([-1, 3])), height, width)
    boxes = stages.refine(images, boxes, t[1])
    boxes, scores, landmarks = stages.output(images, boxes, t[2])
    # detector.detect_tensors: boxes clipped to the image, float32 results
    low = g.const(np.zeros(4))
    high = g.concat([g.unsqueeze(v, [0]) for v in (width, height, width, height)], 0)
    boxes = g.minimum(g.maximum(boxes, low), high)
    g.output(g.cast(boxes, FLOAT), "boxes", ["faces", 4])
    g.output(scores, "scores", ["faces"])
    g.output(g.cast(landmarks, FLOAT), "landmarks", ["faces", 5, 2])
    return g
