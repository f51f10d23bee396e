"""The video tracker (track.py) on synthetic frames: portraits pasted on a plain background and
moved. Exact where the behaviour is exact: detection frames are the cascade's own result, full
detections come on the frames the schedule says, ids are the same numbers throughout."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from torchmtcnn import MTCNN, ImageError
from torchmtcnn.assets import group_photo
from torchmtcnn.boxes import iou_numpy
from torchmtcnn.smoothing import OneEuro
from torchmtcnn.track import Tracker
from torchmtcnn.track_config import TrackerConfig

BACKGROUND = (120, 130, 140)


@pytest.fixture(scope="module")
def portraits(astronaut, grace_hopper) -> list[np.ndarray]:
    """Two faces with shoulders, about 90 px wide: uint8 RGB crops."""
    import cv2

    crops = [astronaut[10:250, 140:320], grace_hopper[0:300, 60:460]]
    return [cv2.resize(c, None, fx=96 / c.shape[1], fy=96 / c.shape[1], interpolation=cv2.INTER_AREA) for c in crops]


def scene(size: tuple[int, int], placed: list[tuple[np.ndarray, int, int]]) -> np.ndarray:
    """A frame of ``size`` (height, width) with each (crop, x, y) pasted, clipped at the edges."""
    h, w = size
    frame = np.empty((h, w, 3), np.uint8)
    frame[:] = BACKGROUND
    for crop, x, y in placed:
        ch, cw = crop.shape[:2]
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + cw, w), min(y + ch, h)
        if x1 > x0 and y1 > y0:
            frame[y0:y1, x0:x1] = crop[y0 - y : y1 - y, x0 - x : x1 - x]
    return frame


def test_a_moving_face_keeps_its_track_id_and_is_followed_by_onet(detector, portraits):
    tracker = detector.tracker(detect_every=10)
    ids, centres = [], []
    for t in range(20):  # 5 px a frame to the right, 2 down
        faces = tracker.update(scene((240, 360), [(portraits[0], 20 + 5 * t, 30 + 2 * t)]))
        assert len(faces) == 1, t
        ids.append(int(faces.track_ids[0]))
        centres.append((faces.boxes[0, :2] + faces.boxes[0, 2:]) / 2)
    assert ids == [ids[0]] * 20
    step = np.diff(np.array(centres), axis=0)
    assert np.abs(step - [5, 2]).max() < 2.5  # the box follows the face, frame by frame
    s = tracker.stats
    assert (s.detections, s.scheduled, s.after_loss, s.scene_cuts) == (2, 1, 0, 0)  # frames 0 and 10 only
    assert s.followed == 18  # every other frame: O-Net on the face's box


def test_detection_frames_are_the_cascades_own_result(detector, portraits):
    tracker = detector.tracker(detect_every=4)
    for t in range(9):
        frame = scene((240, 320), [(portraits[0], 10 + 3 * t, 20), (portraits[1], 200 - 2 * t, 90)])
        faces = tracker.update(frame)
        assert (tracker.detected is not None) == (t % 4 == 0)
        if tracker.detected:
            reference = detector.detect(frame)
            np.testing.assert_array_equal(faces.boxes, reference.boxes)
            np.testing.assert_array_equal(faces.scores, reference.scores)
            np.testing.assert_array_equal(faces.landmarks, reference.landmarks)
        assert len(faces) == 2 and sorted(faces.track_ids.tolist()) == [0, 1]


def test_a_face_that_leaves_is_dropped(detector, portraits):
    tracker = detector.tracker(detect_every=30)
    counts, ids = [], set()
    for t in range(16):  # out through the right edge at 20 px a frame
        faces = tracker.update(scene((240, 320), [(portraits[0], 160 + 20 * t, 40)]))
        counts.append(len(faces))
        ids.update(faces.track_ids.tolist())
    assert counts[0] == 1 and counts[-4:] == [0, 0, 0, 0]
    assert ids == {0}  # never another face, never another id
    gone = counts.index(0)
    # Once gone it stays gone, and losing it cost one full detection, on the frame it went.
    assert counts[gone:] == [0] * (16 - gone)
    assert tracker.stats.after_loss == 1 and tracker.stats.detections == 2


def test_a_face_that_vanishes_is_not_reported_in_that_frame(detector, portraits):
    tracker = detector.tracker(detect_every=30)
    both = [(portraits[0], 20, 40), (portraits[1], 200, 40)]
    assert len(tracker.update(scene((240, 320), both))) == 2
    faces = tracker.update(scene((240, 320), both))
    left = int(faces.track_ids[faces.boxes[:, 0].argmin()])
    faces = tracker.update(scene((240, 320), both[:1]))  # the one on the right is gone at once
    assert faces.track_ids.tolist() == [left]
    # Searched locally and not found: lost, with no full detection while another face is followed.
    assert tracker.detected is None and tracker.stats.lost == 1 and tracker.stats.searches == 1
    faces = tracker.update(scene((240, 320), []))  # the last one goes: a full detection at once
    assert len(faces) == 0 and tracker.detected == "lost" and tracker.stats.detections == 2


def test_a_new_face_is_found_by_the_next_full_detection(detector, portraits):
    every = 5
    tracker = detector.tracker(detect_every=every)
    seen = []
    for t in range(12):  # a second face walks in at frame 2
        placed = [(portraits[0], 20, 40)] + ([(portraits[1], 190, 60)] if t >= 2 else [])
        seen.append(len(tracker.update(scene((240, 320), placed))))
    # Full detections run on frames 0, 5, 10: the face is reported from frame 5, within the
    # promised `detect_every` frames of its arrival (frames 2-6), and never before.
    assert seen == [1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2]
    assert tracker.stats.detections == 3 and tracker.stats.scene_cuts == 0


def test_at_the_defaults_a_new_face_waits_at_most_detect_every_frames(detector, portraits):
    every = TrackerConfig().detect_every
    tracker = detector.tracker()
    first_seen = None
    for t in range(every + 2):  # the second face is there from frame 1 on
        placed = [(portraits[0], 20, 40)] + ([(portraits[1], 190, 60)] if t >= 1 else [])
        if len(tracker.update(scene((240, 320), placed))) == 2 and first_seen is None:
            first_seen = t
    assert first_seen == every  # its `every`-th frame (frames 1 .. every), the next full detection
    assert tracker.stats.detections == 2


def test_a_scene_cut_gets_a_full_detection_and_new_ids(detector):
    first, second = group_photo(320, 240, 2, 0), group_photo(320, 240, 3, 5)
    tracker = detector.tracker(detect_every=100)
    for _ in range(3):
        before = tracker.update(first)
    assert tracker.detected is None and len(before) == 2
    after = tracker.update(second)
    assert tracker.detected == "scene cut" and tracker.stats.scene_cuts == 1
    reference = detector.detect(second)
    np.testing.assert_array_equal(after.boxes, reference.boxes)
    assert not set(after.track_ids.tolist()) & set(before.track_ids.tolist())
    tracker.update(second)
    assert tracker.detected is None  # a still scene is no cut


@pytest.mark.parametrize("bad, message", [
    (None, "cannot read an image from a NoneType"),
    (np.zeros((0, 0, 3), np.uint8), "no pixels"),
    (np.zeros((240, 320, 3), np.int32), "unsupported pixel type int32"),
    (np.full((240, 320, 3), 2.0, np.float32), "float images must hold values in [0, 1]"),
    (np.zeros((240, 320, 5), np.uint8), "expected an image of shape"),
])
def test_bad_frames_raise_a_clear_error_and_the_stream_goes_on(detector, portraits, bad, message):
    tracker = detector.tracker()
    frame = scene((240, 320), [(portraits[0], 40, 40)])
    first = tracker.update(frame)
    with pytest.raises(ImageError, match=r"Tracker.update: frame 1: ") as caught:
        tracker.update(bad)
    assert message in str(caught.value)
    again = tracker.update(frame)  # nothing was changed by the bad frame
    assert again.track_ids.tolist() == first.track_ids.tolist() and tracker.detected is None


def test_a_frame_of_another_size_resets_the_tracker(detector, portraits, caplog):
    tracker = detector.tracker(detect_every=50)
    small = tracker.update(scene((240, 320), [(portraits[0], 40, 40)]))
    with caplog.at_level(logging.WARNING, logger="torchmtcnn.track"):
        big = tracker.update(scene((480, 640), [(portraits[0], 40, 40)]))
    assert "frame 1 is 640x480, the frames before 320x240: tracker reset" in caplog.text
    assert tracker.detected == "first" and len(big) == 1
    assert big.track_ids.tolist() != small.track_ids.tolist()  # ids are never reused
    assert big.image_size == (480, 640)


def test_tensors_grey_and_float_frames_are_taken_like_detect_takes_them(detector, portraits):
    tracker = detector.tracker()
    frame = scene((240, 320), [(portraits[0], 40, 40)])
    a = tracker.update(torch.from_numpy(frame))
    b = tracker.update(frame.astype(np.float32) / 255)
    assert a.track_ids.tolist() == b.track_ids.tolist() == [0]


def test_config_errors_name_the_setting(detector):
    for changes, name in [({"detect_every": 0}, "detect_every"), ({"scene_cut": 1.5}, "scene_cut"),
                          ({"match_iou": 0}, "match_iou"), ({"remember": -1}, "remember"),
                          ({"search_margin": 9}, "search_margin"), ({"smoothing": 3}, "smoothing"),
                          ({"confirm_below": 2}, "confirm_below"), ({"confirm_doubted": -0.1}, "confirm_doubted")]:
        with pytest.raises(ValueError, match=name):
            detector.tracker(**changes)
    with pytest.raises(TypeError):
        detector.tracker(detect_evry=3)
    assert isinstance(detector.tracker(TrackerConfig(detect_every=3)), Tracker)


def test_smoothing_changes_the_boxes_but_not_the_faces_or_ids(detector, portraits):
    plain = detector.tracker(detect_every=5)
    smooth = detector.tracker(detect_every=5, smoothing=OneEuro())
    for t in range(10):
        frame = scene((240, 320), [(portraits[0], 20 + 6 * t, 40)])
        a, b = plain.update(frame), smooth.update(frame)
        assert a.track_ids.tolist() == b.track_ids.tolist() == [0]
        assert iou_numpy(a.boxes, b.boxes)[0, 0] > 0.7
        if t:  # a moving face: the smoothed box lags behind, never ahead
            assert 0 < a.boxes[0, 0] - b.boxes[0, 0] < 12  # within 2 frames of 6 px


def test_the_onnxruntime_backend_tracks_the_same(original_weights, portraits, detector):
    ort = MTCNN(weights=original_weights, device="cpu", backend="onnxruntime").tracker(detect_every=5)
    ours = detector.tracker(detect_every=5)
    for t in range(8):
        frame = scene((240, 320), [(portraits[0], 20 + 4 * t, 40), (portraits[1], 200, 30 + 3 * t)])
        a, b = ours.update(frame), ort.update(frame)
        assert a.track_ids.tolist() == b.track_ids.tolist()
        np.testing.assert_allclose(a.boxes, b.boxes, atol=0.05)
    assert ort.stats.followed == ours.stats.followed == 12


def test_the_shipped_weights_track_the_bundled_photos_faces(portraits):
    tracker = MTCNN(device="cpu").tracker(detect_every=5)
    for t in range(8):
        faces = tracker.update(scene((240, 320), [(portraits[0], 20 + 4 * t, 40), (portraits[1], 200, 30)]))
        assert sorted(faces.track_ids.tolist()) == [0, 1], t


def test_propose_window_over_the_whole_photo_is_propose(detector, astronaut):
    image = torch.from_numpy(np.ascontiguousarray(astronaut))
    whole = detector.cascade.propose([image])
    window = detector.cascade.propose_window(image, (0, 0, image.shape[1], image.shape[0]), 0)
    assert len(whole) > 20
    assert torch.equal(whole.boxes, window.boxes) and torch.equal(whole.scores, window.scores)
    # levels whose window spans 40-80 px only: the 12 px windows of those levels alone
    band = detector.cascade.propose_window(image, (0, 0, image.shape[1], image.shape[0]), 40, 80)
    sides = (band.boxes[:, 2] - band.boxes[:, 0]).numpy()
    assert 0 < len(band) < len(whole) and sides.min() > 40 * 0.7 and sides.max() < 80 * 1.6


def test_a_weak_or_doubted_face_is_confirmed_by_the_local_search(detector, portraits):
    frames = [scene((240, 360), [(portraits[1], 60 + 4 * t, 40)]) for t in range(8)]
    never = detector.tracker(confirm_below=0.0, confirm_doubted=0.0)
    always = detector.tracker(confirm_below=1.0)
    for frame in frames:
        a, b, c = never.update(frame), always.update(frame), detector.detect(frame)
        assert len(a) == len(b) == len(c) == 1
        assert iou_numpy(a.boxes, c.boxes)[0, 0] > 0.8 and iou_numpy(b.boxes, c.boxes)[0, 0] > 0.8
    assert never.stats.searches == 0 and never.stats.followed == 7
    assert always.stats.searches == always.stats.found_by_search == 7  # every followed frame, found
    # A face a search once failed to confirm is confirmed whenever O-Net scores it under confirm_doubted.
    doubted = detector.tracker(confirm_below=0.0, confirm_doubted=1.0)
    doubted.update(frames[0])
    search = doubted._search
    doubted._search = lambda image, box: None  # type: ignore[method-assign]
    doubted.config = TrackerConfig(confirm_below=1.0, confirm_doubted=1.0)  # this frame: search, and fail
    # not confirmed: lost; the last face lost sets off a full detection, which finds it again
    assert doubted.update(frames[1]).track_ids.tolist() == [0] and doubted.detected == "lost"
    assert doubted.stats.lost == 1
    doubted._search = search  # type: ignore[method-assign]
    doubted.config = TrackerConfig(confirm_below=0.0, confirm_doubted=1.0)
    for frame in frames[2:]:
        assert len(doubted.update(frame)) == 1
    assert doubted.stats.searches == 1 + 6 and doubted.stats.found_by_search == 6
