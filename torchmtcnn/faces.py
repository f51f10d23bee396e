"""The one face result (``Faces``, ``Result``) and the one JSON format every entry point writes
and reads: ``mtcnn detect --json``, the batch and Ray jobs, the HTTP service, prediction sets
for evaluation and the package's annotation files.

One face::

    {"box": [x1, y1, x2, y2], "score": 0.998, "ignore": true, "track_id": 3,
     "keypoints": {"left_eye": [x, y], "right_eye": [x, y], "nose": [x, y],
                   "mouth_left": [x, y], "mouth_right": [x, y]}}

``score`` is left out for an annotation, ``ignore`` is written only when true (an annotated
face a detector is neither rewarded nor punished for), ``keypoints`` only for the points that
are known, ``track_id`` only by the video tracker (the same number for the same face from
frame to frame, ``track.Tracker``). Coordinates are rounded to COORD_DECIMALS, scores to
SCORE_DECIMALS. One image is a line ``{"image", "width", "height", "faces": [...]}``, or
``{"image", "error"}`` for an input that could not be read, plus ``"key"`` (the split key) in
annotation files and ``"frame"`` (the frame's index, from 0) in a video's lines; JSON lines
leave out the fields that are None, Parquet keeps them as columns.

A change to the format belongs here: ``face_to_json`` / ``image_line`` write it,
``face_from_json`` / ``faces_from_line`` / ``read_faces_jsonl`` read it, ``FACE_SCHEMA`` is its
JSON schema (the service's OpenAPI document); its Arrow columns for Parquet are
``writers.parquet_schema``. Imports nothing heavier than numpy.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .errors import PredictionError

log = logging.getLogger(__name__)

LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
COORD_DECIMALS = 2  # 1/100 px: far below what a detector or an annotator can place
SCORE_DECIMALS = 6  # enough to keep the order of scores for AP


def _floats(x: Any) -> np.ndarray:
    """An array of floats: float32 / float64 kept as they are, anything else as float64."""
    if hasattr(x, "detach"):  # a torch tensor, on any device
        x = x.detach().cpu().numpy()
    a = np.asarray(x)
    return a if a.dtype in (np.float32, np.float64) else a.astype(np.float64)


@dataclass
class Faces:
    """The faces of one image, by decreasing score from the detector; empty arrays when there
    is none.

    boxes: float [N, 4] (x1, y1, x2, y2) in pixels (the detector's are clipped to the image);
    scores: float [N] face probabilities; landmarks: float [N, 5, 2] (x, y) of left eye, right
    eye, nose, left and right mouth corner, NaN where unknown, or None when the source has no
    points at all (a WIDER or FDDB prediction file); image_size: (height, width), None when
    unknown; image: the image's name when it has one (a prediction file's, or the path that
    was evaluated), else "". The detector gives float32 arrays, files read give float64.
    track_ids: int64 [N], which followed face each one is (a video tracker's result: the same
    id for the same face in every frame, ``track.Tracker``), or None (a still image).
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray | None = None
    image_size: tuple[int, int] | None = None
    image: str = ""
    track_ids: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.boxes = _floats(self.boxes).reshape(-1, 4)
        self.scores = _floats(self.scores).reshape(-1)
        if len(self.scores) != len(self.boxes):
            raise ValueError(f"{self.image or 'faces'}: {len(self.boxes)} boxes, {len(self.scores)} scores")
        if self.landmarks is not None:
            self.landmarks = _floats(self.landmarks).reshape(-1, 5, 2)
        if self.track_ids is not None:
            self.track_ids = np.asarray(self.track_ids, np.int64).reshape(-1)
            if len(self.track_ids) != len(self.boxes):
                raise ValueError(f"{self.image or 'faces'}: {len(self.boxes)} boxes, {len(self.track_ids)} track ids")

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def height(self) -> int | None:
        return None if self.image_size is None else self.image_size[0]

    @property
    def width(self) -> int | None:
        return None if self.image_size is None else self.image_size[1]

    @classmethod
    def empty(cls, image_size: tuple[int, int] | None = None, image: str = "") -> Faces:
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32),
                   image_size, image)

    @classmethod
    def coerce(cls, found: Any, image: str = "", image_size: tuple[int, int] | None = None,
               dtype: type = np.float64) -> Faces:
        """Any detector's result for one image (an object with ``boxes`` [N, 4] and optionally
        ``scores`` [N], ``landmarks`` [N, 5, 2] and ``image_size``, as numpy arrays or torch
        tensors) as Faces of ``dtype``; a missing score is 1."""
        boxes: np.ndarray = _floats(getattr(found, "boxes", np.zeros((0, 4)))).astype(dtype).reshape(-1, 4)
        scores = getattr(found, "scores", None)
        scores = np.ones(len(boxes), dtype) if scores is None else _floats(scores).astype(dtype)
        points = getattr(found, "landmarks", None)
        points = None if points is None else _floats(points).astype(dtype)
        size = getattr(found, "image_size", None) or image_size
        return cls(boxes, scores, points, None if size is None else (int(size[0]), int(size[1])), image,
                   getattr(found, "track_ids", None))

    def to_dicts(self, decimals: int = COORD_DECIMALS) -> list[dict[str, Any]]:
        """[{"box": [x1, y1, x2, y2], "score": s, "keypoints": {"left_eye": [x, y], ...}}],
        with "track_id" when the faces have track ids."""
        points, ids = self.landmarks, self.track_ids
        return [face_to_json(box, score, None if points is None else points[k], decimals=decimals,
                             track_id=None if ids is None else int(ids[k]))
                for k, (box, score) in enumerate(zip(self.boxes, self.scores))]

    def to_json(self, frame: int | None = None) -> dict[str, Any]:
        """This image as a line of the format, fields that are None left out; ``frame``: the
        index of a video's frame."""
        return compact(image_line(self.image, self.to_dicts(), self.width, self.height, frame=frame))


