"""Which stage loses a face: the share of held-out faces that still have a candidate after
P-Net, R-Net and O-Net, overall, by face height and by turn.

    python benchmarks/stage_recall.py --weights original=original --weights ours=W.safetensors

A face counts as kept after a stage when one of the stage's candidates overlaps its standard
box at IoU >= --iou (0.4: the candidates before O-Net are squares, the standard box is
taller). The held-out photos are those of the recipe (compare_weights.py); --dim darkens
them as compare_weights does.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import torch

from compare_weights import HEIGHTS, RECIPE, SHARED, TURNS, binned, dimmed_copies, face_table
from torchmtcnn import MTCNN
from torchmtcnn.boxes import iou_numpy
from torchmtcnn.train.pipeline import held_out_photos, read_split_sources
from torchmtcnn.train.recipe import load_recipe

STAGES = ("pnet", "rnet", "onet")


def kept_after_stages(detector: MTCNN, records, iou: float) -> dict[str, np.ndarray]:
    """{stage: bool [faces]} over the non-ignored faces of the records, in order."""
    kept: dict[str, list[np.ndarray]] = {s: [] for s in STAGES}
    for rec in records:
        image = cv2.cvtColor(cv2.imread(str(rec.image)), cv2.COLOR_BGR2RGB)
        tensor = torch.from_numpy(np.ascontiguousarray(image)).to(detector.cascade.device)
        truth = rec.boxes[~rec.ignore].astype(np.float64)
        for stage in STAGES:
            boxes = detector.cascade.run([tensor], until=stage).boxes.cpu().numpy()
            if len(boxes) == 0 or len(truth) == 0:
                kept[stage].append(np.zeros(len(truth), bool))
                continue
            kept[stage].append(iou_numpy(truth, boxes).max(1) >= iou)
    return {s: np.concatenate(v) for s, v in kept.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", type=Path, default=RECIPE)
    parser.add_argument("--data", type=Path, default=SHARED)
    parser.add_argument("--weights", action="append", required=True, help="NAME=PATH (or NAME=original)")
    parser.add_argument("--iou", type=float, default=0.4)
    parser.add_argument("--dim", action="store_true", help="the held-out photos in dim light")
    parser.add_argument("--out", type=Path, default=Path("/tmp/compare_weights"), help="for --dim copies")
    parser.add_argument("--limit", type=int, default=None, help="first N photos only")
    args = parser.parse_args()
    torch.set_num_threads(2)
    records = held_out_photos(read_split_sources(load_recipe(args.recipe, args.data)))[: args.limit]
    if args.dim:
        args.out.mkdir(parents=True, exist_ok=True)
        records = dimmed_copies(records, args.out)
    heights, turns, _ = face_table(records)
    print(f"{len(records)} photos, {len(heights)} faces{' in dim light' if args.dim else ''}; "
          f"kept: a candidate at IoU >= {args.iou}\n")
    print("| weights | stage | all | " + " | ".join(f"{lo:g}-{hi:g} px" for lo, hi in zip(HEIGHTS[:-1], HEIGHTS[1:]))
          + " | " + " | ".join(f"turn {lo:g}-{hi:g}" for lo, hi in zip(TURNS[:-1], TURNS[1:])) + " |")
    print("| --- | --- | ---: |" + " ---: |" * (len(HEIGHTS) + len(TURNS) - 2))
    for spec in args.weights:
        name, _, weights = spec.partition("=")
        kept = kept_after_stages(MTCNN(weights=weights, device="cpu"), records, args.iou)
        for stage in STAGES:
            print(f"| {name} | after {stage} | {kept[stage].mean():.3f} | "
                  + " | ".join(binned(heights, HEIGHTS, kept[stage])) + " | "
                  + " | ".join(binned(turns, TURNS, kept[stage])) + " |", flush=True)


if __name__ == "__main__":
    main()
