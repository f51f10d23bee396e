"""One Trainer for the three stages.

    trainer = Trainer(stage_config("pnet", epochs=3), "/tmp/pnet_store", "/tmp/run/pnet")
    result = trainer.fit()          # result.weights: /tmp/run/pnet/pnet.safetensors

A run folder holds ``config.json``, ``checkpoints/epoch_NNN.pt`` (model, optimiser,
scheduler, AMP scaler, epoch, RNG states; one per epoch), ``log.csv`` (one row per epoch,
see :mod:`.metrics`), ``curves.png`` and the final weights ``<stage>.safetensors``
(:func:`torchmtcnn.weights.save_weights`, the network under the stage's name).

Reproducibility: every epoch re-seeds torch, numpy and the DataLoader's generator from
(seed, epoch), so epoch e draws the same order and augmentations whether the run went
through without a stop or was resumed (``resume=True``) from the checkpoint of epoch e - 1.
Checkpoints are loaded with ``torch.load(weights_only=True)``: they hold only tensors and
plain Python values.

Device: a GPU when there is one (mixed precision there), else the CPU. Under ``torchrun``
(``WORLD_SIZE`` > 1) each process joins the group from the environment (NCCL on GPUs, Gloo
on CPUs), wraps the network in DistributedDataParallel and reads its share of the data
through a DistributedSampler; rank 0 validates, logs and writes the files.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler
from tqdm import tqdm

from ..backends import pick_device
from ..data.dataset import Augment, SampleDataset
from ..data.store import SampleStore, StoreError
from ..nets import NETS
from ..weights import save_weights
from .config import TrainConfig
from .losses import mtcnn_loss
from .metrics import append_row, plot_curves, truncate_log, validate

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What fit() produced: the final weights (None until the last epoch), the epochs done
    and the per-epoch log rows."""

    weights: Path | None
    epochs_done: int
    history: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of epoch ``epoch`` (0-based) of a run seeded with ``seed``."""
    return (seed * 1_000_003 + epoch * 7919 + 12345) % 2**31


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_states() -> dict:
    """Torch, CUDA, numpy and Python RNG states as tensors and plain values
    (loadable with weights_only=True)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    py = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {"kind": kind, "keys": torch.from_numpy(np.asarray(keys, np.int64)), "pos": pos,
                  "has_gauss": has_gauss, "cached": cached},
        "python": [py[0], list(py[1]), py[2]],
    }


def set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["torch"])
    if states.get("cuda") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    n = states["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"],
                         n["has_gauss"], n["cached"]))
    py = states["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))


def _lr_factor(config: TrainConfig):
    """The schedule as a factor of the base lr per epoch (a plain function, so the
    scheduler's state dict holds no pickled callable)."""

    def factor(epoch: int) -> float:
        if config.schedule == "step":
            return config.gamma ** sum(epoch >= m for m in config.milestones)
        if config.schedule == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(epoch, config.epochs) / config.epochs))
        return 1.0

    return factor


