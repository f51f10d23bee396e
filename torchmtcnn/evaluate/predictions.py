"""Detector output on disk: reading and writing prediction sets, matching them to images.

A prediction set is a list of :class:`~torchmtcnn.faces.Faces`, each named by its image
(``Faces.image``). Three layouts are read:

* the package's JSON lines, one image a line (``torchmtcnn.faces``: the format
  ``mtcnn detect --json`` writes, read by ``read_faces_jsonl`` and written by
  ``write_faces_jsonl``, here ``read_jsonl`` / ``write_jsonl``)::

    {"image": "a/b.jpg", "width": 640, "height": 480, "faces": [{"box": [x1, y1, x2, y2],
     "score": 0.99, "keypoints": {"left_eye": [x, y], "right_eye": [x, y], "nose": [x, y],
     "mouth_left": [x, y], "mouth_right": [x, y]}}]}

* the official WIDER FACE submission: a folder (event sub-folders) of one ``.txt`` per image,
  line 1 the image name, line 2 the count, then ``x y w h score`` lines;
* an FDDB detection file (``FDDB-det-fold-XX.txt``, or several concatenated): blocks of
  image name, count, ``x y w h score`` lines.

Matching to ground-truth images is by path, tolerantly: the longest common run of trailing
path components decides (so a path relative to the dataset root matches an absolute one),
with the image extension dropped, so WIDER's ``event/name`` matches ``.../event/name.jpg``.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from ..errors import MTCNNError, PredictionError
from ..faces import Faces
from ..faces import read_faces_jsonl as read_jsonl
from ..faces import write_faces_jsonl as write_jsonl
from ..images import IMAGE_EXTENSIONS

__all__ = ["Matching", "PredictionError", "fddb_blocks", "match_images", "read_fddb_detections", "read_jsonl",
           "read_predictions", "read_wider_dir", "write_jsonl", "write_wider_dir"]

log = logging.getLogger(__name__)


@dataclass
class Matching:
    """Predictions paired with ground-truth images.

    Attributes:
        pairs: for each ground-truth image (same order), the index of its prediction or -1.
        missing: ground-truth image paths with no prediction.
        unused: prediction image names that matched no ground-truth image.
        ambiguous: ground-truth image paths whose name fits several predictions.
    """

    pairs: list[int]
    missing: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    ambiguous: list[str] = field(default_factory=list)


def _parts(path: str | Path) -> tuple[str, ...]:
    """Path components with '\\' as a separator and the image extension dropped."""
    text = str(path).replace("\\", "/")
    parts = [p for p in PurePosixPath(text).parts if p not in ("", ".", "/")]
    if parts:
        last = PurePosixPath(parts[-1])
        if last.suffix.lower() in IMAGE_EXTENSIONS:
            parts[-1] = last.stem
    return tuple(parts)


def match_images(gt_images: Sequence[str | Path], pred_images: Sequence[str]) -> Matching:
    """Pair ground-truth images with predicted ones by their longest common path suffix.

    A ground-truth image takes the prediction sharing the most trailing components with it
    (extension dropped), provided exactly one prediction shares that many; two ground-truth
    images claiming one prediction keep it only for the one with the longer common suffix.
    """
    index: dict[tuple[str, ...], list[int]] = defaultdict(list)
    pred_parts = [_parts(p) for p in pred_images]
    for i, parts in enumerate(pred_parts):
        for k in range(1, len(parts) + 1):
            index[parts[-k:]].append(i)
    pairs = [-1] * len(gt_images)
    depth = [0] * len(gt_images)
    ambiguous: list[str] = []
    for g, image in enumerate(gt_images):
        parts = _parts(image)
        for k in range(len(parts), 0, -1):
            cands = index.get(parts[-k:])
            if not cands:
                continue
            if len(cands) > 1:
                exact = [c for c in cands if pred_parts[c] == parts]
                if len(exact) != 1:
                    ambiguous.append(str(image))
                    break
                cands = exact
            pairs[g], depth[g] = cands[0], k
            break
    # one prediction, several ground-truth images: only the deepest match keeps it
    claims: dict[int, list[int]] = defaultdict(list)
    for g, p in enumerate(pairs):
        if p >= 0:
            claims[p].append(g)
    for p, gs in claims.items():
        if len(gs) > 1:
            gs = sorted(gs, key=lambda g: -depth[g])
            winners = [g for g in gs if depth[g] == depth[gs[0]]]
            for g in gs:
                if g not in winners or len(winners) > 1:
                    pairs[g] = -1
                    ambiguous.append(str(gt_images[g]))
    used = {p for p in pairs if p >= 0}
    return Matching(
        pairs=pairs,
        missing=[str(gt_images[g]) for g, p in enumerate(pairs) if p < 0],
        unused=[pred_images[i] for i in range(len(pred_images)) if i not in used],
        ambiguous=ambiguous,
    )


# --------------------------------------------------------------------------- reading


def _parse_xywhs(lines: list[str], where: str) -> tuple[np.ndarray, np.ndarray]:
    rows = []
    for k, line in enumerate(lines):
        vals = line.split()
        if not vals:
            continue
        try:
            rows.append([float(v) for v in vals[:5]])
        except ValueError as exc:
            raise PredictionError(f"{where}+{k}: expected 'x y w h score' ({exc})") from exc
        if len(rows[-1]) < 4:
            raise PredictionError(f"{where}+{k}: expected 'x y w h score', got {line.strip()!r}")
        if len(rows[-1]) == 4:
            rows[-1].append(1.0)
    arr = np.asarray(rows, np.float64).reshape(-1, 5)
    boxes = arr[:, :4].copy()
    boxes[:, 2:] += boxes[:, :2]
    return boxes, arr[:, 4].copy()


def read_wider_dir(path: str | Path) -> list[Faces]:
    """Read the official WIDER FACE submission layout: ``DIR/<event>/<image>.txt``.

    Each file: image name, count, then ``x y w h score`` lines. The prediction's image is
    ``<event>/<image name>`` (the folder the file is in, then the name from line 1).
    """
    root = Path(path)
    out: list[Faces] = []
    files = sorted(root.rglob("*.txt"))
    if not files:
        raise PredictionError(f"{root}: no .txt prediction files in this folder")
    for file in files:
        lines = file.read_text(encoding="utf-8", errors="replace").splitlines()
        if not lines:
            raise PredictionError(f"{file}: empty prediction file")
        name = lines[0].strip().replace("\\", "/").split("/")[-1] or file.stem
        try:
            count = int(float(lines[1])) if len(lines) > 1 and lines[1].strip() else 0
        except ValueError as exc:
            raise PredictionError(f"{file}:2: expected the number of faces") from exc
        boxes, scores = _parse_xywhs(lines[2:], f"{file}:3")
        if len(boxes) != count:
            log.debug("%s: says %d faces, has %d lines", file, count, len(boxes))
        rel = file.parent.relative_to(root)
        image = str(PurePosixPath(*rel.parts, name)) if rel.parts else name
        out.append(Faces(boxes, scores, image=image))
    return out


def fddb_blocks(path: Path, error: type[Exception]) -> Iterator[tuple[int, str, list[str]]]:
    """The blocks of an FDDB-style file (an image name line, a count line, that many lines),
    for both the ellipse lists and the detection files -> (line number of the name, name,
    the block's lines). A bad count or a file that ends early raises ``error``."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    i = 0
    while i < len(lines):
        name = lines[i].strip()
        if not name:
            i += 1
            continue
        try:
            count = int(float(lines[i + 1]))
        except (IndexError, ValueError) as exc:
            raise error(f"{path}:{i + 2}: expected the number of faces") from exc
        block = lines[i + 2 : i + 2 + count]
        if len(block) < count:
            raise error(f"{path}:{i + 1}: {name} says {count} faces, file ends first")
        yield i + 1, name, block
        i += 2 + count


def read_fddb_detections(path: str | Path) -> list[Faces]:
    """Read FDDB detections: blocks of image name, count, ``x y w h score`` lines."""
    path = Path(path)
    out: list[Faces] = []
    for lineno, name, block in fddb_blocks(path, PredictionError):
        boxes, scores = _parse_xywhs(block, f"{path}:{lineno + 2}")
        out.append(Faces(boxes, scores, image=name))
    return out


def read_predictions(path: str | Path, fmt: str | None = None) -> list[Faces]:
    """Read a prediction set; fmt "jsonl", "wider" (folder) or "fddb", guessed when None."""
    path = Path(path)
    if not path.exists():
        raise MTCNNError(f"{path}: no such prediction file or folder")
    if fmt is None:
        if path.is_dir():
            fmt = "wider"
        elif path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
            fmt = "jsonl"
        else:
            with path.open("r", encoding="utf-8", errors="replace") as fh:
                first = fh.readline().lstrip()
            fmt = "jsonl" if first.startswith("{") else "fddb"
    if fmt == "jsonl":
        return read_jsonl(path)
    if fmt == "wider":
        return read_wider_dir(path)
    if fmt == "fddb":
        return read_fddb_detections(path)
    raise MTCNNError(f"unknown prediction format {fmt!r}: use jsonl, wider or fddb")


# --------------------------------------------------------------------------- writing


def write_wider_dir(preds: Iterable[Faces], root: str | Path) -> int:
    """Write predictions in the official WIDER submission layout (event folder from the path).

    Returns the number of files written.
    """
    root = Path(root)
    n = 0
    for pred in preds:
        parts = _parts(pred.image)
        folder = root.joinpath(*parts[-2:-1]) if len(parts) > 1 else root
        folder.mkdir(parents=True, exist_ok=True)
        lines = [parts[-1], str(len(pred))]
        for (x1, y1, x2, y2), s in zip(pred.boxes, pred.scores):
            lines.append(f"{x1:.1f} {y1:.1f} {x2 - x1:.1f} {y2 - y1:.1f} {s:.6f}")
        (folder / f"{parts[-1]}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        n += 1
    return n
