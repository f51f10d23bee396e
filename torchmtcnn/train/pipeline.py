"""`train all`: the whole MTCNN recipe in one resumable run folder.

Steps, in order (each recorded in ``state.json`` when finished; a re-run with resume skips
the finished ones, and a training step that was cut off continues from its last epoch):

1. ``data_pnet``: 12 px samples of the training photos -> ``data/pnet/{train,val}``;
2. ``train_pnet``: P-Net -> ``pnet/pnet.safetensors``;
3. ``data_rnet``: P-Net's proposals on the training photos, labelled by IoU (24 px)
   -> ``data/rnet`` (``CascadeProposer(pnet weights, "pnet")``);
4. ``train_rnet``: R-Net -> ``rnet/rnet.safetensors`` (and ``pnet_rnet.safetensors``);
5. ``data_onet``: P-Net + R-Net proposals (48 px) -> ``data/onet``;
6. ``train_onet``: O-Net -> ``onet/onet.safetensors``;
7. ``combine``: ``mtcnn.safetensors``, the three networks with metadata (name, version,
   recipe), which ``MTCNN(weights=...)`` loads;
8. ``calibrate``: R-Net's and O-Net's face logits shifted so that the default thresholds
   find the most validation faces within ``max_false_positives`` per photo
   (``train.calibrate``; the validation photos' annotations go to ``validation.jsonl``).

Held-out photos: a photo is held out for evaluation when the first 64 bits of
sha256(f"holdout:{holdout_seed}:{path}") read as a number in [0, 1) fall below
``holdout_fraction`` (default 0.1, seed 0). The rule depends on the photo path alone, so it
is the same in every run and for any order of sources, and it is independent of the
train / validation split of the sample stores (which hashes f"{seed}:{path}"). Held-out
photos are never used for samples, training or validation. Their list is written to
``heldout.txt`` and their annotations to ``heldout.jsonl`` (the package's JSON-lines
format, absolute image paths) for ``mtcnn eval``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import struct
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from ..data.records import LANDMARK_NAMES, FaceRecord
from ..data.samples import SampleConfig
from ..errors import MTCNNError
from ..weights import read_weights, save_weights
from .config import stage_config
from .trainer import Trainer

log = logging.getLogger(__name__)

STEPS = ("data_pnet", "train_pnet", "data_rnet", "train_rnet", "data_onet", "train_onet",
         "combine", "calibrate")
COMBINED_NAME = "mtcnn.safetensors"


def is_held_out(photo: str | Path, fraction: float = 0.1, seed: int = 0) -> bool:
    """Whether a photo is kept out of training for evaluation (see the module docstring)."""
    digest = hashlib.sha256(f"holdout:{seed}:{Path(photo).as_posix()}".encode()).digest()
    return struct.unpack(">Q", digest[:8])[0] / 2.0**64 < fraction


def split_held_out(records: list[FaceRecord], fraction: float, seed: int
                   ) -> tuple[list[FaceRecord], list[FaceRecord]]:
    """(training records, held-out records), each in the input order."""
    held = [is_held_out(r.image, fraction, seed) for r in records]
    return ([r for r, h in zip(records, held) if not h], [r for r, h in zip(records, held) if h])


def write_jsonl(records: list[FaceRecord], path: Path) -> None:
    """Records in the package's JSON-lines annotation format (absolute image paths)."""
    with open(path, "w") as f:
        for r in records:
            faces = []
            for i, box in enumerate(r.boxes):
                face: dict[str, Any] = {"box": [round(float(v), 3) for v in box]}
                if r.landmarks is not None and np.isfinite(r.landmarks[i]).any():
                    # points that are NaN (Caltech has no mouth corners) are left out
                    face["keypoints"] = {n: [round(float(p[0]), 3), round(float(p[1]), 3)]
                                         for n, p in zip(LANDMARK_NAMES, r.landmarks[i])
                                         if np.isfinite(p).all()}
                if r.ignore[i]:
                    face["ignore"] = True
                faces.append(face)
            f.write(json.dumps({"image": str(Path(r.image).resolve()), "faces": faces}) + "\n")


