"""What every annotation reader shares: problems, the result set, image checks, face filtering.

A reader never raises on a bad line: it reports a :class:`Problem` (``"file:line"`` and a
message) into a :class:`ReadContext`, skips the face or the record, and goes on.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import UnidentifiedImageError

from torchmtcnn.data.records import FaceRecord
from torchmtcnn.errors import AnnotationError
from torchmtcnn.images import image_size

logger = logging.getLogger(__name__)

# Problem kinds (``Problem.kind``).
PARSE = "parse"  # a line or entry that does not parse; the face or record is skipped
BAD_BOX = "bad-box"  # zero / negative size or non-finite box; the face is skipped
BOX_OUTSIDE = "box-outside"  # box entirely outside the image; the face is skipped
BOX_CLIPPED = "box-clipped"  # box beyond the image by more than CLIP_TOLERANCE; clipped, kept
POINT_OUTSIDE = "point-outside"  # a landmark outside the image; the face is skipped
MISSING_IMAGE = "missing-image"  # image file not found; the record is skipped
UNREADABLE_IMAGE = "unreadable-image"  # image header cannot be read; the record is skipped
COUNT_MISMATCH = "count-mismatch"  # fewer / more face lines than the count line says
TRUNCATED = "truncated"  # the file ends in the middle of a record
UNREADABLE_FILE = "unreadable-file"  # the whole annotation file cannot be read
EMPTY_RECORD = "record-skipped"  # every face of a record was skipped, so is the record

# A box may pass the image border by this many pixels (inclusive / exclusive end
# conventions) before it is reported; it is clipped to the image either way.
CLIP_TOLERANCE = 1.0


@dataclass(frozen=True)
class Problem:
    """One thing wrong in an annotation file.

    Attributes:
        source: ``"file:line"`` (for ``.mat`` files ``"file:event/image"``).
        message: what is wrong and what was done (face skipped, record skipped...).
        kind: one of the kind constants of this module (``"parse"``, ``"bad-box"``...).
    """

    source: str
    message: str
    kind: str = PARSE

    def __str__(self) -> str:
        return f"{self.source}: {self.message}"


@dataclass
class AnnotationSet:
    """The records read from one annotation file and the problems met on the way.

    Attributes:
        records: one :class:`FaceRecord` per usable photo.
        problems: every line, face or record that was skipped or changed, in file order.
        path: the annotation file.
        fmt: the format it was read as.
    """

    records: list[FaceRecord]
    problems: list[Problem]
    path: Path | None = None
    fmt: str | None = None

    def __len__(self) -> int:
        return len(self.records)

    @property
    def num_faces(self) -> int:
        """Faces over all records (ignored ones included)."""
        return sum(len(r) for r in self.records)

    @property
    def num_ignored(self) -> int:
        """Faces marked ``ignore``."""
        return int(sum(int(r.ignore.sum()) for r in self.records))

    def problems_by_kind(self) -> dict[str, int]:
        """Problem counts per kind, most frequent first."""
        return dict(Counter(p.kind for p in self.problems).most_common())

    def summary(self) -> str:
        """One line: records, faces, ignored faces and problems by kind."""
        head = f"{self.path} ({self.fmt}): " if self.path is not None else ""
        text = (
            f"{head}{len(self.records)} records, {self.num_faces} faces "
            f"({self.num_ignored} ignored), {len(self.problems)} problems"
        )
        kinds = self.problems_by_kind()
        if kinds:
            text += " (" + ", ".join(f"{k}: {n}" for k, n in kinds.items()) + ")"
        return text

    def raise_on_problems(self, max_listed: int = 5) -> None:
        """Raise :class:`AnnotationError` naming file and line of the first problems, if any."""
        if not self.problems:
            return
        listed = "; ".join(str(p) for p in self.problems[:max_listed])
        more = len(self.problems) - max_listed
        tail = f"; and {more} more" if more > 0 else ""
        raise AnnotationError(f"{len(self.problems)} annotation problems: {listed}{tail}")


@dataclass
class ReadContext:
    """State of one read: the file, where images live, and the problems reported so far."""

    path: Path
    images_root: Path
    check_images: bool = True
    problems: list[Problem] = field(default_factory=list)
    fmt: str = ""

    def where(self, loc: int | str) -> str:
        """``"file:loc"``, loc a 1-based line number or a label."""
        return f"{self.path}:{loc}"

    def report(self, loc: int | str, kind: str, message: str) -> None:
        """Record one problem at ``loc`` (1-based line number or label)."""
        problem = Problem(self.where(loc), message, kind)
        logger.debug("%s", problem)
        self.problems.append(problem)

    def key(self, name: str) -> str:
        """The split key of the photo the file calls ``name``: ``"fmt:name"``, '/'-separated
        (:attr:`FaceRecord.key`); WIDER's text and .mat files name a photo alike."""
        fmt = "wider" if self.fmt == "wider-mat" else self.fmt
        return f"{fmt}:{name.strip().replace(chr(92), '/')}"

    def resolve(self, name: str) -> Path:
        """Image path of ``name`` (``\\`` taken as ``/``) against the images root."""
        rel = Path(name.strip().replace("\\", "/"))
        return rel if rel.is_absolute() else self.images_root / rel

    def image_size(self, image: Path, loc: int | str) -> tuple[bool, tuple[int, int] | None]:
        """Check the image: ``(usable, (width, height) or None)``.

        Without ``check_images`` nothing is opened: ``(True, None)``. Otherwise only the
        image header is read (PIL decodes no pixels for ``.size``); a missing or unreadable
        file is reported and gives ``(False, None)``.
        """
        if not self.check_images:
            return True, None
        try:
            return True, image_size(image)
        except FileNotFoundError:
            self.report(loc, MISSING_IMAGE, f"image not found: {image}; record skipped")
        except (UnidentifiedImageError, OSError, ValueError) as exc:
            self.report(loc, UNREADABLE_IMAGE, f"cannot read image {image}: {exc}; record skipped")
        return False, None


