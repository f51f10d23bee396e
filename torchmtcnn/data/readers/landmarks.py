"""Landmark sets: Sun 2013 lists, MTFL crops and Caltech 10,000 Web Faces.

- ``sun2013``: ``path left right top bottom x1 y1 ... x5 y5``, one face a line, box given
  in the order left, right, top, bottom (box = left, top, right, bottom).
- ``mtfl``: ``path x1 .. x5 y1 .. y5`` in pixels of 80x80 face crops; box estimated from
  the points by the rule of :mod:`.boxrule`.
- ``caltech``: ``file lx ly rx ry nx ny mx my`` (eyes, nose, mouth centre), one face a line,
  lines grouped by photo; box from the points by the same rule; the mouth corners are
  unknown and stored as NaN.

All use the viewer's left: the left eye is the one with the smaller x.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from torchmtcnn.data.records import FaceRecord
from torchmtcnn.data.readers._common import PARSE, ReadContext, make_record, parse_floats, read_lines
from torchmtcnn.data.readers.boxrule import box_from_landmarks, box_from_points


def _parse_lines(ctx: ReadContext, ntokens: int, what: str) -> list[tuple[int, str, np.ndarray]]:
    """(line number, path, numbers) of every line with a path and ``ntokens - 1`` finite numbers."""
    rows = []
    lines = read_lines(ctx.path)
    for i, line in enumerate(lines):
        tokens = line.split()
        if not tokens:
            continue
        values = parse_floats(tokens[1:])
        if len(tokens) != ntokens or values is None or not np.isfinite(values).all():
            end = " (last line: file truncated?)" if i == len(lines) - 1 else ""
            ctx.report(
                i + 1, PARSE,
                f"expected '{what}' ({ntokens} fields), got {line.strip()[:80]!r}{end}; line skipped",
            )
            continue
        rows.append((i + 1, tokens[0], values))
    return rows


def read_sun2013(ctx: ReadContext) -> list[FaceRecord]:
    """One record per line: box [1, 4] and landmarks [1, 5, 2]."""
    records = []
    for line_no, name, v in _parse_lines(ctx, 15, "path left right top bottom x1 y1 ... x5 y5"):
        image = ctx.resolve(name)
        ok, size = ctx.image_size(image, line_no)
        if not ok:
            continue
        box = np.array([[v[0], v[2], v[1], v[3]]])
        record = make_record(
            ctx, image, size, line_no, box, [line_no], landmarks=v[4:14].reshape(1, 5, 2)
        )
        if record is not None:
            records.append(record)
    return records


def read_mtfl(ctx: ReadContext) -> list[FaceRecord]:
    """One record per line: landmarks [1, 5, 2] and the box estimated from them [1, 4]."""
    records = []
    for line_no, name, v in _parse_lines(ctx, 11, "path x1 .. x5 y1 .. y5"):
        image = ctx.resolve(name)
        ok, size = ctx.image_size(image, line_no)
        if not ok:
            continue
        points = np.stack([v[:5], v[5:]], axis=1).reshape(1, 5, 2)
        record = make_record(
            ctx, image, size, line_no, box_from_landmarks(points), [line_no],
            landmarks=points, derived_boxes=True,
        )
        if record is not None:
            records.append(record)
    return records


def read_caltech(ctx: ReadContext) -> list[FaceRecord]:
    """One record per photo (first-seen order): boxes [N, 4] from the points, landmarks [N, 5, 2].

    Landmarks are (left eye, right eye, nose, NaN, NaN): the source gives the mouth centre
    only, which is used for the box but is not a mouth corner.
    """
    groups: dict[str, list[tuple[int, np.ndarray]]] = {}
    for line_no, name, v in _parse_lines(ctx, 9, "file lx ly rx ry nx ny mx my"):
        groups.setdefault(name, []).append((line_no, v))
    records = []
    for name, faces in groups.items():
        first = faces[0][0]
        image = ctx.resolve(name)
        ok, size = ctx.image_size(image, first)
        if not ok:
            continue
        v = np.stack([f[1] for f in faces]).reshape(-1, 4, 2)
        boxes = box_from_points(v[:, 0], v[:, 1], v[:, 3])
        landmarks = np.full((len(v), 5, 2), np.nan)
        landmarks[:, :3] = v[:, :3]
        record = make_record(
            ctx, image, size, first, boxes, [f[0] for f in faces],
            landmarks=landmarks, derived_boxes=True,
        )
        if record is not None:
            records.append(record)
    return records


def boxes_from_a_rescaled_copy(records: list[FaceRecord], references: list[FaceRecord],
                               max_residual: float = 0.5) -> tuple[list[FaceRecord], list[str]]:
    """Give one-face records (MTFL's 80x80 crops) the box of the same face in a reference
    record of the same picture at another scale and offset (the Sun 2013 list, whose
    ``lfw_5590`` photos MTFL shrank to 80x80).

    Pictures are matched by their last folder and file name (``lfw_5590/Aaron_Eckhart_0001.jpg``).
    Per pair, the scale s and offset t with points = s * reference points + t are fitted to
    the five points by least squares; the box becomes s * reference box + t. A record without
    a reference, or whose fit misses a point by more than ``max_residual`` px, is left out.

    Returns (records with mapped boxes, one line per record left out).
    """
    by_name = {(r.image.parent.name, r.image.name): r for r in references if len(r) == 1}
    mapped, skipped = [], []
    for rec in records:
        ref = by_name.get((rec.image.parent.name, rec.image.name))
        if len(rec) != 1 or rec.landmarks is None or ref is None or ref.landmarks is None:
            skipped.append(f"{rec.source or rec.image}: no one-face reference with points")
            continue
        src, dst = ref.landmarks[0].astype(np.float64), rec.landmarks[0].astype(np.float64)
        a = np.zeros((10, 3))
        a[:5, 0], a[:5, 1], a[5:, 0], a[5:, 2] = src[:, 0], 1, src[:, 1], 1
        b = np.concatenate([dst[:, 0], dst[:, 1]])
        fit, *_ = np.linalg.lstsq(a, b, rcond=None)
        residual = float(np.abs(a @ fit - b).max())
        if not np.isfinite(residual) or residual > max_residual:
            skipped.append(f"{rec.source or rec.image}: points fit the reference only within {residual:.2f} px")
            continue
        s, tx, ty = fit
        box = ref.boxes[0].astype(np.float64) * s + np.array([tx, ty, tx, ty])
        mapped.append(FaceRecord(rec.image, box[None], rec.landmarks, rec.ignore, dict(rec.attributes), rec.source))
    return mapped, skipped


def default_images_root(path: Path, fmt: str) -> Path:
    """Caltech: ``images/`` beside the list; the others: the list's own folder."""
    if fmt == "caltech" and (path.parent / "images").is_dir():
        return path.parent / "images"
    return path.parent
