"""The cascade's own arithmetic with a stub backend: no weights and no peer package, every
number worked out by hand from the original's rules (pixel-index boxes with "+1" widths except
in P-Net's regression, truncation before cropping, crops one pixel up-left of the box)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from torchmtcnn.cascade import Candidates, Cascade
from torchmtcnn.cascade_config import CascadeConfig, Schedule

# The photo: 60 x 80, white in its top-left 40 x 40 corner, black elsewhere.
IMAGE = np.zeros((60, 80, 3), np.uint8)
IMAGE[:40, :40] = 255
P_REG = (0.1, 0.0, -0.1, 0.05)  # P-Net's regression of the face window
R_REG = (0.0, 0.1, 0.0, -0.1)
O_REG = (0.05, -0.05, 0.0, 0.1)
O_POINTS = (0.25, 0.75, 0.5, 0.3, 0.7, 0.3, 0.3, 0.5, 0.7, 0.7)  # x1..x5, y1..y5 of the window


class StubBackend:
    """P-Net sees two windows on the first pyramid level (48 px wide), cell (y 2, x 3) at 0.9
    and cell (y 10, x 15) at 0.8; R-Net passes crops that are mostly white (0.9, else 0.1);
    O-Net gives every crop 0.99 and the same points. It records what it is given."""

    device = torch.device("cpu")

    def __init__(self) -> None:
        self.seen: dict[str, list[torch.Tensor]] = {"pnet": [], "rnet": [], "onet": []}

    def pnet(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.seen["pnet"].append(x.clone())
        n, _, h, w = x.shape
        oh, ow = math.ceil((h - 2) / 2) - 4, math.ceil((w - 2) / 2) - 4
        prob, reg = torch.zeros(n, oh, ow), torch.zeros(n, 4, oh, ow)
        if w == 48:
            prob[:, 2, 3], prob[:, 10, 15] = 0.9, 0.8
            reg[:, :, 2, 3] = torch.tensor(P_REG)
        return prob, reg

    def rnet(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.seen["rnet"].append(x.clone())
        white = x.mean(dim=(1, 2, 3)) > 127
        return torch.where(white, 0.9, 0.1), torch.tensor(R_REG).expand(len(x), 4)

    def onet(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        self.seen["onet"].append(x.clone())
        k = len(x)
        return torch.full((k,), 0.99), torch.tensor(O_REG).expand(k, 4), torch.tensor(O_POINTS).expand(k, 10)


def f32(values):
    """The stub's outputs are float32, which the cascade widens to float64."""
    return [float(np.float32(v)) for v in values]


def regress(box, reg, offset):
    reg = f32(reg)
    w, h = box[2] - box[0] + offset, box[3] - box[1] + offset
    return [box[0] + reg[0] * w, box[1] + reg[1] * h, box[2] + reg[2] * w, box[3] + reg[3] * h]


def square(box):
    w, h = box[2] - box[0], box[3] - box[1]
    side = max(w, h)
    x1, y1 = box[0] + w * 0.5 - side * 0.5, box[1] + h * 0.5 - side * 0.5
    return [x1, y1, x1 + side, y1 + side]


@pytest.fixture()
def stub() -> StubBackend:
    return StubBackend()


def test_the_cascade_by_hand_with_a_stub_backend(stub):
    found = Cascade(stub, CascadeConfig()).run([torch.from_numpy(IMAGE)])
    # P-Net: the pyramid of a 60 x 80 photo for 20 px faces, scales 0.6 * 0.709^k
    assert [tuple(x.shape[2:]) for x in stub.seen["pnet"]] == [(36, 48), (26, 35), (19, 25), (13, 18)]
    # window (y 2, x 3) of scale 0.6: ((2x + 1) / s, (2y + 1) / s, (2x + 12) / s, (2y + 12) / s),
    # truncated -> [11, 8, 30, 26]; regression with width x2 - x1 (no "+1"), squared, truncated
    first = [math.trunc(v) for v in square(regress([11.0, 8.0, 30.0, 26.0], P_REG, 0.0))]
    assert first == [11, 8, 29, 26]
    # window (y 10, x 15) -> [51, 34, 70, 53] (21 / 0.6 is 34.99... in floating point, as in the
    # original): a black crop, which R-Net refuses
    assert len(stub.seen["rnet"]) == 1 and stub.seen["rnet"][0].shape == (2, 3, 24, 24)
    assert stub.seen["rnet"][0][1].max() == 0 and stub.seen["rnet"][0][0].min() == 255
    # R-Net: regression with "+1" widths, squared (not truncated until O-Net crops)
    refined = [math.trunc(v) for v in square(regress([float(v) for v in first], R_REG, 1.0))]
    assert stub.seen["onet"][0].shape == (1, 3, 48, 48)
    # O-Net: points in the window, x = w * fx + x1 - 1 with w = x2 - x1 + 1; box regression
    w, h = refined[2] - refined[0] + 1, refined[3] - refined[1] + 1
    fx = f32(O_POINTS)
    points = [[w * fx[i] + refined[0] - 1, h * fx[5 + i] + refined[1] - 1] for i in range(5)]
    box = regress([float(v) for v in refined], O_REG, 1.0)
    assert found.image_index.tolist() == [0]
    np.testing.assert_allclose(found.boxes[0].numpy(), box, rtol=0, atol=1e-12)
    np.testing.assert_allclose(found.landmarks[0].numpy(), points, rtol=0, atol=1e-12)
    assert found.scores.tolist() == pytest.approx([0.99])


