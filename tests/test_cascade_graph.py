"""The whole cascade as one ONNX graph, run by plain onnxruntime: the same faces as the Python
cascade on the same weights and settings, its resizing against OpenCV's, its inputs, metadata,
command and errors."""

from __future__ import annotations

import dataclasses
import sys

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from face_match import assert_same_faces

from torchmtcnn import MTCNN
from torchmtcnn.assets import ASSETS, group_photo
from torchmtcnn.cascade_config import DEFAULTS
from torchmtcnn.cascade_graph import CascadeExport, build_model, cascade_to_onnx, export_cascade
from torchmtcnn.cascade_graph.builder import DOUBLE, INT64, UINT8, Graph
from torchmtcnn.cascade_graph.resample import crop_resize, cumulative, pyramid_level, sums_before
from torchmtcnn.cli import main
from torchmtcnn.crops import crop_resize as torch_crop_resize
from torchmtcnn.errors import MissingExtraError, WeightsError
from torchmtcnn.export import ExportError, read_onnx_metadata
from torchmtcnn.images import read_image


def session(model: bytes) -> ort.InferenceSession:
    return ort.InferenceSession(model, providers=["CPUExecutionProvider"])


def settings(min_face_size: float = DEFAULTS.min_face_size, thresholds=DEFAULTS.thresholds) -> dict:
    return {"min_face_size": np.array(min_face_size, np.float32), "thresholds": np.array(thresholds, np.float32)}


@pytest.fixture(scope="module", params=["original", "shipped"])
def weights(request, original_weights):
    return original_weights if request.param == "original" else None


@pytest.fixture(scope="module")
def graph(weights):
    return session(export_cascade(weights))


@pytest.fixture(scope="module")
def python_cascade(weights):
    return MTCNN(weights=weights, device="cpu")


PHOTOS = {
    "astronaut": lambda a, g: a,
    "grace_hopper": lambda a, g: g,
    "bundled_group": lambda a, g: read_image(ASSETS / "group.jpg"),
    "group_640x480": lambda a, g: group_photo(640, 480, 6, seed=0),
    "group_1280x720": lambda a, g: group_photo(1280, 720, 16, seed=3),
}


@pytest.mark.parametrize("name", list(PHOTOS))
def test_same_faces_as_the_python_cascade(name, graph, python_cascade, astronaut, grace_hopper):
    image = PHOTOS[name](astronaut, grace_hopper)
    want = python_cascade.detect(image)
    boxes, scores, landmarks = graph.run(None, {"image": image, **settings()})
    assert boxes.shape == (len(want), 4) and scores.shape == (len(want),) and landmarks.shape == (len(want), 5, 2)
    assert boxes.dtype == scores.dtype == landmarks.dtype == np.float32
    if python_cascade.weights_name == "mtcnn-original":  # the shipped weights may change; these do not
        assert len(want) > 0
    worst = assert_same_faces(boxes, scores, landmarks, want)
    # Measured: the same faces to 1e-4 px and 6e-8 in score (the checks above are the issue's).
    assert worst["iou"] > 0.999 and worst["points_px"] < 0.01 and worst["score"] < 1e-4, worst
    assert np.all(np.diff(scores) <= 0)  # best first


def test_inputs_change_the_settings_like_the_python_cascade(graph, python_cascade):
    image = group_photo(640, 480, 6, seed=0)
    for min_face, thresholds in ((40.0, (0.6, 0.7, 0.7)), (20.0, (0.5, 0.6, 0.95)), (15.0, (0.7, 0.8, 0.5))):
        want = python_cascade.with_config(min_face_size=min_face, thresholds=thresholds).detect(image)
        got = graph.run(None, {"image": image, **settings(min_face, thresholds)})
        assert_same_faces(*got, want)


def test_no_face_and_tiny_images_give_empty_outputs(graph):
    noise = np.random.default_rng(0).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    for image in (noise, np.zeros((1, 1, 3), np.uint8), np.zeros((11, 300, 3), np.uint8),
                  np.zeros((12, 12, 3), np.uint8)):
        boxes, scores, landmarks = graph.run(None, {"image": image, **settings()})
        assert boxes.shape == (0, 4) and scores.shape == (0,) and landmarks.shape == (0, 5, 2)


