"""Batched crop-and-resize against cv2.resize(INTER_AREA) of each zero-padded crop."""

import multiprocessing

import cv2
import numpy as np
import pytest
import torch

from torchmtcnn.crops import crop_resize, integral_image, opencv_map


def reference_crop(img, left, top, right, bottom, size):
    h, w, _ = img.shape
    tmp = np.zeros((bottom - top, right - left, 3))
    y0, x0, y1, x1 = max(top, 0), max(left, 0), min(bottom, h), min(right, w)
    if y1 > y0 and x1 > x0:
        tmp[y0 - top : y1 - top, x0 - left : x1 - left] = img[y0:y1, x0:x1]
    return cv2.resize(tmp, (size, size), interpolation=cv2.INTER_AREA)


@pytest.mark.parametrize("method", ["opencv", "torch"])
def test_crops_equal_opencv_one_by_one(method):
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (61, 83, 3), dtype=np.uint8), rng.integers(0, 256, (40, 30, 3), dtype=np.uint8)]
    index, regions = [], []
    for _ in range(300):
        n = int(rng.integers(0, 2))
        h, w, _ = images[n].shape
        side = int(rng.integers(1, 110))
        other = max(1, side + int(rng.integers(-1, 2)))  # squares and near-squares, as the cascade cuts
        left, top = int(rng.integers(-30, w)), int(rng.integers(-30, h))
        index.append(n)
        regions.append([left, top, left + side, top + other])
    tensors = [torch.from_numpy(i) for i in images]
    for size in (12, 24, 48):
        got = crop_resize(tensors, torch.tensor(index), torch.tensor(regions, dtype=torch.float64), size, method=method)
        for k in range(len(index)):
            want = reference_crop(images[index[k]], *regions[k], size)
            np.testing.assert_allclose(got[k].numpy(), want, atol=1e-3)


def test_non_square_output_for_pyramid_levels():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (97, 131, 3), dtype=np.uint8)
    got = crop_resize([torch.from_numpy(img)], torch.tensor([0]), torch.tensor([[0.0, 0, 131, 97]]), (41, 56),
                      method="torch")
    want = cv2.resize(img.astype(np.float64), (56, 41), interpolation=cv2.INTER_AREA)
    np.testing.assert_allclose(got[0].numpy(), want, atol=1e-3)


def test_integral_image_exact_in_both_widths():
    rng = np.random.default_rng(2)
    img = torch.from_numpy(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8))
    sat = integral_image(img)
    assert sat.dtype == torch.int32 and tuple(sat.shape) == (21, 31, 3)
    assert torch.equal(sat[-1, -1].long(), img.long().sum((0, 1)))
    assert torch.equal(sat[7, 11].long(), img[:7, :11].long().sum((0, 1)))


def test_empty_batch():
    img = torch.zeros((10, 10, 3), dtype=torch.uint8)
    assert crop_resize([img], torch.zeros(0, dtype=torch.long), torch.zeros((0, 4)), 24).shape == (0, 24, 24, 3)


def test_opencv_map_keeps_order_and_runs_in_a_forked_child():
    torch.set_num_threads(2)
    image = np.random.default_rng(0).integers(0, 256, (97, 131, 3), dtype=np.uint8)
    sizes = [(131 - 9 * k, 97 - 7 * k) for k in range(8)]
    expected = [cv2.resize(image, s, interpolation=cv2.INTER_AREA) for s in sizes]
    got = opencv_map(lambda s: cv2.resize(image, s, interpolation=cv2.INTER_AREA), sizes)
    assert all(np.array_equal(a, b) for a, b in zip(got, expected))
    # A forked child inherits the pool object without its threads; it must not hang.
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(1) as pool:
        result = pool.apply_async(_sum_of_squares_in_pool, (list(range(50)),))
        assert result.get(timeout=30) == sum(x * x for x in range(50))


def _sum_of_squares_in_pool(items):
    torch.set_num_threads(2)
    return sum(opencv_map(lambda x: x * x, items))


def test_area_resize_of_a_window_is_that_part_of_the_whole_resize():
    from torchmtcnn.crops import area_resize

    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (97, 131, 3), dtype=np.uint8)
    for out_h, out_w in ((41, 56), (13, 17), (97, 131)):
        want = cv2.resize(img.astype(np.float64), (out_w, out_h), interpolation=cv2.INTER_AREA)
        whole = area_resize(torch.from_numpy(img), (0, 0, 131, 97), (out_h, out_w)).numpy()
        np.testing.assert_allclose(whole, want, atol=1e-3)
        # rows 3..11, columns 5..16 of that level: the source span they cover, by fractions
        sy, sx = 97 / out_h, 131 / out_w
        rows, cols = min(8, out_h - 3), min(11, out_w - 5)
        part = area_resize(torch.from_numpy(img), (5 * sx, 3 * sy, (5 + cols) * sx, (3 + rows) * sy), (rows, cols))
        np.testing.assert_allclose(part.numpy(), want[3 : 3 + rows, 5 : 5 + cols], atol=1e-3)
