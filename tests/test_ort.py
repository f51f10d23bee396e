"""The onnxruntime backend: same faces as the torch backend, options, files, errors."""

from __future__ import annotations

import argparse
import sys

import numpy as np
import pytest
import torch

from torchmtcnn import MTCNN
from torchmtcnn.assets import group_photo
from torchmtcnn.cascade import Cascade
from torchmtcnn.cli import main
from torchmtcnn.cli.common import build_detector
from torchmtcnn.errors import MissingExtraError, MTCNNError
from torchmtcnn.export import to_onnx
from torchmtcnn.ort import OnnxRuntimeBackend, session_options


@pytest.fixture(scope="module")
def ort_detector(original_weights) -> MTCNN:
    return MTCNN(weights=original_weights, device="cpu", backend="onnxruntime")


@pytest.fixture(scope="module")
def photos(astronaut, grace_hopper) -> dict[str, np.ndarray]:
    return {"astronaut": astronaut, "grace_hopper": grace_hopper,
            "group_640": group_photo(640, 480, 6, 0), "group_1280": group_photo(1280, 720, 16, 3)}


def _same_faces(a, b) -> None:
    assert len(a) == len(b) > 0
    np.testing.assert_allclose(a.boxes, b.boxes, atol=0.5)
    np.testing.assert_allclose(a.scores, b.scores, atol=1e-4)
    np.testing.assert_allclose(a.landmarks, b.landmarks, atol=0.5)


@pytest.mark.parametrize("name", ["astronaut", "grace_hopper", "group_640", "group_1280"])
def test_same_faces_as_torch(detector, ort_detector, photos, name):
    _same_faces(detector.detect(photos[name]), ort_detector.detect(photos[name]))


def test_batch_of_photos_of_different_sizes(detector, ort_detector, photos):
    images = [photos["astronaut"], photos["group_640"], photos["grace_hopper"]]
    for a, b in zip(detector.detect(images), ort_detector.detect(images)):
        _same_faces(a, b)


def test_backend_from_exported_files(tmp_path, original_weights, detector, photos):
    to_onnx(tmp_path, weights=original_weights)
    backend = OnnxRuntimeBackend.from_files(tmp_path, threads=1, optimization="basic")
    found = Cascade(backend, detector.config).run([torch.from_numpy(photos["group_640"])])
    want = detector.cascade.run([torch.from_numpy(photos["group_640"])])
    assert len(found) == len(want) == 6
    order_a, order_b = torch.argsort(found.scores), torch.argsort(want.scores)
    assert torch.allclose(found.boxes[order_a], want.boxes[order_b], atol=0.5)


def test_backend_calls_match_the_protocol(ort_detector):
    b = ort_detector.cascade.backend
    prob, reg = b.pnet(torch.zeros(2, 3, 30, 40))
    assert prob.shape == (2, 10, 15) and reg.shape == (2, 4, 10, 15) and prob.dtype == torch.float32
    prob, reg = b.rnet(torch.zeros(5, 3, 24, 24))
    assert prob.shape == (5,) and reg.shape == (5, 4)
    prob, reg, points = b.onet(torch.zeros(3, 3, 48, 48).contiguous(memory_format=torch.channels_last))
    assert prob.shape == (3,) and reg.shape == (3, 4) and points.shape == (3, 10)
    assert [t.shape for t in b.onet(torch.zeros(0, 3, 48, 48))] == [(0,), (0, 4), (0, 10)]


def test_session_options():
    so = session_options(threads=2, optimization="extended")
    assert so.intra_op_num_threads == 2
    assert so.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    with pytest.raises(ValueError, match="optimization"):
        session_options(optimization="max")
    with pytest.raises(ValueError, match="threads"):
        session_options(threads=-1)


def test_from_files_missing_folder(tmp_path):
    with pytest.raises(MTCNNError, match="pnet.onnx"):
        OnnxRuntimeBackend.from_files(tmp_path / "none")


def test_corrupt_onnx_file(tmp_path, original_weights):
    to_onnx(tmp_path, weights=original_weights)
    (tmp_path / "rnet.onnx").write_bytes(b"not onnx")
    with pytest.raises(MTCNNError, match="rnet"):
        OnnxRuntimeBackend.from_files(tmp_path)


def test_missing_extra(monkeypatch, original_weights):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` fails
    with pytest.raises(MissingExtraError) as info:
        MTCNN(weights=original_weights, device="cpu", backend="onnxruntime")
    assert str(info.value) == str(MissingExtraError("The onnxruntime backend", "onnx", "onnxruntime"))
    assert "pip install 'torchmtcnn[onnx]'" in str(info.value)


def test_unknown_backend(original_weights, capsys):
    with pytest.raises(ValueError, match="backend must be 'torch' or 'onnxruntime'"):
        MTCNN(weights=original_weights, device="cpu", backend="tensorrt")
    args = argparse.Namespace(min_face_size=20, thresholds=(0.6, 0.7, 0.7), factor=0.709, device="cpu",
                              weights=original_weights, backend="tensorrt", batch_size=8)
    with pytest.raises(MTCNNError, match="backend must be"):
        build_detector(args)
    with pytest.raises(SystemExit) as exit_info:
        main(["detect", "--backend", "tensorrt", "photo.jpg"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--backend" in err and "tensorrt" in err and "onnxruntime" in err