def read_lines(path: Path) -> list[str]:
    """The lines of a text file, never failing on encoding (bad bytes become U+FFFD)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    return text.splitlines()


def parse_floats(tokens: list[str]) -> np.ndarray | None:
    """Tokens as float64, or None when one is not a number."""
    try:
        return np.array([float(t) for t in tokens], dtype=np.float64)
    except ValueError:
        return None


def make_record(
    ctx: ReadContext,
    image: Path,
    size: tuple[int, int] | None,
    loc: int | str,
    boxes: np.ndarray,
    face_locs: list[int | str],
    landmarks: np.ndarray | None = None,
    ignore: np.ndarray | None = None,
    attributes: dict[str, np.ndarray] | None = None,
    derived_boxes: bool = False,
    key: str = "",
) -> FaceRecord | None:
    """Check the faces of one photo, drop the bad ones, and build its record.

    Args:
        boxes: float [N, 4] x1, y1, x2, y2.
        face_locs: N line numbers / labels, one per face, for the problems.
        landmarks: float [N, 5, 2] or None; NaN points are unknown and not checked.
        ignore: bool [N] or None.
        attributes: name -> int [N].
        size: (width, height) when the image was opened, else None (no bound checks).
        derived_boxes: the boxes were estimated from the points, so they are not checked
            against the image (a face at the border legitimately reaches past it); the
            points are.
        key: the photo's split key (:meth:`ReadContext.key`).

    Returns:
        The record, or None when the photo had faces and every one was skipped (reported).
        A photo with no faces at all gives a record with N = 0 (a negative photo).
    """
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4).copy()
    n = len(boxes)
    keep: np.ndarray = np.ones(n, dtype=bool)
    finite = np.isfinite(boxes).all(axis=1)
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    for k in np.flatnonzero(~finite):
        ctx.report(face_locs[k], BAD_BOX, f"box {boxes[k].tolist()} is not finite; face skipped")
    keep &= finite
    for k in np.flatnonzero(keep & ((w <= 0) | (h <= 0))):
        ctx.report(
            face_locs[k], BAD_BOX,
            f"box {boxes[k].tolist()} has zero or negative size ({w[k]:g} x {h[k]:g}); face skipped",
        )
        keep[k] = False
    if size is not None:
        width, height = size
        if not derived_boxes:
            outside = (boxes[:, 2] <= 0) | (boxes[:, 3] <= 0) | (boxes[:, 0] >= width) | (
                boxes[:, 1] >= height
            )
            for k in np.flatnonzero(keep & outside):
                ctx.report(
                    face_locs[k], BOX_OUTSIDE,
                    f"box {boxes[k].tolist()} lies outside the {width}x{height} image; face skipped",
                )
                keep[k] = False
            beyond = (boxes[:, :2].min(axis=1) < -CLIP_TOLERANCE) | (
                boxes[:, 2] > width + CLIP_TOLERANCE
            ) | (boxes[:, 3] > height + CLIP_TOLERANCE)
            for k in np.flatnonzero(keep & beyond):
                ctx.report(
                    face_locs[k], BOX_CLIPPED,
                    f"box {boxes[k].tolist()} reaches past the {width}x{height} image; "
                    "clipped to it",
                )
            boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
            boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
        if landmarks is not None:
            pts = landmarks
            outside_pts = (pts[..., 0] < -CLIP_TOLERANCE) | (pts[..., 0] > width + CLIP_TOLERANCE) | (
                pts[..., 1] < -CLIP_TOLERANCE
            ) | (pts[..., 1] > height + CLIP_TOLERANCE)
            bad = outside_pts.any(axis=1)  # NaN compares False: unknown points pass
            for k in np.flatnonzero(keep & bad):
                ctx.report(
                    face_locs[k], POINT_OUTSIDE,
                    f"a landmark lies outside the {width}x{height} image; face skipped",
                )
                keep[k] = False
    if n > 0 and not keep.any():
        ctx.report(loc, EMPTY_RECORD, f"no usable face left for {image}; record skipped")
        return None
    return FaceRecord(
        image=image,
        boxes=boxes[keep],
        landmarks=None if landmarks is None else landmarks[keep],
        ignore=np.zeros(int(keep.sum()), bool) if ignore is None else np.asarray(ignore, dtype=bool)[keep],
        attributes={k: np.asarray(v)[keep] for k, v in (attributes or {}).items()},
        source=ctx.where(loc),
        key=key,
    )
