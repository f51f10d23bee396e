"""The multi-task loss against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch

from torchmtcnn.train.losses import (
    LossWeights, box_loss, cls_loss, flatten_outputs, landmark_loss, landmark_points,
    landmark_targets, mtcnn_loss, ohem_count,
)


@pytest.mark.parametrize("n, k", [(0, 0), (1, 1), (2, 2), (3, 3), (4, 3), (10, 7), (20, 14),
                                  (100, 70), (384, 269), (7, 5)])
def test_ohem_count_is_ceil_of_70_percent(n, k):
    # 0.7 * 10 is 7.000000000000001 in floats: still 7, not 8
    assert ohem_count(n, 0.7) == k


def _logits_with_losses(losses):
    """Logits [N, 2] whose cross-entropy against label 1 is exactly ``losses``."""
    # CE = log(1 + exp(l0 - l1)) -> l0 - l1 = log(exp(loss) - 1)
    d = torch.log(torch.expm1(torch.tensor(losses, dtype=torch.float64)))
    return torch.stack([d, torch.zeros_like(d)], 1)


def test_ohem_keeps_exactly_the_hardest_70_percent():
    losses = [0.1, 2.0, 0.5, 3.0, 0.05, 1.0, 0.7, 0.2, 4.0, 0.3]
    logits = _logits_with_losses(losses)
    labels = torch.ones(10, dtype=torch.long)
    loss, kept = cls_loss(logits, labels, 0.7)
    assert kept == 7
    hardest = sorted(losses, reverse=True)[:7]
    assert loss.item() == pytest.approx(sum(hardest) / 7, rel=1e-6)
    # the 3 easiest samples get no gradient, the 7 hardest all do
    logits.requires_grad_(True)
    cls_loss(logits, labels, 0.7)[0].backward()
    has_grad = logits.grad.abs().sum(1) > 0
    easiest = sorted(range(10), key=lambda i: losses[i])[:3]
    assert has_grad.sum() == 7 and not has_grad[easiest].any()


def test_cls_loss_only_counts_negatives_and_positives():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [5.0, -5.0], [-5.0, 5.0]])
    labels = torch.tensor([0, 1, -1, -2])  # the part and landmark samples are ignored
    loss, kept = cls_loss(logits, labels, 1.0)
    expected = (math.log(1 + math.exp(-2.0)) + math.log(1 + math.exp(-1.0))) / 2
    assert kept == 2 and loss.item() == pytest.approx(expected, rel=1e-6)


def test_box_loss_on_positives_and_parts_summed_over_offsets():
    pred = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    target = torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.5, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    labels = torch.tensor([1, -1, 0])  # the negative is ignored
    loss, n = box_loss(pred, target, labels)
    assert n == 2
    assert loss.item() == pytest.approx(((0.01 + 0.04 + 0.09 + 0.16) + 0.25) / 2, rel=1e-6)


def test_landmark_layout_conversion():
    points = torch.tensor([[[0.1, 0.6], [0.2, 0.7], [0.3, 0.8], [0.4, 0.9], [0.5, 1.0]]])
    assert landmark_targets(points)[0].tolist() == pytest.approx(
        [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0])
    assert torch.equal(landmark_points(landmark_targets(points)), points)


def test_landmark_loss_compares_x_with_x_and_y_with_y():
    points = torch.tensor([[[0.1, 0.6], [0.2, 0.7], [0.3, 0.8], [0.4, 0.9], [0.5, 1.0]]])
    right = torch.tensor([[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]])
    interleaved = points.reshape(1, 10)  # x1, y1, x2, y2...: the wrong layout
    labels = torch.tensor([-2])
    assert landmark_loss(right, points, labels)[0].item() == pytest.approx(0.0, abs=1e-12)
    wrong = landmark_loss(interleaved, points, labels)[0].item()
    expected = float(((interleaved - right) ** 2).sum())
    assert wrong == pytest.approx(expected, rel=1e-6) and wrong > 0.5
    # only landmark samples count
    both = landmark_loss(torch.cat([right, interleaved]), torch.cat([points, points]),
                         torch.tensor([-2, 1]))
    assert both[1] == 1 and both[0].item() == pytest.approx(0.0, abs=1e-12)


def test_weights_and_pnet_outputs_are_flattened():
    n = 4
    logits = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 0.0], [0.0, 0.0]])
    box = torch.full((n, 4), 0.5)
    marks = torch.full((n, 10), 0.25)
    labels = torch.tensor([0, 1, -1, -2])
    boxes = torch.zeros(n, 4)
    points = torch.zeros(n, 5, 2)
    w = LossWeights(cls=1.0, box=0.5, landmark=1.0, ohem_ratio=1.0)
    flat = mtcnn_loss((logits, box, marks), labels, boxes, points, w)
    conv = mtcnn_loss((logits[..., None, None], box[..., None, None], marks[..., None, None]),
                      labels, boxes, points, w)
    ce = math.log(1 + math.exp(-1.0))
    assert flat.cls.item() == pytest.approx(ce, rel=1e-6)
    assert flat.box.item() == pytest.approx(4 * 0.25, rel=1e-6)  # positive and part
    assert flat.landmark.item() == pytest.approx(10 * 0.0625, rel=1e-6)
    assert flat.total.item() == pytest.approx(ce + 0.5 * 1.0 + 1.0 * 0.625, rel=1e-6)
    assert conv.total.item() == pytest.approx(flat.total.item(), rel=1e-7)
    with pytest.raises(ValueError):
        flatten_outputs(torch.zeros(2, 2, 3, 3))


def test_missing_kinds_give_zero_not_nan_and_backward_works():
    logits = torch.randn(3, 2, requires_grad=True)
    box = torch.randn(3, 4, requires_grad=True)
    marks = torch.randn(3, 10, requires_grad=True)
    only_negatives = torch.tensor([0, 0, 0])
    parts = mtcnn_loss((logits, box, marks), only_negatives, torch.zeros(3, 4),
                       torch.zeros(3, 5, 2))
    assert parts.box.item() == 0.0 and parts.landmark.item() == 0.0
    assert parts.n_box == 0 and parts.n_landmark == 0 and parts.n_cls == 3
    parts.total.backward()
    assert torch.isfinite(logits.grad).all() and torch.equal(box.grad, torch.zeros(3, 4))
    only_landmarks = torch.tensor([-2, -2, -2])
    parts = mtcnn_loss((logits, box, marks), only_landmarks, torch.zeros(3, 4),
                       torch.zeros(3, 5, 2))
    assert parts.cls.item() == 0.0 and parts.n_cls == 0
    assert math.isfinite(parts.total.item()) and parts.landmark.item() > 0
    empty = mtcnn_loss((torch.zeros(0, 2), torch.zeros(0, 4), torch.zeros(0, 10)),
                       torch.zeros(0, dtype=torch.long), torch.zeros(0, 4), torch.zeros(0, 5, 2))
    assert empty.total.item() == 0.0


def test_wing_loss_against_hand_computed_values():
    from torchmtcnn.train.losses import wing

    w, eps = 0.15, 0.03
    c = w - w * math.log(1 + w / eps)
    x = torch.tensor([0.0, 0.01, -0.03, 0.1499, 0.15, -0.4], dtype=torch.float64)
    expected = [0.0, w * math.log(1 + 0.01 / eps), w * math.log(2.0),
                w * math.log(1 + 0.1499 / eps), 0.15 - c, 0.4 - c]
    assert wing(x, w, eps).tolist() == pytest.approx(expected, rel=1e-12)
    # continuous at |x| = w, and steeper than squared error for small errors
    assert w - c == pytest.approx(w * math.log(1 + w / eps), rel=1e-12)
    small = torch.tensor([0.02], requires_grad=True)
    wing(small, w, eps).sum().backward()
    assert small.grad.item() == pytest.approx(w / (eps + 0.02), rel=1e-5)  # 3.0, not 2 x = 0.04


def test_landmark_loss_picks_the_wing_loss():
    labels = torch.tensor([-2, -2, 1])
    points = torch.full((3, 5, 2), 0.5)
    pred = landmark_targets(points) + torch.tensor([[0.02] * 10, [-0.3] + [0.0] * 9, [1.0] * 10])
    weights = LossWeights(landmark_loss="wing", wing_w=0.15, wing_eps=0.03)
    loss, n = landmark_loss(pred, points, labels, weights)
    c = 0.15 - 0.15 * math.log(1 + 0.15 / 0.03)
    expected = (10 * 0.15 * math.log(1 + 0.02 / 0.03) + (0.3 - c)) / 2  # summed, mean of 2
    assert n == 2 and loss.item() == pytest.approx(expected, rel=1e-5)
    l2 = landmark_loss(pred, points, labels)[0].item()
    assert l2 == pytest.approx((10 * 0.02**2 + 0.3**2) / 2, rel=1e-5)
    parts = mtcnn_loss((torch.zeros(3, 2), torch.zeros(3, 4), pred), labels, torch.zeros(3, 4),
                       points, LossWeights(cls=0, box=0, landmark=2.0, landmark_loss="wing"))
    assert parts.total.item() == pytest.approx(2 * expected, rel=1e-5)
    with pytest.raises(ValueError, match="landmark_loss must be one of"):
        LossWeights(landmark_loss="l1")
    with pytest.raises(ValueError, match="wing_w and wing_eps must be positive"):
        LossWeights(landmark_loss="wing", wing_eps=0)
