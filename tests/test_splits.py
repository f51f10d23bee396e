"""The held-out and validation splits hash what the annotation file calls a photo, not where
the data set lies."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from torchmtcnn.data.readers import read_annotations
from torchmtcnn.data.records import FaceRecord
from torchmtcnn.data.splits import (
    hash_fraction, is_held_out, is_validation, photo_key, split_held_out, validation_records,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SHIPPED_HELDOUT = Path(__file__).resolve().parents[1] / "torchmtcnn" / "weights" / "heldout.txt"


def tiny_caltech(root: Path, n: int = 60) -> Path:
    """A Caltech-format data set of n one-face photos in root/images."""
    (root / "images").mkdir(parents=True)
    lines = []
    for i in range(n):
        cv2.imwrite(str(root / "images" / f"pic{i:05d}.jpg"), np.full((60, 80, 3), i, np.uint8))
        lines.append(f"pic{i:05d}.jpg 30 25 50 25 40 35 40 45")
    (root / "WebFaces_GroundThruth.txt").write_text("\n".join(lines) + "\n")
    return root / "WebFaces_GroundThruth.txt"


def test_two_copies_of_a_data_set_split_identically(tmp_path: Path):
    first = tiny_caltech(tmp_path / "a" / "caltech")
    shutil.copytree(tmp_path / "a", tmp_path / "elsewhere" / "deeper")
    second = tmp_path / "elsewhere" / "deeper" / "caltech" / "WebFaces_GroundThruth.txt"
    one, two = read_annotations(first).records, read_annotations(second).records
    assert [r.key for r in one] == [r.key for r in two] == [f"caltech:pic{i:05d}.jpg" for i in range(60)]
    assert one[0].image != two[0].image
    for fraction in (0.1, 0.3):
        held_one = [r.key for r in split_held_out(one, fraction, 0)[1]]
        held_two = [r.key for r in split_held_out(two, fraction, 0)[1]]
        assert held_one == held_two and 0 < len(held_one) < 60
        assert [r.key for r in validation_records(one, 0, fraction)] == \
            [r.key for r in validation_records(two, 0, fraction)]


def test_the_rule_by_hand_and_its_fallback():
    import hashlib
    import struct

    digest = hashlib.sha256(b"holdout:0:caltech:pic00001.jpg").digest()
    value = struct.unpack(">Q", digest[:8])[0] / 2.0**64
    assert hash_fraction("holdout:0", "caltech:pic00001.jpg") == value
    assert is_held_out("caltech:pic00001.jpg", 0.1, 0) == (value < 0.1)
    record = FaceRecord(Path("/data/x.jpg"), [[0, 0, 10, 10]])
    assert photo_key(record) == "/data/x.jpg"  # built in code: no key, its path
    keyed = FaceRecord(Path("/data/x.jpg"), [[0, 0, 10, 10]], key="sun2013:net_7876/x.jpg")
    assert is_validation(keyed, 3, 0.5) == is_validation("sun2013:net_7876/x.jpg", 3, 0.5)
    assert photo_key("net_7876\\x.jpg") == "net_7876/x.jpg"


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared data folder absent")
def test_the_shipped_held_out_list_is_the_recipes_split():
    from torchmtcnn.train.pipeline import read_split_sources
    from torchmtcnn.train.recipe import load_recipe

    recipe = SHIPPED_HELDOUT.with_name("recipe.toml")
    split = read_split_sources(load_recipe(recipe, SHARED))
    held = [r.key for _, _, h in split for r in h]
    assert SHIPPED_HELDOUT.read_text().split() == held
    counts = {fmt: sum(k.startswith(fmt + ":") for k in held) for fmt in ("caltech", "sun2013", "mtfl")}
    assert counts == {"caltech": 694, "sun2013": 584, "mtfl": 412}
