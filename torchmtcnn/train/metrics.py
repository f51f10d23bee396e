"""Validation metrics of a stage, the CSV log of a run and the PNG of its curves.

Validation (:func:`validate`, on the held-out split of the store, no augmentation):

* ``val_loss`` and its parts: the training loss without OHEM (every sample counts);
* ``val_accuracy``: negatives and positives classified right when "face" means a face
  probability >= the stage threshold (0.6 P-Net, 0.7 R-Net and O-Net);
* ``val_recall``: positives with a probability >= the threshold;
* ``val_box_error``: mean absolute error of the 4 box offsets (positives and parts), in
  units of the crop side;
* ``val_landmark_error``: mean Euclidean distance between predicted and true points
  (landmark samples), in units of the crop side.

A metric without any sample of its kind is NaN in the log (not 0, which would look perfect).
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import replace
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader

from ..data.samples import LABEL_LANDMARK, LABEL_NEGATIVE, LABEL_PART, LABEL_POSITIVE
from ..nets import face_probability
from .losses import LossWeights, flatten_outputs, landmark_points, mtcnn_loss

log = logging.getLogger(__name__)

COLUMNS = (
    "epoch", "lr", "train_loss", "train_cls", "train_box", "train_landmark",
    "val_loss", "val_cls", "val_box", "val_landmark",
    "val_accuracy", "val_recall", "val_box_error", "val_landmark_error", "seconds",
)


def _ratio(num: float, den: float) -> float:
    return num / den if den else math.nan


@torch.no_grad()
def validate(model: nn.Module, loader: DataLoader, device: torch.device, threshold: float,
             weights: LossWeights) -> dict[str, float]:
    """Metrics of ``model`` over every batch of ``loader`` (see the module docstring)."""
    was_training = model.training
    model.eval()
    no_ohem = replace(weights, ohem_ratio=1.0)
    sums = dict.fromkeys(("cls", "box", "landmark", "correct", "face_true", "box_abs",
                          "point_dist"), 0.0)
    counts = dict.fromkeys(("cls", "box", "landmark", "positives"), 0)
    for batch in loader:
        x = batch["image"].to(device)
        labels = batch["label"].to(device)
        boxes = batch["box"].to(device)
        points = batch["landmarks"].to(device)
        logits, box, marks = flatten_outputs(*model(x))
        parts = mtcnn_loss((logits, box, marks), labels, boxes, points, no_ohem)
        for key, n in (("cls", parts.n_cls), ("box", parts.n_box), ("landmark", parts.n_landmark)):
            sums[key] += float(getattr(parts, key)) * n
            counts[key] += n
        logits, box, marks = logits.float(), box.float(), marks.float()
        face = face_probability(logits) >= threshold
        cls_mask = (labels == LABEL_NEGATIVE) | (labels == LABEL_POSITIVE)
        sums["correct"] += float((face[cls_mask] == (labels[cls_mask] == LABEL_POSITIVE)).sum())
        pos = labels == LABEL_POSITIVE
        sums["face_true"] += float(face[pos].sum())
        counts["positives"] += int(pos.sum())
        box_mask = pos | (labels == LABEL_PART)
        sums["box_abs"] += float((box[box_mask] - boxes[box_mask]).abs().mean(1).sum())
        lm_mask = labels == LABEL_LANDMARK
        dist = (landmark_points(marks[lm_mask]) - points[lm_mask]).norm(dim=2).mean(1)
        sums["point_dist"] += float(dist.sum())
    model.train(was_training)
    cls_loss = _ratio(sums["cls"], counts["cls"])
    box_loss = _ratio(sums["box"], counts["box"])
    lm = _ratio(sums["landmark"], counts["landmark"])
    total = float(sum(w * v for w, v in ((weights.cls, cls_loss), (weights.box, box_loss),
                                         (weights.landmark, lm)) if not math.isnan(v)))
    return {
        "val_loss": total, "val_cls": cls_loss, "val_box": box_loss, "val_landmark": lm,
        "val_accuracy": _ratio(sums["correct"], counts["cls"]),
        "val_recall": _ratio(sums["face_true"], counts["positives"]),
        "val_box_error": _ratio(sums["box_abs"], counts["box"]),
        "val_landmark_error": _ratio(sums["point_dist"], counts["landmark"]),
    }


def append_row(path: Path, row: dict[str, float]) -> None:
    """Append one epoch to the CSV log (header written with the first row)."""
    new = not path.is_file()
    with open(path, "a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerow({k: row.get(k, math.nan) for k in COLUMNS})


def read_log(path: Path) -> list[dict[str, float]]:
    """The rows of a CSV log as floats."""
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def truncate_log(path: Path, epochs: int) -> None:
    """Keep the rows of the first ``epochs`` epochs (a resumed run rewrites the later ones)."""
    rows = [r for r in read_log(path) if r["epoch"] <= epochs]
    path.unlink(missing_ok=True)
    for row in rows:
        append_row(path, row)


def plot_curves(csv_path: Path, png_path: Path, title: str = "") -> Path | None:
    """Loss, accuracy / recall and error curves of a CSV log as a PNG; None (and a warning)
    when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log.warning("matplotlib is not installed: no %s (pip install matplotlib)", png_path)
        return None
    rows = read_log(csv_path)
    if not rows:
        return None
    epochs = [r["epoch"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for key in ("train_loss", "val_loss", "train_cls", "val_cls"):
        axes[0].plot(epochs, [r[key] for r in rows], marker="o", label=key)
    axes[0].set_title("loss")
    for key in ("val_accuracy", "val_recall"):
        axes[1].plot(epochs, [r[key] for r in rows], marker="o", label=key)
    axes[1].set_title("classification (validation)")
    for key in ("val_box_error", "val_landmark_error"):
        axes[2].plot(epochs, [r[key] for r in rows], marker="o", label=key)
    axes[2].set_title("regression error (crop sides)")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png_path, dpi=90)
    plt.close(fig)
    return png_path
