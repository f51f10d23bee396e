"""Detection over large collections: parallel decoding, batched detection, streamed results.

``detect_many(paths, out)`` reads the photos in a pool of threads (OpenCV and file reads
release the GIL), runs the detector on batches of them in this thread, and writes one row
per photo as it goes, to JSON lines or to Parquet part files, so a job of millions of photos
holds only a few batches in memory. ``resume=True`` skips the photos already in ``out``.

A row is ``{"image", "width", "height", "faces": [{"box", "score", "keypoints"}], "error"}``
(``error`` is None for a photo that was read, and the size and faces are None for one that
was not; JSON lines leave out the None fields, as ``mtcnn detect --json`` always has).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch

from .data.records import LANDMARK_NAMES
from .detector import MTCNN, Faces
from .errors import ImageError, MissingExtraError, MTCNNError
from .images import MAX_PIXELS, read_image

log = logging.getLogger(__name__)

FORMATS = ("jsonl", "parquet")
ROWS_PER_PART = 2000  # Parquet rows per part file: a part is complete or absent


@dataclass
class Item:
    """One photo of a job: its faces or its error; ``image`` when asked to keep the pixels."""

    path: Path
    faces: Faces | None = None
    error: ImageError | None = None
    image: np.ndarray | None = None


@dataclass
class BatchSummary:
    """What a job did. ``failed``: (image, message) of each photo that could not be read."""

    total: int = 0
    done: int = 0
    skipped: int = 0
    faces: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def photos_per_second(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0

    def report(self, listed: int = 10) -> str:
        """A few lines: counts, speed, and the failures grouped by reason."""
        lines = [f"{self.total} photo(s): {self.done} processed ({self.photos_per_second:.1f} photos/s), "
                 f"{self.skipped} skipped (already in the output), {len(self.failed)} failed, {self.faces} face(s)"]
        reasons = Counter(reason_of(image, message) for image, message in self.failed)
        for reason, count in reasons.most_common():
            images = [image for image, message in self.failed if reason_of(image, message) == reason]
            shown = ", ".join(images[:listed]) + (f" and {count - listed} more" if count > listed else "")
            lines.append(f"  failed, {reason}: {count} ({shown})")
        return "\n".join(lines)


def reason_of(image: str, message: str) -> str:
    """The message of an ImageError without the name of its file."""
    return message[len(image) + 2:] if message.startswith(image + ": ") else message


def result_row(image: str, faces: Faces | None = None, error: str | None = None) -> dict[str, Any]:
    """The output row of one photo (same fields in JSON lines and Parquet)."""
    if faces is None:
        return {"image": image, "width": None, "height": None, "faces": None, "error": error}
    h, w = faces.image_size
    return {"image": image, "width": w, "height": h, "faces": faces.to_dicts(), "error": None}


def infer_format(path: str | os.PathLike | None, fmt: str | None = None) -> str:
    """The output format: ``fmt`` if given, else "parquet" for a name ending in .parquet."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise MTCNNError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        return fmt
    return "parquet" if path is not None and str(path).endswith(".parquet") else "jsonl"


# --- reading --------------------------------------------------------------------------------

def iter_decoded(paths: Iterable[Path], workers: int = 4, max_pixels: int = MAX_PIXELS,
                 prefetch: int | None = None) -> Iterator[tuple[Path, np.ndarray | ImageError]]:
    """(path, RGB array or ImageError) per path, in order, decoded by ``workers`` threads
    (0: in this thread) with at most ``prefetch`` photos decoded ahead."""
    def decode(path: Path) -> np.ndarray | ImageError:
        try:
            return read_image(path, max_pixels)
        except ImageError as exc:
            return exc

    if workers <= 0:
        for path in paths:
            yield path, decode(path)
        return
    window: deque[tuple[Path, Future]] = deque()
    ahead = prefetch or workers * 4
    with ThreadPoolExecutor(workers, thread_name_prefix="mtcnn-decode") as pool:
        try:
            for path in paths:
                window.append((path, pool.submit(decode, path)))
                if len(window) >= ahead:
                    done_path, future = window.popleft()
                    yield done_path, future.result()
            while window:
                done_path, future = window.popleft()
                yield done_path, future.result()
        finally:
            for _, future in window:
                future.cancel()