@dataclass
class PipelineConfig:
    """Settings of `train all`.

    Attributes:
        sources: annotation specs "fmt:path" (as `mtcnn data pnet --sources`).
        holdout_fraction / holdout_seed: the held-out rule (module docstring).
        seed: seed of the samples, the train / val split and the training.
        val_fraction: share of the training photos whose samples validate.
        workers: sample-generation processes (None: the CPU count).
        landmark_jitters: jittered landmark crops tried per face with points.
        mined_jitters: crops jittered around each face added to the proposals of the R-Net
            and O-Net stores ({"rnet": 0, "onet": 6}; SampleConfig.mined_jitters_per_face).
        ratios: negatives : positives : parts : landmarks kept per stage ({"onet": (1, 1, 1,
            2)}); stages not named keep SampleConfig's 3 : 1 : 1 : 2. A strong R-Net proposes
            few non-faces, so the O-Net mix can run out of negatives first.
        max_photos: use only the first N photos of the joined sources (smoke runs).
        epochs: epochs per stage ({"pnet": 30, ...}); missing stages keep the defaults.
        train: TrainConfig fields for every stage (batch_size, optimizer, lr, threads...).
        stage_train: TrainConfig fields per stage, over ``train``.
        mining_min_face: min_face_size of the cascade that proposes R-Net / O-Net crops.
        max_false_positives: the calibration's budget of false detections per validation
            photo (None: no calibration).
    """

    sources: list[str]
    holdout_fraction: float = 0.1
    holdout_seed: int = 0
    seed: int = 0
    val_fraction: float = 0.1
    workers: int | None = None
    landmark_jitters: int = 20
    mined_jitters: dict[str, int] = field(default_factory=dict)
    ratios: dict[str, tuple[float, float, float, float]] = field(default_factory=dict)
    max_photos: int | None = None
    epochs: dict[str, int] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)
    stage_train: dict[str, dict[str, Any]] = field(default_factory=dict)
    mining_min_face: float = 20.0
    max_false_positives: float | None = 0.05


