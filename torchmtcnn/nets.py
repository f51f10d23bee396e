"""P-Net, R-Net and O-Net: the layer layout of the original Caffe models, nothing else.

Each network returns ``(logits [N, 2, ...], box regression [N, 4, ...], landmarks [N, 10, ...])``.
Logits are raw (softmax for face probability, cross-entropy for training). Landmarks are the
five points (left eye, right eye, nose, left and right mouth corner) as x1..x5 then y1..y5,
relative to the input window, like the original O-Net. The original P-Net and R-Net have no
landmark head; ours have one for training, and loading the original weights leaves it as is.

Inputs are RGB images normalised as ``(pixel - 127.5) / 128``, NCHW (channels-last memory
format is faster on CPU for R-Net and O-Net; the detector uses it).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

INPUT_SIZE = {"pnet": 12, "rnet": 24, "onet": 48}
# The networks' input: (pixel - PIXEL_MEAN) * PIXEL_SCALE, pixels in 0..255 (the original's).
PIXEL_MEAN = 127.5
PIXEL_SCALE = 1 / 128


def _conv(cin: int, cout: int, k: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, k), nn.PReLU(cout)]


class PNet(nn.Module):
    """Proposal network: fully convolutional over a pyramid level, one window per 2 px."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *_conv(3, 10, 3),
            nn.MaxPool2d(2, 2, ceil_mode=True),
            *_conv(10, 16, 3),
            *_conv(16, 32, 3),
        )
        self.cls = nn.Conv2d(32, 2, 1)
        self.box = nn.Conv2d(32, 4, 1)
        self.landmarks = nn.Conv2d(32, 10, 1)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x: [N, 3, H, W] -> ([N, 2, h, w], [N, 4, h, w], [N, 10, h, w]), h = ceil((H-2)/2) - 4."""
        f = self.body(x)
        return self.cls(f), self.box(f), self.landmarks(f)


class RNet(nn.Module):
    """Refinement network on 24x24 crops."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *_conv(3, 28, 3),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            *_conv(28, 48, 3),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            *_conv(48, 64, 2),
            nn.Flatten(),
            nn.Linear(64 * 3 * 3, 128),
            nn.PReLU(128),
        )
        self.cls = nn.Linear(128, 2)
        self.box = nn.Linear(128, 4)
        self.landmarks = nn.Linear(128, 10)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x: [N, 3, 24, 24] -> ([N, 2], [N, 4], [N, 10])."""
        f = self.body(x)
        return self.cls(f), self.box(f), self.landmarks(f)


class ONet(nn.Module):
    """Output network on 48x48 crops: final score, box and five landmarks."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            *_conv(3, 32, 3),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            *_conv(32, 64, 3),
            nn.MaxPool2d(3, 2, ceil_mode=True),
            *_conv(64, 64, 3),
            nn.MaxPool2d(2, 2, ceil_mode=True),
            *_conv(64, 128, 2),
            nn.Flatten(),
            nn.Linear(128 * 3 * 3, 256),
            nn.PReLU(256),
        )
        self.cls = nn.Linear(256, 2)
        self.box = nn.Linear(256, 4)
        self.landmarks = nn.Linear(256, 10)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """x: [N, 3, 48, 48] -> ([N, 2], [N, 4], [N, 10])."""
        f = self.body(x)
        return self.cls(f), self.box(f), self.landmarks(f)


NETS: dict[str, type[nn.Module]] = {"pnet": PNet, "rnet": RNet, "onet": ONet}


def build_nets() -> dict[str, nn.Module]:
    """A fresh, randomly initialised P-Net, R-Net and O-Net, keyed by name."""
    return {name: cls() for name, cls in NETS.items()}


def face_probability(logits: Tensor) -> Tensor:
    """Face probability from logits [N, 2, ...] -> [N, ...] (softmax, class 1)."""
    return torch.softmax(logits, dim=1)[:, 1]