@dataclass
class Result:
    """One input of many: its faces, or the error that stopped it (never both).

    source: the input as given (a path, bytes, an array...); image: its pixels, uint8 RGB
    [H, W, 3], when the loop was asked to keep them (to draw or crop); None otherwise.
    """

    source: object
    faces: Faces | None = None
    error: Exception | None = None
    image: Any = field(default=None, repr=False)

    def to_json(self, image: str | None = None) -> dict[str, Any]:
        """This input as a line with every field (None where absent): ``image`` names it
        (default: the source as text)."""
        name = str(self.source) if image is None else image
        if self.faces is None:
            return image_line(name, error=str(self.error))
        return image_line(name, self.faces.to_dicts(), self.faces.width, self.faces.height)


# --------------------------------------------------------------------------- writing


def _round(v: Any, decimals: int) -> float:
    return round(float(v), decimals)


def face_to_json(box: Any, score: float | None = None, points: Any = None, ignore: bool = False,
                 decimals: int = COORD_DECIMALS, track_id: int | None = None) -> dict[str, Any]:
    """One face as a JSON object: box [4]; score or None (annotations have none); points
    [5, 2] or None (non-finite points are left out); ignore written only when true; track_id
    (a video tracker's) when given."""
    face: dict[str, Any] = {"box": [_round(v, decimals) for v in box]}
    if score is not None:
        face["score"] = _round(score, SCORE_DECIMALS)
    if track_id is not None:
        face["track_id"] = int(track_id)
    if points is not None:
        known = {name: [_round(p[0], decimals), _round(p[1], decimals)] for name, p in zip(LANDMARK_NAMES, points)
                 if math.isfinite(p[0]) and math.isfinite(p[1])}
        if known:
            face["keypoints"] = known
    if ignore:
        face["ignore"] = True
    return face


def image_line(image: str, faces: list[dict[str, Any]] | None = None, width: int | None = None,
               height: int | None = None, error: str | None = None, key: str | None = None,
               frame: int | None = None) -> dict[str, Any]:
    """One image as a line: image, width, height, faces, error (None where absent), and key
    and frame (a video frame's index) when given. A line has either faces or an error."""
    line: dict[str, Any] = {"image": image, "width": None if width is None else int(width),
                            "height": None if height is None else int(height), "faces": faces, "error": error}
    if key:
        line["key"] = key
    if frame is not None:
        line["frame"] = int(frame)
    return line


def compact(line: dict[str, Any]) -> dict[str, Any]:
    """A line without its None fields: what JSON lines hold."""
    return {k: v for k, v in line.items() if v is not None}


