"""Generate the samples of many photos in parallel, mix them, split them and store them.

Photo i of the record list draws from ``numpy.random.default_rng([config.seed, i])``, and the
results are gathered in photo order, so the output is the same for any number of workers.
Photos that cannot be read are logged with their path, counted and skipped.

Entry points:

* ``pnet_samples_of(records, config)`` / ``mine_samples(records, propose, size, config)``:
  all the samples in memory (small sets, tests);
* ``build_pnet_store(records, out, config)`` / ``build_mined_store(records, propose, size, out,
  config)``: stream the samples to ``out/_raw``, then write ``out/train`` and ``out/val``
  (split by photo, kinds mixed by config.ratio) and delete ``out/_raw``.

``propose`` is any callable from an RGB uint8 photo [H, W, 3] to boxes [K, 4] (or [K, 5] with
scores), e.g. the P-Net stage of the cascade for R-Net data, P-Net + R-Net for O-Net data.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..errors import ImageError
from ..images import read_image
from .landmark_samples import landmark_samples
from .records import FaceRecord
from .samples import (
    LABEL_NAMES, RATIO_ORDER, SampleConfig, Samples, as_boxes, face_jitter_boxes,
    label_candidates, pnet_samples,
)
from .splits import is_validation
from .store import SampleStore, StoreWriter

log = logging.getLogger(__name__)

Proposer = Callable[[np.ndarray], np.ndarray]

# State of the worker processes (inherited through fork, or set in this process).
_STATE: dict = {}


@dataclass
class BuildReport:
    """What a run produced: photos used and unreadable, counts per split and label, seconds."""

    photos: int = 0
    failed: list[str] = field(default_factory=list)
    raw_counts: dict[str, int] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds: float = 0.0


def photo_samples(index: int, image: np.ndarray, record: FaceRecord, config: SampleConfig,
                  propose: Proposer | None = None) -> Samples:
    """All the samples of photo ``index``: P-Net crops when propose is None, else the labelled
    proposals; plus its landmark samples. Deterministic for (config.seed, index)."""
    rng = np.random.default_rng([config.seed, index])
    crops_rng, landmark_rng = rng.spawn(2)
    if propose is None:
        main = pnet_samples(image, record, crops_rng, config, photo=index)
    else:
        boxes = np.concatenate([as_boxes(propose(image)), face_jitter_boxes(
            record, crops_rng, config, config.mined_jitters_per_face)])
        main = label_candidates(record, boxes, config.size, image, config, photo=index)
    marks = landmark_samples(image, record, landmark_rng, config.size, config, photo=index)
    return Samples.concat([main, marks], config.size)


def _job(index: int) -> tuple[int, Samples | None]:
    records, config, propose = _STATE["records"], _STATE["config"], _STATE["propose"]
    record = records[index]
    try:
        image = read_image(record.image)
    except ImageError as exc:
        log.debug("%s", exc)
        return index, None
    return index, photo_samples(index, image, record, config, propose)


def _init(records: list[FaceRecord], config: SampleConfig, propose: Proposer | None,
          in_pool: bool = False) -> None:
    _STATE.update(records=records, config=config, propose=propose)
    if in_pool:
        import sys

        cv2 = sys.modules.get("cv2")
        if cv2 is not None:
            cv2.setNumThreads(1)  # one process per core already
        torch = sys.modules.get("torch")
        if torch is not None and propose is not None:
            torch.set_num_threads(1)


def iter_photo_samples(
    records: list[FaceRecord], config: SampleConfig, propose: Proposer | None = None,
    report: BuildReport | None = None, progress: bool = True,
) -> Iterator[Samples]:
    """Yield the Samples of each readable photo, in photo order, computed by config.workers
    processes. Workers are spawned, never forked (forking a process whose torch or OpenCV
    thread pools have run can deadlock), so ``propose`` must be picklable: a module-level
    function or an object such as ``CascadeProposer``. Unreadable photos are logged and
    appended to report.failed."""
    workers = config.workers or os.cpu_count() or 1
    workers = max(1, min(workers, len(records)))
    bar = tqdm(total=len(records), desc=f"samples {config.size}px", unit="photo",
               disable=not progress)
    if workers == 1:
        _init(records, config, propose)
        results: Iterator = map(_job, range(len(records)))
        pool = None
    else:
        ctx = mp.get_context("spawn")
        pool = ctx.Pool(workers, initializer=_init, initargs=(records, config, propose, True))
        results = pool.imap(_job, range(len(records)), chunksize=8)
    try:
        for index, samples in results:
            bar.update(1)
            if report is not None:
                report.photos += 1
            if samples is None:
                log.warning("cannot read image %s (%s), skipped", records[index].image,
                            records[index].source or f"record {index}")
                if report is not None:
                    report.failed.append(str(records[index].image))
                continue
            yield samples
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()
        _STATE.clear()


def pnet_samples_of(records: list[FaceRecord], config: SampleConfig,
                    report: BuildReport | None = None) -> Samples:
    """P-Net (and landmark) samples of all photos, in memory, not mixed."""
    return Samples.concat(list(iter_photo_samples(records, config, None, report, False)),
                          config.size)


def mine_samples(records: list[FaceRecord], propose: Proposer, size: int,
                 config: SampleConfig | None = None,
                 report: BuildReport | None = None) -> Samples:
    """Hard-example samples for R-Net (size 24) or O-Net (size 48), in memory, not mixed:
    each photo's proposals labelled by label_candidates, plus its landmark samples."""
    config = replace(config or SampleConfig(), size=size)
    return Samples.concat(list(iter_photo_samples(records, config, propose, report, False)),
                          size)


