"""The whole cascade as one ONNX graph: an RGB uint8 photo in, faces out.

``export_cascade(weights)`` returns the bytes of one ONNX model; ``cascade_to_onnx(path,
weights)`` writes it (``mtcnn export onnx --cascade --out FILE``). Any ONNX runtime runs it
with standard operators only (opset 17), no custom operator and no code around it:

* inputs: ``image`` uint8 [H, W, 3] RGB, any size from 1 x 1 up to 16,384 px a side (the
  float32 box arithmetic of NonMaxSuppression is exact to that size); ``min_face_size``
  float32 [] (values under 12 are taken as 12) and ``thresholds`` float32 [3] (P-Net, R-Net,
  O-Net). All three are required (onnxruntime-web cannot feed an input that has a default);
  the metadata holds the values to use by default (``min_face_size``, ``thresholds``);
* outputs: ``boxes`` float32 [N, 4] (x1, y1, x2, y2 in pixels, clipped to the image),
  ``scores`` float32 [N], ``landmarks`` float32 [N, 5, 2] (x, y of left eye, right eye,
  nose, left and right mouth corner), best first: what ``MTCNN.detect`` returns.

The graph repeats ``cascade.Cascade`` step by step (``stages.py``) with the resizing of
``resample.py``; the model's ``metadata_props`` carry the weights' name, version and sha256,
the default thresholds and smallest face, the pyramid factor, the NMS overlaps and the
input and output layout.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..cascade_config import DEFAULTS, CascadeConfig
from ..export import (DEFAULT_OPSET, LANDMARK_ORDER, ExportError, _import_onnx, _writable_folder, load_weights,
                      write_atomically)

log = logging.getLogger(__name__)

MAX_SIDE = 16_384


def levels_needed(factor: float = DEFAULTS.factor, max_side: int = MAX_SIDE) -> int:
    """Pyramid levels the graph unrolls: a level k exists while the shorter side, scaled so
    that min_face_size becomes 12 px, stays >= 12 after k steps of ``factor``, i.e. while
    factor**k >= min_face_size / shorter side; with min_face_size >= 12 and sides up to
    ``max_side`` that is k <= log(max_side / 12) / log(1 / factor): 21 levels at 0.709."""
    from .stages import MIN_FACE_FLOOR

    return int(math.floor(math.log(max_side / MIN_FACE_FLOOR) / math.log(1 / factor) + 1e-9)) + 1


DEFAULT_LEVELS = levels_needed()


@dataclass(frozen=True)
class CascadeExport:
    """What goes into the graph besides the networks.

    config: the smallest face and thresholds recorded in the metadata as the values to feed
    by default, and, fixed in the graph, the pyramid factor and the NMS overlaps (default
    ``cascade_config.DEFAULTS``);
    levels: pyramid levels unrolled (default: ``levels_needed(config.factor)``, all that an
    image of up to MAX_SIDE px a side has); opset: ONNX opset (>= 17).
    """

    config: CascadeConfig = DEFAULTS
    levels: int = 0  # 0: levels_needed(config.factor)
    opset: int = DEFAULT_OPSET

    def __post_init__(self) -> None:
        from .stages import MIN_FACE_FLOOR

        if self.levels == 0:
            object.__setattr__(self, "levels", levels_needed(self.config.factor))
        if not (isinstance(self.levels, int) and 1 <= self.levels <= 64):
            raise ValueError(f"levels must be an integer from 1 to 64, got {self.levels!r}")
        if not (isinstance(self.opset, int) and self.opset >= 17):
            raise ValueError(f"opset must be an integer >= 17 for the cascade graph, got {self.opset!r}")
        if self.config.min_face_size < MIN_FACE_FLOOR:
            raise ValueError(f"min_face_size must be at least {MIN_FACE_FLOOR:g} px in the cascade graph "
                             f"(its pyramid never enlarges the photo), got {self.config.min_face_size!r}")


def cascade_metadata(settings: CascadeExport, info: dict[str, str]) -> dict[str, str]:
    """The graph's metadata_props: weights, defaults, and how to feed and read it."""
    from .. import __version__

    cfg = settings.config
    return {
        "producer": "torchmtcnn",
        "torchmtcnn_version": __version__,
        "network": "cascade",
        "inputs": "image,min_face_size,thresholds",
        "input_image": f"uint8 [H, W, 3], RGB, 1 <= H, W <= {MAX_SIDE}",
        "input_min_face_size": "float32 [], smallest face in pixels (values under 12 taken as 12); "
                               f"default: {cfg.min_face_size:g} (min_face_size below)",
        "input_thresholds": "float32 [3], P-Net, R-Net, O-Net face-probability thresholds; default: "
                            + ",".join(str(t) for t in cfg.thresholds) + " (thresholds below)",
        "outputs": "boxes,scores,landmarks",
        "output_shapes": json.dumps({"boxes": "[N, 4]", "scores": "[N]", "landmarks": "[N, 5, 2]"}),
        "boxes": "x1, y1, x2, y2 in pixels, clipped to the image, best score first",
        "landmark_order": LANDMARK_ORDER,
        "landmark_layout": "[N, 5, 2]: (x, y) in pixels",
        "thresholds": ",".join(str(t) for t in cfg.thresholds),
        "min_face_size": f"{cfg.min_face_size:g}",
        "pyramid_factor": str(cfg.factor),
        "pyramid_levels": str(settings.levels),
        "nms": json.dumps({"level": cfg.nms_level, "image": cfg.nms_image, "rnet": cfg.nms_rnet,
                           "onet_min": cfg.nms_onet}),
        "weights_name": info.get("name", "unknown"),
        "weights_version": info.get("version", "unknown"),
        "weights_sha256": info.get("sha256", ""),
        "opset": str(settings.opset),
    }


