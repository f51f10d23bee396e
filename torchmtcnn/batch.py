"""The large-collection job: detect faces in many photos and stream a row per photo to disk.

``detect_many(paths, out)`` runs the detector's one loop (``MTCNN.iter_detect``: photos
decoded by a pool of threads, detected in batches in this thread, bad ones set aside) and
writes each photo's row as it goes (``writers``: JSON lines or Parquet part files), so a job
of millions of photos holds only a few batches in memory. ``resume=True`` skips the photos
already in ``out`` (``resume``). The rows are ``faces.image_line``'s, see ``writers``.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from .detector import MTCNN
from .faces import Result
from .images import MAX_PIXELS
from .resume import left_to_do
from .writers import infer_format, open_writer

log = logging.getLogger(__name__)


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

    def count(self, row: dict[str, Any]) -> None:
        """Count one written row (a photo's faces, or its error)."""
        if row.get("error") is not None:
            self.failed.append((row["image"], row["error"]))
        else:
            self.faces += len(row["faces"] or [])
        self.done += 1

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


def progress_bar(total: int, progress: bool) -> Any:
    """The job's progress bar on standard error (off for fewer than two photos)."""
    from tqdm import tqdm

    return tqdm(total=total, unit="photo", disable=not progress or total < 2, file=sys.stderr, dynamic_ncols=True)


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
    on_item: Callable[[Result], None] | None = None,
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
    on_item: called with each photo's Result (its pixels too with keep_images), e.g. to save
        crops.
    -> BatchSummary (``report()`` gives counts, photos/s and failures grouped by reason).
    """
    fmt = infer_format(out if isinstance(out, (str, os.PathLike)) else None, fmt)
    files = [Path(p) for p in paths]
    todo = left_to_do(files, out, fmt, resume)
    summary = BatchSummary(total=len(files), skipped=len(files) - len(todo))
    detector = detector or MTCNN(**detector_options)
    writer = open_writer(out, fmt, append=resume) if out is not None else None
    start = time.perf_counter()
    bar = progress_bar(len(todo), progress)
    rows: list[dict[str, Any]] = []
    batch = batch_size or detector.batch_size
    try:
        for result in detector.iter_detect(todo, batch, workers=workers, keep_images=keep_images,
                                           max_pixels=max_pixels):
            rows.append(result.to_json())
            summary.count(rows[-1])
            if on_item is not None:
                on_item(result)
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