def test_a_face_at_the_border_and_a_small_face(graph, python_cascade, astronaut):
    """Crops that fall outside the photo (zero padding) and crops enlarged to 24 / 48 px."""
    face = astronaut[0:260, 130:330]
    canvas = np.full((300, 400, 3), 120, np.uint8)
    canvas[:200, -150:] = face[60:260, :150]  # cut by the top and right edges
    small = cv2.resize(face, (40, 52), interpolation=cv2.INTER_AREA)
    canvas[230:282, 20:60] = small
    want = python_cascade.detect(canvas)
    got = graph.run(None, {"image": canvas, **settings(12)})
    assert_same_faces(*got, python_cascade.with_config(min_face_size=12).detect(canvas))
    assert len(want) >= 1


def _resample_graph(size: int) -> ort.InferenceSession:
    g = Graph("resample")
    image = g.input("image", UINT8, ["H", "W", 3])
    level_h, level_w = g.input("level_h", INT64, []), g.input("level_w", INT64, [])
    regions = g.input("regions", DOUBLE, ["K", 4])
    shape = g.op("Shape", image)
    height, width = (g.cast(g.take(shape, i, 0), DOUBLE) for i in (0, 1))
    pixels = g.cast(image, 1)
    level = pyramid_level(g, pixels, sums_before(g, pixels), height, width,
                          g.cast(level_h, DOUBLE), g.cast(level_w, DOUBLE))
    g.output(level, "level", [3, "h", "w"])
    double = g.cast(image, DOUBLE)
    table = g.op("Reshape", cumulative(g, cumulative(g, double, 0), 1), g.ints([-1, 3]))
    crops = crop_resize(g, table, g.op("Reshape", double, g.ints([-1, 3])), height, width, regions, size)
    g.output(crops, "crops", ["K", size, size, 3])
    model = onnx.helper.make_model(g.proto(), opset_imports=[onnx.helper.make_opsetid("", 17)])
    return session(model.SerializeToString())


def test_pyramid_levels_and_crops_against_opencv(astronaut):
    """What the graph cannot repeat exactly: OpenCV's INTER_AREA in float32 with partial
    pixels under 1e-3 of a cell ignored. Pyramid pixels may differ by one grey level (a few
    in 10,000), crops by float rounding."""
    rng = np.random.default_rng(0)
    sides = rng.integers(4, 160, 200)
    corners = rng.integers(-40, 520, (200, 2))
    regions = np.concatenate([corners, corners + sides[:, None] + rng.integers(-1, 2, (200, 1))], 1)
    regions = regions[:, [0, 1, 2, 3]].astype(np.float64)
    for size in (24, 48):
        resample = _resample_graph(size)
        differ, total = 0, 0
        for h, w in ((307, 307), (218, 218), (300, 301), (100, 100), (12, 12), (512, 512), (480, 37)):
            level, crops = resample.run(None, {"image": astronaut, "level_h": np.array(h, np.int64),
                                               "level_w": np.array(w, np.int64), "regions": regions})
            want = cv2.resize(astronaut, (w, h), interpolation=cv2.INTER_AREA)
            d = np.abs(level.transpose(1, 2, 0) - want)
            assert d.max() <= 1
            differ, total = differ + int((d > 0).sum()), total + d.size
        assert differ / total < 1e-3, differ / total
        want = torch_crop_resize([torch.from_numpy(astronaut)], torch.zeros(len(regions), dtype=torch.long),
                                 torch.from_numpy(regions), size, method="opencv").numpy()
        assert crops.shape == want.shape
        assert np.abs(crops - want).max() < 1e-3


def test_metadata_and_standard_operators_only(weights, python_cascade):
    model = build_model(*_loaded(weights))
    onnx.checker.check_model(model, full_check=True)
    domains = {n.domain for n in model.graph.node}
    assert domains <= {"", "ai.onnx"}
    assert [o.version for o in model.opset_import] == [17]
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["network"] == "cascade"
    assert meta["weights_name"] == python_cascade.weights_name
    assert meta["weights_version"] == python_cascade.weights_version
    assert meta["thresholds"] == ",".join(str(t) for t in DEFAULTS.thresholds)
    assert meta["min_face_size"] == "20" and meta["pyramid_factor"] == str(DEFAULTS.factor)
    assert len(meta["weights_sha256"]) == 64
    assert [i.name for i in model.graph.input] == ["image", "min_face_size", "thresholds"]
    assert [o.name for o in model.graph.output] == ["boxes", "scores", "landmarks"]


