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

Held-out photos: a photo is held out for evaluation by the hash of its key (the data set's
name and the photo as the annotation file names it; ``torchmtcnn.data.splits``), below
``holdout_fraction`` (default 0.1, seed 0). It is the same in every run, for any order of the
sources and any folder they lie in, and independent of the train / validation split of the
stores. Held-out photos are never used for samples, training or validation. Their keys are
written to ``heldout.txt`` and their annotations to ``heldout.jsonl`` (the package's
JSON-lines format, absolute image paths, keys kept) for ``mtcnn eval``.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from .. import __version__
from ..data.records import FaceRecord
from ..data.readers import parse_source, read_sources
from ..data.readers.jsonl import write_records
from ..data.samples import SampleConfig
from ..data.splits import split_held_out
from ..errors import MTCNNError
from ..weights import read_weights, save_weights
from .config import STAGES, stage_config
from .trainer import Trainer

log = logging.getLogger(__name__)

STEPS = ("data_pnet", "train_pnet", "data_rnet", "train_rnet", "data_onet", "train_onet",
         "combine", "calibrate")
COMBINED_NAME = "mtcnn.safetensors"


@dataclass
class SourceSpec:
    """One annotation source of `train all`.

    Attributes:
        spec: ``"FORMAT:PATH"`` (as ``mtcnn data pnet --sources``); a relative PATH is taken
            against ``PipelineConfig.data_root`` when that is set.
        include: only the photos whose name in the annotation file starts with this
            (``"lfw_5590/"``); empty: all.
        stages: the stages whose sample stores use the source (default all three).
        negatives: False for photos that hold unannotated faces (face crops such as MTFL's):
            they give positives, parts and landmarks, never negatives, are not held out for
            the face evaluation and do not calibrate.
    """

    spec: str
    include: str = ""
    stages: tuple[str, ...] = STAGES
    negatives: bool = True

    def __post_init__(self) -> None:
        self.stages = tuple(self.stages)
        unknown = set(self.stages) - set(STAGES)
        if unknown or not self.stages:
            raise MTCNNError(f"source {self.spec}: stages must be some of {STAGES}, got "
                             f"{list(self.stages)}")

    def portable(self) -> str:
        """The spec without a machine's folders: a relative path as given, an absolute one as
        its last folder and file name (for the weights' metadata)."""
        fmt, path = parse_source(self.spec)
        if Path(path).is_absolute():
            path = Path(*Path(path).parts[-2:]).as_posix()
        return f"{fmt}:{path}" if fmt else path


@dataclass
class PipelineConfig:
    """Settings of `train all`.

    Attributes:
        sources: the annotation sources: SourceSpec ("fmt:path" strings and dicts of its
            fields are taken too, and turned into SourceSpec).
        data_root: folder that relative source paths start from (None: the working folder).
        name / version: the combined weight file's name and version (metadata).
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
        max_photos: use only the first N photos of each source (smoke runs).
        epochs: epochs per stage ({"pnet": 30, ...}); missing stages keep the defaults.
        train: TrainConfig fields for every stage (batch_size, optimizer, lr, threads...).
        stage_train: TrainConfig fields per stage, over ``train``.
        mining_min_face: min_face_size of the cascade that proposes R-Net / O-Net crops.
        max_false_positives: the calibration's budget of false detections per validation
            photo (None: no calibration).
        recipe_text: the recipe file this configuration was read from (train.recipe), kept
            in the weights' metadata.
    """

    sources: list[SourceSpec]
    data_root: str | None = None
    name: str | None = None
    version: str | None = None
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
    recipe_text: str = ""

    def __post_init__(self) -> None:
        given: list[Any] = list(self.sources)
        self.sources = [SourceSpec(s) if isinstance(s, str) else
                        SourceSpec(**s) if isinstance(s, dict) else s for s in given]


def read_split_sources(config: PipelineConfig
                       ) -> list[tuple[SourceSpec, list[FaceRecord], list[FaceRecord]]]:
    """Each source of a configuration with its (training, held-out) records: the photos its
    ``include`` keeps, the first ``max_photos``, split by the held-out rule."""
    split = []
    for source in config.sources:
        records = [r for r in read_sources([source.spec], config.data_root)
                   if r.key.partition(":")[2].startswith(source.include)][: config.max_photos]
        split.append((source, *split_held_out(records, config.holdout_fraction,
                                              config.holdout_seed)))
    if not any(train or held for _, train, held in split):
        raise MTCNNError(f"no photos in the sources {[s.spec for s in config.sources]}")
    return split


