"""Every kind of input, good and bad, becomes uint8 RGB or a named ImageError."""

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from torchmtcnn.errors import ImageError
from torchmtcnn.images import list_images, load, read_image


@pytest.fixture
def rgb():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)


def test_arrays_tensors_pil_and_bytes(rgb):
    assert np.array_equal(load(rgb), rgb)
    assert np.array_equal(load(Image.fromarray(rgb)), rgb)
    assert torch.equal(load(torch.from_numpy(rgb)), torch.from_numpy(rgb))
    assert torch.equal(load(torch.from_numpy(rgb).permute(2, 0, 1)), torch.from_numpy(rgb))  # CHW
    assert torch.equal(load(torch.from_numpy(rgb).float() / 255), torch.from_numpy(rgb))
    ok, png = cv2.imencode(".png", rgb[:, :, ::-1])
    assert np.array_equal(load(png.tobytes()), rgb)


def test_grayscale_rgba_and_16_bit(rgb, tmp_path):
    gray = rgb[:, :, 0]
    assert np.array_equal(load(gray), np.repeat(gray[:, :, None], 3, 2))
    rgba = np.concatenate([rgb, np.full((20, 30, 1), 7, np.uint8)], 2)
    assert np.array_equal(load(rgba), rgb)
    wide = rgb.astype(np.uint16) * 257
    assert np.array_equal(load(wide), rgb)
    cv2.imwrite(str(tmp_path / "g.png"), gray)
    cv2.imwrite(str(tmp_path / "a.png"), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    cv2.imwrite(str(tmp_path / "w.png"), wide[:, :, ::-1])
    assert np.array_equal(read_image(tmp_path / "g.png"), np.repeat(gray[:, :, None], 3, 2))
    assert np.array_equal(read_image(tmp_path / "a.png"), rgb)
    assert np.array_equal(read_image(tmp_path / "w.png"), rgb)


def test_one_pixel_image(tmp_path):
    cv2.imwrite(str(tmp_path / "one.png"), np.zeros((1, 1, 3), np.uint8))
    assert read_image(tmp_path / "one.png").shape == (1, 1, 3)


@pytest.mark.parametrize("content, message", [
    (b"", "file is empty"),
    (b"this is not an image", "not a readable image"),
])
def test_bad_files_are_named(tmp_path, content, message):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=f"bad.jpg: {message}"):
        read_image(path)


def test_truncated_jpeg(tmp_path, rgb):
    ok, jpg = cv2.imencode(".jpg", np.tile(rgb, (10, 10, 1)))
    path = tmp_path / "cut.jpg"
    path.write_bytes(jpg.tobytes()[:200])
    with pytest.raises(ImageError, match="cut.jpg"):
        read_image(path)


def test_missing_folder_and_huge(tmp_path, rgb):
    with pytest.raises(ImageError, match="nope.jpg: no such file"):
        read_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageError, match="is a folder"):
        read_image(tmp_path)
    cv2.imwrite(str(tmp_path / "big.png"), np.zeros((300, 400, 3), np.uint8))
    with pytest.raises(ImageError, match=r"big.png: image is 400x300 = 120,000 pixels, over the limit"):
        read_image(tmp_path / "big.png", max_pixels=100_000)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((4, 4, 2), np.uint8), "expected an image of shape"),
    (np.zeros((0, 4, 3), np.uint8), "no pixels"),
    (np.full((4, 4, 3), 2.0), r"float images must hold values in \[0, 1\]"),
    (np.zeros((4, 4, 3), np.int64), "unsupported pixel type int64"),
    (torch.zeros(2, 4, 4, 3), "expected a tensor of shape"),
    (12345, "cannot read an image from a int"),
])
def test_bad_arrays(bad, message):
    with pytest.raises(ImageError, match=message):
        load(bad)


def test_list_images_folders_globs_and_missing(tmp_path, rgb):
    (tmp_path / "sub").mkdir()
    for name in ("a.jpg", "sub/b.png", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert [p.name for p in list_images([tmp_path])] == ["a.jpg", "b.png"]
    assert [p.name for p in list_images([str(tmp_path / "*.jpg")])] == ["a.jpg"]
    with pytest.raises(ImageError, match="no such file, folder or pattern"):
        list_images([tmp_path / "none*.jpg"])


def test_decompression_bomb_beyond_pils_own_limit(tmp_path, monkeypatch):
    """A header PIL itself refuses must not fall through to OpenCV's decoder."""
    cv2.imwrite(str(tmp_path / "bomb.png"), np.zeros((200, 300, 3), np.uint8))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # PIL refuses over 2x this
    with pytest.raises(ImageError, match="bomb.png: image is over the limit"):
        read_image(tmp_path / "bomb.png", max_pixels=10**9)