def _loaded(weights):
    from torchmtcnn.export import load_weights

    nets, info, _ = load_weights(weights)
    return nets, info


def test_export_settings_are_the_metadata_defaults(original_weights):
    config = dataclasses.replace(DEFAULTS, min_face_size=40.0, thresholds=(0.6, 0.7, 0.9))
    model = build_model(*_loaded(original_weights), CascadeExport(config=config))
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["thresholds"] == "0.6,0.7,0.9" and meta["min_face_size"] == "40"
    # every input is required (onnxruntime-web cannot override an input with a default)
    assert not {t.name for t in model.graph.initializer} & {"image", "min_face_size", "thresholds"}
    with pytest.raises(ValueError, match="min_face_size must be at least 12"):
        CascadeExport(config=dataclasses.replace(DEFAULTS, min_face_size=10.0))
    with pytest.raises(ValueError, match="levels"):
        CascadeExport(levels=-1)


def test_the_unrolled_levels_cover_the_largest_image():
    from torchmtcnn.cascade import pyramid_scales
    from torchmtcnn.cascade_graph import DEFAULT_LEVELS, MAX_SIDE

    assert len(pyramid_scales(MAX_SIDE, MAX_SIDE, 12.0, DEFAULTS.factor)) == DEFAULT_LEVELS
    assert CascadeExport().levels == DEFAULT_LEVELS


def test_cli_writes_one_file(tmp_path, original_weights, capsys):
    out = tmp_path / "models" / "mtcnn.onnx"
    assert main(["export", "onnx", "--cascade", "--out", str(out), "--weights", original_weights,
                 "--thresholds", "0.6,0.7,0.8"]) == 0
    printed = capsys.readouterr().out
    assert "mtcnn-original" in printed and "0.6,0.7,0.8" in printed
    assert sorted(p.name for p in out.parent.iterdir()) == ["mtcnn.onnx"]
    assert read_onnx_metadata(out)["thresholds"] == "0.6,0.7,0.8"
    # a folder as --out, a face size under 12: errors that name the parameter
    assert main(["export", "onnx", "--cascade", "--out", str(tmp_path), "--weights", original_weights]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert main(["export", "onnx", "--cascade", "--out", str(out), "--min-face-size", "8",
                 "--weights", original_weights]) == 2
    assert "min_face_size must be at least 12" in capsys.readouterr().err


def test_bad_weights_and_missing_extra(tmp_path, monkeypatch):
    with pytest.raises(WeightsError, match="nope.safetensors"):
        cascade_to_onnx(tmp_path / "x.onnx", weights=tmp_path / "nope.safetensors")
    plain = tmp_path / "file"
    plain.write_text("not a folder")
    with pytest.raises(ExportError):
        cascade_to_onnx(plain / "x.onnx")
    monkeypatch.setitem(sys.modules, "onnx", None)  # `import onnx` fails
    with pytest.raises(MissingExtraError, match=r"pip install 'torchmtcnn\[onnx\]'"):
        export_cascade()


def test_the_readme_lines_run_without_torchmtcnn(tmp_path, original_weights):
    """The five lines of the README (and docs/export.md), run in a fresh Python where
    torchmtcnn cannot be imported, give the Python cascade's faces."""
    import re
    import subprocess
    from pathlib import Path

    root = Path(__file__).parent.parent
    blocks = [re.search(r"without torchmtcnn.*?```python\n(.*?)```", (root / doc).read_text(), re.S | re.I).group(1)
              for doc in ("README.md", "docs/export.md")]
    assert blocks[0] == blocks[1] and len(blocks[0].strip().splitlines()) == 5
    cascade_to_onnx(tmp_path / "mtcnn.onnx", weights=original_weights)
    cv2.imwrite(str(tmp_path / "photo.jpg"), read_image(ASSETS / "group.jpg")[:, :, ::-1])
    script = ("import sys; sys.modules['torchmtcnn'] = None\n" + blocks[0]
              + "np.savez('out.npz', boxes=boxes, scores=scores, landmarks=landmarks)\n")
    subprocess.run([sys.executable, "-c", script], cwd=tmp_path, check=True, timeout=300)
    got = np.load(tmp_path / "out.npz")
    want = MTCNN(weights=original_weights, device="cpu").detect(tmp_path / "photo.jpg")
    assert len(want) >= 2
    assert_same_faces(got["boxes"], got["scores"], got["landmarks"], want)
