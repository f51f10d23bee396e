"""The three network calls behind one small interface, so the cascade never knows what runs them.

A backend takes normalised float32 NCHW batches and returns face probabilities, box
regressions and (O-Net) landmarks as torch tensors on the cascade's device.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor, nn

from .nets import face_probability


class NetworkBackend(Protocol):
    device: torch.device

    def pnet(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x: [N, 3, H, W] -> (probability [N, h, w], regression [N, 4, h, w])."""

    def rnet(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """x: [K, 3, 24, 24] -> (probability [K], regression [K, 4])."""

    def onet(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x: [K, 3, 48, 48] -> (probability [K], regression [K, 4], landmarks [K, 10])."""


class FusedHeads(nn.Module):
    """A network's body and the heads inference needs, fused into one layer.

    Training keeps separate heads (nets.py); inference needs no landmark head for P-Net
    and R-Net, and one 1x1 convolution or one dense layer for the rest is cheaper than two
    or three. Shares the body's parameters with the network it wraps.
    """

    def __init__(self, net: nn.Module, heads: tuple[str, ...]) -> None:
        super().__init__()
        self.body = net.body
        layers = [getattr(net, h) for h in heads]
        weight = torch.cat([layer.weight.detach() for layer in layers])
        bias = torch.cat([layer.bias.detach() for layer in layers])
        if isinstance(layers[0], nn.Conv2d):
            self.head: nn.Module = nn.Conv2d(weight.shape[1], weight.shape[0], 1)
        else:
            self.head = nn.Linear(weight.shape[1], weight.shape[0])
        with torch.no_grad():
            self.head.weight.copy_(weight)
            self.head.bias.copy_(bias)
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
    wide1 = nn.Conv2d(conv1.in_channels, channels, conv1.kernel_size, conv1.stride)
    wide_prelu = nn.PReLU(channels)
    wide2 = nn.Conv2d(channels, conv2.out_channels, conv2.kernel_size, conv2.stride)
    with torch.no_grad():
        wide1.weight.copy_(torch.cat([conv1.weight, conv1.weight.new_zeros(extra, *conv1.weight.shape[1:])]))
        wide1.bias.copy_(torch.cat([conv1.bias, conv1.bias.new_zeros(extra)]))
        wide_prelu.weight.copy_(torch.cat([prelu.weight, prelu.weight.new_zeros(extra)]))
        w2 = conv2.weight
        wide2.weight.copy_(torch.cat([w2, w2.new_zeros(w2.shape[0], extra, *w2.shape[2:])], 1))
        wide2.bias.copy_(conv2.bias)
    return nn.Sequential(wide1, wide_prelu, pool, wide2, *body[4:])


class TorchBackend:
    """Runs the PyTorch modules; channels-last layout, which is 2-3x faster on CPU for the
    small convolutions of MTCNN (measured, see the README)."""

    def __init__(self, nets: dict[str, nn.Module], device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        heads = {"pnet": ("cls", "box"), "rnet": ("cls", "box"), "onet": ("cls", "box", "landmarks")}
        self.nets = {}
        for name, net in nets.items():
            fused = FusedHeads(net, heads[name])
            if name == "pnet":
                fused.body = widen_first_layer(fused.body)
            fused = fused.to(self.device).eval()
            self.nets[name] = fused.to(memory_format=torch.channels_last)

    @torch.inference_mode()
    def pnet(self, x: Tensor) -> tuple[Tensor, Tensor]:
        logits, box = self.nets["pnet"](x.contiguous(memory_format=torch.channels_last))
        return face_probability(logits), box

    @torch.inference_mode()
    def rnet(self, x: Tensor) -> tuple[Tensor, Tensor]:
        logits, box = self.nets["rnet"](x.contiguous(memory_format=torch.channels_last))
        return face_probability(logits), box

    @torch.inference_mode()
    def onet(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        logits, box, landmarks = self.nets["onet"](x.contiguous(memory_format=torch.channels_last))
        return face_probability(logits), box, landmarks
