"""The torch Dataset over a store: normalisation, flip with target mirroring, colour jitter."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from torchmtcnn.data.dataset import Augment, SampleDataset, flip_targets, low_resolution, normalize
from torchmtcnn.data.samples import Samples
from torchmtcnn.data.store import StoreWriter

S = 24
# the five points (x, y) in a 24 px crop, each painted with its own colour
POINTS = np.array([[6.5, 8.5], [17.5, 8.5], [12.5, 13.5], [7.5, 18.5], [16.5, 18.5]])
COLOURS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [255, 0, 255]])


def build_store(path: Path) -> Path:
    rng = np.random.default_rng(0)
    n = 6
    images = rng.integers(40, 200, (n, S, S, 3), dtype=np.uint8)
    for k, (x, y) in enumerate(POINTS):
        images[5, int(y), int(x)] = COLOURS[k]
    boxes = np.zeros((n, 4), np.float32)
    boxes[1] = [0.1, -0.05, -0.2, 0.15]  # positive: face (2.4, -1.2, 19.2, 27.6) in the crop
    boxes[2] = [-0.1, 0.2, 0.05, -0.3]   # part
    marks = np.zeros((n, 5, 2), np.float32)
    marks[5] = POINTS / S
    samples = Samples(images, np.array([0, 1, -1, 0, 0, -2], np.int8), boxes, marks,
                      np.zeros((n, 4), np.float32), np.zeros(n, np.int32))
    with StoreWriter(path, S, ["x.jpg"]) as writer:
        writer.append(samples)
    return path


@pytest.fixture
def store(tmp_path: Path) -> Path:
    return build_store(tmp_path / "store")


def test_items_are_normalised_chw_without_augmentation(store):
    data = SampleDataset(store)
    assert len(data) == 6
    item = data[1]
    raw = data.store.images[1].astype(np.float32)
    expected = torch.from_numpy((raw - 127.5) / 128).permute(2, 0, 1)
    assert item["image"].shape == (3, S, S) and item["image"].dtype == torch.float32
    torch.testing.assert_close(item["image"], expected)
    assert item["label"].dtype == torch.int64 and int(item["label"]) == 1
    torch.testing.assert_close(item["box"], torch.tensor([0.1, -0.05, -0.2, 0.15]))
    assert item["landmarks"].shape == (5, 2)
    assert normalize(np.full((2, 2, 3), 255, np.uint8)).max() == pytest.approx(127.5 / 128)


def test_flip_mirrors_image_boxes_and_landmarks(store):
    plain = SampleDataset(store)
    flipped = SampleDataset(store, Augment(flip_prob=1.0, brightness=0, contrast=0,
                                           saturation=0))
    for i in range(6):
        a, b = plain[i], flipped[i]
        torch.testing.assert_close(b["image"], a["image"].flip(-1))
    # box targets: the face box mirrored within the crop
    box = plain[1]["box"].numpy() * S + [0, 0, S, S]
    mirrored = np.array([S - box[2], box[1], S - box[0], box[3]])
    got = flipped[1]["box"].numpy() * S + [0, 0, S, S]
    np.testing.assert_allclose(got, mirrored, atol=1e-5)
    # negatives keep zero targets; points only move on landmark samples
    assert flipped[0]["box"].abs().sum() == 0 and flipped[1]["landmarks"].abs().sum() == 0
    # landmarks: mirrored, left / right swapped, and each point on its own colour
    item = flipped[5]
    image = (item["image"].permute(1, 2, 0).numpy() * 128 + 127.5).round()
    pts = item["landmarks"].numpy() * S
    assert pts[0, 0] < pts[1, 0] and pts[3, 0] < pts[4, 0]
    swapped = [1, 0, 2, 4, 3]
    for k, (x, y) in enumerate(pts):
        np.testing.assert_array_equal(image[int(y), int(x)], COLOURS[swapped[k]])
    # flipping twice gives back the targets
    box2, marks2 = flip_targets(*flip_targets(np.array([0.1, 0.2, -0.3, 0.4]), POINTS / S))
    np.testing.assert_allclose(box2, [0.1, 0.2, -0.3, 0.4], atol=1e-7)
    np.testing.assert_allclose(marks2, POINTS / S, atol=1e-7)


def test_colour_jitter_stays_in_range_and_varies(store):
    torch.manual_seed(0)
    data = SampleDataset(store, Augment(flip_prob=0.0, brightness=0.4, contrast=0.4,
                                        saturation=0.4), seed=1)
    images = torch.stack([data[0]["image"] for _ in range(8)])
    lo, hi = -127.5 / 128, 127.5 / 128
    assert images.min() >= lo - 1e-6 and images.max() <= hi + 1e-6
    assert (images[0] - images[1]).abs().max() > 0.01
    assert (images.mean(0) - SampleDataset(store)[0]["image"]).abs().mean() < 0.2


def test_low_resolution_blurs_the_crop_and_keeps_the_targets(store):
    # a checkerboard shrunk to 8 px and enlarged back to 24 loses its 1-pixel detail
    board = (np.indices((S, S)).sum(0) % 2 * 255).astype(np.float32)[..., None].repeat(3, 2)
    blurred = low_resolution(board, 8)
    assert blurred.shape == board.shape and np.abs(blurred - 127.5).max() < 20
    assert np.array_equal(low_resolution(board, S), board)
    torch.manual_seed(0)
    plain = SampleDataset(store)
    low = SampleDataset(store, Augment(flip_prob=0, brightness=0, contrast=0, saturation=0,
                                       lowres_prob=1.0, lowres_min=0.3))
    changed = 0
    for i in range(6):
        a, b = plain[i], low[i]
        torch.testing.assert_close(b["box"], a["box"])
        torch.testing.assert_close(b["landmarks"], a["landmarks"])
        assert int(b["label"]) == int(a["label"])
        # the noisy crops lose contrast when their detail goes
        changed += bool(b["image"].std() < a["image"].std() - 0.01)
    assert changed >= 4
    with pytest.raises(ValueError, match="lowres_prob"):
        Augment(lowres_prob=1.5)


def test_dim_light_by_hand_and_in_the_dataset(store):
    from torchmtcnn.data.dataset import dim_light

    grey = np.array([[[0.0, 63.75, 255.0]]], np.float32)
    rng = np.random.default_rng(0)
    # gamma 2 turns a quarter grey into a sixteenth, half the light halves it; no noise
    np.testing.assert_allclose(dim_light(grey, 2.0, 0.5, 0.0, rng), [[[0.0, 255 / 32, 127.5]]],
                               rtol=1e-6)
    noisy = dim_light(np.full((48, 48, 3), 100.0, np.float32), 1.0, 1.0, 4.0, rng)
    assert 3.0 < noisy.std() < 5.0 and abs(noisy.mean() - 100) < 0.5
    torch.manual_seed(0)
    plain = SampleDataset(store)
    no_colour = dict(flip_prob=0, brightness=0, contrast=0, saturation=0)
    dim = SampleDataset(store, Augment(**no_colour, dim_prob=1.0))
    blur = SampleDataset(store, Augment(**no_colour, blur_prob=1.0))
    for i in range(6):
        a, d, b = plain[i], dim[i], blur[i]
        for other in (d, b):  # targets never change
            torch.testing.assert_close(other["box"], a["box"])
            torch.testing.assert_close(other["landmarks"], a["landmarks"])
        assert d["image"].mean() < a["image"].mean()  # darker
        assert (b["image"] - a["image"]).abs().mean() > 0  # blurred
    with pytest.raises(ValueError, match="dim_prob must be in"):
        Augment(dim_prob=2)
    with pytest.raises(ValueError, match="blur must be a share"):
        from torchmtcnn.train.config import stage_config

        stage_config("onet", blur=-0.1)


def test_dataloader_with_workers(store):
    data = SampleDataset(store, Augment())
    loader = DataLoader(data, batch_size=4, num_workers=2, shuffle=True)
    batches = list(loader)
    assert sum(len(b["label"]) for b in batches) == 6
    assert batches[0]["image"].shape[1:] == (3, S, S)
    assert sorted(torch.cat([b["label"] for b in batches]).tolist()) == [-2, -1, 0, 0, 0, 1]
