"""Fit the rule that turns face points into a face box (Caltech WebFaces, MTFL).

Caltech 10,000 Web Faces annotates eyes, nose and mouth centre but no box. The rule of
``torchmtcnn.data.readers.boxrule`` (square box, centre on the eyes-to-mouth axis, side from
the eye distance and the eyes-to-mouth distance) has three constants T, A, B. They are fitted
here on the Sun 2013 faces, which have both an annotated box and five points: the mouth
centre is taken as the midpoint of the two mouth corners, as Caltech gives it.

- fit: Sun 2013 ``trainImageList.txt`` (10,000 faces), maximising mean IoU (Nelder-Mead,
  from a least-squares-like start), deterministic.
- held out: Sun 2013 ``testImageList.txt`` (3,466 faces), never seen by the fit.

No image is needed (boxes and points come from the lists). Usage::

    python benchmarks/fit_caltech_box.py [--data ../shared/data]

Prints the constants, the held-out IoU, and the IoU of the constants now in the library.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from torchmtcnn.data.readers import read_annotations
from torchmtcnn.data.readers.boxrule import BOX_RULE_A, BOX_RULE_B, BOX_RULE_T, box_from_landmarks


def load(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Boxes [N, 4] and landmarks [N, 5, 2] of a Sun 2013 list (images not opened)."""
    result = read_annotations(path, fmt="sun2013", check_images=False)
    if result.problems:
        print(result.summary())
    boxes = np.concatenate([r.boxes for r in result.records]).astype(np.float64)
    points = np.concatenate([r.landmarks for r in result.records]).astype(np.float64)
    return boxes, points


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise IoU of two [N, 4] box arrays."""
    lt = np.maximum(a[:, :2], b[:, :2])
    rb = np.minimum(a[:, 2:], b[:, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[:, 0] * wh[:, 1]
    area = lambda x: (x[:, 2] - x[:, 0]) * (x[:, 3] - x[:, 1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def evaluate(boxes: np.ndarray, points: np.ndarray, t: float, a: float, b: float) -> np.ndarray:
    return iou(box_from_landmarks(points, t=t, a=a, b=b), boxes)


def main() -> None:
    default = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=default, help="the shared data folder")
    args = parser.parse_args()
    train_boxes, train_points = load(args.data / "sun2013" / "trainImageList.txt")
    test_boxes, test_points = load(args.data / "sun2013" / "testImageList.txt")
    print(f"fit on {len(train_boxes)} Sun 2013 train faces, held out {len(test_boxes)} test faces")

    def loss(theta: np.ndarray) -> float:
        return -float(evaluate(train_boxes, train_points, *theta).mean())

    fit = minimize(
        loss, x0=np.array([0.5, 1.0, 1.0]), method="Nelder-Mead",
        options={"maxiter": 4000, "xatol": 1e-6, "fatol": 1e-9},
    )
    t, a, b = (float(x) for x in fit.x)
    held = evaluate(test_boxes, test_points, t, a, b)
    print(f"fitted constants: T = {t:.4f}  A = {a:.4f}  B = {b:.4f}")
    print(f"train mean IoU    {-fit.fun:.4f}")
    print(
        f"held-out IoU      mean {held.mean():.4f}  median {np.median(held):.4f}  "
        f"5th percentile {np.percentile(held, 5):.4f}  share >= 0.65 {np.mean(held >= 0.65):.3f}"
    )
    lib = evaluate(test_boxes, test_points, BOX_RULE_T, BOX_RULE_A, BOX_RULE_B)
    print(
        f"library constants T = {BOX_RULE_T}  A = {BOX_RULE_A}  B = {BOX_RULE_B}: "
        f"held-out mean IoU {lib.mean():.4f}"
    )


if __name__ == "__main__":
    main()
