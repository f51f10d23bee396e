"""Landmark sets: Sun 2013 lists, MTFL crops and Caltech 10,000 Web Faces.

- ``sun2013``: ``path left right top bottom x1 y1 ... x5 y5``, one face a line. The list's
  own box (brows to chin) is not the standard face box: the box comes from the points by the
  rule of :mod:`.boxrule`, as for the others.
- ``mtfl``: ``path x1 .. x5 y1 .. y5`` in pixels of 80x80 face crops; box from the points.
- ``caltech``: ``file lx ly rx ry nx ny mx my`` (eyes, nose, mouth centre), one face a line,
  lines grouped by photo; box from the points; the mouth corners are unknown and stored as
  NaN.

All use the viewer's left: the left eye is the one with the smaller x.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from torchmtcnn.data.records import FaceRecord
from torchmtcnn.data.readers._common import (
    BAD_BOX, PARSE, ReadContext, make_record, parse_floats, read_lines,
)
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
    """One record per line: landmarks [1, 5, 2] and the standard box from them [1, 4]."""
    records = []
    for line_no, name, v in _parse_lines(ctx, 15, "path left right top bottom x1 y1 ... x5 y5"):
        if v[1] <= v[0] or v[3] <= v[2]:  # unused, but a broken box means a broken line
            ctx.report(line_no, BAD_BOX, f"box left {v[0]:g} right {v[1]:g} top {v[2]:g} "
                       f"bottom {v[3]:g} has no area; line skipped")
            continue
        image = ctx.resolve(name)
        ok, size = ctx.image_size(image, line_no)
        if not ok:
            continue
        points = v[4:14].reshape(1, 5, 2)
        record = make_record(
            ctx, image, size, line_no, box_from_landmarks(points), [line_no], landmarks=points,
            derived_boxes=True, key=ctx.key(name),
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
            landmarks=points, derived_boxes=True, key=ctx.key(name),
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
        boxes = box_from_points(v[:, 0], v[:, 1], v[:, 2], v[:, 3])
        landmarks = np.full((len(v), 5, 2), np.nan)
        landmarks[:, :3] = v[:, :3]
        record = make_record(
            ctx, image, size, first, boxes, [f[0] for f in faces],
            landmarks=landmarks, derived_boxes=True, key=ctx.key(name),
        )
        if record is not None:
            records.append(record)
    return records


def default_images_root(path: Path, fmt: str) -> Path:
    """Caltech: ``images/`` beside the list; the others: the list's own folder."""
    if fmt == "caltech" and (path.parent / "images").is_dir():
        return path.parent / "images"
    return path.parent
