"""Detector output on disk: reading and writing prediction sets, matching them to images.

Three layouts are read:

* our JSON lines, one image a line (the format ``mtcnn detect --json`` writes)::

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

import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Iterable, Sequence

import numpy as np

from ..data.records import LANDMARK_NAMES
from ..errors import AnnotationError, MTCNNError

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif", ".ppm",
                    ".pgm"}


class PredictionError(AnnotationError):
    """A prediction file or line could not be read (names the file and line)."""


@dataclass
class ImagePrediction:
    """The faces a detector found in one image.

    Attributes:
        image: the image path as the detector was given it (or WIDER's ``event/name``).
        boxes: float64 [N, 4] (x1, y1, x2, y2), x2 exclusive.
        scores: float64 [N].
        landmarks: float64 [N, 5, 2] in LANDMARK_NAMES order, or None; NaN for a face
            without points.
        width, height: image size in pixels when known.
    """

    image: str
    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray | None = None
    width: int | None = None
    height: int | None = None

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, np.float64).reshape(-1, 4)
        self.scores = np.asarray(self.scores, np.float64).reshape(-1)
        if len(self.scores) != len(self.boxes):
            raise ValueError(f"{self.image}: {len(self.boxes)} boxes, {len(self.scores)} scores")
        if self.landmarks is not None:
            self.landmarks = np.asarray(self.landmarks, np.float64).reshape(-1, 5, 2)

    def __len__(self) -> int:
        return len(self.boxes)


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


def _face_landmarks(face: dict, where: str) -> np.ndarray:
    points = face.get("keypoints") or face.get("landmarks")
    out = np.full((5, 2), np.nan)
    if points is None:
        return out
    if isinstance(points, dict):
        for k, name in enumerate(LANDMARK_NAMES):
            if name in points and points[name] is not None:
                out[k] = np.asarray(points[name], np.float64).reshape(2)
    else:
        arr = np.asarray(points, np.float64)
        if arr.size != 10:
            raise PredictionError(f"{where}: keypoints need 5 (x, y) points, got {arr.size} values")
        out = arr.reshape(5, 2)
    return out


def read_jsonl(path: str | Path) -> list[ImagePrediction]:
    """Read our JSON-lines predictions (see the module docstring). Blank lines are skipped."""
    path = Path(path)
    out: list[ImagePrediction] = []
    with path.open("r", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                item = json.loads(line)
                if "error" in item and "faces" not in item:
                    # `mtcnn detect --json` names an image it could not read: that is a
                    # missing prediction (reported as such), not an image without faces.
                    log.warning("%s: %s has no prediction (%s)", where, item.get("image"), item["error"])
                    continue
                faces = item.get("faces") or []
                boxes = np.asarray([f["box"] for f in faces], np.float64).reshape(-1, 4)
                scores = np.asarray([f.get("score", 1.0) for f in faces], np.float64)
                has_points = any(("keypoints" in f or "landmarks" in f) for f in faces)
                lms = np.stack([_face_landmarks(f, where) for f in faces]) if has_points else None
                out.append(ImagePrediction(str(item["image"]), boxes, scores, lms,
                                           item.get("width"), item.get("height")))
            except PredictionError:
                raise
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise PredictionError(f"{where}: not a prediction line ({exc})") from exc
    return out


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


def read_wider_dir(path: str | Path) -> list[ImagePrediction]:
    """Read the official WIDER FACE submission layout: ``DIR/<event>/<image>.txt``.

    Each file: image name, count, then ``x y w h score`` lines. The prediction's image is
    ``<event>/<image name>`` (the folder the file is in, then the name from line 1).
    """
    root = Path(path)
    out: list[ImagePrediction] = []
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
        out.append(ImagePrediction(image, boxes, scores))
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


def read_fddb_detections(path: str | Path) -> list[ImagePrediction]:
    """Read FDDB detections: blocks of image name, count, ``x y w h score`` lines."""
    path = Path(path)
    out: list[ImagePrediction] = []
    for lineno, name, block in fddb_blocks(path, PredictionError):
        boxes, scores = _parse_xywhs(block, f"{path}:{lineno + 2}")
        out.append(ImagePrediction(name, boxes, scores))
    return out


def read_predictions(path: str | Path, fmt: str | None = None) -> list[ImagePrediction]:
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


def prediction_to_json(pred: ImagePrediction) -> dict:
    """One image's prediction as the JSON-lines object (a dict)."""
    faces = []
    for k in range(len(pred)):
        face: dict = {"box": [round(float(v), 2) for v in pred.boxes[k]],
                      "score": round(float(pred.scores[k]), 6)}
        if pred.landmarks is not None:
            face["keypoints"] = {
                name: [round(float(v), 2) for v in pred.landmarks[k, j]]
                for j, name in enumerate(LANDMARK_NAMES)
                if np.all(np.isfinite(pred.landmarks[k, j]))
            }
        faces.append(face)
    item: dict = {"image": pred.image}
    if pred.width is not None:
        item["width"] = int(pred.width)
    if pred.height is not None:
        item["height"] = int(pred.height)
    item["faces"] = faces
    return item


def write_jsonl(preds: Iterable[ImagePrediction], path: str | Path) -> int:
    """Write predictions as JSON lines; returns the number of lines written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as fh:
        for pred in preds:
            fh.write(json.dumps(prediction_to_json(pred)) + "\n")
            n += 1
    return n


def write_wider_dir(preds: Iterable[ImagePrediction], root: str | Path) -> int:
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
