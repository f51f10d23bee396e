"""O-Net on a store's validation crops: does it score small faces as well as large ones?

    python benchmarks/onet_small_crops.py RUN/data/onet W1.safetensors [W2.safetensors ...]

For each weight file (any file with an O-Net: a stage's ``onet.safetensors`` or a whole
cascade), the recall of the positive crops cut from small faces (crop side under 40 photo
pixels: enlarged to 48 for O-Net) and from larger ones, at the thresholds that let 1 % and
3 % of the negative crops pass. Comparing at a share of negatives, not at a fixed
threshold, puts weights with differently scaled scores (before calibration) on one footing.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from torchmtcnn.data.dataset import SampleDataset
from torchmtcnn.weights import load_nets

SMALL = 40.0  # crop side in photo pixels
NEGATIVE_SHARES = (0.01, 0.03)


def face_probabilities(weights: str, split: Path) -> np.ndarray:
    """float [N]: O-Net's face probability of each crop of ``split``."""
    net = load_nets(weights, required=("onet",)).nets["onet"].eval()
    out = []
    with torch.inference_mode():
        for batch in DataLoader(SampleDataset(split), batch_size=512):
            out.append(torch.softmax(net(batch["image"])[0], 1)[:, 1])
    return torch.cat(out).numpy()


def main() -> None:
    split = Path(sys.argv[1]) / "val"
    crops, labels = np.load(split / "crops.npy"), np.load(split / "labels.npy")
    side = np.maximum(crops[:, 2] - crops[:, 0], crops[:, 3] - crops[:, 1])
    small, large = (labels == 1) & (side < SMALL), (labels == 1) & (side >= SMALL)
    print(f"{split}: {small.sum()} small and {large.sum()} larger positives, {(labels == 0).sum()} negatives\n")
    print("| weights | negatives passing | threshold | recall, small faces | recall, larger faces |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for weights in sys.argv[2:]:
        prob = face_probabilities(weights, split)
        for share in NEGATIVE_SHARES:
            cut = float(np.quantile(prob[labels == 0], 1 - share))
            print(f"| {weights} | {share:.0%} | {cut:.3f} | {np.mean(prob[small] > cut):.3f} | "
                  f"{np.mean(prob[large] > cut):.3f} |")


if __name__ == "__main__":
    main()
