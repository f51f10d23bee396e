"""Picking up a stopped job: which photos an output already holds, and which are left to do.
Shared by the local job (``batch.detect_many``) and the Ray one (``batch_ray``)."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TypeVar

from .errors import MTCNNError
from .writers import pyarrow_modules

log = logging.getLogger(__name__)

P = TypeVar("P")


def done_images(out: str | os.PathLike, fmt: str) -> set[str]:
    """The images already in an output (as written: the paths as given). A JSON-lines file cut
    in the middle of a line (a killed job) is cut back to its last whole line."""
    path = Path(out)
    if not path.exists():
        return set()
    if fmt == "parquet":
        _, pq = pyarrow_modules()
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


def left_to_do(paths: Sequence[P], out: str | os.PathLike | IO[str] | None, fmt: str, resume: bool) -> list[P]:
    """The paths whose image (``str(path)``, as given) is not yet in ``out``; all of them
    without ``resume``. Resuming needs an output file or folder to read back."""
    if not resume:
        return list(paths)
    if not isinstance(out, (str, os.PathLike)):
        raise MTCNNError("resume needs an output file or folder to read back")
    done = done_images(out, fmt)
    todo = [p for p in paths if str(p) not in done]
    if len(todo) < len(paths):
        log.info("resuming: %d of %d photos already in %s", len(paths) - len(todo), len(paths), out)
    return todo
