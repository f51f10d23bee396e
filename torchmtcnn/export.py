"""Export P-Net, R-Net and O-Net to ONNX files that a consumer can run without torchmtcnn.

``to_onnx(out_dir)`` writes ``pnet.onnx`` (dynamic batch, height and width: one file serves
every pyramid level), ``rnet.onnx`` and ``onet.onnx`` (dynamic batch). Each graph takes
``image``: float32 [N, 3, H, W], RGB, NCHW, normalised as ``(pixel - 127.5) / 128``, and gives

* ``prob``: face probability (the softmax of the two logits is in the graph),
  P-Net [N, h, w] with h = ceil((H - 2) / 2) - 4, R-Net and O-Net [N];
* ``box``: box regression, offsets of (x1, y1, x2, y2) in units of the window's width and
  height, P-Net [N, 4, h, w], R-Net and O-Net [N, 4];
* ``landmarks`` (O-Net; P-Net and R-Net only when the weights hold trained landmark heads):
  [N, 10] as x1..x5 then y1..y5, fractions of the window, in the order left eye, right eye,
  nose, left and right mouth corner.

Every file carries these facts, the default thresholds, the weights' name and version and
the torchmtcnn version in its ``metadata_props`` (see ``metadata``). The legacy TorchScript
exporter (``dynamo=False``) is used: it needs no ``onnxscript`` and gives plain graphs.
"""

from __future__ import annotations

import io
import json
import os
import warnings
from collections.abc import Collection, Mapping
from pathlib import Path

import torch
from torch import Tensor, nn

from .cascade_config import DEFAULTS
from .errors import MissingExtraError, MTCNNError
from .nets import INPUT_SIZE, face_probability

DEFAULT_OPSET = 17
NET_NAMES = ("pnet", "rnet", "onet")
INPUT_NAME = "image"
LANDMARK_ORDER = "left_eye,right_eye,nose,mouth_left,mouth_right"


class ExportError(MTCNNError):
    """The ONNX files could not be written (output folder not writable, export failed)."""


class _Deployable(nn.Module):
    """A network as deployed: face probability instead of logits, optional landmark head."""

    def __init__(self, net: nn.Module, landmarks: bool) -> None:
        super().__init__()
        self.net = net
        self.landmarks = landmarks

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        logits, box, points = self.net(x)
        prob = face_probability(logits)
        return (prob, box, points) if self.landmarks else (prob, box)


def output_names(name: str, landmarks: bool) -> tuple[str, ...]:
    """Output names of a network's graph, in order."""
    return ("prob", "box", "landmarks") if landmarks else ("prob", "box")


def metadata(
    name: str,
    landmarks: bool,
    weights_name: str = "unknown",
    weights_version: str = "unknown",
    weights_sha256: str = "",
    opset: int = DEFAULT_OPSET,
) -> dict[str, str]:
    """The metadata_props of one exported network: what a consumer needs to feed and read it."""
    from . import __version__

    outs = output_names(name, landmarks)
    if name == "pnet":
        in_shape = "[N, 3, H, W], H and W >= 12"
        shapes = {"prob": "[N, h, w]", "box": "[N, 4, h, w]", "landmarks": "[N, 10, h, w]"}
    else:
        s = INPUT_SIZE[name]
        in_shape = f"[N, 3, {s}, {s}]"
        shapes = {"prob": "[N]", "box": "[N, 4]", "landmarks": "[N, 10]"}
    meta = {
        "producer": "torchmtcnn",
        "torchmtcnn_version": __version__,
        "network": name,
        "input_name": INPUT_NAME,
        "input_shape": in_shape,
        "input_size": str(INPUT_SIZE[name]),
        "input_dtype": "float32",
        "pixel_normalisation": "(pixel - 127.5) / 128, pixel in 0..255",
        "channel_order": "RGB",
        "layout": "NCHW",
        "outputs": ",".join(outs),
        "output_shapes": json.dumps({o: shapes[o] for o in outs}),
        "prob": "face probability: softmax of the two logits, class 1 (in the graph)",
        "box": "box regression: offsets of x1, y1, x2, y2 in units of the window's width and height",
        "threshold": str(DEFAULTS.thresholds[NET_NAMES.index(name)]),
        "thresholds": ",".join(str(t) for t in DEFAULTS.thresholds),
        "min_face_size": f"{DEFAULTS.min_face_size:g}",
        "pyramid_factor": str(DEFAULTS.factor),
        "weights_name": weights_name,
        "weights_version": weights_version,
        "weights_sha256": weights_sha256,
        "opset": str(opset),
    }
    if landmarks:
        meta["landmark_layout"] = "x1..x5 then y1..y5, fractions of the window (0 = left/top, 1 = right/bottom)"
        meta["landmark_order"] = LANDMARK_ORDER
    if name == "pnet":
        meta["stride"] = "2"
        meta["window"] = "12"
        meta["window_position"] = "output cell (j, i) sees input rows 2j..2j+11, columns 2i..2i+11"
    return meta


