"""The large-collection job on Ray Data (the [ray] extra): one machine or a cluster.

``detect_with_ray(paths, out)`` reads the photos with ``ray.data.read_binary_files``, decodes
and detects in a pool of actors (each loads the model once, on CPU or on a GPU), and streams
the rows back to this process, which writes them as ``torchmtcnn.batch`` does (JSON lines or a
folder of Parquet part files, ``resume`` included), so the outputs of the plain loop and of
Ray are the same files. Without ``address`` it starts a local Ray (and stops it at the end);
with one (``"auto"``, ``"ray://head:10001"``) it joins that cluster, whose workers must see
the photos at the same paths (a shared file system) and have torchmtcnn installed.
"""

from __future__ import annotations

import inspect
import logging
import os
import sys
import time
from collections.abc import Iterable
from typing import IO, Any

import numpy as np

from .batch import BatchSummary, done_images, infer_format, open_writer, parquet_schema, reason_of, result_row
from .errors import ImageError, MissingExtraError, MTCNNError
from .images import MAX_PIXELS

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
    """A Ray Data actor: builds an MTCNN once, then turns batches of {bytes, path} into rows.

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

    def __call__(self, batch: dict[str, np.ndarray]):
        import pyarrow as pa
        import torch

        from .images import load

        tensors, slots, rows = [], [], []
        for data, path in zip(batch["bytes"], batch["path"]):
            try:
                image = load(bytes(data), self.max_pixels)
            except ImageError as exc:
                rows.append(result_row(str(path), error=reason_of("image bytes", str(exc))))
                continue
            slots.append(len(rows))
            rows.append({})
            tensors.append(torch.from_numpy(np.asarray(image)).to(self.detector.device))
        if tensors:
            for slot, faces in zip(slots, self.detector.detect_tensors(tensors)):
                rows[slot] = result_row(str(batch["path"][slot]), faces)
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
    fmt = infer_format(None if out is None or hasattr(out, "write") else out, fmt)
    files = [str(p) for p in paths]
    summary = BatchSummary(total=len(files))
    if resume:
        if out is None or hasattr(out, "write"):
            raise MTCNNError("resume needs an output file or folder to read back")
        done = done_images(out, fmt)  # type: ignore[arg-type]
        todo = [p for p in files if p not in done]
        summary.skipped = len(files) - len(todo)
    else:
        todo = files
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
    from tqdm import tqdm

    bar = tqdm(total=len(todo), unit="photo", disable=not progress or len(todo) < 2, file=sys.stderr)
    try:
        rows = [result_row(p, error=f"{p}: no such file") for p in missing]
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
        if row.get("error") is not None:
            if not row["error"].startswith(row["image"] + ": "):
                row["error"] = f"{row['image']}: {row['error']}"
            summary.failed.append((row["image"], row["error"]))
        else:
            summary.faces += len(row["faces"] or [])
        summary.done += 1
    bar.update(len(rows))
    if writer is not None and rows:
        writer.write(rows)
    return []


__all__ = ["DetectorActor", "detect_with_ray"]
