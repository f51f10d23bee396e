"""Annotations in the package's JSON-lines format (``torchmtcnn.faces``: the one face JSON that
detections are written in too), one photo a line::

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

from torchmtcnn.data.readers._common import EMPTY_RECORD, PARSE, ReadContext, make_record, read_lines
from torchmtcnn.data.records import FaceRecord
from torchmtcnn.faces import FaceFormatError, compact, face_from_json, face_to_json, image_line, stack_points


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
                parsed.append(face_from_json(face))
            except FaceFormatError as exc:
                ctx.report(line_no, PARSE, f"face {k + 1}: {exc}; face skipped")
        if faces and not parsed:
            ctx.report(line_no, EMPTY_RECORD, f"no usable face left for {obj['image']}; record skipped")
            continue
        image = ctx.resolve(obj["image"])
        ok, size = ctx.image_size(image, line_no)
        if not ok:
            continue
        n = len(parsed)
        boxes = np.array([p.box for p in parsed], dtype=np.float64).reshape(n, 4)
        names = sorted({key for p in parsed for key in p.attributes})
        attributes = {
            key: np.array([p.attributes.get(key, -1) for p in parsed], dtype=np.int32) for key in names
        }
        record = make_record(
            ctx, image, size, line_no, boxes, [line_no] * n, landmarks=stack_points(parsed),
            ignore=np.array([p.ignore for p in parsed], dtype=bool), attributes=attributes,
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
    """One photo as a line of this format (``faces.face_to_json`` for each face: coordinates
    rounded as every face JSON is, points that are NaN, such as Caltech's mouth corners, left
    out, ``ignore`` written when set; the split key kept); ``image`` defaults to the absolute
    path."""
    points = record.landmarks
    faces = [face_to_json(box, None, None if points is None else points[i], bool(record.ignore[i]))
             for i, box in enumerate(record.boxes)]
    return compact(image_line(image or str(Path(record.image).resolve()), faces, key=record.key or None))


def write_records(records: Iterable[FaceRecord], path: str | Path) -> int:
    """Write records in this format (absolute image paths, split keys kept); returns the count."""
    n = 0
    with open(path, "w") as f:
        for record in records:
            f.write(json.dumps(record_to_json(record)) + "\n")
            n += 1
    return n
