"""Compare weight files on held-out photos: face AP, recall and false positives per image at
the default thresholds, and landmark error on held-out Sun 2013 faces and MTFL's AFLW crops.

    python benchmarks/compare_weights.py --heldout RUN/heldout.jsonl \
        --weights ours=RUN/mtcnn.safetensors --weights original=original --out /tmp/compare

Predictions are cached in --out (pred-NAME-SET.jsonl), so a second run only re-evaluates.
Prints one Markdown table for the README.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from torchmtcnn import MTCNN
from torchmtcnn.data.readers import read_annotations
from torchmtcnn.evaluate import evaluate_faces, evaluate_landmarks, read_predictions, run_detector
from torchmtcnn.train.calibrate import found_and_false

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def predictions(name: str, weights: str, set_name: str, records, out: Path):
    cached = out / f"pred-{name}-{set_name}.jsonl"
    if not cached.is_file():
        detector = MTCNN(weights=weights, device="cpu", batch_size=16)
        start = time.perf_counter()
        run_detector(detector, [str(r.image) for r in records], out=cached)
        print(f"{name} on {set_name}: {len(records)} images in {time.perf_counter() - start:.0f} s")
    return read_predictions(cached)


def by_image(preds):
    return {str(Path(p.image).resolve()): p for p in preds}


def recall_and_false_positives(records, preds) -> tuple[float, float]:
    """At the detector's own thresholds: recall at IoU 0.5, false positives per image."""
    lookup = by_image(preds)
    boxes, scores = [], []
    for rec in records:
        pred = lookup.get(str(Path(rec.image).resolve()))
        boxes.append(np.zeros((0, 4)) if pred is None else np.asarray(pred.boxes).reshape(-1, 4))
        scores.append(np.ones(len(boxes[-1])))
    ((found, false_pos),) = found_and_false(records, boxes, scores, [0.0])
    faces = sum(int((~rec.ignore).sum()) for rec in records)
    return found / max(faces, 1), false_pos / max(len(records), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--heldout", required=True, type=Path, help="heldout.jsonl of a `mtcnn train all` run")
    parser.add_argument("--weights", action="append", required=True, help="NAME=PATH (or NAME=original)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/compare_weights"))
    parser.add_argument("--aflw-limit", type=int, default=None, help="first N AFLW crops only")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 is safest on a shared machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    heldout = read_annotations(args.heldout, "jsonl").records
    sun = [r for r in heldout if "sun2013" in str(r.image) and r.landmarks is not None
           and np.isfinite(r.landmarks).all()]
    aflw = read_annotations(SHARED / "mtfl" / "new_testing.txt", "mtfl").records[: args.aflw_limit]
    print(f"held-out photos: {len(heldout)} ({sum(len(r) for r in heldout)} faces), of which Sun 2013 with "
          f"5 points: {len(sun)}; AFLW crops: {len(aflw)}")
    rows = []
    for spec in args.weights:
        name, _, weights = spec.partition("=")
        preds = predictions(name, weights, "heldout", heldout, args.out)
        faces = evaluate_faces(heldout, preds)
        recall, fppi = recall_and_false_positives(heldout, preds)
        sun_lm = evaluate_landmarks(sun, preds)
        aflw_lm = evaluate_landmarks(aflw, predictions(name, weights, "aflw", aflw, args.out))
        rows.append((name, faces.ap, recall, fppi, sun_lm, aflw_lm))
    print("\n| weights | face AP (IoU 0.5) | recall | false positives / image | Sun 2013 held-out: NME % (missed) | AFLW: NME % (missed) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, ap, recall, fppi, sun_lm, aflw_lm in rows:
        print(f"| {name} | {ap:.4f} | {recall:.4f} | {fppi:.3f} | {100 * sun_lm.mean_nme:.2f} "
              f"({sun_lm.num_missed}/{sun_lm.num_faces}) | {100 * aflw_lm.mean_nme:.2f} ({aflw_lm.num_missed}/{aflw_lm.num_faces}) |")


if __name__ == "__main__":
    main()