def _import_onnx(feature: str = "ONNX export"):
    try:
        import onnx
    except ImportError as exc:
        raise MissingExtraError(feature, "onnx", "onnx") from exc
    return onnx


def export_net(
    name: str,
    net: nn.Module,
    landmarks: bool | None = None,
    opset: int = DEFAULT_OPSET,
    meta: Mapping[str, str] | None = None,
) -> bytes:
    """One network -> the bytes of its checked ONNX model (landmarks: default O-Net only)."""
    onnx = _import_onnx()
    if name not in NET_NAMES:
        raise ValueError(f"network must be one of {NET_NAMES}, got {name!r}")
    landmarks = (name == "onet") if landmarks is None else landmarks
    outs = output_names(name, landmarks)
    size = INPUT_SIZE[name]
    example = torch.zeros(2, 3, size * 2 if name == "pnet" else size, size * 2 if name == "pnet" else size)
    axes = {INPUT_NAME: {0: "batch"}, **{o: {0: "batch"} for o in outs}}
    if name == "pnet":
        axes[INPUT_NAME].update({2: "height", 3: "width"})
        axes["prob"].update({1: "out_height", 2: "out_width"})
        for o in outs[1:]:
            axes[o].update({2: "out_height", 3: "out_width"})
    module = _Deployable(net, landmarks).cpu().eval()
    buf = io.BytesIO()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (example,), buf, dynamo=False, opset_version=opset,  # type: ignore[arg-type]
                              input_names=[INPUT_NAME], output_names=list(outs), dynamic_axes=axes,
                              do_constant_folding=True)
    except Exception as exc:  # exporter errors come in many types
        raise ExportError(f"ONNX export of {name} failed (opset {opset}): {exc}") from exc
    model = onnx.load_from_string(buf.getvalue())
    model.producer_name = "torchmtcnn"
    model.doc_string = f"MTCNN {name}: see metadata_props for input and outputs"
    props = dict(meta) if meta is not None else metadata(name, landmarks, opset=opset)
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, str(value)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def export_nets(
    nets: Mapping[str, nn.Module],
    opset: int = DEFAULT_OPSET,
    landmark_heads: Collection[str] = ("onet",),
    weights_info: Mapping[str, str] | None = None,
) -> dict[str, bytes]:
    """Loaded networks {"pnet": module, ...} -> {"pnet": ONNX bytes, ...} (in memory)."""
    info = dict(weights_info or {})
    out = {}
    for name in NET_NAMES:
        lm = name in landmark_heads
        meta = metadata(name, lm, info.get("name", "unknown"), info.get("version", "unknown"),
                        info.get("sha256", ""), opset)
        out[name] = export_net(name, nets[name], lm, opset, meta)
    return out


def load_weights(weights: str | Path | None = None) -> tuple[dict[str, nn.Module], dict[str, str], tuple[str, ...]]:
    """Networks loaded from a weight file (``weights.load_nets``, as ``MTCNN(weights=...)``
    finds it) -> (nets, {"name", "version", "sha256", "path"}, networks whose landmark heads
    the file holds). A missing or corrupt file raises WeightsError naming it.
    """
    from .weights import load_nets

    loaded = load_nets(weights)
    info = {"name": loaded.name, "version": loaded.version, "sha256": loaded.sha256(), "path": str(loaded.path)}
    return loaded.nets, info, loaded.landmark_heads


def _writable_folder(out_dir: Path) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"output folder {out_dir} is not a folder (a file is there)")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create the output folder {out_dir}: {exc.strerror or exc}") from exc
    if not out_dir.is_dir():
        raise ExportError(f"output folder {out_dir} is not a folder")
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise ExportError(f"output folder {out_dir} is not writable")


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a hidden temporary file beside it, so that a failed
    write never leaves half a model under the final name; ExportError names the file."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from exc


def to_onnx(out_dir: str | Path, weights: str | Path | None = None, opset: int = DEFAULT_OPSET) -> dict[str, Path]:
    """Write pnet.onnx, rnet.onnx and onet.onnx into ``out_dir`` -> {"pnet": path, ...}.

    weights: None, "original" or a path, as for ``MTCNN(weights=...)``. P-Net and R-Net get a
    ``landmarks`` output only when the file holds trained landmark heads for them (the
    original weights do not). Raises WeightsError for a missing or corrupt weight file and
    ExportError for a folder that cannot be written; files are replaced atomically.
    """
    nets, info, heads = load_weights(weights)
    out_dir = Path(out_dir)
    _writable_folder(out_dir)
    models = export_nets(nets, opset, heads, info)
    written = {}
    for name, data in models.items():
        path = out_dir / f"{name}.onnx"
        write_atomically(path, data)
        written[name] = path
    return written


def read_onnx_metadata(path: str | Path) -> dict[str, str]:
    """The metadata_props of an exported file, as a dict."""
    onnx = _import_onnx("Reading ONNX metadata")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise ExportError(f"{path}: not a readable ONNX file ({exc})") from exc
    return {p.key: p.value for p in model.metadata_props}