def mix_counts(available: dict[int, int], ratio: tuple[float, ...]) -> dict[int, int]:
    """How many samples of each label to keep: the largest multiple of ``ratio`` (in
    RATIO_ORDER) that the available counts allow. Kinds with a 0 ratio are dropped; kinds with
    none available are left out of the mix (with a warning) rather than emptying it."""
    weights = dict(zip(RATIO_ORDER, ratio))
    present = [lab for lab in RATIO_ORDER if weights[lab] > 0 and available.get(lab, 0) > 0]
    for lab in RATIO_ORDER:
        if present and weights[lab] > 0 and available.get(lab, 0) == 0:
            log.warning("no %s samples available: the mix goes without them", LABEL_NAMES[lab])
    if not present:
        return {lab: 0 for lab in RATIO_ORDER}
    unit = min(available[lab] / weights[lab] for lab in present)
    return {lab: (min(available[lab], int(unit * weights[lab] + 1e-9)) if lab in present else 0)
            for lab in RATIO_ORDER}


def mix_indices(labels: np.ndarray, ratio: tuple[float, ...], seed: int) -> np.ndarray:
    """Sorted indices of the samples kept by mix_counts, chosen at random for the seed."""
    rng = np.random.default_rng([seed, 0x6D6978])
    keep = mix_counts({lab: int((labels == lab).sum()) for lab in RATIO_ORDER}, ratio)
    chosen = []
    for lab in RATIO_ORDER:
        idx = np.flatnonzero(labels == lab)
        if keep[lab] < len(idx):
            idx = rng.choice(idx, keep[lab], replace=False)
        chosen.append(idx)
    return np.sort(np.concatenate(chosen))


def _finish(raw: Path, out: Path, config: SampleConfig, meta: dict, val_photo: np.ndarray,
            report: BuildReport, chunk: int = 65536) -> None:
    """Split the raw store by photo (val_photo: bool [photos]), mix each split, write out/train
    and out/val."""
    store = SampleStore(raw)
    photos = store.meta["photos"]
    labels = np.asarray(store.labels)
    is_val = val_photo[np.asarray(store.photos)] if len(store) else np.zeros(0, bool)
    for split, mask in (("train", ~is_val), ("val", is_val)):
        sub = np.flatnonzero(mask)
        kept = sub[mix_indices(labels[sub], config.ratio, config.seed)]
        with StoreWriter(out / split, config.size, photos, {**meta, "split": split}) as writer:
            for start in range(0, len(kept), chunk):
                writer.append(store.read(kept[start : start + chunk]))
        report.counts[split] = SampleStore(out / split).counts


def _build(records: list[FaceRecord], out: str | Path, config: SampleConfig,
           propose: Proposer | None, stage: str, sources: list[str] | None,
           progress: bool = True) -> BuildReport:
    out = Path(out)
    raw = out / "_raw"
    report = BuildReport()
    start = time.perf_counter()
    photos = [str(r.image) for r in records]
    cfg = {k: v for k, v in asdict(config).items() if k != "workers"}
    meta = {"stage": stage, "seed": config.seed, "config": cfg, "sources": sources or []}
    with StoreWriter(raw, config.size, photos, {**meta, "split": "raw"}) as writer:
        for samples in iter_photo_samples(records, config, propose, report, progress):
            writer.append(samples)
    report.raw_counts = SampleStore(raw).counts
    val_photo = np.array([is_validation(r, config.seed, config.val_fraction) for r in records],
                         bool)
    _finish(raw, out, config, {**meta, "failed_photos": report.failed}, val_photo, report)
    shutil.rmtree(raw)
    report.seconds = time.perf_counter() - start
    log.info("%s samples in %s: %s (%d photos, %d unreadable, %.1f s)", stage, out,
             report.counts, report.photos, len(report.failed), report.seconds)
    return report


def build_pnet_store(records: list[FaceRecord], out: str | Path,
                     config: SampleConfig | None = None,
                     sources: list[str] | None = None, progress: bool = True) -> BuildReport:
    """P-Net stores out/train and out/val (12 px unless config.size says otherwise)."""
    return _build(records, out, config or SampleConfig(), None, "pnet", sources, progress)


def build_mined_store(records: list[FaceRecord], propose: Proposer, size: int,
                      out: str | Path, config: SampleConfig | None = None,
                      sources: list[str] | None = None, progress: bool = True) -> BuildReport:
    """R-Net (size 24) or O-Net (size 48) stores out/train and out/val from the boxes that
    ``propose`` gives for each photo, labelled by IoU, plus landmark samples, mixed by
    config.ratio.

    With config.workers > 1 the proposer runs in spawned processes (one torch thread each),
    so it must be picklable (CascadeProposer is); a proposer on a GPU should run with
    workers=1, or every process loads its own copy of the networks onto the GPU.
    """
    config = replace(config or SampleConfig(), size=size)
    stage = {24: "rnet", 48: "onet"}.get(size, f"mined{size}")
    return _build(records, out, config, propose, stage, sources, progress)
