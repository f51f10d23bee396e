"""Annotation readers: every face data set read into :class:`~torchmtcnn.data.records.FaceRecord`.

Entry point :func:`read_annotations`; formats ``wider``, ``wider-mat``, ``sun2013``, ``mtfl``,
``caltech``, ``jsonl`` (see docs/data.md, "Readers").
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from torchmtcnn.data.readers import jsonl, landmarks, wider
from torchmtcnn.data.readers._common import AnnotationSet, Problem, ReadContext
from torchmtcnn.data.readers.boxrule import box_from_landmarks, box_from_points
from torchmtcnn.data.records import FaceRecord
from torchmtcnn.errors import AnnotationError

__all__ = [
    "FORMATS",
    "AnnotationSet",
    "Problem",
    "box_from_landmarks",
    "box_from_points",
    "guess_format",
    "parse_source",
    "read_annotations",
    "read_sources",
]

logger = logging.getLogger(__name__)

_READERS: dict[str, Callable[[ReadContext], list[FaceRecord]]] = {
    "wider": wider.read_wider_txt,
    "wider-mat": wider.read_wider_mat,
    "sun2013": landmarks.read_sun2013,
    "mtfl": landmarks.read_mtfl,
    "caltech": landmarks.read_caltech,
    "jsonl": jsonl.read_jsonl,
}
FORMATS: tuple[str, ...] = tuple(_READERS)


def _line_key(problem: Problem) -> int:
    """The line number of a ``"file:line"`` source; 0 for labels (``.mat``), keeping their order."""
    tail = problem.source.rsplit(":", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def guess_format(path: str | Path) -> str:
    """The format of an annotation file from its name.

    ``*bbx_gt*.txt`` -> wider, ``*.mat`` -> wider-mat, ``trainImageList.txt`` /
    ``testImageList.txt`` -> sun2013, ``new_training.txt`` / ``new_testing.txt`` (or a name
    with "mtfl") -> mtfl, ``WebFaces_GroundThruth.txt`` (or "webfaces"/"caltech") -> caltech,
    ``*.jsonl`` -> jsonl. Raises AnnotationError when the name says nothing.
    """
    name = Path(path).name.lower()
    if name.endswith(".jsonl"):
        return "jsonl"
    if name.endswith(".mat"):
        return "wider-mat"
    if "bbx_gt" in name or name.startswith("wider_face"):
        return "wider"
    if name.endswith("imagelist.txt"):
        return "sun2013"
    if name.startswith(("new_training", "new_testing")) or "mtfl" in name:
        return "mtfl"
    if "webfaces" in name or "caltech" in name or "groundthruth" in name:
        return "caltech"
    raise AnnotationError(
        f"{path}: cannot guess the annotation format from the file name; "
        f"pass fmt= one of {', '.join(FORMATS)}"
    )


def default_images_root(path: Path, fmt: str) -> Path:
    """Where a data set usually keeps its images, relative to its annotation file."""
    if fmt in ("wider", "wider-mat"):
        return wider.default_images_root(path)
    return landmarks.default_images_root(path, fmt)


def read_annotations(
    path: str | Path,
    fmt: str | None = None,
    images_root: str | Path | None = None,
    check_images: bool = True,
    validate: bool = False,
) -> AnnotationSet:
    """Read one annotation file into records, reporting (not raising on) every bad entry.

    Args:
        path: the annotation file.
        fmt: one of FORMATS; None guesses from the file name (:func:`guess_format`).
        images_root: folder the image paths are relative to; default the data set's usual
            folder next to the file (WIDER: ``WIDER_<split>/images`` beside the annotation
            folder; Caltech: ``images/``; Sun 2013, MTFL, jsonl: the file's folder).
        check_images: open each image header (no decoding) to skip missing / unreadable
            images and check boxes and points against the image size. Without it images
            are not touched and boxes are only checked for a positive size.
        validate: raise AnnotationError (naming file and line of the first problems) when
            any problem was found, instead of returning them.

    Returns:
        AnnotationSet: records (boxes float32 [N, 4] x1, y1, x2, y2; landmarks float32
        [N, 5, 2] or None; ignore bool [N]; attributes int [N]) and problems.

    Raises:
        AnnotationError: unknown / unguessable format, missing file, or (validate) problems.
    """
    path = Path(path)
    fmt = guess_format(path) if fmt is None else fmt
    if fmt not in _READERS:
        raise AnnotationError(f"{path}: unknown annotation format {fmt!r}; use one of {FORMATS}")
    if not path.is_file():
        raise AnnotationError(f"{path}: annotation file not found")
    root = Path(images_root) if images_root is not None else default_images_root(path, fmt)
    ctx = ReadContext(path=path, images_root=root, check_images=check_images, fmt=fmt)
    start = time.perf_counter()
    records = _READERS[fmt](ctx)
    ctx.problems.sort(key=_line_key)  # file order (readers check images after parsing)
    result = AnnotationSet(records=records, problems=ctx.problems, path=path, fmt=fmt)
    elapsed = time.perf_counter() - start
    if result.problems:
        logger.warning("%s in %.2f s", result.summary(), elapsed)
    else:
        logger.info("%s in %.2f s", result.summary(), elapsed)
    if validate:
        result.raise_on_problems()
    return result


def parse_source(spec: str) -> tuple[str | None, str]:
    """A source spec ``"FORMAT:PATH"`` -> (format, path); a spec without a known format prefix
    (``"C:/x/wider.txt"``, a plain path) -> (None, spec): the format is guessed from the name."""
    head, sep, tail = spec.partition(":")
    if sep and head in _READERS:
        return head, tail
    return None, spec


def read_sources(specs: list[str], root: str | Path | None = None) -> list[FaceRecord]:
    """Read every source spec (``"FORMAT:PATH"`` or ``PATH``; relative paths against ``root``
    when given) into one list of records, in order. Problems are logged, not raised."""
    records: list[FaceRecord] = []
    for spec in specs:
        fmt, path = parse_source(spec)
        full = Path(root) / path if root is not None and not Path(path).is_absolute() else Path(path)
        found = read_annotations(full, fmt)
        logger.info("%s: %d photos, %d faces, %d problems", spec, len(found.records),
                    found.num_faces, len(found.problems))
        records.extend(found.records)
    return records
