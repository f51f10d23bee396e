"""The one face result and its one JSON format: written once, read once, the same for
detections, batch rows, prediction sets and annotation files."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from torchmtcnn.data.readers import read_annotations
from torchmtcnn.data.readers.jsonl import record_to_json
from torchmtcnn.data.records import FaceRecord
from torchmtcnn.errors import PredictionError
from torchmtcnn.faces import (
    LANDMARK_NAMES,
    Faces,
    FaceFormatError,
    Result,
    face_from_json,
    read_faces_jsonl,
    write_faces_jsonl,
)

POINTS = np.array([[10.123, 20.456], [30.0, 20.0], [20.0, 30.0], [12.0, 40.0], [28.0, 40.0]])


def one_face(image: str = "a.jpg") -> Faces:
    return Faces(np.array([[1.23456, 2.0, 40.5, 50.999]], np.float32), np.array([0.987654321], np.float32),
                 POINTS[None].astype(np.float32), (60, 80), image)


def test_one_rounding_for_every_writer(tmp_path):
    faces = one_face()
    (face,) = faces.to_dicts()
    assert face["box"] == [1.23, 2.0, 40.5, 51.0] and face["score"] == 0.987654
    assert list(face["keypoints"]) == list(LANDMARK_NAMES) and face["keypoints"]["left_eye"] == [10.12, 20.46]
    # a batch row, a saved prediction and an annotation carry the same face objects
    row = Result("a.jpg", faces=faces).to_json()
    assert row == {"image": "a.jpg", "width": 80, "height": 60, "faces": [face], "error": None}
    assert faces.to_json() == {"image": "a.jpg", "width": 80, "height": 60, "faces": [face]}
    record = FaceRecord("a.jpg", faces.boxes, faces.landmarks, key="jsonl:a.jpg")
    line = record_to_json(record, "a.jpg")
    assert line == {"image": "a.jpg", "faces": [{k: v for k, v in face.items() if k != "score"}],
                    "key": "jsonl:a.jpg"}
    error = Result("b.jpg", error=ValueError("b.jpg: no such file")).to_json()
    assert error == {"image": "b.jpg", "width": None, "height": None, "faces": None, "error": "b.jpg: no such file"}


def test_written_faces_read_back(tmp_path):
    path = tmp_path / "p.jsonl"
    no_points = Faces([[0, 0, 10, 10], [5, 5, 9, 9]], [0.5, 0.25], image="c.png")
    assert write_faces_jsonl([one_face(), no_points, Faces.empty(image="d.png")], path) == 3
    with path.open("a") as f:
        f.write(json.dumps({"image": "bad.jpg", "error": "bad.jpg: not a readable image"}) + "\n\n")
    a, c, d = read_faces_jsonl(path)  # the error line is a missing prediction, left out
    assert (a.image, a.image_size, a.width, a.height) == ("a.jpg", (60, 80), 80, 60)
    np.testing.assert_allclose(a.boxes, [[1.23, 2.0, 40.5, 51.0]])
    np.testing.assert_allclose(a.landmarks[0], POINTS, atol=0.005)
    assert a.boxes.dtype == np.float64 and a.scores.tolist() == [0.987654]
    assert c.landmarks is None and c.image_size is None and c.scores.tolist() == [0.5, 0.25]
    assert len(d) == 0 and d.image == "d.png"


def test_annotations_and_predictions_share_the_reader(tmp_path):
    face = {"box": [1, 2, 30, 40], "keypoints": {"left_eye": [10, 12], "nose": None}, "ignore": True}
    parsed = face_from_json(face)
    assert parsed.box == [1.0, 2.0, 30.0, 40.0] and parsed.score is None and parsed.ignore
    assert parsed.points[0].tolist() == [10, 12] and np.isnan(parsed.points[1:]).all()
    listed = face_from_json({"box": [1, 2, 3, 4], "score": 0.5, "landmarks": POINTS.tolist()})
    np.testing.assert_array_equal(listed.points, POINTS)
    for bad, words in [({"box": [1, 2, 3]}, "'box' must be"), ({"box": [1, 2, 3, 4], "score": "x"}, "'score'"),
                       ({"box": [1, 2, 3, 4], "keypoints": {"chin": [1, 1]}}, "unknown keypoint 'chin'"),
                       ({"box": [1, 2, 3, 4], "keypoints": [1, 2]}, r"5 \(x, y\) points, got 2")]:
        with pytest.raises(FaceFormatError, match=words):
            face_from_json(bad)
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps({"image": "x.jpg", "faces": [{"box": [1, 1, 5, 5], "keypoints": {"chin": [1, 1]}}]}))
    with pytest.raises(PredictionError, match=r"x.jsonl:1: unknown keypoint 'chin'"):
        read_faces_jsonl(path)
    # the same line as an annotation: the face is reported and skipped, not raised
    problems = read_annotations(path, check_images=False).problems
    assert len(problems) == 2 and "unknown keypoint 'chin'" in problems[0].message


def test_faces_from_any_detector_result():
    class Found:
        boxes = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
        landmarks = torch.zeros(1, 5, 2)

    faces = Faces.coerce(Found(), "a.jpg", (10, 20))
    assert faces.boxes.dtype == np.float64 and faces.scores.tolist() == [1.0]  # no scores: 1
    assert faces.landmarks.shape == (1, 5, 2) and faces.image_size == (10, 20) and faces.image == "a.jpg"
    with pytest.raises(ValueError, match="2 boxes, 1 scores"):
        Faces(np.zeros((2, 4)), [0.5])


def test_track_ids_are_written_and_read_back(tmp_path):
    faces = Faces(np.array([[1, 2, 30, 40], [50, 2, 80, 40]], np.float32), [0.9, 0.8], POINTS[None].repeat(2, 0),
                  (60, 80), "clip.mp4", track_ids=[3, 11])
    line = faces.to_json(frame=7)
    assert line["frame"] == 7 and [f["track_id"] for f in line["faces"]] == [3, 11]
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(line) + "\n" + json.dumps(one_face().to_json()) + "\n")
    tracked, still = read_faces_jsonl(path)
    assert tracked.track_ids.dtype == np.int64 and tracked.track_ids.tolist() == [3, 11]
    assert still.track_ids is None and "track_id" not in one_face().to_dicts()[0]
    line["faces"][1].pop("track_id")
    path.write_text(json.dumps(line) + "\n")
    with pytest.raises(PredictionError, match="'track_id' on some faces of the line only"):
        read_faces_jsonl(path)
    with pytest.raises(FaceFormatError, match="'track_id' must be an integer"):
        face_from_json({"box": [1, 2, 3, 4], "track_id": "3"})
    with pytest.raises(ValueError, match="2 boxes, 1 track ids"):
        Faces(np.zeros((2, 4)), [0.5, 0.5], track_ids=[1])