def iter_results(detector: MTCNN, paths: Iterable[Path], workers: int = 4, batch_size: int | None = None,
                 keep_images: bool = False, max_pixels: int = MAX_PIXELS) -> Iterator[Item]:
    """An Item per path, in order: photos decoded in parallel, detected in batches."""
    batch_size = batch_size or detector.batch_size
    pending: list[tuple[Path, np.ndarray | ImageError]] = []

    def flush() -> Iterator[Item]:
        arrays = [a for _, a in pending if isinstance(a, np.ndarray)]
        found = iter(detector.detect_tensors([torch.from_numpy(a).to(detector.device) for a in arrays])
                     if arrays else [])
        for path, a in pending:
            if isinstance(a, np.ndarray):
                yield Item(path, faces=next(found), image=a if keep_images else None)
            else:
                yield Item(path, error=a)

    for path, decoded in iter_decoded(paths, workers, max_pixels, prefetch=max(2 * batch_size, 4 * workers)):
        pending.append((path, decoded))
        if len(pending) >= batch_size:
            yield from flush()
            pending = []
    if pending:
        yield from flush()


# --- writing --------------------------------------------------------------------------------

def _pyarrow():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MissingExtraError("Parquet output", "ray", "pyarrow") from exc
    return pa, pq


def parquet_schema():
    """Arrow schema of the rows: faces as a list of {box, score, keypoints{name: [x, y]}}."""
    pa, _ = _pyarrow()
    point = pa.list_(pa.float64())
    face = pa.struct([("box", pa.list_(pa.float64())), ("score", pa.float64()),
                      ("keypoints", pa.struct([(name, point) for name in LANDMARK_NAMES]))])
    return pa.schema([("image", pa.string()), ("width", pa.int32()), ("height", pa.int32()),
                      ("faces", pa.list_(face)), ("error", pa.string())])