def init_distributed() -> tuple[int, int]:
    """Join the torchrun process group when WORLD_SIZE > 1; returns (rank, world size)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        dist.init_process_group(backend=backend)  # MASTER_ADDR, RANK... from torchrun
    return dist.get_rank(), dist.get_world_size()


def _open_split(path: Path, split: str) -> SampleStore:
    try:
        return SampleStore(path / split)
    except StoreError:
        if split == "train" and (path / "meta.json").is_file():
            return SampleStore(path)  # a single store folder given
        raise


class Trainer:
    """Train one stage's network on a sample store (a folder with train/ and val/).

    Args:
        config: the stage's TrainConfig.
        store: the stage folder (``train`` and ``val`` store folders inside).
        run_dir: the run folder (created).
        resume: continue from the last checkpoint in run_dir (start afresh if none).
        progress: show a tqdm bar.
    """

    def __init__(self, config: TrainConfig, store: str | Path, run_dir: str | Path,
                 resume: bool = False, progress: bool = True) -> None:
        self.config = config
        self.store = Path(store)
        self.run_dir = Path(run_dir)
        self.resume = resume
        self.progress = progress
        self.rank, self.world = init_distributed()
        self.device = pick_device(config.device)
        self.amp = self.device.type == "cuda"
        if config.threads:
            torch.set_num_threads(config.threads)
        train_store = _open_split(self.store, "train")
        if train_store.size != config.size:
            raise StoreError(f"{train_store.path}: {train_store.size} px samples, "
                             f"{config.stage} needs {config.size} px")
        if len(train_store) == 0:
            raise StoreError(f"{train_store.path}: the training store is empty")
        augment = Augment(lowres_prob=config.lowres, dim_prob=config.dim,
                          blur_prob=config.blur) if config.augment else None
        self.train_set = SampleDataset(train_store, augment, seed=config.seed)
        val_path = self.store / "val"
        self.val_set = SampleDataset(SampleStore(val_path)) if (val_path / "meta.json").is_file() \
            else None
        if self.val_set is not None and len(self.val_set) == 0:
            self.val_set = None
        seed_everything(config.seed)
        # channels-last convolutions: 1.4x (O-Net) to 1.6x (R-Net) faster steps on this CPU
        self.model: nn.Module = NETS[config.stage]().to(self.device)
        self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.net: nn.Module = self.model
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        params = self.model.parameters()
        self.optimizer: torch.optim.Optimizer
        if config.optimizer == "sgd":
            self.optimizer = torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,
                                             weight_decay=config.weight_decay)
        else:
            self.optimizer = torch.optim.Adam(params, lr=config.lr,
                                              weight_decay=config.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, _lr_factor(config))
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)
        self.generator = torch.Generator()
        self.start_epoch = 0
        if resume:
            self._load_last()
        elif self.rank == 0:  # a fresh run: checkpoints of an earlier run here would mislead
            for stale in self.checkpoint_dir.glob("epoch_*.pt"):
                stale.unlink()

    # --- files ------------------------------------------------------------------------------

    @property
    def checkpoint_dir(self) -> Path:
        return self.run_dir / "checkpoints"

    @property
    def weights_path(self) -> Path:
        return self.run_dir / f"{self.config.stage}.safetensors"

    def checkpoint_path(self, epoch: int) -> Path:
        """Checkpoint written after ``epoch`` epochs (1-based)."""
        return self.checkpoint_dir / f"epoch_{epoch:03d}.pt"

    def _save_checkpoint(self, epochs_done: int) -> None:
        state = {
            "stage": self.config.stage, "epoch": epochs_done, "config": self.config.to_dict(),
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "scaler": self.scaler.state_dict(),
            "rng": rng_states(),
        }
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        path = self.checkpoint_path(epochs_done)
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)

    def _load_last(self) -> None:
        found = sorted(self.checkpoint_dir.glob("epoch_*.pt"))
        if not found:
            log.info("%s: no checkpoint to resume from, starting afresh", self.run_dir)
            return
        path = found[-1]
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state["stage"] != self.config.stage:
            raise ValueError(f"{path} is a {state['stage']} checkpoint, not {self.config.stage}")
        old = {k: v for k, v in state["config"].items() if k not in ("epochs", "max_steps")}
        new = {k: v for k, v in self.config.to_dict().items() if k not in ("epochs", "max_steps")}
        changed = sorted(k for k in new if json.dumps(new[k]) != json.dumps(old.get(k)))
        if changed:
            log.warning("resuming %s with changed settings: %s", path, ", ".join(changed))
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        # The next epoch's lr from this run's schedule: a resume that asks for more epochs
        # (a longer cosine) must not go on at the old schedule's last lr (0 for cosine).
        factor = _lr_factor(self.config)(int(state["epoch"]))
        for group, base in zip(self.optimizer.param_groups, self.scheduler.base_lrs):
            group["lr"] = base * factor
        self.scaler.load_state_dict(state["scaler"])
        set_rng_states(state["rng"])
        self.start_epoch = int(state["epoch"])
        log.info("resumed %s from %s (epoch %d done)", self.config.stage, path, self.start_epoch)

    # --- data -------------------------------------------------------------------------------

    def _loader(self, dataset: SampleDataset, train: bool, epoch: int) -> DataLoader:
        cfg = self.config
        sampler: torch.utils.data.Sampler | None = None
        if train:
            self.generator.manual_seed(epoch_seed(cfg.seed, epoch))
            if self.world > 1:
                sampler = DistributedSampler(dataset, self.world, self.rank, shuffle=True,
                                             seed=cfg.seed)
                sampler.set_epoch(epoch)
            else:
                sampler = RandomSampler(dataset, generator=self.generator)
        workers = cfg.workers
        return DataLoader(
            dataset, batch_size=cfg.batch_size, sampler=sampler, shuffle=False,
            num_workers=workers, generator=self.generator if train else None,
            multiprocessing_context="spawn" if workers > 0 else None,
            pin_memory=self.device.type == "cuda", drop_last=False,
        )

    # --- training ---------------------------------------------------------------------------

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        cfg = self.config
        seed_everything(epoch_seed(cfg.seed, epoch))
        loader = self._loader(self.train_set, True, epoch)
        total = len(loader) if cfg.max_steps is None else min(len(loader), cfg.max_steps)
        bar = tqdm(total=total, desc=f"{cfg.stage} epoch {epoch + 1}/{cfg.epochs}",
                   unit="step", disable=not self.progress or self.rank != 0, leave=False)
        self.net.train()
        sums = dict.fromkeys(("loss", "cls", "box", "landmark"), 0.0)
        steps = 0
        for batch in loader:
            if steps >= total:
                break
            x = batch["image"].to(self.device, non_blocking=True,
                                  memory_format=torch.channels_last)
            labels = batch["label"].to(self.device, non_blocking=True)
            boxes = batch["box"].to(self.device, non_blocking=True)
            points = batch["landmarks"].to(self.device, non_blocking=True)
            with self._autocast():
                outputs = tuple(o.float() for o in self.net(x))
            parts = mtcnn_loss(outputs, labels, boxes, points, cfg.loss)
            self.optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(parts.total).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
            for key, value in (("loss", parts.total), ("cls", parts.cls), ("box", parts.box),
                               ("landmark", parts.landmark)):
                sums[key] += float(value.detach())
            steps += 1
            bar.update(1)
            if steps % 20 == 0:
                bar.set_postfix(loss=f"{sums['loss'] / steps:.4f}")
        bar.close()
        n = max(steps, 1)
        return {f"train_{k}" if k != "loss" else "train_loss": v / n for k, v in sums.items()}

    def _autocast(self):
        """float16 autocast on a GPU; bfloat16 on a CPU when config.bf16 (AMX / AVX-512 bf16
        make O-Net's steps 1.4x faster still); else nothing."""
        if self.amp:
            return torch.autocast(self.device.type, dtype=torch.float16)
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.config.bf16)

    def fit(self, stop_after: int | None = None) -> TrainResult:
        """Train up to config.epochs (or stop after ``stop_after`` more epochs, checkpoint
        written: a later ``resume=True`` continues). Returns the TrainResult."""
        cfg = self.config
        start = time.perf_counter()
        main = self.rank == 0
        if main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            (self.run_dir / "config.json").write_text(json.dumps(
                {**cfg.to_dict(), "store": str(self.store)}, indent=1))
            truncate_log(self.run_dir / "log.csv", self.start_epoch)
        history: list[dict[str, float]] = []
        end = cfg.epochs if stop_after is None else min(cfg.epochs, self.start_epoch + stop_after)
        for epoch in range(self.start_epoch, end):
            t0 = time.perf_counter()
            lr = self.optimizer.param_groups[0]["lr"]
            row: dict[str, float] = {"epoch": epoch + 1, "lr": lr, **self._train_epoch(epoch)}
            self.scheduler.step()
            if main:
                if self.val_set is not None:
                    val_loader = self._loader(self.val_set, False, epoch)
                    row.update(validate(self.model, val_loader, self.device, cfg.threshold,
                                        cfg.loss))
                row["seconds"] = time.perf_counter() - t0
                self._save_checkpoint(epoch + 1)
                append_row(self.run_dir / "log.csv", row)
                if row["seconds"] > 60 or epoch + 1 == end:  # long epochs: keep it current
                    plot_curves(self.run_dir / "log.csv", self.run_dir / "curves.png",
                                cfg.stage)
                log.info("%s epoch %d/%d: %s", cfg.stage, epoch + 1, cfg.epochs,
                         ", ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch"))
            history.append(row)
            if self.world > 1:
                dist.barrier()
        self.start_epoch = max(self.start_epoch, end)
        weights = None
        if self.start_epoch >= cfg.epochs:
            weights = self.weights_path
            if main:
                save_weights({cfg.stage: self.model}, weights,
                             {"name": f"torchmtcnn-{cfg.stage}", "stage": cfg.stage,
                              "epochs": cfg.epochs, "store": str(self.store)})
                log.info("%s weights: %s", cfg.stage, weights)
        return TrainResult(weights, self.start_epoch, history, time.perf_counter() - start)
