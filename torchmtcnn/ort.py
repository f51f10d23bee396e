"""The onnxruntime backend: the three network calls run by onnxruntime sessions.

The cascade (:mod:`.cascade`) stays the same code for every backend; this module supplies
only ``pnet``, ``rnet`` and ``onet`` (the :class:`~torchmtcnn.backends.NetworkBackend`
protocol), from the loaded networks exported in memory or from files written by
:func:`torchmtcnn.export.to_onnx`.

Session options (see :func:`session_options`):

* ``optimization``: graph optimisation level, "all" by default ("disable", "basic",
  "extended", "all"; onnxruntime's ``GraphOptimizationLevel``);
* ``threads``: intra-op threads per session (default 0: onnxruntime's choice, one per
  physical core); one inter-op thread, sequential execution;
* ``session.intra_op.allow_spinning = "0"``: always. The cascade calls three sessions one
  after another; with spinning on, each idle session's threads keep a core busy while the
  next one runs (measured 2.5x slower on 2 cores).

Providers: CPU; CUDA when ``device`` is a CUDA device and onnxruntime has the CUDA provider
(else CPU with a warning). Inputs go through numpy: the outputs come back as torch tensors
on the backend's device.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .errors import MissingExtraError, MTCNNError
from .nets import PIXEL_MEAN, PIXEL_SCALE

log = logging.getLogger(__name__)

NET_NAMES = ("pnet", "rnet", "onet")
OPTIMIZATION_LEVELS = ("disable", "basic", "extended", "all")


def import_onnxruntime() -> Any:
    """The onnxruntime module, or MissingExtraError when the [onnx] extra is not installed."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise MissingExtraError("The onnxruntime backend", "onnx", "onnxruntime") from exc
    return onnxruntime


def session_options(threads: int = 0, optimization: str = "all", spinning: bool = False) -> Any:
    """onnxruntime.SessionOptions for one MTCNN network session.

    threads: intra-op threads (0: onnxruntime's default); optimization: "disable", "basic",
    "extended" or "all"; spinning: let idle threads spin (off: see the module docstring).
    """
    ort = import_onnxruntime()
    levels = {
        "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
    }
    if optimization not in levels:
        raise ValueError(f"optimization must be one of {OPTIMIZATION_LEVELS}, got {optimization!r}")
    if not (isinstance(threads, int) and threads >= 0):
        raise ValueError(f"threads must be a non-negative integer, got {threads!r}")
    so = ort.SessionOptions()
    so.graph_optimization_level = levels[optimization]
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "1" if spinning else "0")
    so.log_severity_level = 3
    return so


def providers_for(device: torch.device | str) -> list[str]:
    """Execution providers for a device: CUDA first when asked for and available, then CPU."""
    ort = import_onnxruntime()
    device = torch.device(device)
    if device.type == "cuda":
        if "CUDAExecutionProvider" in ort.get_available_providers():
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        log.warning("onnxruntime has no CUDA provider here (pip install onnxruntime-gpu); running on CPU")
    return ["CPUExecutionProvider"]


def graph_input(pixels: np.ndarray) -> np.ndarray:
    """Pixels in 0..255, float32 [N, 3, H, W] of any strides -> the exported graphs' input:
    (pixel - 127.5) / 128, C-contiguous float32 (see :mod:`torchmtcnn.export`)."""
    arr = np.empty(pixels.shape, np.float32)
    np.subtract(pixels, PIXEL_MEAN, out=arr)
    arr *= PIXEL_SCALE
    return arr


class OnnxRuntimeBackend:
    """NetworkBackend running P-Net, R-Net and O-Net in onnxruntime sessions.

    Build it with :meth:`from_nets` (loaded torch networks, exported in memory),
    :meth:`from_files` (a folder of pnet/rnet/onet.onnx) or from ready sessions.
    """

    name = "onnxruntime"

    def __init__(self, sessions: Mapping[str, Any], device: torch.device | str = "cpu") -> None:
        missing = [n for n in NET_NAMES if n not in sessions]
        if missing:
            raise ValueError(f"sessions for {', '.join(missing)} are missing")
        self.device = torch.device(device)
        self.sessions = dict(sessions)
        self._input = {n: s.get_inputs()[0].name for n, s in self.sessions.items()}
        self._outputs = {}
        for n, s in self.sessions.items():
            names = [o.name for o in s.get_outputs()]
            want = ["prob", "box", "landmarks"][: 3 if n == "onet" else 2]
            if not set(want) <= set(names):
                raise MTCNNError(f"{n} model has outputs {names}; it needs {want} (export with torchmtcnn)")
            self._outputs[n] = want

    @classmethod
    def from_models(
        cls,
        models: Mapping[str, bytes | str | Path],
        device: torch.device | str = "cpu",
        threads: int = 0,
        optimization: str = "all",
        providers: Sequence[str] | None = None,
    ) -> OnnxRuntimeBackend:
        """Sessions from ONNX bytes or file paths {"pnet": ..., "rnet": ..., "onet": ...}."""
        ort = import_onnxruntime()
        providers = list(providers) if providers else providers_for(device)
        sessions = {}
        for name in NET_NAMES:
            model = models[name]
            source = model if isinstance(model, bytes) else str(model)
            try:
                sessions[name] = ort.InferenceSession(
                    source, sess_options=session_options(threads, optimization), providers=providers)
            except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
                where = "in-memory model" if isinstance(model, bytes) else str(model)
                raise MTCNNError(f"onnxruntime cannot load the {name} {where}: {exc}") from exc
        return cls(sessions, device)

    @classmethod
    def from_nets(cls, nets: Mapping[str, nn.Module], device: torch.device | str = "cpu",
                  **options: Any) -> OnnxRuntimeBackend:
        """Export the loaded networks in memory (needs onnx) and open sessions on them;
        ``options``: ``from_models``' threads, optimization, providers."""
        import_onnxruntime()
        from .export import export_nets

        return cls.from_models(export_nets(nets), device, **options)

    @classmethod
    def from_files(cls, folder: str | Path, device: torch.device | str = "cpu", **options: Any) -> OnnxRuntimeBackend:
        """Sessions on ``folder``/pnet.onnx, rnet.onnx and onet.onnx (as ``to_onnx`` writes);
        ``options``: ``from_models``' threads, optimization, providers."""
        import_onnxruntime()
        folder = Path(folder)
        paths = {n: folder / f"{n}.onnx" for n in NET_NAMES}
        for p in paths.values():
            if not p.is_file():
                raise MTCNNError(f"ONNX file not found: {p}")
        return cls.from_models(paths, device, **options)

    def _run(self, name: str, x: Tensor) -> list[Tensor]:
        arr = graph_input(x.detach().to("cpu", torch.float32).numpy())
        outs = self.sessions[name].run(self._outputs[name], {self._input[name]: arr})
        return [torch.from_numpy(o).to(self.device) for o in outs]

    def pnet(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x: pixels [N, 3, H, W] -> (probability [N, h, w], regression [N, 4, h, w])."""
        prob, box = self._run("pnet", x)
        return prob, box

    def rnet(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x: pixels [K, 3, 24, 24] -> (probability [K], regression [K, 4])."""
        if x.shape[0] == 0:
            return x.new_zeros(0), x.new_zeros(0, 4)
        prob, box = self._run("rnet", x)
        return prob, box

    def onet(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x: pixels [K, 3, 48, 48] -> (probability [K], regression [K, 4], landmarks [K, 10])."""
        if x.shape[0] == 0:
            return x.new_zeros(0), x.new_zeros(0, 4), x.new_zeros(0, 10)
        prob, box, points = self._run("onet", x)
        return prob, box, points
