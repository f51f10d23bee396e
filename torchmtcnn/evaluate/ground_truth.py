"""The ground truth of an evaluation: one or several annotation files of any format read
into one list of records, and the image names a detector run over them is given.

Formats: every annotation reader's (``data.readers.FORMATS``) and FDDB's ellipse lists,
guessed from the file names when not given (``FDDB-fold-XX-ellipseList.txt`` is FDDB, the
rest as ``data.readers.guess_format``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from ..data.readers import FORMATS as READER_FORMATS
from ..data.readers import read_annotations
from ..data.records import FaceRecord
from ..errors import MTCNNError
from .fddb import read_fddb_ellipses

log = logging.getLogger(__name__)

ANNOTATION_FORMATS: tuple[str, ...] = (*READER_FORMATS, "fddb")


def guess_annotation_format(paths: Sequence[str | Path]) -> str | None:
    """"fddb" when every file is an FDDB ellipse list; else None (each file's own reader
    guesses its format from its name)."""
    return "fddb" if paths and all("ellipseList" in Path(p).name for p in paths) else None


def load_ground_truth(paths: Sequence[str | Path], fmt: str | None = None, images_root: str | Path | None = None,
                      check_images: bool = False, limit: int | None = None) -> list[FaceRecord]:
    """The records of every annotation file, joined in order (FDDB folds, or any reader's).

    fmt: one of ANNOTATION_FORMATS, None to guess; images_root: the folder the files' image
    paths are relative to; check_images: open each image's header (skip the missing ones,
    check boxes against sizes: needed when a detector is to run on them); limit: only the
    first N images. Entries a reader skips are logged; MTCNNError when nothing usable is left.
    """
    fmt = fmt or guess_annotation_format(paths)
    if fmt is not None and fmt not in ANNOTATION_FORMATS:
        raise MTCNNError(f"unknown annotation format {fmt!r}; use one of {', '.join(ANNOTATION_FORMATS)}")
    if fmt == "fddb":
        records = read_fddb_ellipses(list(paths))
    else:
        records = []
        problems: list = []
        for path in map(Path, paths):
            if not path.exists():
                raise MTCNNError(f"{path}: annotation file not found")
            result = read_annotations(path, fmt=fmt, images_root=images_root, check_images=check_images)
            if result.problems:
                log.warning("%s: %d annotation lines skipped, e.g. %s", path, len(result.problems),
                            result.problems[0])
            problems.extend(result.problems)
            records.extend(result.records)
        if not records:
            hint = f" ({len(problems)} entries skipped, e.g. {problems[0]})" if problems else ""
            raise MTCNNError(f"the annotations hold no usable image{hint}")
    if limit is not None:
        records = records[:limit]
    if not records:
        raise MTCNNError("the annotations hold no image")
    return records


def image_names(records: Sequence[FaceRecord], images_root: str | Path | None = None) -> list[str]:
    """The records' image paths as a detector run names its predictions: relative to
    ``images_root`` when under it (portable JSON lines), '/'-separated."""
    names = []
    for r in records:
        path = Path(r.image)
        if images_root is not None and path.is_absolute():
            for root in (Path(images_root).resolve(), Path(images_root).absolute()):
                try:
                    path = path.relative_to(root)
                    break
                except ValueError:
                    continue
        names.append(path.as_posix())
    return names
