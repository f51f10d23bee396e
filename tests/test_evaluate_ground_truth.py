"""The ground truth of an evaluation: annotation files joined, FDDB guessed, image names."""

from __future__ import annotations

import json

import pytest

from torchmtcnn.errors import MTCNNError
from torchmtcnn.evaluate.ground_truth import (
    ANNOTATION_FORMATS,
    guess_annotation_format,
    image_names,
    load_ground_truth,
)


def test_files_join_in_order_and_names_are_relative_to_the_root(tmp_path):
    root = tmp_path / "imgs"
    for k, name in enumerate(("a.jsonl", "b.jsonl")):
        (tmp_path / name).write_text(json.dumps({"image": f"sub/{k}.jpg", "faces": [{"box": [1, 1, 9, 9]}]}) + "\n"
                                     + json.dumps({"image": f"x{k}.jpg", "faces": []}) + "\n")
    records = load_ground_truth([tmp_path / "a.jsonl", tmp_path / "b.jsonl"], images_root=root)
    assert image_names(records, root) == ["sub/0.jpg", "x0.jpg", "sub/1.jpg", "x1.jpg"]
    assert image_names(records) == [r.image.as_posix() for r in records]  # no root: as read
    assert len(load_ground_truth([tmp_path / "a.jsonl", tmp_path / "b.jsonl"], limit=3)) == 3
    with pytest.raises(MTCNNError, match="nothere.jsonl: annotation file not found"):
        load_ground_truth([tmp_path / "nothere.jsonl"])


def test_fddb_is_guessed_from_the_names_and_formats_are_the_readers_plus_fddb(tmp_path):
    fold = tmp_path / "FDDB-fold-01-ellipseList.txt"
    fold.write_text("2002/08/11/big/img_591\n1\n40 30 0 100 100 1\n")
    assert guess_annotation_format([fold]) == "fddb" and guess_annotation_format([tmp_path / "a.jsonl"]) is None
    (record,) = load_ground_truth([fold])
    assert str(record.image) == "2002/08/11/big/img_591" and len(record) == 1
    assert ANNOTATION_FORMATS == ("wider", "wider-mat", "sun2013", "mtfl", "caltech", "jsonl", "fddb")
    with pytest.raises(MTCNNError, match="unknown annotation format 'xml'"):
        load_ground_truth([fold], fmt="xml")
