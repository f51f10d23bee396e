"""ONNX export: checked files, metadata, dynamic shapes, parity with the torch nets, bad inputs."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from torchmtcnn.cli import main
from torchmtcnn.errors import MTCNNError, WeightsError
from torchmtcnn.export import ExportError, read_onnx_metadata, to_onnx
from torchmtcnn.nets import build_nets
from torchmtcnn.weights import load_into, read_weights


@pytest.fixture(scope="module")
def exported(original_weights, tmp_path_factory) -> dict[str, Path]:
    return to_onnx(tmp_path_factory.mktemp("onnx"), weights=original_weights)


@pytest.fixture(scope="module")
def torch_nets(original_weights) -> dict[str, torch.nn.Module]:
    nets = build_nets()
    load_into(nets, read_weights(original_weights), original_weights)
    return {k: v.eval() for k, v in nets.items()}


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_three_files_pass_the_checker(exported):
    assert sorted(exported) == ["onet", "pnet", "rnet"]
    for name, path in exported.items():
        assert path.name == f"{name}.onnx" and path.is_file()
        onnx.checker.check_model(onnx.load(str(path)), full_check=True)


def test_metadata_tells_a_consumer_what_to_feed_and_read(exported):
    from torchmtcnn import __version__

    for name, path in exported.items():
        meta = read_onnx_metadata(path)
        assert meta["network"] == name
        assert meta["input_size"] == {"pnet": "12", "rnet": "24", "onet": "48"}[name]
        assert meta["pixel_normalisation"].startswith("(pixel - 127.5) / 128")
        assert meta["channel_order"] == "RGB" and meta["layout"] == "NCHW"
        assert meta["thresholds"] == "0.6,0.7,0.7"
        assert meta["weights_name"] == "mtcnn-original" and meta["weights_version"] == "1"
        assert meta["torchmtcnn_version"] == __version__
        outs = [o.name for o in _session(path).get_outputs()]
        assert meta["outputs"].split(",") == outs
    onet = read_onnx_metadata(exported["onet"])
    assert onet["outputs"] == "prob,box,landmarks"
    assert onet["landmark_order"] == "left_eye,right_eye,nose,mouth_left,mouth_right"
    assert onet["landmark_layout"].startswith("x1..x5 then y1..y5")
    # The original P-Net and R-Net have no trained landmark head: no landmark output.
    assert read_onnx_metadata(exported["pnet"])["outputs"] == "prob,box"


def _torch_outputs(net: torch.nn.Module, x: np.ndarray, landmarks: bool) -> list[np.ndarray]:
    with torch.no_grad():
        logits, box, points = net(torch.from_numpy(x))
    out = [torch.softmax(logits, 1)[:, 1].numpy(), box.numpy()]
    return out + [points.numpy()] if landmarks else out


@pytest.mark.parametrize("shape", [(1, 3, 12, 12), (1, 3, 37, 64), (3, 3, 120, 90)])
def test_pnet_dynamic_size_matches_torch(exported, torch_nets, shape):
    x = np.random.default_rng(sum(shape)).uniform(-1, 1, shape).astype(np.float32)
    got = _session(exported["pnet"]).run(None, {"image": x})
    want = _torch_outputs(torch_nets["pnet"], x, False)
    h = int(np.ceil((shape[2] - 2) / 2)) - 4
    w = int(np.ceil((shape[3] - 2) / 2)) - 4
    assert got[0].shape == (shape[0], h, w) and got[1].shape == (shape[0], 4, h, w)
    for g, t in zip(got, want):
        np.testing.assert_allclose(g, t, atol=1e-4)


@pytest.mark.parametrize("batch", [1, 7])
@pytest.mark.parametrize("name", ["rnet", "onet"])
def test_rnet_onet_dynamic_batch_matches_torch(exported, torch_nets, name, batch):
    size = 24 if name == "rnet" else 48
    x = np.random.default_rng(batch).uniform(-1, 1, (batch, 3, size, size)).astype(np.float32)
    got = _session(exported[name]).run(None, {"image": x})
    want = _torch_outputs(torch_nets[name], x, name == "onet")
    assert [g.shape for g in got] == [t.shape for t in want]
    assert got[0].shape == (batch,)
    for g, t in zip(got, want):
        np.testing.assert_allclose(g, t, atol=1e-4)


def test_plain_onnxruntime_on_a_photo(exported, astronaut, detector):
    """P-Net on one normalised pyramid level and O-Net on a face crop, with onnxruntime alone."""
    face = detector.detect(astronaut)
    x1, y1, x2, y2 = face.boxes[0]
    # P-Net at the scale where the face is about 12 px: a confident window on the face.
    scale = 12.0 / (x2 - x1)
    level = cv2.resize(astronaut, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    x = ((level.astype(np.float32) - 127.5) / 128).transpose(2, 0, 1)[None]
    prob, box = _session(exported["pnet"]).run(None, {"image": x})
    j, i = np.unravel_index(prob[0].argmax(), prob[0].shape)
    assert prob[0, j, i] > 0.9
    wx, wy = 2 * i / scale, 2 * j / scale  # window's top-left in the photo
    assert abs(wx - x1) < (x2 - x1) / 2 and abs(wy - y1) < (y2 - y1) / 2
    # O-Net on the 48 x 48 crop of the face box.
    crop = cv2.resize(astronaut[int(y1):int(y2), int(x1):int(x2)], (48, 48), interpolation=cv2.INTER_AREA)
    x = ((crop.astype(np.float32) - 127.5) / 128).transpose(2, 0, 1)[None]
    prob, box, points = _session(exported["onet"]).run(None, {"image": x})
    assert prob.shape == (1,) and prob[0] > 0.95
    xs, ys = points[0, :5], points[0, 5:]
    assert ((0 < xs) & (xs < 1) & (0 < ys) & (ys < 1)).all()
    assert xs[0] < xs[1] and ys[2] < ys[3]  # left eye left of the right eye; nose above the mouth
    want = face.landmarks[0]
    got = np.stack([x1 + xs * (x2 - x1), y1 + ys * (y2 - y1)], 1)
    assert np.abs(got - want).max() < 0.1 * (x2 - x1)


def test_missing_weights_file(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        to_onnx(tmp_path / "out", weights=tmp_path / "nope.safetensors")


def test_corrupt_weights_file(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(WeightsError, match="bad.safetensors"):
        to_onnx(tmp_path / "out", weights=bad)


def test_unwritable_output_folder(tmp_path, original_weights):
    plain = tmp_path / "file"
    plain.write_text("not a folder")
    with pytest.raises(ExportError, match="output folder"):
        to_onnx(plain / "sub", weights=original_weights)
    with pytest.raises(ExportError, match="not a folder"):
        to_onnx(plain, weights=original_weights)
    assert issubclass(ExportError, MTCNNError)


def test_cli_exports(tmp_path, original_weights, capsys):
    assert main(["export", "onnx", "--out", str(tmp_path / "x"), "--weights", original_weights]) == 0
    out = capsys.readouterr().out
    assert "onet.onnx" in out and "mtcnn-original" in out
    assert sorted(p.name for p in (tmp_path / "x").iterdir()) == ["onet.onnx", "pnet.onnx", "rnet.onnx"]


@pytest.mark.parametrize("case", ["missing", "corrupt", "folder"])
def test_cli_prints_bad_input(tmp_path, original_weights, capsys, case):
    weights, out = original_weights, tmp_path / "out"
    if case == "missing":
        weights = str(tmp_path / "nope.safetensors")
    elif case == "corrupt":
        weights = str(tmp_path / "bad.safetensors")
        Path(weights).write_text("junk")
    else:
        (tmp_path / "file").write_text("x")
        out = tmp_path / "file" / "sub"
    assert main(["export", "onnx", "--out", str(out), "--weights", weights]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mtcnn: error:")
    assert {"missing": "nope.safetensors", "corrupt": "bad.safetensors", "folder": "output folder"}[case] in err
