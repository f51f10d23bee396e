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


class TorchBackend:
    """Runs the PyTorch modules; channels-last layout, which is 2-3x faster on CPU for the
    small convolutions of MTCNN (measured, see the README)."""

    def __init__(self, nets: dict[str, nn.Module], device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.nets = {}
        for name, net in nets.items():
            net = net.to(self.device).eval()
            self.nets[name] = net.to(memory_format=torch.channels_last)

    @torch.inference_mode()
    def pnet(self, x: Tensor) -> tuple[Tensor, Tensor]:
        logits, box, _ = self.nets["pnet"](x.contiguous(memory_format=torch.channels_last))
        return face_probability(logits), box

    @torch.inference_mode()
    def rnet(self, x: Tensor) -> tuple[Tensor, Tensor]:
        logits, box, _ = self.nets["rnet"](x.contiguous(memory_format=torch.channels_last))
        return face_probability(logits), box

    @torch.inference_mode()
    def onet(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        logits, box, landmarks = self.nets["onet"](x.contiguous(memory_format=torch.channels_last))
        return face_probability(logits), box, landmarks