def build_model(nets: dict[str, Any], info: dict[str, str], settings: CascadeExport | None = None) -> Any:
    """Loaded networks ({"pnet", "rnet", "onet"}) -> the checked onnx.ModelProto of the cascade."""
    onnx = _import_onnx()
    from .stages import build_graph

    settings = settings or CascadeExport()
    try:
        graph = build_graph(nets, settings.config, settings.levels, settings.opset)
        model = onnx.helper.make_model(graph.proto(), opset_imports=[onnx.helper.make_opsetid("", settings.opset)],
                                       producer_name="torchmtcnn")
        model.ir_version = min(model.ir_version, 8)  # readable by onnxruntime >= 1.14 and onnxruntime-web
    except ExportError:
        raise
    except Exception as exc:  # the exporter and onnx raise many types
        raise ExportError(f"building the cascade graph failed: {exc}") from exc
    model.doc_string = "MTCNN face detection, the whole cascade: see metadata_props for inputs and outputs"
    for key, value in cascade_metadata(settings, info).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    return model


def export_cascade(weights: str | Path | None = None, settings: CascadeExport | None = None) -> bytes:
    """The cascade as the bytes of one ONNX model.

    weights: None (the package's weights, else the imported original), "original" or a path,
    as ``MTCNN(weights=...)``; settings: defaults, levels, opset (``CascadeExport``).
    Raises WeightsError for a missing or corrupt weight file, MissingExtraError without onnx.
    """
    _import_onnx("The cascade graph export")
    nets, info, _ = load_weights(weights)
    return build_model(nets, info, settings).SerializeToString()


def cascade_to_onnx(out: str | Path, weights: str | Path | None = None,
                    settings: CascadeExport | None = None) -> Path:
    """Write the cascade graph to ``out`` (a file, replaced atomically) -> its path.

    Raises ExportError when ``out`` is a folder or cannot be written, WeightsError for a
    missing or corrupt weight file."""
    out = Path(out)
    if out.is_dir():
        raise ExportError(f"--out {out} is a folder: give the path of the .onnx file to write")
    data = export_cascade(weights, settings)
    _writable_folder(out.parent if str(out.parent) else Path("."))
    write_atomically(out, data)
    log.info("wrote %s (%.1f MB)", out, len(data) / 1e6)
    return out
