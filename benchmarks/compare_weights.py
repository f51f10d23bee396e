"""Compare weight files on photos they were not trained on, in one run.

    python benchmarks/compare_weights.py --recipe torchmtcnn/weights/recipe.toml \
        --weights original=original --weights 0.6.0=OLD.safetensors \
        --weights shipped=torchmtcnn/weights/torchmtcnn-caltech-sun2013.safetensors

- **Held-out photos**: the photos the recipe holds out (``torchmtcnn.data.splits``; the list
  ships as torchmtcnn/weights/heldout.txt), every face with the standard box of
  ``boxrule`` (forehead to chin, as WIDER FACE and the original MTCNN draw it). Face AP at
  IoU 0.5, recall and false positives per photo at each file's default thresholds.
- **Box IoU with the original**: median IoU of each file's box with the original weights' box
  on the held-out faces that both found.
- **Landmark NME** (mean point distance over the eye distance) on the Sun 2013 test list's
  ``net_7876`` photos (the standard test split, never trained or tuned on) and on MTFL's AFLW
  crops, over the faces that **every** compared file found (and each file's own misses).
- **Recall in dim light**: the held-out photos darkened (gamma 2, half the light, sensor noise
  of 3 grey levels), as faces in a dark room look; no training photo here is dim.
- **Recall by face size and by turn** on the held-out faces: the standard box's height, and
  the nose's offset from the eyes' midpoint along the eye line, in eye distances.

Predictions are cached in --out (pred-NAME-SET.jsonl): a second run only re-evaluates.
Prints Markdown tables for the README and the model card.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from torchmtcnn import MTCNN
from torchmtcnn.data.readers import read_annotations
from torchmtcnn.evaluate import evaluate_faces, read_predictions, run_detector
from torchmtcnn.evaluate.faces import pair_predictions
from torchmtcnn.evaluate.landmarks import match_faces, nme
from torchmtcnn.train.calibrate import found_and_false
from torchmtcnn.train.pipeline import held_out_photos, read_split_sources
from torchmtcnn.train.recipe import load_recipe

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
RECIPE = Path(__file__).resolve().parents[1] / "torchmtcnn" / "weights" / "recipe.toml"
HEIGHTS = (0, 40, 80, 160, np.inf)  # px of the standard box's height
TURNS = (0, 0.15, 0.3, np.inf)  # the nose's offset from the eyes' midpoint, in eye distances


def predictions(name: str, weights: str, set_name: str, records, out: Path):
    cached = out / f"pred-{name}-{set_name}.jsonl"
    if not cached.is_file():
        detector = MTCNN(weights=weights, device="cpu", batch_size=16)
        start = time.perf_counter()
        run_detector(detector, [str(r.image) for r in records], out=cached)
        print(f"{name} on {set_name}: {len(records)} images in {time.perf_counter() - start:.0f} s")
    return read_predictions(cached)


def face_matches(records, preds) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Over every non-ignored face of the records, in order: found (bool [F]), the matched
    box ([F, 4], NaN when missed) and points ([F, 5, 2], NaN when missed or absent)."""
    paired, _, _ = pair_predictions(records, preds)
    found, boxes, points = [], [], []
    for rec, pred in zip(records, paired):
        keep = ~rec.ignore
        pb = np.zeros((0, 4)) if pred is None else np.asarray(pred.boxes, np.float64).reshape(-1, 4)
        pl = None if pred is None or pred.landmarks is None else np.asarray(pred.landmarks, np.float64)
        match = match_faces(rec.boxes.astype(np.float64), pb)[keep]
        found.append(match >= 0)
        box = np.full((len(match), 4), np.nan)
        box[match >= 0] = pb[match[match >= 0]]
        pts = np.full((len(match), 5, 2), np.nan)
        if pl is not None:
            pts[match >= 0] = pl[match[match >= 0]]
        boxes.append(box)
        points.append(pts)
    return np.concatenate(found), np.concatenate(boxes), np.concatenate(points)


