"""The packed store: exact round trip, memory mapping, split by photo, mixed builds."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from torchmtcnn.boxes import iou_numpy
from torchmtcnn.data.pipeline import build_mined_store, build_pnet_store
from torchmtcnn.data.records import FaceRecord
from torchmtcnn.data.samples import SampleConfig, Samples
from torchmtcnn.data.splits import is_validation
from torchmtcnn.data.store import SampleStore, StoreError, StoreWriter, find_stores, merge_stores


def random_samples(n: int, size: int, seed: int, photo0: int = 0) -> Samples:
    rng = np.random.default_rng(seed)
    return Samples(
        rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
        rng.choice(np.array([0, 1, -1, -2], np.int8), n),
        rng.normal(size=(n, 4)).astype(np.float32),
        rng.random((n, 5, 2)).astype(np.float32),
        rng.uniform(-5, 300, (n, 4)).astype(np.float32),
        (photo0 + rng.integers(0, 3, n)).astype(np.int32),
    )


def test_round_trip_is_exact(tmp_path: Path):
    parts = [random_samples(n, 12, seed) for seed, n in enumerate([5, 0, 17, 1])]
    with StoreWriter(tmp_path / "s", 12, ["p0.jpg", "p1.jpg", "p2.jpg"], {"seed": 3}) as w:
        for p in parts:
            w.append(p)
    store = SampleStore(tmp_path / "s")
    whole = Samples.concat(parts, 12)
    assert len(store) == 23 and store.size == 12 and store.meta["seed"] == 3
    for name in ("images", "labels", "boxes", "landmarks", "crops", "photos"):
        arr = getattr(store, name)
        assert isinstance(arr, np.memmap)
        assert arr.dtype == getattr(whole, name).dtype
        np.testing.assert_array_equal(arr, getattr(whole, name))
    assert store.counts == whole.counts()
    item = store[7]
    np.testing.assert_array_equal(item["image"], whole.images[7])
    assert item["label"] == whole.labels[7]
    assert store.photo_path(7) == f"p{whole.photos[7]}.jpg"
    # plain numpy reads the files too
    np.testing.assert_array_equal(np.load(tmp_path / "s" / "boxes.npy"), whole.boxes)


def test_merged_store_keeps_every_sample_and_its_photo(tmp_path: Path):
    a, b = random_samples(11, 12, 0), random_samples(7, 12, 1)
    with StoreWriter(tmp_path / "a", 12, ["a0.jpg", "a1.jpg", "a2.jpg"], {"seed": 3, "sources": ["x"]}) as w:
        w.append(a)
    with StoreWriter(tmp_path / "b", 12, ["b0.jpg", "b1.jpg", "b2.jpg"], {"seed": 9, "sources": ["y"]}) as w:
        w.append(b)
    merged = merge_stores([tmp_path / "a", tmp_path / "b"], tmp_path / "ab", chunk=4)
    assert len(merged) == 18 and merged.meta["seed"] == 3 and merged.meta["sources"] == ["x", "y"]
    whole = Samples.concat([a, b], 12)
    for name in ("images", "labels", "boxes", "landmarks", "crops"):
        np.testing.assert_array_equal(getattr(merged, name), getattr(whole, name))
    assert [merged.photo_path(i) for i in range(18)] == (
        [f"a{i}.jpg" for i in a.photos] + [f"b{i}.jpg" for i in b.photos])
    assert merged.counts == whole.counts()
    with StoreWriter(tmp_path / "c", 24) as w:
        w.append(random_samples(2, 24, 2))
    with pytest.raises(StoreError, match="different crop sizes"):
        merge_stores([tmp_path / "a", tmp_path / "c"], tmp_path / "ac")
    with pytest.raises(StoreError, match="would overwrite"):
        merge_stores([tmp_path / "a", tmp_path / "b"], tmp_path / "b")
    assert len(SampleStore(tmp_path / "b")) == 7


def test_cli_merges_stage_folders(tmp_path: Path, capsys):
    from torchmtcnn.cli import main

    for stage, seed in (("one", 0), ("two", 5)):
        for split, n in (("train", 6), ("val", 2)):
            with StoreWriter(tmp_path / stage / split, 12, ["p0.jpg", "p1.jpg", "p2.jpg"]) as w:
                w.append(random_samples(n, 12, seed + n))
    assert main(["data", "merge", str(tmp_path / "one"), str(tmp_path / "two"), "--out", str(tmp_path / "all")]) == 0
    assert len(SampleStore(tmp_path / "all" / "train")) == 12 and len(SampleStore(tmp_path / "all" / "val")) == 4
    assert "train: 12 samples" in capsys.readouterr().out


def test_empty_and_incomplete_stores(tmp_path: Path):
    with StoreWriter(tmp_path / "empty", 24) as w:
        w.append(Samples.empty(24))
    store = SampleStore(tmp_path / "empty")
    assert len(store) == 0 and store.images.shape == (0, 24, 24, 3)
    w = StoreWriter(tmp_path / "open", 12)
    w.append(random_samples(3, 12, 0))
    with pytest.raises(StoreError):
        SampleStore(tmp_path / "open")  # not closed: no meta.json
    w.close()
    assert len(SampleStore(tmp_path / "open")) == 3
    with pytest.raises(StoreError):
        StoreWriter(tmp_path / "bad", 12).append(random_samples(2, 24, 0))
    with pytest.raises(StoreError):
        find_stores(tmp_path / "nothing")


def test_validation_split_is_a_function_of_path_and_seed():
    paths = [f"/data/photo_{i:05d}.jpg" for i in range(4000)]
    first = [is_validation(p, 0, 0.1) for p in paths]
    assert first == [is_validation(p, 0, 0.1) for p in paths]
    assert 0.08 < np.mean(first) < 0.12
    assert first != [is_validation(p, 1, 0.1) for p in paths]
    assert not any(is_validation(p, 0, 0.0) for p in paths)
    assert all(is_validation(p, 0, 1.0) for p in paths)
    # a larger fraction only adds photos to validation
    wider = [is_validation(p, 0, 0.3) for p in paths]
    assert all(w for f, w in zip(first, wider) if f)


def make_records(tmp_path: Path, n: int) -> list[FaceRecord]:
    rng = np.random.default_rng(0)
    records = []
    for i in range(n):
        image = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
        x, y, s = int(rng.integers(0, 80)), int(rng.integers(0, 40)), int(rng.integers(30, 70))
        image[y : y + s, x : x + s] = (200, 150, 120)
        path = tmp_path / f"img{i:03d}.png"
        cv2.imwrite(str(path), image)
        marks = np.array([x, y]) + np.array(
            [[0.3, 0.3], [0.7, 0.3], [0.5, 0.5], [0.35, 0.75], [0.65, 0.75]]) * s
        records.append(FaceRecord(path, [[x, y, x + s, y + s]], marks[None]))
    return records


def test_build_splits_by_photo_and_mixes(tmp_path: Path):
    records = make_records(tmp_path, 30)
    config = SampleConfig(workers=2, seed=5, val_fraction=0.3, negatives_per_photo=20,
                          landmark_jitters_per_face=6)
    report = build_pnet_store(records, tmp_path / "pnet", config, sources=["test:list"])
    assert report.photos == 30 and not report.failed
    assert not (tmp_path / "pnet" / "_raw").exists()
    train, val = SampleStore(tmp_path / "pnet" / "train"), SampleStore(tmp_path / "pnet" / "val")
    assert find_stores(tmp_path / "pnet") == [train.path, val.path]
    train_photos = {train.photo_path(i) for i in range(len(train))}
    val_photos = {val.photo_path(i) for i in range(len(val))}
    assert train_photos and val_photos and not train_photos & val_photos
    assert all(is_validation(p, 5, 0.3) for p in val_photos)
    assert not any(is_validation(p, 5, 0.3) for p in train_photos)
    for store in (train, val):
        assert store.meta["stage"] == "pnet" and store.meta["sources"] == ["test:list"]
        c = store.counts
        # the limiting kind is all kept (it gives the unit); the others floor(unit * ratio)
        unit = max(c["negative"] / 3, c["positive"], c["part"], c["landmark"] / 2)
        assert c == {"negative": int(unit * 3), "positive": int(unit), "part": int(unit),
                     "landmark": int(unit * 2)}
        # labels are still true by the stored crop boxes
        for i in np.flatnonzero(np.asarray(store.labels) == 0):
            rec = records[int(store.photos[i])]
            assert iou_numpy(store.crops[i][None].astype(np.float64), rec.boxes).max() < 0.3
    meta = json.loads((tmp_path / "pnet" / "train" / "meta.json").read_text())
    assert meta["seed"] == 5 and meta["size"] == 12 and len(meta["photos"]) == 30
    # the same build again is identical
    build_pnet_store(records, tmp_path / "again", SampleConfig(**{**config.__dict__,
                                                                  "workers": 1}))
    again = SampleStore(tmp_path / "again" / "train")
    np.testing.assert_array_equal(again.images, train.images)
    np.testing.assert_array_equal(again.crops, train.crops)


def grid_propose(image: np.ndarray) -> np.ndarray:
    """A stand-in for the cascade (module level: spawned workers unpickle it by name)."""
    grid = np.arange(0, 120, 15, dtype=np.float32)
    xs, ys = np.meshgrid(grid, grid[:6])
    return np.stack([xs, ys, xs + 40, ys + 40], -1).reshape(-1, 4)


def test_build_mined_store_with_a_fake_proposer(tmp_path: Path):
    records = make_records(tmp_path, 8)
    propose = grid_propose
    report = build_mined_store(records, propose, 24, tmp_path / "rnet",
                               SampleConfig(workers=2, val_fraction=0.0))
    train = SampleStore(tmp_path / "rnet" / "train")
    assert train.size == 24 and train.meta["stage"] == "rnet"
    assert len(SampleStore(tmp_path / "rnet" / "val")) == 0
    assert report.counts["train"] == train.counts and len(train) > 0


def test_cli_inspect_prints_counts_and_draws_a_sheet(tmp_path: Path, capsys):
    import argparse

    from torchmtcnn.cli import data as cli_data

    records = make_records(tmp_path, 6)
    build_pnet_store(records, tmp_path / "pnet", SampleConfig(workers=1, val_fraction=0.3))
    parser = argparse.ArgumentParser()
    cli_data.register(parser.add_subparsers())
    args = parser.parse_args(["data", "inspect", str(tmp_path / "pnet"), "--sheet",
                              str(tmp_path / "sheet.png"), "--count", "20"])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "train" in out and "negative" in out and "landmark" in out
    sheet = cv2.imread(str(tmp_path / "sheet.png"))
    assert sheet is not None and sheet.shape == (3 * 96, 8 * 96, 3)
    from torchmtcnn.data.readers import parse_source

    assert parse_source("sun2013:a/b.txt") == ("sun2013", "a/b.txt")
    assert parse_source("C:/x/wider.txt") == (None, "C:/x/wider.txt")
