"""Score calibration: the logit shift, the counting, the search, and the O-Net cut it relies on."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

import torchmtcnn.train.calibrate as calibration
from torchmtcnn import MTCNN
from torchmtcnn.assets import ASSETS
from torchmtcnn.data.records import FaceRecord
from torchmtcnn.errors import MTCNNError
from torchmtcnn.nets import build_nets, face_probability
from torchmtcnn.weights import read_metadata, read_weights, save_weights


def _sigmoid(x: torch.Tensor) -> torch.Tensor:
    return 1 / (1 + torch.exp(-x))


def test_shift_raises_each_face_logit_by_its_shift():
    torch.manual_seed(0)
    nets = build_nets()
    tensors = {f"{n}.{k}": v for n, net in nets.items() for k, v in net.state_dict().items()}
    shifted = calibration.shift_face_logits(tensors, (0.0, 1.5, -0.75))
    assert torch.equal(shifted["pnet.cls.bias"], tensors["pnet.cls.bias"])
    assert not torch.equal(shifted["rnet.cls.bias"], tensors["rnet.cls.bias"])  # input kept
    after = build_nets()
    for n, net in after.items():
        net.load_state_dict({k.partition(".")[2]: v for k, v in shifted.items() if k.startswith(n + ".")})
    for name, size, shift in (("rnet", 24, 1.5), ("onet", 48, -0.75)):
        x = torch.randn(5, 3, size, size)
        p = face_probability(nets[name](x)[0]).double()
        q = face_probability(after[name](x)[0]).double()
        expected = _sigmoid(torch.log(p / (1 - p)) + shift)
        torch.testing.assert_close(q, expected, rtol=0, atol=1e-6)
    with pytest.raises(MTCNNError, match="no pnet.cls.bias"):
        calibration.shift_face_logits({}, (0, 0, 0))


def test_found_and_false_counts_by_hand():
    records = [FaceRecord("a.jpg", [[0, 0, 10, 10], [20, 20, 30, 30]]),
               FaceRecord("b.jpg", [[0, 0, 10, 10], [50, 50, 60, 60]], ignore=[False, True])]
    boxes = [np.array([[0, 0, 10, 10], [21, 21, 31, 31], [80, 80, 90, 90]], float),
             np.array([[50, 50, 60, 60], [1, 1, 11, 11]], float)]
    scores = [np.array([0.9, 0.5, 0.3]), np.array([0.95, 0.2])]
    got = calibration.found_and_false(records, boxes, scores, [0.1, 0.4, 0.6, 0.99])
    # found counts faces not ignored; a detection on an ignored face is not false
    assert got.tolist() == [[3, 1], [2, 0], [1, 0], [0, 0]]


def test_search_takes_most_faces_within_the_budget(monkeypatch):
    # one face per photo; at R-Net threshold t2 a photo's face is proposed when t2 <= its
    # "r" value, with O-Net score "o"; every photo also holds a false box scored "f"
    r = [0.9, 0.8, 0.6, 0.45, 0.3]
    o = [0.9, 0.8, 0.5, 0.4, 0.35]
    f = [0.2, 0.6, 0.1, 0.55, 0.1]
    records = [FaceRecord(f"{i}.jpg", [[0, 0, 20, 20]]) for i in range(5)]

    def fake(weights, thresholds, recs, device, progress):
        assert thresholds[0] == 0.6 and thresholds[2] == min(calibration.ONET_GRID)
        boxes, scores = [], []
        for i in range(5):
            b, s = [[40, 40, 60, 60]], [f[i]]
            if thresholds[1] <= r[i]:
                b.append([0, 0, 20, 20])
                s.append(o[i])
            boxes.append(np.array(b, float))
            scores.append(np.array(s))
        return boxes, scores

    monkeypatch.setattr(calibration, "_detections", fake)
    result = calibration.calibrate("w", records, max_false_positives=0.2)
    # defaults (0.7, 0.7): faces 0, 1 found, no false box -> 2/5
    assert result.before == (0.4, 0.0)
    # at most 1 false box in 5 photos needs t3 > 0.55, which only faces 0 and 1 pass: no
    # point beats the defaults, and ties keep the thresholds nearest them, the defaults
    assert result.recall == 0.4 and result.false_positives == 0.0
    assert result.thresholds == (0.6, 0.7, 0.7) and result.shifts == (0.0, 0.0, 0.0)

    looser = calibration.calibrate("w", records, max_false_positives=0.4)
    # 2 false boxes allowed: t3 in (0.2, 0.35] finds every face once R-Net's threshold is
    # at most 0.3; of those, 0.3 and 0.35 lie nearest the defaults
    assert looser.recall == 1.0 and looser.false_positives == 0.4
    assert looser.thresholds == (0.6, 0.3, 0.35)
    assert looser.shifts[1] == pytest.approx(math.log(0.7 / 0.3) - math.log(0.3 / 0.7))
    assert looser.shifts[2] == pytest.approx(math.log(0.7 / 0.3) - math.log(0.35 / 0.65))

    with pytest.raises(MTCNNError, match="validation photos"):
        calibration.calibrate("w", [], max_false_positives=0.1)
    with pytest.raises(MTCNNError, match="max_false_positives"):
        calibration.calibrate("w", records, max_false_positives=-1)


def test_a_low_onet_threshold_cut_higher_keeps_what_the_higher_threshold_keeps():
    # the search cuts one run's O-Net scores instead of re-running: this must be exact
    image = str(ASSETS / "group.jpg")
    low = MTCNN(thresholds=(0.6, 0.7, 0.05), device="cpu").detect(image)
    for t3 in (0.3, 0.7, 0.95):
        high = MTCNN(thresholds=(0.6, 0.7, t3), device="cpu").detect(image)
        kept = low.scores >= t3
        assert kept.sum() == len(high) > 0
        np.testing.assert_allclose(low.boxes[kept], high.boxes, atol=1e-4)
        np.testing.assert_allclose(low.scores[kept], high.scores, atol=1e-6)


def test_shifted_weights_at_the_defaults_find_what_the_chosen_thresholds_find(tmp_path, monkeypatch):
    from torchmtcnn.weights import resolve_weights

    source = resolve_weights(None)
    # thresholds above the defaults: shifts that lower the scores, so that no score of the
    # calibrated file saturates to 1.0 in float32 where the source's does not (a tie there
    # would let the last NMS keep the other of two boxes)
    chosen = (0.6, 0.9, 0.9)
    shifts = (0.0, math.log(0.7 / 0.3) - math.log(0.9 / 0.1), math.log(0.7 / 0.3) - math.log(0.9 / 0.1))
    result = calibration.Calibration(chosen, shifts, 0.9, 0.01, (0.8, 0.0), 3, 3, 0.05)
    monkeypatch.setattr(calibration, "calibrate", lambda *a, **k: result)
    out = tmp_path / "calibrated.safetensors"
    calibration.calibrate_file(source, [], out)
    meta = read_metadata(out)
    assert json.loads(meta["calibration"])["thresholds"] == list(chosen)
    assert meta["name"] == read_metadata(source)["name"]
    assert torch.equal(read_weights(out)["onet.cls.weight"], read_weights(source)["onet.cls.weight"])
    image = str(ASSETS / "group.jpg")
    calibrated = MTCNN(weights=out, device="cpu").detect(image)
    reference = MTCNN(weights=source, thresholds=chosen, device="cpu").detect(image)
    assert len(calibrated) == len(reference) > 0
    np.testing.assert_allclose(calibrated.boxes, reference.boxes, atol=1e-3)
    np.testing.assert_allclose(calibrated.landmarks, reference.landmarks, atol=1e-3)
    p = torch.tensor(reference.scores, dtype=torch.float64).clamp(1e-9, 1 - 1e-9)
    expected = _sigmoid(torch.log(p / (1 - p)) + shifts[2]).numpy()
    np.testing.assert_allclose(calibrated.scores, expected, atol=1e-4)
    # writing over the input file works (the file is staged first)
    copy = tmp_path / "copy.safetensors"
    save_weights(read_weights(source), copy, {"name": "x"})
    calibration.calibrate_file(copy, [], copy)
    assert "calibration" in read_metadata(copy)


def test_cli_calibrate(tmp_path, capsys):
    from torchmtcnn.cli import main

    # the faces of the group photo as the shipped weights find them, as annotations
    image = ASSETS / "group.jpg"
    faces = MTCNN(device="cpu").detect(str(image))
    line = {"image": str(image), "faces": [{"box": [float(v) for v in b]} for b in faces.boxes]}
    annotations = tmp_path / "val.jsonl"
    annotations.write_text(json.dumps(line) + "\n")
    out = tmp_path / "calibrated.safetensors"
    argv = ["train", "calibrate", str(tmp_path / "missing.safetensors"), "--annotations",
            f"jsonl:{annotations}", "--out", str(out), "--no-progress", "--device", "cpu"]
    assert main(argv) == 2
    assert "missing.safetensors: no such weight file" in capsys.readouterr().err
    from torchmtcnn.weights import resolve_weights

    argv[2] = str(resolve_weights(None))
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert f"1 photos, {len(faces)} faces" in printed and "recall 1.0000 -> 1.0000" in printed
    saved = json.loads(read_metadata(out)["calibration"])
    assert saved["recall"] == 1.0 and saved["false_positives"] <= 0.05
    # every face already found without a false one: nothing to gain, the defaults stay
    assert saved["shifts"] == [0.0, 0.0, 0.0]