def row_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    wh = np.clip(np.minimum(a[:, 2:], b[:, 2:]) - np.maximum(a[:, :2], b[:, :2]), 0, None)
    inter = wh[:, 0] * wh[:, 1]
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def face_table(records) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per non-ignored face: standard box height, turn (the nose's offset from the eyes'
    midpoint along the eye line, in eye distances; NaN without points) and true points."""
    heights, turns, points = [], [], []
    for rec in records:
        keep = ~rec.ignore
        b = rec.boxes[keep].astype(np.float64)
        heights.append(b[:, 3] - b[:, 1])
        lm = (rec.landmarks[keep].astype(np.float64) if rec.landmarks is not None
              else np.full((keep.sum(), 5, 2), np.nan))
        points.append(lm)
        # the nose's offset from the eyes' midpoint along the eye line, in eye distances
        eye_line = lm[:, 1] - lm[:, 0]
        de = np.linalg.norm(eye_line, axis=1)
        offset = lm[:, 2] - (lm[:, 0] + lm[:, 1]) / 2
        turns.append(np.abs((offset * eye_line).sum(1)) / de**2)
    return np.concatenate(heights), np.concatenate(turns), np.concatenate(points)


def binned(values: np.ndarray, edges, found: np.ndarray) -> list[str]:
    cells = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        inside = (values >= lo) & (values < hi)
        cells.append(f"{found[inside].mean():.3f} ({inside.sum()})" if inside.any() else "-")
    return cells


def landmark_nme(records, found_by: dict[str, np.ndarray], points: dict[str, np.ndarray]):
    """{name: (NME on faces all found, faces all found, own misses, faces)}."""
    _, _, truth = face_table(records)
    usable = np.isfinite(truth).all((1, 2))
    common = usable & np.logical_and.reduce(list(found_by.values()))
    return {name: (float(np.nanmean(nme(points[name][common], truth[common]))), int(common.sum()),
                   int((usable & ~found_by[name]).sum()), int(usable.sum())) for name in found_by}


def dimmed_copies(records, out: Path):
    """The records with their photos darkened (written once to out/dim)."""
    import dataclasses

    import cv2

    from torchmtcnn.data.dataset import dim_light

    folder = out / "dim"
    folder.mkdir(exist_ok=True)
    copies = []
    for i, rec in enumerate(records):
        path = folder / f"{i:05d}.png"
        if not path.is_file():
            image = cv2.imread(str(rec.image)).astype(np.float32)
            cv2.imwrite(str(path), dim_light(image, 2.0, 0.5, 3.0, np.random.default_rng(i)).round().astype(np.uint8))
        copies.append(dataclasses.replace(rec, image=path))
    return copies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", type=Path, default=RECIPE, help="recipe whose held-out photos to use")
    parser.add_argument("--data", type=Path, default=SHARED, help="the shared data folder")
    parser.add_argument("--weights", action="append", required=True, help="NAME=PATH (or NAME=original)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/compare_weights"))
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    heldout = held_out_photos(read_split_sources(load_recipe(args.recipe, args.data)))
    sun_test = [r for r in read_annotations(args.data / "sun2013" / "testImageList.txt").records
                if r.key.startswith("sun2013:net_7876/")]
    aflw = read_annotations(args.data / "mtfl" / "new_testing.txt").records
    print(f"held-out photos: {len(heldout)} ({sum(int((~r.ignore).sum()) for r in heldout)} faces); "
          f"Sun 2013 test photos: {len(sun_test)}; AFLW crops: {len(aflw)}")
    names = [spec.partition("=")[0] for spec in args.weights]
    found, boxes, points, rows = {}, {}, {}, {}
    sets = {"heldout": heldout, "dim": dimmed_copies(heldout, args.out), "sun2013test": sun_test,
            "aflw": aflw}
    for spec in args.weights:
        name, _, weights = spec.partition("=")
        preds = {k: predictions(name, weights, k, recs, args.out) for k, recs in sets.items()}
        for k, recs in sets.items():
            found[name, k], boxes[name, k], points[name, k] = face_matches(recs, preds[k])
        ap = evaluate_faces(heldout, preds["heldout"]).ap
        pb = {str(Path(p.image).resolve()): np.asarray(p.boxes).reshape(-1, 4) for p in preds["heldout"]}
        b = [pb.get(str(Path(r.image).resolve()), np.zeros((0, 4))) for r in heldout]
        ((n_found, n_false),) = found_and_false(heldout, b, [np.ones(len(x)) for x in b], [0.0])
        rows[name] = (ap, found[name, "heldout"].mean(), n_false / len(heldout),
                      found[name, "dim"].mean())
    reference = "original" if "original" in names else names[0]
    sun_nme = landmark_nme(sun_test, {n: found[n, "sun2013test"] for n in names},
                           {n: points[n, "sun2013test"] for n in names})
    aflw_nme = landmark_nme(aflw, {n: found[n, "aflw"] for n in names},
                            {n: points[n, "aflw"] for n in names})
    print(f"\n| weights | face AP (IoU 0.5) | recall | false positives / photo | box IoU with the {reference} (median) "
          "| Sun 2013 test NME % (missed) | AFLW NME % (missed) | recall, dim photos |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in names:
        ap, recall, fppi, dim = rows[name]
        both = found[name, "heldout"] & found[reference, "heldout"]
        iou = row_iou(boxes[name, "heldout"][both], boxes[reference, "heldout"][both])
        box = "-" if name == reference else f"{np.median(iou):.3f} ({both.sum()})"
        s, a = sun_nme[name], aflw_nme[name]
        print(f"| {name} | {ap:.4f} | {recall:.4f} | {fppi:.3f} | {box} | {100 * s[0]:.2f} ({s[2]}/{s[3]}) "
              f"| {100 * a[0]:.2f} ({a[2]}/{a[3]}) | {dim:.4f} |")
    print(f"\nNME over the faces every file found: {sun_nme[names[0]][1]} Sun 2013 test faces, "
          f"{aflw_nme[names[0]][1]} AFLW crops.")
    heights, turns, _ = face_table(heldout)
    print("\nRecall on the held-out faces by the height of their standard box (faces in brackets):\n")
    print("| weights | " + " | ".join(f"{lo:g}-{hi:g} px" for lo, hi in zip(HEIGHTS[:-1], HEIGHTS[1:])) + " |")
    print("| --- |" + " ---: |" * (len(HEIGHTS) - 1))
    for name in names:
        print(f"| {name} | " + " | ".join(binned(heights, HEIGHTS, found[name, "heldout"])) + " |")
    print("\nRecall by turn (the nose's offset from the eyes' midpoint, in eye distances):\n")
    print("| weights | " + " | ".join(f"{lo:g}-{hi:g}" for lo, hi in zip(TURNS[:-1], TURNS[1:])) + " |")
    print("| --- |" + " ---: |" * (len(TURNS) - 1))
    for name in names:
        print(f"| {name} | " + " | ".join(binned(turns, TURNS, found[name, "heldout"])) + " |")


if __name__ == "__main__":
    main()
