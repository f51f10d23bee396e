"""WIDER FACE: the ``wider_face_*_bbx_gt.txt`` lists and the ``wider_face_*.mat`` files.

Text format, per photo::

    0--Parade/0_Parade_marchingband_1_849.jpg
    2
    449 330 122 149 0 0 0 0 0 0        # x y w h blur expression illumination invalid occlusion pose
    ...

A count of 0 is followed by one placeholder line ``0 0 0 0 0 0 0 0 0 0``. ``invalid`` = 1 sets
``ignore``; all six labels are kept in ``attributes``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from torchmtcnn.data.records import FaceRecord
from torchmtcnn.data.readers._common import (
    COUNT_MISMATCH,
    PARSE,
    TRUNCATED,
    UNREADABLE_FILE,
    ReadContext,
    make_record,
    parse_floats,
    read_lines,
)

LABELS = ("blur", "expression", "illumination", "invalid", "occlusion", "pose")
SETTINGS = ("easy", "medium", "hard")


def default_images_root(path: Path) -> Path:
    """``WIDER_<split>/images`` beside the annotation folder (or beside the file itself)."""
    name = path.name.lower()
    split = next((s for s in ("train", "val", "test") if s in name), "train")
    folder = Path(f"WIDER_{split}") / "images"
    for base in (path.parent.parent, path.parent):
        if (base / folder).is_dir():
            return base / folder
    return path.parent.parent / folder


def _is_name(line: str) -> bool:
    """An image-name line: one token, not a number, with a "." or "/" (``event/file.jpg``)."""
    tokens = line.split()
    return (
        len(tokens) == 1
        and parse_floats(tokens) is None
        and ("." in tokens[0] or "/" in tokens[0])
    )


def read_wider_txt(ctx: ReadContext) -> list[FaceRecord]:
    """Records of a ``wider_face_*_bbx_gt.txt`` file (boxes [N, 4], no landmarks)."""
    lines = read_lines(ctx.path)
    n = len(lines)
    records: list[FaceRecord] = []
    i = 0
    while i < n:
        text = lines[i].strip()
        if not text:
            i += 1
            continue
        if not _is_name(text):
            ctx.report(i + 1, PARSE, f"expected an image name, got {text[:60]!r}; line skipped")
            i += 1
            continue
        name, name_line = text, i + 1
        i += 1
        if i >= n:
            ctx.report(name_line, TRUNCATED, f"file ends after image name {name!r}; record skipped")
            break
        count_text = lines[i].strip()
        if _is_name(count_text) or not count_text:
            ctx.report(name_line, PARSE, f"no face count after {name!r}; record skipped")
            continue
        try:
            count = int(count_text)
            if count < 0:
                raise ValueError
        except ValueError:
            ctx.report(i + 1, PARSE, f"face count {count_text[:30]!r} is not a count; record skipped")
            i += 1
            while i < n and not _is_name(lines[i]):
                i += 1
            continue
        i += 1
        if count == 0 and i < n and not _is_name(lines[i]):
            values = parse_floats(lines[i].split())
            if values is not None and not values.any():
                i += 1  # the placeholder line of a photo without faces
        rows: list[np.ndarray] = []
        locs: list[int] = []
        for k in range(count):
            if i >= n:
                ctx.report(
                    name_line, TRUNCATED,
                    f"file ends after {k} of the {count} faces of {name!r}; faces read kept",
                )
                break
            if _is_name(lines[i]):
                ctx.report(
                    name_line, COUNT_MISMATCH,
                    f"count says {count} faces for {name!r}, found {k}; faces read kept",
                )
                break
            values = parse_floats(lines[i].split())
            if values is None or len(values) != 10:
                ctx.report(
                    i + 1, PARSE,
                    f"face line {lines[i].strip()[:60]!r} is not 10 numbers; face skipped",
                )
            else:
                rows.append(values)
                locs.append(i + 1)
            i += 1
        while i < n and lines[i].strip() and not _is_name(lines[i]):
            ctx.report(i + 1, COUNT_MISMATCH, f"face line beyond the count {count} of {name!r}; skipped")
            i += 1
        image = ctx.resolve(name)
        ok, size = ctx.image_size(image, name_line)
        if not ok:
            continue
        arr = np.array(rows, dtype=np.float64).reshape(-1, 10)
        boxes = np.concatenate([arr[:, :2], arr[:, :2] + arr[:, 2:4]], axis=1)
        attributes = {lab: arr[:, 4 + j].astype(np.int32) for j, lab in enumerate(LABELS)}
        record = make_record(
            ctx, image, size, name_line, boxes, list(locs),
            ignore=attributes["invalid"] != 0, attributes=attributes, key=ctx.key(name),
        )
        if record is not None:
            records.append(record)
    return records


def _setting_lists(path: Path) -> dict[str, Any]:
    """The ``gt_list`` of the sibling ``wider_{easy,medium,hard}_<split>.mat`` files found."""
    from scipy.io import loadmat

    match = re.search(r"(train|val|test)", path.name)
    found: dict[str, object] = {}
    if match is None:
        return found
    for setting in SETTINGS:
        sibling = path.with_name(f"wider_{setting}_{match.group(1)}.mat")
        if sibling.is_file():
            try:
                found[setting] = loadmat(str(sibling), variable_names=["gt_list"])["gt_list"]
            except Exception:  # noqa: BLE001 - a bad sibling only loses the attribute
                continue
    return found


def _cell_str(cell: object) -> str:
    return str(np.asarray(cell).ravel()[0])


def read_wider_mat(ctx: ReadContext) -> list[FaceRecord]:
    """Records of a WIDER ``.mat`` ground truth (``wider_face_val.mat``, ``wider_hard_val.mat``...).

    Boxes [N, 4] from ``face_bbx_list`` (x y w h); the label lists go to ``attributes``.
    Setting files found beside it (``wider_easy_val.mat``...) add ``attributes["easy"]``
    etc. (1 = the face counts in that setting). When the file read is itself a setting file
    (it has ``gt_list``), faces outside its ``gt_list`` are also marked ``ignore``, as the
    official evaluation does. Problems are located as ``"file:event/image"``.
    """
    from scipy.io import loadmat

    try:
        mat = loadmat(str(ctx.path))
        events, files, bbxs = mat["event_list"], mat["file_list"], mat["face_bbx_list"]
    except Exception as exc:  # noqa: BLE001 - any failure of the file is one problem
        ctx.report(0, UNREADABLE_FILE, f"cannot read WIDER .mat file: {exc}")
        return []
    labels = {lab: mat.get(f"{lab}_label_list") for lab in LABELS}
    own_gt = mat.get("gt_list")
    settings = _setting_lists(ctx.path)
    records: list[FaceRecord] = []
    for e in range(len(events)):
        try:
            event = _cell_str(events[e][0])
            event_files = files[e][0]
        except Exception as exc:  # noqa: BLE001
            ctx.report(f"event {e + 1}", PARSE, f"unreadable event entry: {exc}; event skipped")
            continue
        for j in range(len(event_files)):
            loc: int | str = f"event {e + 1} image {j + 1}"
            try:
                name = _cell_str(event_files[j][0])
                loc = f"{event}/{name}"
                raw = np.asarray(bbxs[e][0][j][0], dtype=np.float64).reshape(-1, 4)
                if len(raw) == 1 and not raw.any():
                    raw = raw[:0]  # the placeholder row of a photo without faces
                n = len(raw)
                attributes = {
                    lab: np.asarray(lst[e][0][j][0]).astype(np.int32).ravel()[:n]
                    for lab, lst in labels.items()
                    if lst is not None
                }
                for setting, gt in settings.items():
                    attributes[setting] = _membership(gt[e][0][j][0], n)
                ignore = attributes.get("invalid", np.zeros(n, np.int32)) != 0
                if own_gt is not None:
                    ignore = ignore | (_membership(own_gt[e][0][j][0], n) == 0)
            except Exception as exc:  # noqa: BLE001
                ctx.report(loc, PARSE, f"unreadable image entry: {exc}; record skipped")
                continue
            boxes = np.concatenate([raw[:, :2], raw[:, :2] + raw[:, 2:]], axis=1)
            image = ctx.resolve(f"{event}/{name}.jpg")
            ok, size = ctx.image_size(image, loc)
            if not ok:
                continue
            record = make_record(
                ctx, image, size, loc, boxes, [f"{loc}#{k + 1}" for k in range(n)],
                ignore=ignore, attributes=attributes, key=ctx.key(f"{event}/{name}.jpg"),
            )
            if record is not None:
                records.append(record)
    return records


def _membership(indices: object, n: int) -> np.ndarray:
    """int32 [n]: 1 for the faces named by 1-based ``indices``, else 0."""
    out = np.zeros(n, dtype=np.int32)
    idx = np.asarray(indices, dtype=np.int64).ravel() - 1
    idx = idx[(idx >= 0) & (idx < n)]
    out[idx] = 1
    return out
