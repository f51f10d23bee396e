"""Train one stage several ways on the same store and compare them on its validation samples.

    python benchmarks/stage_ab.py --recipe torchmtcnn/weights/recipe.toml --stage onet \
        --store RUN/data/onet --out /tmp/ab --variant l2= --variant wing=loss.landmark_loss=wing \
        [--epochs 3]

Each variant is NAME=CHANGES, CHANGES a comma-separated list of TrainConfig fields
(``dim=0.2,blur=0.2``; ``loss.FIELD=...`` for the loss) over the recipe's settings of the
stage. Every variant starts from the same seed. Printed per variant: the validation metrics
of the last epoch, and the recall of positives and the landmark error on the validation
samples shown in dim light (gamma 2, half the light, noise 3), a stand-in for faces in a dark
room that no training photo here shows. Run folders stay in --out (resumable).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from torchmtcnn.data.dataset import SampleDataset, dim_light
from torchmtcnn.train.metrics import validate
from torchmtcnn.train.pipeline import TrainPipeline
from torchmtcnn.train.recipe import load_recipe
from torchmtcnn.train.trainer import Trainer


class DimmedDataset(SampleDataset):
    """Validation samples in dim light, the same for every call (seeded by the index)."""

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        item = super().__getitem__(index)
        image = item["image"].movedim(0, -1).numpy() * 128.0 + 127.5
        rng = np.random.default_rng(index)
        dimmed = dim_light(image, 2.0, 0.5, 3.0, rng)
        item["image"] = torch.from_numpy((dimmed - 127.5) / 128.0).movedim(-1, 0).contiguous()
        return item


def parse_changes(text: str) -> dict:
    changes: dict = {}
    for item in filter(None, text.split(",")):
        key, _, value = item.partition("=")
        parsed: object = value
        for cast in (int, float):
            try:
                parsed = cast(value)
                break
            except ValueError:
                pass
        if value in ("true", "false"):
            parsed = value == "true"
        if key.startswith("loss."):
            changes.setdefault("loss", {})[key[5:]] = parsed
        else:
            changes[key] = parsed
    return changes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipe", type=Path, required=True)
    parser.add_argument("--stage", choices=("pnet", "rnet", "onet"), required=True)
    parser.add_argument("--store", type=Path, required=True, help="the stage's store folder")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--variant", action="append", required=True, help="NAME=CHANGES")
    parser.add_argument("--epochs", type=int, default=None, help="(default: the recipe's)")
    args = parser.parse_args()
    base = TrainPipeline(load_recipe(args.recipe), args.out / "_unused").train_config(args.stage)
    rows = []
    for spec in args.variant:
        name, _, text = spec.partition("=")
        changes = parse_changes(text)
        if args.epochs is not None:
            changes["epochs"] = args.epochs
        config = base.with_overrides(**changes)
        start = time.perf_counter()
        trainer = Trainer(config, args.store, args.out / name, resume=True, progress=False)
        result = trainer.fit()
        seconds = time.perf_counter() - start
        last = result.history[-1]
        dim = DataLoader(DimmedDataset(args.store / "val"), batch_size=512)
        dim_metrics = validate(trainer.model, dim, trainer.device, config.threshold, config.loss)
        rows.append((name, text or "(recipe)", last, dim_metrics, seconds))
        print(f"{name}: {result.epochs_done} epochs, {seconds:.0f} s", flush=True)
    print("\n| variant | changes | val accuracy | val recall | box error | landmark error "
          "| dim: recall | dim: landmark error | seconds |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, text, last, dim, seconds in rows:
        print(f"| {name} | {text} | {last['val_accuracy']:.4f} | {last['val_recall']:.4f} | "
              f"{last['val_box_error']:.4f} | {last['val_landmark_error']:.4f} | "
              f"{dim['val_recall']:.4f} | {dim['val_landmark_error']:.4f} | {seconds:.0f} |")


if __name__ == "__main__":
    main()
