"""Sample generation: labels true by IoU, landmarks on their features, determinism, mining."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from torchmtcnn.boxes import iou_numpy
from torchmtcnn.data.landmark_samples import FLIP_ORDER, landmark_samples
from torchmtcnn.data.pipeline import (
    BuildReport, mine_samples, mix_counts, photo_samples, pnet_samples_of,
)
from torchmtcnn.data.records import FaceRecord
from torchmtcnn.crops import crop_square
from torchmtcnn.data.samples import (
    LABEL_LANDMARK, LABEL_NEGATIVE, LABEL_PART, LABEL_POSITIVE, SampleConfig, label_candidates,
)
from torchmtcnn.images import read_image as read_rgb

# Colours painted at the five landmarks (RGB): left eye, right eye, nose, mouth l, mouth r.
POINT_COLOURS = np.array(
    [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [255, 0, 255]], np.float32)
# Landmarks of a face box, as fractions of its width / height.
POINT_FRACTIONS = np.array([[0.3, 0.35], [0.7, 0.35], [0.5, 0.55], [0.32, 0.78], [0.68, 0.78]])


def face_patch(w: int, h: int) -> np.ndarray:
    """A face-like RGB patch: the astronaut's face if scikit-image is there, else a blob."""
    try:
        from skimage.data import astronaut

        face = astronaut()[20:220, 140:320]
    except ImportError:  # pragma: no cover
        yy, xx = np.mgrid[0:200, 0:180]
        face = np.stack([200 - yy // 2, 150 + 0 * xx, 100 + xx // 3], -1).astype(np.uint8)
    return cv2.resize(face, (w, h), interpolation=cv2.INTER_AREA)


def make_photo(path: Path, boxes: list[list[int]], shape=(240, 320), seed=0,
               ignore=None, blob: int = 5) -> FaceRecord:
    """Noise canvas with faces pasted at ``boxes`` and coloured blobs at their landmarks."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (*shape, 3), dtype=np.uint8)
    marks = []
    for x1, y1, x2, y2 in boxes:
        image[y1:y2, x1:x2] = face_patch(x2 - x1, y2 - y1)
        pts = np.array([x1, y1]) + POINT_FRACTIONS * np.array([x2 - x1, y2 - y1])
        for (px, py), colour in zip(pts, POINT_COLOURS):
            cv2.circle(image, (int(px), int(py)), blob, colour.tolist(), -1)
        # cv2.circle centres the disc on the pixel (int(px), int(py)), whose centre is +0.5
        marks.append(np.floor(pts) + 0.5)
    cv2.imwrite(str(path), image[..., ::-1])
    return FaceRecord(path, np.array(boxes, np.float32), np.array(marks, np.float32),
                      ignore=ignore)


@pytest.fixture
def photos(tmp_path: Path) -> list[FaceRecord]:
    return [
        make_photo(tmp_path / "a.png", [[40, 30, 120, 130], [200, 60, 260, 130]], seed=1),
        make_photo(tmp_path / "b.png", [[100, 50, 220, 190]], seed=2),
        make_photo(tmp_path / "c.png", [[10, 10, 70, 80], [150, 100, 170, 122],
                                        [230, 20, 300, 100]], seed=3,
                   ignore=[False, False, True]),
        make_photo(tmp_path / "d.png", [[5, 150, 15, 162], [120, 40, 200, 140]], seed=4),
    ]


def small_config(**kw) -> SampleConfig:
    return replace(SampleConfig(workers=1, negatives_per_photo=30, jitters_per_face=25), **kw)


def check_labels(samples, records, config):
    """Every label is true by the IoU of the stored crop box with the faces."""
    for k in range(len(samples)):
        rec = records[samples.photos[k]]
        crop = samples.crops[k][None].astype(np.float64)
        iou = iou_numpy(crop, rec.boxes)[0]
        side = crop[0, 2] - crop[0, 0]
        label = samples.labels[k]
        assert crop[0, 3] - crop[0, 1] == side  # square
        if label == LABEL_NEGATIVE:
            assert iou.max() < 0.3
        elif label in (LABEL_POSITIVE, LABEL_PART):
            best = iou.argmax()
            assert not rec.ignore[best]
            assert min(rec.boxes[best, 2:] - rec.boxes[best, :2]) >= config.min_face
            if label == LABEL_POSITIVE:
                assert iou[best] >= 0.65
            else:
                assert 0.4 <= iou[best] < 0.65
            face = crop[0] + samples.boxes[k] * side
            np.testing.assert_allclose(face, rec.boxes[best], atol=1e-3)
        else:
            assert label == LABEL_LANDMARK


def test_pnet_labels_are_true_by_iou(photos):
    config = small_config()
    samples = pnet_samples_of(photos, config)
    check_labels(samples, photos, config)
    counts = samples.counts()
    assert all(counts[k] > 0 for k in ("negative", "positive", "part", "landmark")), counts
    assert samples.images.shape[1:] == (12, 12, 3) and samples.images.dtype == np.uint8
    # the stored pixels are the crop of the photo at the stored box
    images = [read_rgb(r.image) for r in photos]
    for k in np.flatnonzero(samples.labels != LABEL_LANDMARK)[::17]:
        x1, y1, x2, _ = samples.crops[k].astype(int)
        expected = crop_square(images[samples.photos[k]], x1, y1, x2 - x1, 12)
        np.testing.assert_array_equal(samples.images[k], expected)


def test_ignored_and_small_faces_give_no_positives(photos):
    config = small_config(min_face=15)
    samples = pnet_samples_of(photos, config)
    check_labels(samples, photos, config)
    # photo c: face 2 is ignored; photo d: face 0 is 10 px: no positive / part / landmark
    for photo, face in ((2, 2), (3, 0)):
        rec = photos[photo]
        mine = samples.photos == photo
        iou = iou_numpy(samples.crops[mine].astype(np.float64), rec.boxes)
        kinds = samples.labels[mine]
        used = (kinds == LABEL_POSITIVE) | (kinds == LABEL_PART)
        assert not (iou[used].argmax(1) == face).any()
        marks = samples.crops[mine][kinds == LABEL_LANDMARK].astype(np.float64)
        assert (iou_numpy(marks, rec.boxes[face : face + 1]) < 0.65).all()
        assert (iou[kinds == LABEL_NEGATIVE] < 0.3).all()  # they still veto negatives


def test_crop_zero_pads_outside_the_photo():
    image = np.full((30, 40, 3), 200, np.uint8)
    out = crop_square(image, -5, -8, 20, 20)
    assert (out[:8] == 0).all() and (out[:, :5] == 0).all()
    assert (out[8:, 5:] == 200).all()
    assert crop_square(image, 100, 100, 12, 12).sum() == 0


def colour_index(pixel: np.ndarray) -> int:
    d = np.linalg.norm(POINT_COLOURS - pixel.astype(np.float32), axis=1)
    assert d.min() < 90, pixel
    return int(d.argmin())


@pytest.mark.parametrize("flip", [0.0, 1.0])
def test_landmarks_follow_features_through_flip_and_rotation(tmp_path, flip):
    rec = make_photo(tmp_path / "big.png", [[90, 40, 230, 200]], shape=(260, 320), blob=7)
    image = read_rgb(rec.image)
    config = small_config(size=48, landmark_jitters_per_face=40, rotation_prob=1.0,
                          max_rotation=15.0, flip_prob=flip)
    samples = landmark_samples(image, rec, np.random.default_rng(0), 48, config)
    assert len(samples) >= 10
    assert (samples.labels == LABEL_LANDMARK).all()
    assert ((samples.landmarks >= 0) & (samples.landmarks <= 1)).all()
    assert (iou_numpy(samples.crops.astype(np.float64), rec.boxes) >= 0.65).all()
    expected = FLIP_ORDER if flip else np.arange(5)
    rotated = 0
    for img, pts, crop in zip(samples.images, samples.landmarks, samples.crops):
        # left eye stays left of right eye, left mouth corner left of right one
        assert pts[0, 0] < pts[1, 0] and pts[3, 0] < pts[4, 0]
        for k, (x, y) in enumerate(pts * 48):
            assert colour_index(img[int(y), int(x)]) == expected[k]
        # the points are not where an unrotated crop would put them
        side = crop[2] - crop[0]
        plain = (rec.landmarks[0] - crop[:2]) / side
        if flip:
            plain = plain[FLIP_ORDER] * [-1, 1] + [1, 0]
        rotated += np.abs(plain - pts).max() > 0.02
    assert rotated >= len(samples) // 2


def test_deterministic_and_independent_of_workers(photos):
    one = pnet_samples_of(photos, small_config(workers=1, seed=7))
    two = pnet_samples_of(photos, small_config(workers=2, seed=7))
    again = pnet_samples_of(photos, small_config(workers=1, seed=7))
    other = pnet_samples_of(photos, small_config(workers=1, seed=8))
    for name in ("images", "labels", "boxes", "landmarks", "crops", "photos"):
        np.testing.assert_array_equal(getattr(one, name), getattr(two, name))
        np.testing.assert_array_equal(getattr(one, name), getattr(again, name))
    assert len(one) != len(other) or not np.array_equal(one.crops, other.crops)
    # a photo's samples do not depend on the other photos of the list
    alone = photo_samples(2, read_rgb(photos[2].image), photos[2], small_config(seed=7))
    np.testing.assert_array_equal(alone.crops, one.crops[one.photos == 2])


def test_unreadable_photos_are_reported_and_skipped(photos, tmp_path):
    bad = tmp_path / "corrupt.jpg"
    bad.write_bytes(b"not a jpeg at all")
    records = [photos[0], FaceRecord(tmp_path / "missing.png", [[0, 0, 20, 20]]),
               FaceRecord(bad, [[0, 0, 20, 20]]), photos[1]]
    report = BuildReport()
    samples = pnet_samples_of(records, small_config(workers=2), report)
    assert report.photos == 4
    assert report.failed == [str(tmp_path / "missing.png"), str(bad)]
    assert set(np.unique(samples.photos)) == {0, 3}


def test_label_candidates_labels_proposals_by_iou(photos):
    rec = photos[0]  # faces (40, 30, 120, 130) and (200, 60, 260, 130)
    boxes = np.array([
        [40, 30, 120, 130, 0.99],   # the face itself -> squared, IoU 0.8: positive
        [80, 30, 160, 130, 0.9],    # half off -> part or dropped
        [250, 150, 310, 210, 0.5],  # away from faces -> negative
        [0, 0, 0, 0, 0.1],          # empty box -> dropped
        [-30, -30, 10, 10, 0.2],    # outside the photo: zero padded negative
    ], np.float32)
    samples = label_candidates(rec, boxes, 24)
    assert samples.images.shape[1:] == (24, 24, 3)
    assert list(samples.labels[[0, -2, -1]]) == [LABEL_POSITIVE, LABEL_NEGATIVE, LABEL_NEGATIVE]
    np.testing.assert_array_equal(samples.crops[0], [30, 30, 130, 130])
    assert (samples.images[-1][:12, :12] == 0).all()
    check_labels(samples, [rec], SampleConfig(size=24))


def fake_propose(image: np.ndarray) -> np.ndarray:
    """A stand-in for the cascade (module level: spawned workers unpickle it by name)."""
    h, w = image.shape[:2]
    rng = np.random.default_rng(int(image[0, 0, 0]))
    x1 = rng.uniform(-10, w - 20, 60)
    y1 = rng.uniform(-10, h - 20, 60)
    s = rng.uniform(12, 120, 60)
    return np.stack([x1, y1, x1 + s, y1 + s * rng.uniform(0.8, 1.2, 60)], 1)


def test_mine_samples_with_a_fake_proposer(photos):
    propose = fake_propose
    config = small_config(workers=2, landmark_jitters_per_face=3)
    samples = mine_samples(photos, propose, 24, config)
    check_labels(samples, photos, config)
    assert samples.images.shape[1:] == (24, 24, 3)
    assert (samples.labels == LABEL_NEGATIVE).sum() > 0
    assert (samples.labels == LABEL_LANDMARK).sum() > 0
    same = mine_samples(photos, propose, 24, replace(config, workers=1))
    np.testing.assert_array_equal(samples.crops, same.crops)


def no_proposals(image: np.ndarray) -> np.ndarray:
    return np.zeros((0, 5), np.float32)


def test_mined_jitters_add_positives_around_faces(photos):
    config = small_config(landmark_jitters_per_face=0, mined_jitters_per_face=10)
    samples = mine_samples(photos, no_proposals, 48, config)
    check_labels(samples, photos, config)
    counts = samples.counts()
    assert counts["positive"] > 0 and counts["part"] > 0, counts
    # every crop comes from a jitter around a usable face: centre within 0.2 of its size
    for k in range(len(samples)):
        rec = photos[samples.photos[k]]
        x1, y1, x2, y2 = samples.crops[k].astype(np.float64)
        centre = np.array([(x1 + x2) / 2, (y1 + y2) / 2])
        faces = rec.boxes[~rec.ignore].astype(np.float64)
        size = faces[:, 2:] - faces[:, :2]
        near = np.abs(centre - (faces[:, :2] + faces[:, 2:]) / 2) <= 0.2 * size + 1
        assert near.all(1).any()
    # the reference's way (0) adds none: nothing proposed, nothing stored
    assert len(mine_samples(photos, no_proposals, 48, replace(config, mined_jitters_per_face=0))) == 0


def test_mix_counts_keeps_the_ratio():
    got = mix_counts({0: 1000, 1: 100, -1: 300, -2: 500}, (3, 1, 1, 2))
    assert got == {0: 300, 1: 100, -1: 100, -2: 200}
    got = mix_counts({0: 1000, 1: 400, -1: 300, -2: 0}, (3, 1, 1, 2))
    assert got == {0: 900, 1: 300, -1: 300, -2: 0}
    assert mix_counts({0: 10, 1: 10, -1: 10, -2: 10}, (1, 1, 0, 1)) == {
        0: 10, 1: 10, -1: 0, -2: 10}


def test_square_boxes_are_the_cascade_squares_rounded_to_whole_pixels():
    from torchmtcnn.data.samples import square_boxes

    rng = np.random.default_rng(3)
    xy = rng.uniform(-50, 500, (2000, 2))
    boxes = np.hstack([xy, xy + rng.uniform(0.2, 300, (2000, 2))])
    boxes[::97] = np.nan  # proposals that are not finite are dropped
    # the rule written out: side = round(max(w, h)), corners rounded around the centre
    w, h = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.round(np.maximum(w, h))
    expected = np.stack([np.round(boxes[:, 0] + w / 2 - side / 2), np.round(boxes[:, 1] + h / 2 - side / 2), side], 1)
    expected = expected[np.isfinite(expected).all(1) & (side >= 1)].astype(np.int64)
    np.testing.assert_array_equal(square_boxes(np.hstack([boxes, rng.random((2000, 1))])), expected)
