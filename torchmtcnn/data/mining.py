"""Hard-example mining: the cascade, run up to a stage, proposes the R-Net and O-Net crops.

``CascadeProposer`` is what ``build_mined_store`` calls for each photo. It is picklable (a
weight path and settings), so spawned workers each build their own cascade once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..backends import make_backend
from ..cascade import Cascade
from ..cascade_config import DEFAULTS, CascadeConfig
from ..weights import load_nets

# The reference implementation mines with low thresholds, to collect hard negatives.
MINING_THRESHOLDS = (0.3, 0.1, 0.7)


@dataclass
class CascadeProposer:
    """Boxes the cascade would feed the next network, for one photo.

    weights: a weight file holding at least the networks up to ``until``;
    until: "pnet" (proposals for R-Net data) or "rnet" (for O-Net data).
    Calling it on an RGB uint8 [H, W, 3] photo returns float [K, 4] regions
    (left, top, right, bottom): exactly the pixels the cascade would crop.
    """

    weights: str
    until: str = "pnet"
    min_face_size: float = DEFAULTS.min_face_size
    thresholds: tuple[float, float, float] = MINING_THRESHOLDS
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.until not in ("pnet", "rnet"):
            raise ValueError(f"until must be 'pnet' or 'rnet', got {self.until!r}")
        self._cascade: Cascade | None = None

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_cascade"] = None  # each worker builds its own
        return state

    def cascade(self) -> Cascade:
        if self._cascade is None:
            needed = ("pnet",) if self.until == "pnet" else ("pnet", "rnet")
            nets = load_nets(self.weights, required=needed).nets
            config = CascadeConfig(self.min_face_size, self.thresholds)
            self._cascade = Cascade(make_backend("torch", nets, self.device), config)
        return self._cascade

    def __call__(self, image: np.ndarray) -> np.ndarray:
        cascade = self.cascade()
        found = cascade.run([torch.from_numpy(np.ascontiguousarray(image)).to(cascade.device)], until=self.until)
        boxes = found.boxes
        if self.until == "rnet":  # O-Net crops the truncated boxes
            boxes = boxes.trunc()
        # The cascade crops from one pixel up-left of each box (the original's 1-based indices).
        regions = torch.stack([boxes[:, 0] - 1, boxes[:, 1] - 1, boxes[:, 2], boxes[:, 3]], 1)
        return regions.cpu().numpy()