def test_the_stages_stop_where_asked_and_the_schedule_changes_no_box(stub):
    cascade = Cascade(stub, CascadeConfig())
    proposals = cascade.run([torch.from_numpy(IMAGE)], until="pnet")
    assert proposals.boxes.tolist() == [[11.0, 8.0, 29.0, 26.0], [51.0, 34.0, 70.0, 53.0]]
    assert proposals.landmarks is None and stub.seen["rnet"] == []
    assert len(cascade.run([torch.from_numpy(IMAGE)], until="rnet")) == 1 and stub.seen["onet"] == []
    # one crop per R-Net / O-Net call: the same faces (P-Net's bands are tested with the real
    # networks, test_detector.py: this stub places its windows by their position in the level)
    chunked = Cascade(StubBackend(), CascadeConfig(), Schedule(crops_per_call=(1, 1)))
    again = chunked.run([torch.from_numpy(IMAGE)])
    whole = Cascade(StubBackend(), CascadeConfig()).run([torch.from_numpy(IMAGE)])
    assert [len(x) for x in chunked.backend.seen["rnet"]] == [1, 1]
    assert torch.equal(again.boxes, whole.boxes) and torch.equal(again.landmarks, whole.landmarks)


def test_thresholds_decide_what_passes(stub):
    nothing = Cascade(stub, CascadeConfig(thresholds=(0.95, 0.7, 0.7))).run([torch.from_numpy(IMAGE)])
    assert len(nothing) == 0 and stub.seen["rnet"] == []  # P-Net's 0.9 and 0.8 are below 0.95
    both = Cascade(StubBackend(), CascadeConfig(thresholds=(0.6, 0.05, 0.7))).run([torch.from_numpy(IMAGE)])
    assert len(both) == 2  # R-Net's 0.1 passes a 0.05 threshold: the black crop goes on too


def test_a_stage_runs_on_given_boxes_and_groups_keep_them_apart(stub):
    """What the tracker does: O-Net (and R-Net) on boxes it chose, one NMS group per face."""
    cascade = Cascade(stub, CascadeConfig())
    image = [torch.from_numpy(IMAGE)]
    boxes = torch.tensor([[0.0, 0.0, 39.0, 39.0], [2.0, 2.0, 41.0, 41.0], [40.0, 20.0, 79.0, 59.0]],
                         dtype=torch.float64)

    def given(group=None):
        return Candidates(torch.zeros(3, dtype=torch.long), boxes.clone(), torch.ones(3, dtype=torch.float64),
                          group=group)

    # One image, no groups: the two overlapping boxes are one face to NMS.
    assert len(cascade.output(image, given())) == 2
    # A group each: all three stay, and each says which box it came from.
    out = cascade.output(image, given(torch.tensor([7, 8, 9])))
    assert sorted(out.group.tolist()) == [7, 8, 9]
    for k, g in enumerate(out.group.tolist()):
        np.testing.assert_allclose(out.boxes[k].numpy(), regress(boxes[g - 7].tolist(), O_REG, 1.0), atol=1e-12)
    # R-Net keeps the groups too, and passes only the white crops (the first two).
    refined = cascade.refine(image, given(torch.tensor([7, 8, 9])))
    assert sorted(refined.group.tolist()) == [7, 8]
    # Nothing left to look at: empty outputs, not an error.
    nothing = Candidates(torch.zeros(0, dtype=torch.long), torch.zeros(0, 4, dtype=torch.float64),
                         torch.zeros(0, dtype=torch.float64), group=torch.zeros(0, dtype=torch.long))
    none = cascade.output(image, nothing)
    assert len(none) == 0 and none.landmarks.shape == (0, 5, 2)