class TrainPipeline:
    """Run (or resume) the steps of `train all` in ``run_dir``."""

    def __init__(self, config: PipelineConfig, run_dir: str | Path, resume: bool = False,
                 progress: bool = True) -> None:
        self.config = config
        self.run_dir = Path(run_dir)
        self.resume = resume
        self.progress = progress
        self.state_path = self.run_dir / "state.json"
        if self.state_path.is_file() and not resume:
            raise MTCNNError(f"{self.run_dir} already holds a run (state.json): pass --resume "
                             "to continue it, or choose another --run-dir")
        self.state: dict[str, Any] = (json.loads(self.state_path.read_text())
                                      if self.state_path.is_file() else {"done": {}})
        self._records: tuple[list[FaceRecord], list[FaceRecord]] | None = None

    # --- state ------------------------------------------------------------------------------

    def _save_state(self) -> None:
        self.state["config"] = asdict(self.config)
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.state, indent=1))
        tmp.replace(self.state_path)

    def done(self, step: str) -> bool:
        return step in self.state["done"]

    @property
    def weights_path(self) -> Path:
        return self.run_dir / COMBINED_NAME

    # --- inputs -----------------------------------------------------------------------------

    def records(self) -> list[FaceRecord]:
        """The training photos' records (held-out ones removed; the lists written once)."""
        if self._records is None:
            from ..cli.data import load_sources

            records = load_sources(self.config.sources)
            if self.config.max_photos is not None:
                records = records[: self.config.max_photos]
            if not records:
                raise MTCNNError(f"no photos in the sources {self.config.sources}")
            train, held = split_held_out(records, self.config.holdout_fraction,
                                         self.config.holdout_seed)
            (self.run_dir / "heldout.txt").write_text("".join(f"{r.image}\n" for r in held))
            write_jsonl(held, self.run_dir / "heldout.jsonl")
            log.info("%d photos: %d for training, %d held out (%s)", len(records), len(train),
                     len(held), self.run_dir / "heldout.txt")
            self._records = (train, held)
        return self._records[0]

    def sample_config(self, size: int) -> SampleConfig:
        c = self.config
        stage = {12: "pnet", 24: "rnet", 48: "onet"}.get(size, "")
        ratio = {"ratio": tuple(float(r) for r in c.ratios[stage])} if stage in c.ratios else {}
        return SampleConfig(size=size, seed=c.seed, workers=c.workers,
                            val_fraction=c.val_fraction,
                            landmark_jitters_per_face=c.landmark_jitters,
                            mined_jitters_per_face=c.mined_jitters.get(stage, 0), **ratio)

    def train_config(self, stage: str):
        c = self.config
        changes = {"seed": c.seed, **c.train, **c.stage_train.get(stage, {})}
        if stage in c.epochs:
            changes["epochs"] = c.epochs[stage]
        return stage_config(stage, **changes)

    # --- steps ------------------------------------------------------------------------------

    def _data(self, stage: str) -> dict[str, Any]:
        from ..data.mining import CascadeProposer
        from ..data.pipeline import build_mined_store, build_pnet_store

        out = self.run_dir / "data" / stage
        if stage == "pnet":
            report = build_pnet_store(self.records(), out, self.sample_config(12),
                                      sources=self.config.sources, progress=self.progress)
        else:
            until, weights, size = (("pnet", self.run_dir / "pnet" / "pnet.safetensors", 24)
                                    if stage == "rnet" else
                                    ("rnet", self.run_dir / "pnet_rnet.safetensors", 48))
            proposer = CascadeProposer(str(weights), until, min_face_size=self.config.mining_min_face)
            report = build_mined_store(self.records(), proposer, size, out,
                                       self.sample_config(size), sources=self.config.sources,
                                       progress=self.progress)
        return {"counts": report.counts, "photos": report.photos,
                "unreadable": len(report.failed)}

    def _train(self, stage: str) -> dict[str, Any]:
        trainer = Trainer(self.train_config(stage), self.run_dir / "data" / stage,
                          self.run_dir / stage, resume=True, progress=self.progress)
        result = trainer.fit()
        if stage == "rnet":
            tensors = {**read_weights(self.run_dir / "pnet" / "pnet.safetensors"),
                       **read_weights(result.weights)}
            save_weights(tensors, self.run_dir / "pnet_rnet.safetensors",
                         {"name": "torchmtcnn-pnet-rnet"})
        last = result.history[-1] if result.history else {}
        return {"epochs": result.epochs_done,
                **{k: v for k, v in last.items() if k.startswith("val_")}}

    def _combine(self) -> dict[str, Any]:
        tensors = {}
        for stage in ("pnet", "rnet", "onet"):
            tensors.update(read_weights(self.run_dir / stage / f"{stage}.safetensors"))
        recipe = {
            "sources": self.config.sources,
            "holdout": {"fraction": self.config.holdout_fraction,
                        "seed": self.config.holdout_seed,
                        "rule": "sha256('holdout:{seed}:{path}')[:8] / 2**64 < fraction"},
            "samples": {"landmark_jitters": self.config.landmark_jitters,
                        "mined_jitters": self.config.mined_jitters,
                        "ratios": self.config.ratios},
            "stages": {s: self.train_config(s).to_dict() for s in ("pnet", "rnet", "onet")},
            "seconds": {k: v.get("seconds") for k, v in self.state["done"].items()},
        }
        save_weights(tensors, self.weights_path, {
            "name": f"torchmtcnn-{self.run_dir.name}", "version": __version__,
            "recipe": json.dumps(recipe)})
        return {"weights": str(self.weights_path)}

    def _calibrate(self) -> dict[str, Any]:
        from .calibrate import calibrate_file, validation_records

        if self.config.max_false_positives is None:
            return {"skipped": True}
        records = validation_records(self.records(), self.config.seed, self.config.val_fraction)
        write_jsonl(records, self.run_dir / "validation.jsonl")
        if not records:
            log.warning("no validation photos (--val-fraction %s): weights left uncalibrated",
                        self.config.val_fraction)
            return {"skipped": True}
        result = calibrate_file(self.weights_path, records, self.weights_path,
                                max_false_positives=self.config.max_false_positives,
                                progress=self.progress)
        return asdict(result)

    def run(self, until: str | None = None) -> Path | None:
        """Run the steps not yet done (up to and including ``until``); returns the combined
        weight file once the last step is done."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.state.setdefault("started", time.strftime("%Y-%m-%d %H:%M:%S"))
        self._save_state()
        for step in STEPS:
            if self.done(step):
                log.info("step %s: done before, skipped", step)
            else:
                log.info("step %s: starting", step)
                start = time.perf_counter()
                kind, _, stage = step.partition("_")
                info = (self._data(stage) if kind == "data" else
                        self._train(stage) if kind == "train" else
                        self._combine() if kind == "combine" else self._calibrate())
                info["seconds"] = round(time.perf_counter() - start, 1)
                self.state["done"][step] = info
                self._save_state()
                log.info("step %s: done in %.1f s", step, info["seconds"])
            if step == until:
                break
        return self.weights_path if self.done(STEPS[-1]) else None


def train_all(sources: list[str], run_dir: str | Path, resume: bool = False,
              **settings: Any) -> Path | None:
    """Run `train all` (PipelineConfig fields as keyword arguments); returns the combined
    weight file."""
    config = replace(PipelineConfig(list(sources)), **settings)
    return TrainPipeline(config, run_dir, resume=resume).run()
