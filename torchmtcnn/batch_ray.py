"""The large-collection job on Ray Data (the [ray] extra): one machine or a cluster.

``detect_with_ray(paths, out)`` reads the photos with ``ray.data.read_binary_files``, decodes
and detects in a pool of actors (each loads the model once, on CPU or on a GPU), and streams
the rows back to this process, which writes them as ``torchmtcnn.batch`` does (``writers``:
JSON lines or a folder of Parquet part files; ``resume``: the same skipping of done photos), so
the outputs of the plain loop and of Ray are the same files. Without ``address`` it starts a
local Ray (and stops it at the end); with one (``"auto"``, ``"ray://head:10001"``) it joins that
cluster, whose workers must see the photos at the same paths (a shared file system) and have
torchmtcnn installed.
"""

from __future__ import annotations

import inspect
import logging
import os
import time
from collections.abc import Iterable
from typing import IO, Any

import numpy as np

from .batch import BatchSummary, progress_bar, reason_of
from .errors import MissingExtraError
from .faces import image_line
from .images import MAX_PIXELS
from .resume import left_to_do
from .writers import infer_format, open_writer, parquet_schema

log = logging.getLogger(__name__)

READ_CPUS = 0.25  # Ray CPUs asked by each file-reading task


def _ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as exc:
        raise MissingExtraError("Detection on Ray", "ray", exc.name or "ray") from exc
    return ray


class DetectorActor:
    """A Ray Data actor: builds an MTCNN once, then turns batches of {bytes, path} into rows
    with the detector's one loop (``iter_detect``).

    A photo that cannot be decoded gives a row whose ``error`` is the reason (the driver
    prefixes the path as given by the caller)."""

    def __init__(self, detector_options: dict[str, Any], torch_threads: int = 1,
                 max_pixels: int = MAX_PIXELS) -> None:
        import torch

        from .detector import MTCNN

        torch.set_num_threads(max(1, torch_threads))
        self.detector = MTCNN(**detector_options)
        self.max_pixels = max_pixels
        self.schema = parquet_schema()

    def __call__(self, batch: dict[str, np.ndarray]) -> Any:
        import pyarrow as pa

        data = [bytes(d) for d in batch["bytes"]]
        rows = []
        for path, result in zip(batch["path"], self.detector.iter_detect(data, max(1, len(data)),
                                                                         max_pixels=self.max_pixels)):
            row = result.to_json(str(path))
            if row["error"] is not None:
                row["error"] = reason_of("image bytes", row["error"])
            rows.append(row)
        return pa.Table.from_pylist(rows, schema=self.schema)


def detect_with_ray(
    paths: Iterable[str | os.PathLike],
    out: str | os.PathLike | IO[str] | None,
    *,
    address: str | None = None,
    fmt: str | None = None,
    num_actors: int = 2,
    num_cpus_per_actor: float = 1.0,
    num_gpus_per_actor: float = 0.0,
    batch_size: int = 16,
    resume: bool = False,
    progress: bool = True,
    max_pixels: int = MAX_PIXELS,
    ray_init: dict[str, Any] | None = None,
    **detector_options: Any,
) -> BatchSummary:
    """Detect faces in many photos on Ray Data; a row per photo to ``out``.

    paths: image files (``images.list_images`` expands folders and globs).
    out: JSON-lines file, Parquet folder ("jsonl"/"parquet" by ``fmt`` or the name), a text
        stream, or None (count only).
    address: None for a local Ray started here, else the cluster to join ("auto", "ray://...").
        A Ray already initialised in this process is used as it is.
    num_actors, num_cpus_per_actor, num_gpus_per_actor: the detector pool; each actor loads
        the model once (on its GPU when it has one and ``device`` is not given).
    batch_size: photos per actor call. resume: skip photos already in ``out``.
    ray_init: more arguments for ``ray.init`` (num_cpus, object_store_memory...).
    detector_options: MTCNN arguments (weights, device, min_face_size, thresholds, factor).
    -> BatchSummary, as ``batch.detect_many``.
    """
    ray = _ray()
    fmt = infer_format(out if isinstance(out, (str, os.PathLike)) else None, fmt)
    files = [str(p) for p in paths]
    todo = left_to_do(files, out, fmt, resume)
    summary = BatchSummary(total=len(files), skipped=len(files) - len(todo))
    given = {os.path.abspath(p): p for p in todo}  # Ray reports the paths it read, made absolute
    missing = [p for p in todo if not os.path.isfile(p)]
    readable = [os.path.abspath(p) for p in todo if os.path.isfile(p)]
    if detector_options.get("device") is None and num_gpus_per_actor > 0:
        detector_options["device"] = "cuda"
    if detector_options.get("weights") is not None:
        detector_options["weights"] = str(detector_options["weights"])

    started_here = False
    if not ray.is_initialized():
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True}
        if address is None:
            kwargs["num_cpus"] = os.cpu_count() or 2
        kwargs.update(ray_init or {})
        ray.init(address=address, **kwargs)
        started_here = True
    writer = open_writer(out, fmt, append=resume) if out is not None else None
    start = time.perf_counter()
    bar = progress_bar(len(todo), progress)
    try:
        rows = [image_line(p, error=f"{p}: no such file") for p in missing]
        if readable:
            context = ray.data.DataContext.get_current()
            context.enable_progress_bars = False
            # Reading is mostly waiting on files: a quarter CPU per read task; and the actors
            # leave room for it, or a pool that takes every CPU waits forever for its input.
            cpus = float(ray.cluster_resources().get("CPU", 1))
            actor_cpus = min(num_cpus_per_actor, max(0.1, (cpus - READ_CPUS) / num_actors))
            if actor_cpus < num_cpus_per_actor:
                log.info("%d actors of %.2g CPU each on %g CPUs: %.2g CPU each, to leave %.2g for reading",
                         num_actors, num_cpus_per_actor, cpus, actor_cpus, READ_CPUS)
            named = "num_cpus" in inspect.signature(ray.data.read_binary_files).parameters  # newer Ray: named
            ds = ray.data.read_binary_files(readable, include_paths=True, **(
                {"num_cpus": READ_CPUS} if named else {"ray_remote_args": {"num_cpus": READ_CPUS}}))
            ds = ds.map_batches(
                DetectorActor, batch_size=batch_size, batch_format="numpy",
                fn_constructor_kwargs={"detector_options": detector_options, "max_pixels": max_pixels,
                                       "torch_threads": max(1, int(num_cpus_per_actor))},
                compute=ray.data.ActorPoolStrategy(size=num_actors),
                num_cpus=actor_cpus, num_gpus=num_gpus_per_actor or None,
            )
            for table in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
                for row in table.to_pylist():
                    row["image"] = given.get(os.path.abspath(row["image"]), row["image"])
                    rows.append(row)
                rows = _write(rows, writer, summary, bar)
        _write(rows, writer, summary, bar)
    finally:
        bar.close()
        if writer is not None:
            writer.close()
        summary.seconds = time.perf_counter() - start
        if started_here:
            ray.shutdown()
    return summary


def _write(rows: list[dict[str, Any]], writer: Any, summary: BatchSummary, bar: Any) -> list[dict[str, Any]]:
    """Count and write rows (an error's reason gets its photo's path in front) -> []."""
    for row in rows:
        if row.get("error") is not None and not row["error"].startswith(row["image"] + ": "):
            row["error"] = f"{row['image']}: {row['error']}"
        summary.count(row)
    bar.update(len(rows))
    if writer is not None and rows:
        writer.write(rows)
    return []


__all__ = ["DetectorActor", "detect_with_ray"]