def held_out_photos(split: list[tuple[SourceSpec, list[FaceRecord], list[FaceRecord]]]
                    ) -> list[FaceRecord]:
    """The held-out photos that evaluate face detection: those of sources with negatives
    (face crops hold unannotated faces)."""
    return [r for source, _, held in split if source.negatives for r in held]


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
        self._sources: list[tuple[SourceSpec, list[FaceRecord]]] | None = None

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

    def _read(self) -> list[tuple[SourceSpec, list[FaceRecord]]]:
        """Each source with its training records (the held-out lists are written once)."""
        if self._sources is None:
            split = read_split_sources(self.config)
            self._sources = [(source, train) for source, train, _ in split]
            self.run_dir.mkdir(parents=True, exist_ok=True)
            held_keys = [r.key or str(r.image) for _, _, held in split for r in held]
            (self.run_dir / "heldout.txt").write_text("".join(f"{k}\n" for k in held_keys))
            write_records(held_out_photos(split), self.run_dir / "heldout.jsonl")
            log.info("%d photos: %d for training, %d held out (%s)",
                     sum(len(t) + len(h) for _, t, h in split),
                     sum(len(t) for _, t, _ in split), len(held_keys),
                     self.run_dir / "heldout.txt")
        return self._sources

    def records(self, stage: str | None = None, negatives: bool | None = None
                ) -> list[FaceRecord]:
        """The training photos of the sources a stage uses (None: every source), optionally
        only those of sources with (or without) negatives."""
        return [r for source, records in self._read()
                if (stage is None or stage in source.stages)
                and (negatives is None or source.negatives == negatives) for r in records]

    def sample_config(self, size: int, negatives: bool = True) -> SampleConfig:
        c = self.config
        stage = {12: "pnet", 24: "rnet", 48: "onet"}.get(size, "")
        ratio = tuple(float(r) for r in c.ratios.get(stage, SampleConfig.ratio))
        if not negatives:
            ratio = (0.0, *ratio[1:])
        return SampleConfig(size=size, seed=c.seed, workers=c.workers,
                            ratio=(ratio[0], ratio[1], ratio[2], ratio[3]),
                            val_fraction=c.val_fraction,
                            landmark_jitters_per_face=c.landmark_jitters,
                            mined_jitters_per_face=c.mined_jitters.get(stage, 0))

    def train_config(self, stage: str):
        c = self.config
        changes = {"seed": c.seed, **c.train, **c.stage_train.get(stage, {})}
        if stage in c.epochs:
            changes["epochs"] = c.epochs[stage]
        return stage_config(stage, **changes)

    # --- steps ------------------------------------------------------------------------------

    def _data(self, stage: str) -> dict[str, Any]:
        """The stage's store: built per kind of source (with and without negatives, each mixed
        by its own ratio) and merged when there are both."""
        from ..data.mining import CascadeProposer
        from ..data.pipeline import build_mined_store, build_pnet_store
        from ..data.store import merge_stores

        out = self.run_dir / "data" / stage
        size = {"pnet": 12, "rnet": 24, "onet": 48}[stage]
        proposer = None
        if stage != "pnet":
            until, weights = (("pnet", self.run_dir / "pnet" / "pnet.safetensors")
                              if stage == "rnet" else ("rnet", self.run_dir / "pnet_rnet.safetensors"))
            proposer = CascadeProposer(str(weights), until, min_face_size=self.config.mining_min_face)
        groups = [(negatives, records) for negatives in (True, False)
                  if (records := self.records(stage, negatives))]
        sources = [s.portable() for s in self.config.sources if stage in s.stages]
        parts: list[Path] = []
        counts: dict[str, Any] = {}
        photos = unreadable = 0
        for negatives, records in groups:
            part = out if len(groups) == 1 else self.run_dir / "data" / f"{stage}_{len(parts)}"
            config = self.sample_config(size, negatives)
            report = (build_pnet_store(records, part, config, sources=sources,
                                       progress=self.progress) if proposer is None else
                      build_mined_store(records, proposer, size, part, config, sources=sources,
                                        progress=self.progress))
            parts.append(part)
            photos += report.photos
            unreadable += len(report.failed)
            counts[f"part{len(parts)}" if len(groups) > 1 else "all"] = report.counts
        if len(parts) > 1:
            import shutil

            for split in ("train", "val"):
                merge_stores([p / split for p in parts], out / split)
            for part in parts:
                shutil.rmtree(part)
        return {"counts": counts, "photos": photos, "unreadable": unreadable}

    def _train(self, stage: str) -> dict[str, Any]:
        trainer = Trainer(self.train_config(stage), self.run_dir / "data" / stage,
                          self.run_dir / stage, resume=True, progress=self.progress)
        result = trainer.fit()
        if stage == "rnet" and result.weights is not None:  # None only on a torchrun rank > 0
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
            "sources": [asdict(s) | {"spec": s.portable()} for s in self.config.sources],
            "holdout": {"fraction": self.config.holdout_fraction,
                        "seed": self.config.holdout_seed,
                        "rule": "sha256('holdout:{seed}:{key}')[:8] / 2**64 < fraction"},
            "samples": {"landmark_jitters": self.config.landmark_jitters,
                        "mined_jitters": self.config.mined_jitters,
                        "ratios": self.config.ratios},
            "stages": {s: self.train_config(s).to_dict() for s in ("pnet", "rnet", "onet")},
            "seconds": {k: v.get("seconds") for k, v in self.state["done"].items()},
        }
        save_weights(tensors, self.weights_path, {
            "name": self.config.name or f"torchmtcnn-{self.run_dir.name}",
            "version": self.config.version or __version__, "recipe": json.dumps(recipe),
            **({"recipe_file": self.config.recipe_text} if self.config.recipe_text else {})})
        return {"weights": str(self.weights_path)}

    def _calibrate(self) -> dict[str, Any]:
        from ..data.splits import validation_records
        from .calibrate import calibrate_file

        if self.config.max_false_positives is None:
            return {"skipped": True}
        records = validation_records(self.records(negatives=True), self.config.seed,
                                     self.config.val_fraction)
        write_records(records, self.run_dir / "validation.jsonl")
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


def train_all(sources: list[SourceSpec | str], run_dir: str | Path, resume: bool = False,
              **settings: Any) -> Path | None:
    """Run `train all` (PipelineConfig fields as keyword arguments); returns the combined
    weight file."""
    specs = [SourceSpec(s) if isinstance(s, str) else s for s in sources]
    config = replace(PipelineConfig(specs), **settings)
    return TrainPipeline(config, run_dir, resume=resume).run()
