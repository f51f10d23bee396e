"""The three network calls behind one small interface, so the cascade never knows what runs them.

A backend takes float32 NCHW batches of RGB pixels in 0..255 (the cascade's pyramid levels
and crops, not yet normalised) and returns face probabilities, box regressions and (O-Net)
landmarks as torch tensors on the cascade's device. Each backend applies MTCNN's input
normalisation, (pixel - 127.5) / 128, its own way: the torch one folds it into the first
convolution.
"""

from __future__ import annotations

import ctypes
import logging
import os
import platform
from collections.abc import Mapping
from typing import Protocol, cast

import torch
from torch import Tensor, nn

from .nets import PIXEL_MEAN, PIXEL_SCALE, face_probability

log = logging.getLogger(__name__)

# glibc malloc options (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_malloc_tuned = False


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep the networks' freed activations for the next call.

    By default glibc hands large freed blocks back to the OS (blocks over a moving mmap
    threshold, and the top of the heap past a trim threshold), so each network call faults
    every page of its activations back in: measured on 2 cores, 6,700 page faults and 12 ms
    of kernel time per 640x480 detection, R-Net and O-Net twice as slow as their layers
    alone. Blocks up to 32 MiB now come from the heap, and up to 256 MiB of freed heap
    stays with the process. It is process-wide, so it is done once, only on Linux with
    glibc, and not at all when TORCHMTCNN_KEEP_FREED_MEMORY=0. Returns whether it applied.
    """
    global _malloc_tuned
    if _malloc_tuned:
        return True
    if os.environ.get("TORCHMTCNN_KEEP_FREED_MEMORY", "1") == "0" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    _malloc_tuned = bool(mallopt(_M_MMAP_THRESHOLD, 32 << 20)) and bool(mallopt(_M_TRIM_THRESHOLD, 256 << 20))
    log.debug("malloc keeps freed memory for the networks: %s", _malloc_tuned)
    return _malloc_tuned


BACKENDS = ("torch", "onnxruntime")


def pick_device(device: str | torch.device | None) -> torch.device:
    """The device asked for ("cpu", "cuda", "cuda:1"...), or for None / "auto" a GPU when
    there is one (cuda:LOCAL_RANK under a distributed launcher), else the CPU. A name that is
    no device, or a GPU asked for where there is none, raises ValueError naming it."""
    if device is None or device == "auto":
        if not torch.cuda.is_available():
            return torch.device("cpu")
        rank = os.environ.get("LOCAL_RANK")
        return torch.device("cuda", int(rank)) if rank is not None else torch.device("cuda")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(f"device: {device!r} is not a device name (use 'cpu', 'cuda', 'cuda:1'...)") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device: {device!r} asked for, but no CUDA GPU is available")
    return dev


class NetworkBackend(Protocol):
    device: torch.device

    def pnet(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x: pixels [N, 3, H, W] -> (probability [N, h, w], regression [N, 4, h, w])."""

    def rnet(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x: pixels [K, 3, 24, 24] -> (probability [K], regression [K, 4])."""

    def onet(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x: pixels [K, 3, 48, 48] -> (probability [K], regression [K, 4], landmarks [K, 10])."""


def _bias(layer: nn.Conv2d | nn.Linear | nn.Module) -> Tensor:
    """A layer's bias (every layer of MTCNN has one)."""
    bias = getattr(layer, "bias", None)
    if not isinstance(bias, Tensor):
        raise ValueError(f"{layer} has no bias")
    return bias


def _conv_like(conv: nn.Conv2d, in_channels: int, out_channels: int) -> nn.Conv2d:
    """An unpadded convolution with ``conv``'s kernel and stride."""
    pair = tuple[int, int]
    return nn.Conv2d(in_channels, out_channels, cast(pair, conv.kernel_size), cast(pair, conv.stride))


class FusedHeads(nn.Module):
    """A network's body and the heads inference needs, fused into one layer.

    Training keeps separate heads (nets.py); inference needs no landmark head for P-Net
    and R-Net, and one 1x1 convolution or one dense layer for the rest is cheaper than two
    or three. Shares the body's parameters with the network it wraps.
    """

    body: nn.Sequential
    head: nn.Conv2d | nn.Linear

    def __init__(self, net: nn.Module, heads: tuple[str, ...]) -> None:
        super().__init__()
        self.body = cast(nn.Sequential, net.body)
        layers = [getattr(net, h) for h in heads]
        weight = torch.cat([layer.weight.detach() for layer in layers])
        bias = torch.cat([_bias(layer).detach() for layer in layers])
        if isinstance(layers[0], nn.Conv2d):
            self.head = nn.Conv2d(weight.shape[1], weight.shape[0], 1)
        else:
            self.head = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.head.weight.copy_(weight)
            _bias(self.head).copy_(bias)
        self.splits = [layer.weight.shape[0] for layer in layers]

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        return self.head(self.body(x)).split(self.splits, dim=1)


def widen_first_layer(body: nn.Sequential, channels: int = 16) -> nn.Sequential:
    """A copy of a body that starts Conv2d, PReLU, MaxPool2d, Conv2d with the first layer
    zero-padded to ``channels`` outputs.

    P-Net's first layer has 10 channels, and channels-last PReLU and max pooling vectorise
    poorly on 10 (measured on the largest 640x480 pyramid level: 0.78 + 0.88 ms on 10
    channels, 0.28 + 0.51 ms on 16; P-Net over the whole pyramid ~1 ms faster). The extra
    channels have zero kernels and bias, so they are 0 after PReLU and pooling, and the next
    convolution gives them zero weights: the same outputs up to float summation order.
    """
    conv1, prelu, pool, conv2 = body[0], body[1], body[2], body[3]
    if not (isinstance(conv1, nn.Conv2d) and isinstance(prelu, nn.PReLU) and isinstance(pool, nn.MaxPool2d)
            and isinstance(conv2, nn.Conv2d)) or conv1.out_channels >= channels:
        return body
    extra = channels - conv1.out_channels
    wide1 = _conv_like(conv1, conv1.in_channels, channels)
    wide_prelu = nn.PReLU(channels)
    wide2 = _conv_like(conv2, channels, conv2.out_channels)
    with torch.no_grad():
        wide1.weight.copy_(torch.cat([conv1.weight, conv1.weight.new_zeros(extra, *conv1.weight.shape[1:])]))
        b1 = _bias(conv1)
        _bias(wide1).copy_(torch.cat([b1, b1.new_zeros(extra)]))
        wide_prelu.weight.copy_(torch.cat([prelu.weight, prelu.weight.new_zeros(extra)]))
        w2 = conv2.weight
        wide2.weight.copy_(torch.cat([w2, w2.new_zeros(w2.shape[0], extra, *w2.shape[2:])], 1))
        _bias(wide2).copy_(_bias(conv2))
    return nn.Sequential(wide1, wide_prelu, pool, wide2, *list(body)[4:])


def fold_input_normalisation(body: nn.Sequential, mean: float = PIXEL_MEAN,
                             scale: float = PIXEL_SCALE) -> nn.Sequential:
    """A copy of a body that starts with an unpadded Conv2d, taking pixels instead of
    (pixel - mean) * scale: conv(w, (x - m) s) + b = conv(w s, x) + (b - m s sum(w)).

    Saves the normalisation's passes over every pyramid level and crop (measured in a
    640x480 detection: 2.7 -> 0.5-0.9 ms, the rest being the uint8 -> float32 conversion).
    Exact up to float rounding only because MTCNN's convolutions have no zero padding (a
    padded border would see -mean * scale, not 0).
    The layers after the first are shared, not copied.
    """
    conv = body[0]
    if not isinstance(conv, nn.Conv2d) or any(p != 0 for p in conv.padding):
        raise ValueError("fold_input_normalisation needs a body that starts with an unpadded Conv2d")
    folded = _conv_like(conv, conv.in_channels, conv.out_channels)
    with torch.no_grad():
        w = conv.weight.detach().double()
        folded.weight.copy_(w * scale)
        _bias(folded).copy_(_bias(conv).detach().double() - mean * scale * w.sum(dim=(1, 2, 3)))
    return nn.Sequential(folded, *list(body)[1:])


class TorchBackend:
    """Runs the PyTorch modules; channels-last layout, which is 2-3x faster on CPU for the
    small convolutions of MTCNN (measured, see the README)."""

    name = "torch"

    def __init__(self, nets: dict[str, nn.Module], device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        if self.device.type == "cpu":
            keep_freed_memory()
        heads = {"pnet": ("cls", "box"), "rnet": ("cls", "box"), "onet": ("cls", "box", "landmarks")}
        self.nets: dict[str, nn.Module] = {}
        for name, net in nets.items():
            fused = FusedHeads(net, heads[name])
            fused.body = fold_input_normalisation(fused.body)
            if name == "pnet":
                fused.body = widen_first_layer(fused.body)
            fused = fused.to(self.device).eval()
            self.nets[name] = fused.to(memory_format=torch.channels_last)  # type: ignore[call-overload]

    @torch.inference_mode()
    def pnet(self, x: Tensor) -> tuple[Tensor, Tensor]:
        logits, box = self.nets["pnet"](x.contiguous(memory_format=torch.channels_last))
        return face_probability(logits), box

    @torch.inference_mode()
    def rnet(self, x: Tensor) -> tuple[Tensor, Tensor]:
        if x.shape[0] == 0:  # as the onnxruntime backend: empty outputs of the right shapes
            return x.new_zeros(0), x.new_zeros(0, 4)
        logits, box = self.nets["rnet"](x.contiguous(memory_format=torch.channels_last))
        return face_probability(logits), box

    @torch.inference_mode()
    def onet(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        if x.shape[0] == 0:
            return x.new_zeros(0), x.new_zeros(0, 4), x.new_zeros(0, 10)
        logits, box, landmarks = self.nets["onet"](x.contiguous(memory_format=torch.channels_last))
        return face_probability(logits), box, landmarks


def make_backend(name: str, nets: Mapping[str, nn.Module], device: torch.device | str = "cpu") -> NetworkBackend:
    """The network runtime ``name`` ("torch", or "onnxruntime" with the [onnx] extra) on loaded
    networks; ValueError naming the backend for any other name."""
    if name == "torch":
        return TorchBackend(dict(nets), device)
    if name == "onnxruntime":
        from .ort import OnnxRuntimeBackend  # needs the [onnx] extra

        return OnnxRuntimeBackend.from_nets(nets, device)
    raise ValueError(f"backend must be 'torch' or 'onnxruntime', got {name!r}")
