"""Why the last stage misses small faces.

For each face under 40 px high on a run's validation photos (never held out): whether R-Net
left a candidate on it (IoU >= 0.4), whether O-Net's box regression puts some candidate at
IoU >= 0.5 whatever its score, and whether O-Net scores such a candidate above its threshold
(what the detector reports). Run by hand:

    python benchmarks/small_faces.py RUN/validation.jsonl original W.safetensors
"""

from __future__ import annotations

import sys

import cv2
import numpy as np
import torch

from torchmtcnn import MTCNN
from torchmtcnn.boxes import apply_regression, iou_numpy
from torchmtcnn.cascade import Candidates
from torchmtcnn.data.readers import read_sources

SMALL = 40.0  # px, height of the standard box


def small_face_stages(detector: MTCNN, records) -> np.ndarray:
    """bool [faces, 3]: candidate after R-Net, regressed at IoU >= 0.5, reported by O-Net."""
    cascade = detector.cascade
    threshold = cascade.config.thresholds[2]
    rows = []
    for rec in records:
        truth = rec.boxes[~rec.ignore].astype(np.float64)
        small = truth[truth[:, 3] - truth[:, 1] < SMALL]
        if len(small) == 0:
            continue
        image = torch.from_numpy(np.ascontiguousarray(cv2.cvtColor(cv2.imread(str(rec.image)), cv2.COLOR_BGR2RGB)))
        c = cascade.run([image], until="rnet")
        if len(c) == 0:
            rows += [(False, False, False)] * len(small)
            continue
        c = Candidates(c.image_index, c.boxes.trunc(), c.scores)  # as Cascade.output crops them
        prob, reg, _ = cascade._crop_and_run(cascade.backend.onet, [image], c, 48)
        before = iou_numpy(small, c.boxes.numpy())
        after = iou_numpy(small, apply_regression(c.boxes, reg.double(), offset=1.0).numpy())
        passed = prob.numpy() > threshold
        for k in range(len(small)):
            rows.append(((before[k] >= 0.4).any(), (after[k] >= 0.5).any(), ((after[k] >= 0.5) & passed).any()))
    return np.array(rows, bool).reshape(-1, 3)


def main() -> None:
    records = read_sources([f"jsonl:{sys.argv[1]}"])
    print("| weights | small faces | candidate after R-Net | a regressed box at IoU 0.5 | reported by O-Net |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for weights in sys.argv[2:]:
        kept = small_face_stages(MTCNN(weights=weights, device="cpu"), records)
        share = kept.mean(0)
        print(f"| {weights} | {len(kept)} | {share[0]:.3f} | {share[1]:.3f} | {share[2]:.3f} |")


if __name__ == "__main__":
    main()
