"""Box operations against brute-force versions written the slow, obvious way."""

import itertools

import numpy as np
import pytest
import torch

from torchmtcnn import boxes as B


def brute_overlap(a, b, mode, offset):
    out = np.zeros((len(a), len(b)))
    for i, j in itertools.product(range(len(a)), range(len(b))):
        w = max(0.0, min(a[i][2], b[j][2]) - max(a[i][0], b[j][0]) + offset)
        h = max(0.0, min(a[i][3], b[j][3]) - max(a[i][1], b[j][1]) + offset)

        def area(r):
            return max(0.0, r[2] - r[0] + offset) * max(0.0, r[3] - r[1] + offset)

        denom = area(a[i]) + area(b[j]) - w * h if mode == "union" else min(area(a[i]), area(b[j]))
        out[i, j] = w * h / denom
    return out


def brute_nms(boxes, scores, thr, mode, offset):
    """The original MTCNN NMS: take the best, drop what overlaps it by more than thr, repeat."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    keep = []
    while order:
        i = order.pop(0)
        keep.append(i)
        order = [j for j in order if brute_overlap([boxes[i]], [boxes[j]], mode, offset)[0, 0] <= thr]
    return keep


def random_boxes(rng, n, spread=200, max_side=80):
    xy = rng.integers(0, spread, (n, 2)).astype(float)
    wh = rng.integers(1, max_side, (n, 2)).astype(float)
    return np.concatenate([xy, xy + wh], 1)


@pytest.mark.parametrize("mode", ["union", "min"])
@pytest.mark.parametrize("offset", [0.0, 1.0])
def test_overlap_matches_brute_force(mode, offset):
    rng = np.random.default_rng(1)
    a, b = random_boxes(rng, 30), random_boxes(rng, 20)
    got = B.box_overlap(torch.from_numpy(a), torch.from_numpy(b), mode, offset).numpy()
    np.testing.assert_allclose(got, brute_overlap(a, b, mode, offset), rtol=1e-12, atol=1e-12)


def test_iou_known_values():
    a = torch.tensor([[0.0, 0, 10, 10]])
    b = torch.tensor([[0.0, 0, 10, 10], [5, 0, 15, 10], [10, 10, 20, 20], [2, 2, 4, 4]])
    np.testing.assert_allclose(B.box_iou(a, b).numpy()[0], [1.0, 50 / 150, 0.0, 4 / 100])
    assert B.box_overlap(a, b, "min").numpy()[0, 3] == 1.0  # a small box inside a big one


@pytest.mark.parametrize("seed", range(12))
def test_nms_matches_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 120))
    boxes = random_boxes(rng, n, spread=int(rng.integers(20, 400)))
    scores = rng.random(n).round(1)  # many ties: the order must still be the greedy one
    thr = float(rng.choice([0.3, 0.5, 0.7]))
    mode = str(rng.choice(["union", "min"]))
    offset = float(rng.choice([0.0, 1.0]))
    got = B.nms(torch.from_numpy(boxes), torch.from_numpy(scores), thr, mode, offset).tolist()
    assert got == brute_nms(boxes, scores, thr, mode, offset)


def test_nms_in_bounded_steps_gives_the_same_result(monkeypatch):
    rng = np.random.default_rng(7)
    boxes, scores = torch.from_numpy(random_boxes(rng, 300, 300)), torch.from_numpy(rng.random(300))
    full = B.nms(boxes, scores, 0.5).tolist()
    monkeypatch.setattr(B, "NMS_BLOCK", 8)  # 64-element steps
    assert B.nms(boxes, scores, 0.5).tolist() == full


def test_nms_empty_and_single():
    assert B.nms(torch.zeros((0, 4)), torch.zeros(0), 0.5).numel() == 0
    assert B.nms(torch.tensor([[0.0, 0, 5, 5]]), torch.tensor([0.9]), 0.5).tolist() == [0]


def test_batched_nms_never_suppresses_across_groups():
    boxes = torch.tensor([[0.0, 0, 10, 10], [0, 0, 10, 10], [1, 1, 10, 10]], dtype=torch.float64)
    scores = torch.tensor([0.9, 0.8, 0.7], dtype=torch.float64)
    assert B.batched_nms(boxes, scores, torch.tensor([0, 1, 0]), 0.5).tolist() == [0, 1]
    rng = np.random.default_rng(3)
    b = torch.from_numpy(random_boxes(rng, 80))
    s = torch.from_numpy(rng.random(80))
    g = torch.from_numpy(rng.integers(0, 4, 80))
    got = sorted(B.batched_nms(b, s, g, 0.5, offset=1.0).tolist())
    want = sorted(int(i) for k in range(4)
                  for i in (g == k).nonzero().squeeze(1)[B.nms(b[g == k], s[g == k], 0.5, offset=1.0)])
    assert got == want


def test_regression_square_clip():
    box = torch.tensor([[10.0, 20, 29, 59]])
    reg = torch.tensor([[0.1, -0.1, 0.0, 0.5]])
    # widths with the original "+1": 20 x 40
    assert B.apply_regression(box, reg, offset=1.0).tolist() == [[12.0, 16.0, 29.0, 79.0]]
    np.testing.assert_allclose(B.apply_regression(box, reg, offset=0.0).numpy(), [[11.9, 16.1, 29.0, 78.5]], rtol=1e-6)
    sq = B.square(torch.tensor([[0.0, 0, 10, 30]]))
    assert sq.tolist() == [[-10.0, 0.0, 20.0, 30.0]]
    assert B.clip_boxes(sq, 15, 25).tolist() == [[0.0, 0.0, 15.0, 25.0]]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.int64, torch.float32])
def test_nms_takes_any_real_dtype(dtype):
    boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [21, 20, 31, 30]]).to(dtype)
    scores = torch.tensor([2, 3, 1, 5]).to(dtype)
    assert B.nms(boxes, scores, 0.5).tolist() == [3, 1]
