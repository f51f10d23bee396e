"""Our own JSON-lines format, one photo a line::

    {"image": "rel/path.jpg",
     "faces": [{"box": [x1, y1, x2, y2],
                "keypoints": {"left_eye": [x, y], ...},     # optional, names of LANDMARK_NAMES
                "ignore": false,                             # optional
                "attributes": {"occlusion": 1}}],            # optional, int values
     "key": "sun2013:net_7876/x.jpg"}                 # optional: the photo's split key

``key`` (:attr:`FaceRecord.key`) is kept when a file lists photos of another data set (the
held-out photos of ``train all``), so that they split as their own data set does; without it
the key is ``"jsonl:" + image``.

``"faces": []`` is a photo without faces. Keypoints not given are NaN; when no face of the
file has keypoints, ``landmarks`` is None. A face attribute missing on some faces is -1.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from torchmtcnn.data.records import LANDMARK_NAMES, FaceRecord
from torchmtcnn.data.readers._common import EMPTY_RECORD, PARSE, ReadContext, make_record, read_lines


class _FaceError(ValueError):
    pass


def _parse_face(face: object) -> tuple[list[float], np.ndarray | None, bool, dict[str, int]]:
    if not isinstance(face, dict):
        raise _FaceError("a face is not an object")
    box = face.get("box")
    if not isinstance(box, list) or len(box) != 4:
        raise _FaceError(f"'box' must be [x1, y1, x2, y2], got {str(box)[:60]}")
    try:
        box = [float(x) for x in box]
    except (TypeError, ValueError):
        raise _FaceError(f"'box' has a non-number: {box}") from None
    points = None
    keypoints = face.get("keypoints")
    if keypoints is not None:
        if not isinstance(keypoints, dict):
            raise _FaceError("'keypoints' must be an object of name: [x, y]")
        points = np.full((5, 2), np.nan)
        for key, xy in keypoints.items():
            if key not in LANDMARK_NAMES:
                raise _FaceError(f"unknown keypoint {key!r} (known: {', '.join(LANDMARK_NAMES)})")
            try:
                if not isinstance(xy, list) or len(xy) != 2:
                    raise ValueError
                points[LANDMARK_NAMES.index(key)] = [float(xy[0]), float(xy[1])]
            except (TypeError, ValueError):
                raise _FaceError(f"keypoint {key!r} must be [x, y], got {str(xy)[:40]}") from None
    ignore = face.get("ignore", False)
    if not isinstance(ignore, bool):
        raise _FaceError(f"'ignore' must be true or false, got {ignore!r}")
    attributes = face.get("attributes", {})
    if not isinstance(attributes, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in attributes.values()
    ):
        raise _FaceError("'attributes' must be an object of integers")
    return box, points, ignore, attributes


def read_jsonl(ctx: ReadContext) -> list[FaceRecord]:
    """One record per line: boxes [N, 4], landmarks [N, 5, 2] or None, ignore [N]."""
    records: list[FaceRecord] = []
    lines = read_lines(ctx.path)
    for i, line in enumerate(lines):
        line_no = i + 1
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            end = " (last line: file truncated?)" if i == len(lines) - 1 else ""
            ctx.report(line_no, PARSE, f"not JSON: {exc.msg}{end}; line skipped")
            continue
        if not isinstance(obj, dict) or not isinstance(obj.get("image"), str):
            ctx.report(line_no, PARSE, "expected an object with a string 'image'; line skipped")
            continue
        faces = obj.get("faces", [])
        if not isinstance(faces, list):
            ctx.report(line_no, PARSE, "'faces' must be a list; line skipped")
            continue
        parsed = []
        for k, face in enumerate(faces):
            try:
                parsed.append(_parse_face(face))
            except _FaceError as exc:
                ctx.report(line_no, PARSE, f"face {k + 1}: {exc}; face skipped")
        if faces and not parsed:
            ctx.report(line_no, EMPTY_RECORD, f"no usable face left for {obj['image']}; record skipped")
            continue
        image = ctx.resolve(obj["image"])
        ok, size = ctx.image_size(image, line_no)
        if not ok:
            continue
        n = len(parsed)
        boxes = np.array([p[0] for p in parsed], dtype=np.float64).reshape(n, 4)
        landmarks = None
        if any(p[1] is not None for p in parsed):
            landmarks = np.stack([p[1] if p[1] is not None else np.full((5, 2), np.nan) for p in parsed])
        names = sorted({key for p in parsed for key in p[3]})
        attributes = {
            key: np.array([p[3].get(key, -1) for p in parsed], dtype=np.int32) for key in names
        }
        record = make_record(
            ctx, image, size, line_no, boxes, [line_no] * n, landmarks=landmarks,
            ignore=np.array([p[2] for p in parsed], dtype=bool), attributes=attributes,
            key=obj["key"] if isinstance(obj.get("key"), str) else ctx.key(obj["image"]),
        )
        if record is not None:
            records.append(record)
    if any(r.landmarks is not None for r in records):
        for r in records:
            if r.landmarks is None:
                r.landmarks = np.full((len(r), 5, 2), np.nan, dtype=np.float32)
    return records


def record_to_json(record: FaceRecord, image: str | None = None) -> dict[str, Any]:
    """One photo as a line of this format (coordinates rounded to 1/1000 px; points that are
    NaN, such as Caltech's mouth corners, left out); ``image`` defaults to the absolute path."""
    faces = []
    for i, box in enumerate(record.boxes):
        face: dict[str, Any] = {"box": [round(float(v), 3) for v in box]}
        if record.landmarks is not None and np.isfinite(record.landmarks[i]).any():
            face["keypoints"] = {n: [round(float(p[0]), 3), round(float(p[1]), 3)]
                                 for n, p in zip(LANDMARK_NAMES, record.landmarks[i])
                                 if np.isfinite(p).all()}
        if record.ignore[i]:
            face["ignore"] = True
        faces.append(face)
    line: dict[str, Any] = {"image": image or str(Path(record.image).resolve()), "faces": faces}
    if record.key:
        line["key"] = record.key
    return line


def write_records(records: Iterable[FaceRecord], path: str | Path) -> int:
    """Write records in this format (absolute image paths, split keys kept); returns the count."""
    n = 0
    with open(path, "w") as f:
        for record in records:
            f.write(json.dumps(record_to_json(record)) + "\n")
            n += 1
    return n