def write_faces_jsonl(faces: Iterable[Faces], path: str | Path) -> int:
    """Write one line per image (Faces.to_json); returns the number of lines written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with path.open("w", encoding="utf-8") as fh:
        for item in faces:
            fh.write(json.dumps(item.to_json()) + "\n")
            n += 1
    return n


# --------------------------------------------------------------------------- reading


class FaceFormatError(ValueError):
    """One face object does not follow the format (the message says which field)."""


@dataclass
class FaceJson:
    """One face object as read: box [4]; score or None; points float64 [5, 2] (NaN where not
    given) or None; ignore; attributes (name -> int); track_id or None."""

    box: list[float]
    score: float | None
    points: np.ndarray | None
    ignore: bool
    attributes: dict[str, int]
    track_id: int | None = None


def _points(keypoints: object) -> np.ndarray:
    """keypoints as {name: [x, y] or null} or as 5 (x, y) pairs / 10 values -> float64 [5, 2]."""
    points = np.full((5, 2), np.nan)
    if isinstance(keypoints, dict):
        for key, xy in keypoints.items():
            if key not in LANDMARK_NAMES:
                raise FaceFormatError(f"unknown keypoint {key!r} (known: {', '.join(LANDMARK_NAMES)})")
            if xy is None:
                continue
            try:
                if not isinstance(xy, list) or len(xy) != 2:
                    raise ValueError
                points[LANDMARK_NAMES.index(key)] = [float(xy[0]), float(xy[1])]
            except (TypeError, ValueError):
                raise FaceFormatError(f"keypoint {key!r} must be [x, y], got {str(xy)[:40]}") from None
        return points
    try:
        values = np.asarray(keypoints, np.float64)
    except (TypeError, ValueError):
        raise FaceFormatError(f"keypoints must be an object of name: [x, y], got {str(keypoints)[:60]}") from None
    if values.size != 10:
        raise FaceFormatError(f"keypoints need 5 (x, y) points, got {values.size} values")
    return values.reshape(5, 2)


def face_from_json(face: object) -> FaceJson:
    """Read one face object; FaceFormatError names what is wrong. ``keypoints`` (or
    ``landmarks``) may also be a list of 5 (x, y) pairs."""
    if not isinstance(face, dict):
        raise FaceFormatError("a face is not an object")
    box = face.get("box")
    if not isinstance(box, list) or len(box) != 4:
        raise FaceFormatError(f"'box' must be [x1, y1, x2, y2], got {str(box)[:60]}")
    try:
        box = [float(x) for x in box]
    except (TypeError, ValueError):
        raise FaceFormatError(f"'box' has a non-number: {box}") from None
    score = face.get("score")
    if score is not None:
        try:
            score = float(score)
        except (TypeError, ValueError):
            raise FaceFormatError(f"'score' must be a number, got {str(score)[:40]}") from None
    keypoints = face.get("keypoints", face.get("landmarks"))
    points = None if keypoints is None else _points(keypoints)
    ignore = face.get("ignore", False)
    if not isinstance(ignore, bool):
        raise FaceFormatError(f"'ignore' must be true or false, got {ignore!r}")
    attributes = face.get("attributes", {})
    if not isinstance(attributes, dict) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in attributes.values()
    ):
        raise FaceFormatError("'attributes' must be an object of integers")
    track_id = face.get("track_id")
    if track_id is not None and (not isinstance(track_id, int) or isinstance(track_id, bool)):
        raise FaceFormatError(f"'track_id' must be an integer, got {str(track_id)[:40]}")
    return FaceJson(box, score, points, ignore, attributes, track_id)


def stack_points(faces: list[FaceJson]) -> np.ndarray | None:
    """The points of a line's faces [N, 5, 2] (NaN for a face without), or None when no face
    has any: the difference between "no points known" and "a detector without points"."""
    if not any(f.points is not None for f in faces):
        return None
    return np.stack([f.points if f.points is not None else np.full((5, 2), np.nan) for f in faces])


def faces_from_line(line: object, where: str) -> Faces | None:
    """One line (already parsed from JSON) -> Faces named by its image; None for an error line
    (an input the detector could not read: a missing prediction, not an image without faces).
    PredictionError names ``where`` (file:line) and the problem."""
    if not isinstance(line, dict) or not isinstance(line.get("image"), str):
        raise PredictionError(f"{where}: not a prediction line (expected an object with a string 'image')")
    if "error" in line and "faces" not in line:
        log.warning("%s: %s has no prediction (%s)", where, line["image"], line["error"])
        return None
    faces = line.get("faces") or []
    if not isinstance(faces, list):
        raise PredictionError(f"{where}: not a prediction line ('faces' must be a list)")
    try:
        parsed = [face_from_json(f) for f in faces]
    except FaceFormatError as exc:
        raise PredictionError(f"{where}: {exc}") from None
    boxes = np.asarray([f.box for f in parsed], np.float64).reshape(-1, 4)
    scores = np.asarray([1.0 if f.score is None else f.score for f in parsed], np.float64)
    width, height = line.get("width"), line.get("height")
    size = (int(height), int(width)) if width is not None and height is not None else None
    with_ids = [f.track_id is not None for f in parsed]
    if any(with_ids) and not all(with_ids):
        raise PredictionError(f"{where}: 'track_id' on some faces of the line only")
    track_ids = np.asarray([f.track_id for f in parsed], np.int64) if parsed and all(with_ids) else None
    return Faces(boxes, scores, stack_points(parsed), size, line["image"], track_ids)


def read_faces_jsonl(path: str | Path) -> list[Faces]:
    """Read a JSON-lines file of this format -> Faces per image line, in file order. Blank lines
    are skipped, error lines are left out (logged); anything else raises PredictionError naming
    the file and line."""
    path = Path(path)
    out: list[Faces] = []
    with path.open("r", encoding="utf-8") as fh:
        for lineno, text in enumerate(fh, 1):
            if not text.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                line = json.loads(text)
            except ValueError as exc:
                raise PredictionError(f"{where}: not a prediction line ({exc})") from exc
            faces = faces_from_line(line, where)
            if faces is not None:
                out.append(faces)
    return out


_POINT = {"type": "array", "items": {"type": "number"}, "minItems": 2, "maxItems": 2}
FACE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["box", "score"],
    "properties": {
        "box": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4,
                "description": "x1, y1, x2, y2 in pixels"},
        "score": {"type": "number", "description": "face probability"},
        "keypoints": {"type": "object", "description": "(x, y) in pixels of each known point",
                      "properties": {name: _POINT for name in LANDMARK_NAMES}},
        "ignore": {"type": "boolean", "description": "annotations only: a face to ignore"},
        "track_id": {"type": "integer", "description": "video tracking only: the same number for the same face "
                                                        "in every frame"},
    },
}