class JsonlWriter:
    """Rows to a JSON-lines file (or a stream such as standard output), flushed per batch."""

    def __init__(self, out: str | os.PathLike | IO[str], append: bool = False) -> None:
        if hasattr(out, "write"):
            self.file, self.owned = out, False
        else:
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            self.file, self.owned = open(out, "a" if append else "w", encoding="utf-8"), True

    def write(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self.file.write(json.dumps({k: v for k, v in row.items() if v is not None}) + "\n")
        self.file.flush()

    def close(self) -> None:
        if self.owned:
            self.file.close()


class ParquetWriter:
    """Rows to a folder of Parquet part files (part-00000.parquet...), each written whole
    then renamed, so a stopped job leaves only complete parts. Read with
    ``pyarrow.parquet.read_table(folder)``, pandas or Ray."""

    def __init__(self, folder: str | os.PathLike, append: bool = False, rows_per_part: int = ROWS_PER_PART) -> None:
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise MTCNNError(f"{self.folder}: Parquet output is a folder of part files, and this is a file")
        self.folder.mkdir(parents=True, exist_ok=True)
        existing = sorted(self.folder.glob("part-*.parquet"))
        if existing and not append:
            for part in existing:
                part.unlink()
            existing = []
        self.next_part = 1 + max((int(p.stem.split("-")[1]) for p in existing), default=-1)
        self.rows_per_part = rows_per_part
        self.rows: list[dict[str, Any]] = []
        self.schema = parquet_schema()

    def write(self, rows: list[dict[str, Any]]) -> None:
        self.rows += rows
        while len(self.rows) >= self.rows_per_part:
            self._flush(self.rows[: self.rows_per_part])
            self.rows = self.rows[self.rows_per_part:]

    def _flush(self, rows: list[dict[str, Any]]) -> None:
        pa, pq = _pyarrow()
        final = self.folder / f"part-{self.next_part:05d}.parquet"
        tmp = final.with_suffix(".parquet.tmp")
        pq.write_table(pa.Table.from_pylist(rows, schema=self.schema), tmp)
        os.replace(tmp, final)
        self.next_part += 1

    def close(self) -> None:
        if self.rows:
            self._flush(self.rows)
            self.rows = []


def open_writer(out: str | os.PathLike | IO[str], fmt: str, append: bool = False) -> JsonlWriter | ParquetWriter:
    if fmt == "parquet":
        if hasattr(out, "write"):
            raise MTCNNError("Parquet output needs a folder name, not a stream")
        return ParquetWriter(out, append)  # type: ignore[arg-type]
    return JsonlWriter(out, append)


def done_images(out: str | os.PathLike, fmt: str) -> set[str]:
    """The images already in an output (for resume). A JSON-lines file cut in the middle of
    a line (a killed job) is cut back to its last whole line."""
    path = Path(out)
    if not path.exists():
        return set()
    if fmt == "parquet":
        _, pq = _pyarrow()
        images: set[str] = set()
        for part in sorted(path.glob("part-*.parquet")):
            try:
                images.update(pq.read_table(part, columns=["image"]).column("image").to_pylist())
            except Exception as exc:  # an unreadable part: its photos are done again
                log.warning("%s: unreadable (%s), its photos will be processed again", part, exc)
        return images
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        log.warning("%s: last line is incomplete (a stopped job), removing it", path)
        with open(path, "r+b") as f:
            f.truncate(end)
    images = set()
    for number, line in enumerate(data[:end].splitlines(), 1):
        if line.strip():
            try:
                images.add(json.loads(line)["image"])
            except (ValueError, KeyError, TypeError):
                raise MTCNNError(f"{path}:{number}: not a result line, cannot resume from this file") from None
    return images


# --- the job --------------------------------------------------------------------------------

def detect_many(
    paths: Iterable[str | os.PathLike],
    out: str | os.PathLike | IO[str] | None,
    detector: MTCNN | None = None,
    *,
    fmt: str | None = None,
    workers: int = 4,
    batch_size: int | None = None,
    resume: bool = False,
    progress: bool = True,
    keep_images: bool = False,
    on_item: Callable[[Item], None] | None = None,
    max_pixels: int = MAX_PIXELS,
    **detector_options: Any,
) -> BatchSummary:
    """Detect faces in many photos and stream a row per photo to ``out``.

    paths: image files (see ``images.list_images`` to expand folders and globs).
    out: a JSON-lines file, a Parquet folder, a text stream, or None (only ``on_item``).
    detector: an MTCNN, else one is built from ``detector_options`` (weights, device...).
    fmt: "jsonl" or "parquet" (default: parquet for a name ending in .parquet).
    workers: decoding threads (0: decode in this thread). batch_size: photos per detector run.
    resume: skip the photos whose path (as given) is already in ``out``, and append.
    on_item: called with each Item (its pixels too with keep_images), e.g. to save crops.
    -> BatchSummary (``report()`` gives counts, photos/s and failures grouped by reason).
    """
    from tqdm import tqdm

    fmt = infer_format(None if out is None or hasattr(out, "write") else out, fmt)
    files = [Path(p) for p in paths]
    summary = BatchSummary(total=len(files))
    if resume:
        if out is None or hasattr(out, "write"):
            raise MTCNNError("resume needs an output file or folder to read back")
        done = done_images(out, fmt)  # type: ignore[arg-type]
        todo = [p for p in files if str(p) not in done]
        summary.skipped = len(files) - len(todo)
        if summary.skipped:
            log.info("resuming: %d of %d photos already in %s", summary.skipped, len(files), out)
    else:
        todo = files
    detector = detector or MTCNN(**detector_options)
    writer = open_writer(out, fmt, append=resume) if out is not None else None
    start = time.perf_counter()
    bar = tqdm(total=len(todo), unit="photo", disable=not progress or len(todo) < 2, file=sys.stderr,
               dynamic_ncols=True)
    rows: list[dict[str, Any]] = []
    batch = batch_size or detector.batch_size
    try:
        for item in iter_results(detector, todo, workers, batch, keep_images, max_pixels):
            if item.error is not None:
                summary.failed.append((str(item.path), str(item.error)))
                rows.append(result_row(str(item.path), error=str(item.error)))
            else:
                summary.faces += len(item.faces)
                rows.append(result_row(str(item.path), item.faces))
            summary.done += 1
            if on_item is not None:
                on_item(item)
            bar.update(1)
            if len(rows) >= batch:
                if writer is not None:
                    writer.write(rows)
                rows = []
                bar.set_postfix(faces=summary.faces, failed=len(summary.failed), refresh=False)
    finally:  # also on Ctrl-C: what was detected is written, and a resume goes on from there
        bar.close()
        if writer is not None:
            if rows:
                writer.write(rows)
            writer.close()
        summary.seconds = time.perf_counter() - start
    return summary
