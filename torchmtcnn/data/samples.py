"""Training crops for the three MTCNN stages, labelled by their IoU with the annotated faces.

Every sample is a square crop of a photo, resized to ``size`` x ``size`` (12 for P-Net, 24 for
R-Net, 48 for O-Net), with one of four labels (the convention of the reference
implementation, AITTSMD/MTCNN-Tensorflow):

====================  =====  =================================================================
kind                  label  rule (IoU of the crop box with the faces)
====================  =====  =================================================================
negative                 0   IoU < 0.3 with *every* face, ignored and tiny faces included
positive                 1   IoU >= 0.65 with its best face, which must be usable
part face               -1   0.4 <= IoU < 0.65 with its best face, which must be usable
landmark                -2   a jittered crop of a face with 5 points (see landmark_samples)
====================  =====  =================================================================

Crops whose best IoU falls between the classes (0.3-0.4) or whose best face is ignored or too
small are dropped. Labels are always computed from the crop box actually cut, never assumed
from the way it was drawn.

Targets: positives and parts carry the offsets of their best face's sides relative to the
crop, in units of the crop side: ((gx1 - x1) / s, (gy1 - y1) / s, (gx2 - x2) / s,
(gy2 - y2) / s); landmark samples carry the 5 (x, y) points normalised to [0, 1] within the
crop. Unused targets are zero.

Crops are integer squares (x1, y1, x1 + side, y1 + side) in the photo's pixel grid; the parts
outside the photo are zero (black). Resizing uses ``cv2.INTER_AREA`` when shrinking (the
filter the detector's image pyramid uses, which does not alias) and ``cv2.INTER_LINEAR`` when
enlarging (INTER_AREA then behaves like nearest-neighbour).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
import numpy as np
import torch

from ..boxes import iou_numpy, square
from ..crops import crop_square
from ..images import read_image
from .records import FaceRecord

log = logging.getLogger(__name__)

LABEL_NEGATIVE = 0
LABEL_POSITIVE = 1
LABEL_PART = -1
LABEL_LANDMARK = -2
LABEL_NAMES: dict[int, str] = {
    LABEL_NEGATIVE: "negative",
    LABEL_POSITIVE: "positive",
    LABEL_PART: "part",
    LABEL_LANDMARK: "landmark",
}
# Order of the labels in SampleConfig.ratio.
RATIO_ORDER = (LABEL_NEGATIVE, LABEL_POSITIVE, LABEL_PART, LABEL_LANDMARK)
_DROP = np.int8(127)  # internal: a crop that is none of the kinds


@dataclass
class SampleConfig:
    """How samples are drawn, labelled and mixed.

    Attributes:
        size: side of the stored crops (12, 24 or 48).
        negative_iou / part_iou / positive_iou: the IoU thresholds of the labels.
        min_face: faces whose shorter side is below this many pixels are not used for
            positives, parts, near negatives or landmarks (they still veto negatives).
        min_crop: smallest side of a random negative crop, in photo pixels.
        negatives_per_photo: random crops drawn anywhere in each photo (P-Net).
        near_negatives_per_face: crops drawn shifted around each usable face (P-Net).
        jitters_per_face: crops jittered around each usable face for positives / parts (P-Net).
        mined_jitters_per_face: crops jittered around each usable face (as P-Net's) added to
            the cascade's proposals for R-Net and O-Net stores (0, the reference's way: none).
            Proposals that fit a face well are few, so positives can limit the whole mix.
        landmark_jitters_per_face: jittered crops tried per face with points (any stage);
            about half pass the IoU and points-inside checks. Faces with points are usually
            the scarcest kind, and limit the whole mix: 20 (twice the reference's 10).
        max_rotation: landmark crops are rotated by an angle uniform in +-max_rotation degrees
            with probability rotation_prob.
        flip_prob: probability of a horizontal flip of a landmark crop.
        ratio: negatives : positives : parts : landmarks kept in the final store; the larger
            kinds are subsampled. A 0 drops that kind.
        seed: base seed; photo i draws from numpy.random.default_rng([seed, i]).
        workers: processes generating samples (None: the CPU count; 1: in this process).
        val_fraction: fraction of photos that go to the validation split.
    """

    size: int = 12
    negative_iou: float = 0.3
    part_iou: float = 0.4
    positive_iou: float = 0.65
    min_face: float = 12.0
    min_crop: int = 12
    negatives_per_photo: int = 50
    near_negatives_per_face: int = 5
    jitters_per_face: int = 20
    mined_jitters_per_face: int = 0
    landmark_jitters_per_face: int = 20
    max_rotation: float = 15.0
    rotation_prob: float = 0.5
    flip_prob: float = 0.5
    ratio: tuple[float, float, float, float] = (3.0, 1.0, 1.0, 2.0)
    seed: int = 0
    workers: int | None = None
    val_fraction: float = 0.1


@dataclass
class Samples:
    """A batch of labelled crops (all arrays have the same first dimension N).

    Attributes:
        images: uint8 [N, S, S, 3], RGB.
        labels: int8 [N], LABEL_*.
        boxes: float32 [N, 4], box-regression targets (positives and parts; else 0).
        landmarks: float32 [N, 5, 2], points in [0, 1] of the crop (landmark samples; else 0).
        crops: float32 [N, 4], the crop box (x1, y1, x2, y2) in photo pixels, before any
            rotation or flip.
        photos: int32 [N], index of the source photo in the list of records.
    """

    images: np.ndarray
    labels: np.ndarray
    boxes: np.ndarray
    landmarks: np.ndarray
    crops: np.ndarray
    photos: np.ndarray

    @classmethod
    def empty(cls, size: int) -> Samples:
        return cls(
            np.zeros((0, size, size, 3), np.uint8), np.zeros(0, np.int8),
            np.zeros((0, 4), np.float32), np.zeros((0, 5, 2), np.float32),
            np.zeros((0, 4), np.float32), np.zeros(0, np.int32),
        )

    @classmethod
    def concat(cls, parts: list[Samples], size: int) -> Samples:
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty(size)
        return cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in _FIELDS))

    def select(self, index: np.ndarray) -> Samples:
        return Samples(*(getattr(self, f)[index] for f in _FIELDS))

    def __len__(self) -> int:
        return len(self.labels)

    def counts(self) -> dict[str, int]:
        """Samples per label name."""
        return {name: int((self.labels == lab).sum()) for lab, name in LABEL_NAMES.items()}


_FIELDS = ("images", "labels", "boxes", "landmarks", "crops", "photos")


def usable_faces(record: FaceRecord, config: SampleConfig) -> np.ndarray:
    """bool [N]: faces that may give positives, parts, near negatives and landmarks."""
    b = record.boxes
    short = np.minimum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
    return ~record.ignore & (short >= config.min_face) & np.isfinite(b).all(1)


def assign_labels(
    crops: np.ndarray, record: FaceRecord, config: SampleConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Label square crops by their IoU with the record's faces.

    crops: [K, 4] boxes -> (labels int8 [K] with 127 for dropped crops, targets float32 [K, 4]).
    """
    k = len(crops)
    labels = np.full(k, _DROP, np.int8)
    targets = np.zeros((k, 4), np.float32)
    if k == 0:
        return labels, targets
    faces = record.boxes[np.isfinite(record.boxes).all(1)] if len(record) else record.boxes
    if len(faces) == 0:
        labels[:] = LABEL_NEGATIVE
        return labels, targets
    usable = usable_faces(record, config)[np.isfinite(record.boxes).all(1)]
    iou = iou_numpy(crops, faces)
    best = iou.argmax(1)
    best_iou = iou[np.arange(k), best]
    ok = usable[best]
    labels[best_iou < config.negative_iou] = LABEL_NEGATIVE
    labels[ok & (best_iou >= config.part_iou) & (best_iou < config.positive_iou)] = LABEL_PART
    labels[ok & (best_iou >= config.positive_iou)] = LABEL_POSITIVE
    side = (crops[:, 2] - crops[:, 0]).astype(np.float64)
    regress = (faces[best].astype(np.float64) - crops) / side[:, None]
    has_target = (labels == LABEL_POSITIVE) | (labels == LABEL_PART)
    targets[has_target] = regress[has_target]
    return labels, targets


def _cut(
    image: np.ndarray, squares: np.ndarray, labels: np.ndarray, targets: np.ndarray,
    size: int, photo: int,
) -> Samples:
    """Crop the kept squares [K, 3] (x1, y1, side) -> Samples."""
    keep = labels != _DROP
    squares, labels, targets = squares[keep], labels[keep], targets[keep]
    n = len(squares)
    images = np.zeros((n, size, size, 3), np.uint8)
    for i, (x1, y1, side) in enumerate(squares.tolist()):
        images[i] = crop_square(image, x1, y1, side, size)
    crops = np.stack([squares[:, 0], squares[:, 1], squares[:, 0] + squares[:, 2],
                      squares[:, 1] + squares[:, 2]], 1).astype(np.float32) if n else \
        np.zeros((0, 4), np.float32)
    return Samples(images, labels.astype(np.int8), targets.astype(np.float32),
                   np.zeros((n, 5, 2), np.float32), crops, np.full(n, photo, np.int32))


def _boxes_of(squares: np.ndarray) -> np.ndarray:
    """[K, 3] (x1, y1, side) -> [K, 4] float64 boxes."""
    s = squares.astype(np.float64)
    return np.stack([s[:, 0], s[:, 1], s[:, 0] + s[:, 2], s[:, 1] + s[:, 2]], 1)


def jitter_squares(fx1: float, fy1: float, fx2: float, fy2: float, rng: np.random.Generator,
                   n: int) -> np.ndarray:
    """n squares jittered around one face -> int64 [n, 3] (x1, y1, side): side in
    [0.8 min(w, h), 1.25 max(w, h)], centre moved by up to 0.2 of the face size (as the
    reference's positives and parts); they may stick out of the photo."""
    w, h = fx2 - fx1, fy2 - fy1
    lo, hi = int(min(w, h) * 0.8), int(np.ceil(1.25 * max(w, h)))
    side = rng.integers(max(lo, 1), max(hi, lo + 1) + 1, n)
    dx = rng.uniform(-0.2 * w, 0.2 * w, n)
    dy = rng.uniform(-0.2 * h, 0.2 * h, n)
    x1 = np.floor(fx1 + w / 2 + dx - side / 2)
    y1 = np.floor(fy1 + h / 2 + dy - side / 2)
    return np.stack([x1, y1, side], 1).astype(np.int64)


def face_jitter_boxes(record: FaceRecord, rng: np.random.Generator, config: SampleConfig,
                      n: int) -> np.ndarray:
    """n jittered squares around each usable face of a photo, as float64 boxes [K, 4]."""
    faces = record.boxes[usable_faces(record, config)].astype(np.float64)
    if n <= 0 or len(faces) == 0:
        return np.zeros((0, 4), np.float64)
    return _boxes_of(np.concatenate([jitter_squares(x1, y1, x2, y2, rng, n) for x1, y1, x2, y2 in faces]))


def pnet_candidates(
    shape: tuple[int, int], record: FaceRecord, rng: np.random.Generator, config: SampleConfig
) -> np.ndarray:
    """The P-Net crop squares of one photo, before labelling -> int64 [K, 3] (x1, y1, side).

    As the reference's gen_12net_data: random squares anywhere (side in [min_crop, min(H, W)
    / 2)), squares shifted around each usable face (same sides, kept inside the photo), and
    squares jittered around each usable face (side in [0.8 min(w, h), 1.25 max(w, h)], centre
    moved by up to 0.2 of the face size), which may stick out of the photo (zero padding).
    """
    height, width = shape
    parts: list[np.ndarray] = []
    max_side = min(width, height) // 2
    if max_side > config.min_crop and config.negatives_per_photo > 0:
        n = config.negatives_per_photo
        side = rng.integers(config.min_crop, max_side, n)
        x1 = rng.integers(0, width - side + 1)
        y1 = rng.integers(0, height - side + 1)
        parts.append(np.stack([x1, y1, side], 1))
    faces = record.boxes[usable_faces(record, config)].astype(np.float64)
    for fx1, fy1, fx2, fy2 in faces:
        w, h = fx2 - fx1, fy2 - fy1
        if max_side > config.min_crop and config.near_negatives_per_face > 0:
            n = config.near_negatives_per_face
            side = rng.integers(config.min_crop, max_side, n)
            dx = rng.uniform(np.maximum(-side, -fx1), w)
            dy = rng.uniform(np.maximum(-side, -fy1), h)
            sq = np.stack([np.floor(fx1 + dx), np.floor(fy1 + dy), side], 1).astype(np.int64)
            inside = (sq[:, 0] >= 0) & (sq[:, 1] >= 0) & (sq[:, 0] + sq[:, 2] <= width) & (
                sq[:, 1] + sq[:, 2] <= height)
            parts.append(sq[inside])
        if config.jitters_per_face > 0:
            parts.append(jitter_squares(fx1, fy1, fx2, fy2, rng, config.jitters_per_face))
    if not parts:
        return np.zeros((0, 3), np.int64)
    return np.concatenate(parts).astype(np.int64)


def pnet_samples(
    image: np.ndarray, record: FaceRecord, rng: np.random.Generator, config: SampleConfig,
    photo: int = 0,
) -> Samples:
    """Negatives, positives and parts of one photo for P-Net (see pnet_candidates).

    image: uint8 [H, W, 3] RGB -> Samples of size config.size, labelled by their true IoU.
    When faces crowd the photo, random squares are redrawn (up to 3 more rounds) for the ones
    that were not negatives, so that each photo gives about negatives_per_photo negatives.
    """
    squares = pnet_candidates(image.shape[:2], record, rng, config)
    labels, targets = assign_labels(_boxes_of(squares), record, config)
    all_sq, all_lab, all_tg = [squares], [labels], [targets]
    height, width = image.shape[:2]
    max_side = min(width, height) // 2
    missing = config.negatives_per_photo - int((labels == LABEL_NEGATIVE).sum())
    for _ in range(3):
        if missing <= 0 or max_side <= config.min_crop:
            break
        side = rng.integers(config.min_crop, max_side, missing)
        sq = np.stack([rng.integers(0, width - side + 1), rng.integers(0, height - side + 1),
                       side], 1)
        lab, tg = assign_labels(_boxes_of(sq), record, config)
        lab[lab != LABEL_NEGATIVE] = _DROP  # only the missing negatives are wanted here
        all_sq.append(sq)
        all_lab.append(lab)
        all_tg.append(tg)
        missing -= int((lab == LABEL_NEGATIVE).sum())
    return _cut(image, np.concatenate(all_sq), np.concatenate(all_lab),
                np.concatenate(all_tg), config.size, photo)


def as_boxes(boxes: np.ndarray) -> np.ndarray:
    """Proposed boxes [K, >=4] (scores may follow), or an empty array of any shape for a photo
    the cascade proposed nothing for -> float64 [K, 4]."""
    b = np.asarray(boxes, np.float64)
    return b.reshape(len(b), -1)[:, :4] if b.size else np.zeros((0, 4))


def square_boxes(boxes: np.ndarray) -> np.ndarray:
    """Proposed boxes [K, >=4] -> integer squares [K, 3] (x1, y1, side) around their centres,
    side = round(max(w, h)) (``boxes.square``), corners rounded to whole pixels."""
    squared = square(torch.from_numpy(as_boxes(boxes)), round_side=True).numpy()
    x1, y1 = np.round(squared[:, 0]), np.round(squared[:, 1])
    side = np.round(squared[:, 2] - squared[:, 0])
    sq = np.stack([x1, y1, side], 1)
    return sq[np.isfinite(sq).all(1) & (side >= 1)].astype(np.int64)


def label_candidates(
    record: FaceRecord, candidate_boxes: np.ndarray, size: int,
    image: np.ndarray | None = None, config: SampleConfig | None = None, photo: int = 0,
) -> Samples:
    """Label boxes proposed by the earlier cascade stages (hard-example mining).

    Each box is squared around its centre (square_boxes), cut from the photo with zero padding,
    resized to size x size and labelled by its IoU with the faces; crops between the classes
    are dropped.

    record: the photo's faces; candidate_boxes: [K, 4] (or [K, 5] with scores) in photo pixels;
    image: the photo, uint8 [H, W, 3] RGB (read from record.image when None) -> Samples.
    Raises ImageError when the photo has to be read and cannot be.
    """
    config = config or SampleConfig(size=size)
    if image is None:
        image = read_image(record.image)
    squares = square_boxes(candidate_boxes)
    labels, targets = assign_labels(_boxes_of(squares), record, config)
    return _cut(image, squares, labels, targets, size, photo)
