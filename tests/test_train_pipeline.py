"""`train all` end to end on a tiny generated photo set, the held-out rule, the CLI."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from torchmtcnn.cli import main
from torchmtcnn.data.store import SampleStore
from torchmtcnn.errors import MTCNNError
from torchmtcnn.data.splits import is_held_out, is_validation, split_held_out
from torchmtcnn.train.pipeline import STEPS, PipelineConfig, TrainPipeline
from torchmtcnn.weights import read_metadata, read_weights

# where the five points sit in a drawn face, as fractions of its box
_POINTS = np.array([[0.3, 0.38], [0.7, 0.38], [0.5, 0.56], [0.34, 0.76], [0.66, 0.76]])


def draw_face(image: np.ndarray, x: int, y: int, s: int) -> np.ndarray:
    """Paint a cartoon face in the box (x, y, x + s, y + s); returns its points [5, 2]."""
    c = (x + s // 2, y + s // 2)
    cv2.ellipse(image, c, (int(s * 0.45), int(s * 0.5)), 0, 0, 360, (225, 180, 150), -1)
    pts = np.array([x, y]) + _POINTS * s
    r = max(2, s // 12)
    for px, py in pts[:2]:
        cv2.circle(image, (int(px), int(py)), r, (30, 20, 20), -1)
    cv2.circle(image, (int(pts[2, 0]), int(pts[2, 1])), r, (150, 100, 90), -1)
    cv2.line(image, tuple(int(v) for v in pts[3]), tuple(int(v) for v in pts[4]), (120, 30, 40),
             max(1, r // 2 + 1))
    return pts


def make_photos(root, n: int = 16, seed: int = 0):
    """n noise photos of 120x120 with one or two faces each, and their jsonl annotations."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    lines = []
    for i in range(n):
        image = rng.integers(0, 256, (120, 120, 3)).astype(np.uint8)
        faces = []
        slots = [(8, 10), (62, 56)] if i % 2 else [(int(rng.integers(10, 40)),) * 2]
        for x, y in slots:
            s = int(rng.integers(36, 52))
            pts = draw_face(image, x, y, s)
            names = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
            faces.append({"box": [x, y, x + s, y + s],
                          "keypoints": {k: [float(p[0]), float(p[1])] for k, p in zip(names, pts)}})
        cv2.imwrite(str(root / f"photo{i:02d}.png"), image[..., ::-1])
        lines.append(json.dumps({"image": f"photo{i:02d}.png", "faces": faces}))
    (root / "faces.jsonl").write_text("\n".join(lines) + "\n")
    return root / "faces.jsonl"


@pytest.fixture(autouse=True)
def _one_thread():
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_held_out_rule_is_a_function_of_the_path_only():
    paths = [f"/data/photos/{i}.jpg" for i in range(2000)]
    held = [is_held_out(p, 0.1, 0) for p in paths]
    assert 150 < sum(held) < 250
    assert held == [is_held_out(p, 0.1, 0) for p in paths]
    assert held != [is_held_out(p, 0.1, 1) for p in paths]  # the seed changes the set
    # not the train / val split's hash: the two sets are not the same photos
    assert held != [is_validation(p, 0, 0.1) for p in paths]


def _config(sources, **changes):
    train = dict(batch_size=64, optimizer="adam", lr=0.005, schedule="constant",
                 device="cpu", threads=1)
    base = dict(sources=sources, holdout_fraction=0.25, workers=1, landmark_jitters=4,
                epochs={"pnet": 1, "rnet": 1, "onet": 1}, train=train, val_fraction=0.2)
    base.update(changes)
    return PipelineConfig(**base)


def test_train_all_on_generated_photos(tmp_path, monkeypatch):
    spec = f"jsonl:{make_photos(tmp_path / 'photos')}"
    run = tmp_path / "run"
    from torchmtcnn.data.readers import read_sources

    records = read_sources([spec])
    # photo paths vary with tmp_path: pick a held-out seed that holds out 2 to 8 of 16
    seed = next(s for s in range(100)
                if 2 <= len(split_held_out(records, 0.25, s)[1]) <= 8)
    # and a seed of the train / val split that validates on 2 or more training photos
    train_recs, held_recs = split_held_out(records, 0.25, seed)
    vseed = next(s for s in range(100)
                 if sum(is_validation(r, s, 0.2) for r in train_recs) >= 2)
    pipeline = TrainPipeline(_config([spec], holdout_seed=seed, seed=vseed), run, progress=False)
    assert pipeline.run(until="train_pnet") is None
    assert set(pipeline.state["done"]) == {"data_pnet", "train_pnet"}
    assert (run / "pnet" / "pnet.safetensors").is_file()

    # held out: exactly the photos of the rule, listed, and in no store
    held = (run / "heldout.txt").read_text().split()
    assert held == [r.key for r in held_recs] and 0 < len(held) < len(records)
    assert all(k.startswith("jsonl:") and not k.startswith("jsonl:/") for k in held)
    from torchmtcnn.data.readers import read_annotations

    again = read_annotations(run / "heldout.jsonl").records
    assert [r.key for r in again] == held
    for a, b in zip(again, held_recs):
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)
        np.testing.assert_allclose(a.landmarks, b.landmarks, atol=1e-3)
    store_photos = set()
    for split in ("train", "val"):
        store_photos |= set(SampleStore(run / "data" / "pnet" / split).meta["photos"])
    assert store_photos == {str(r.image) for r in train_recs}

    # without --resume an existing run is refused
    with pytest.raises(MTCNNError, match="--resume"):
        TrainPipeline(_config([spec], holdout_seed=seed, seed=vseed), run)

    # resume through the CLI: the finished steps are skipped, the others run
    import torchmtcnn.data.pipeline as data_pipeline

    def no_rebuild(*args, **kwargs):
        raise AssertionError("a finished step ran again")

    monkeypatch.setattr(data_pipeline, "build_pnet_store", no_rebuild)
    argv = ["train", "all", "--sources", spec, "--run-dir", str(run), "--resume",
            "--holdout-fraction", "0.25", "--holdout-seed", str(seed), "--val-fraction", "0.2", "--workers", "1",
            "--landmark-jitters", "4", "--epochs", "1", "1", "1", "--batch-size", "64",
            "--optimizer", "adam", "--lr", "0.005", "--schedule", "constant",
            "--device", "cpu", "--threads", "1", "--no-progress",
            "--mined-jitters", "0", "2", "--ratio", "onet", "1", "1", "1", "2", "--lowres", "0.25",
            "--seed", str(vseed)]
    assert main(argv) == 0
    state = json.loads((run / "state.json").read_text())
    assert list(state["done"]) == list(STEPS)
    assert all(state["done"][s]["seconds"] >= 0 for s in STEPS)
    for stage, size in (("rnet", 24), ("onet", 48)):
        meta = SampleStore(run / "data" / stage / "train").meta
        assert meta["size"] == size and meta["stage"] == stage and meta["n"] > 0
        jitters, ratio = (0, [3, 1, 1, 2]) if stage == "rnet" else (2, [1, 1, 1, 2])
        assert meta["config"]["mined_jitters_per_face"] == jitters and meta["config"]["ratio"] == ratio

    # the combined file: three networks, metadata, loadable by the detector
    weights = run / "mtcnn.safetensors"
    nets = {k.partition(".")[0] for k in read_weights(weights)}
    assert nets == {"pnet", "rnet", "onet"}
    meta = read_metadata(weights)
    assert meta["name"] == "torchmtcnn-run" and meta["version"]
    recipe = json.loads(meta["recipe"])
    assert recipe["holdout"]["fraction"] == 0.25 and recipe["stages"]["onet"]["epochs"] == 1
    # no machine's folders in the metadata: the source is named by its last folder and file
    assert str(tmp_path) not in json.dumps(meta)
    assert [s["spec"] for s in recipe["sources"]] == ["jsonl:photos/faces.jsonl"]
    assert recipe["stages"]["onet"]["lowres"] == 0.25
    assert recipe["samples"] == {"landmark_jitters": 4, "mined_jitters": {"rnet": 0, "onet": 2},
                                 "ratios": {"onet": [1.0, 1.0, 1.0, 2.0]}}
    from torchmtcnn import MTCNN

    detector = MTCNN(weights=weights, device="cpu")
    onet = read_weights(run / "onet" / "onet.safetensors")
    assert torch.equal(detector.nets["onet"].cls.weight.cpu(), onet["onet.cls.weight"])
    faces = detector.detect([cv2.imread(str(held_recs[0].image))[..., ::-1].copy()])
    assert len(faces) == 1 and faces[0].boxes.shape[1] == 4

    # calibrated on the validation photos (listed): the defaults now mean the chosen
    # thresholds, folded into R-Net's and O-Net's face logits
    from torchmtcnn.train.calibrate import logit

    calibration = state["done"]["calibrate"]
    validation = read_annotations(run / "validation.jsonl").records
    assert [str(r.image) for r in validation] == [
        str(r.image) for r in train_recs if is_validation(r, vseed, 0.2)]
    assert calibration["photos"] == len(validation) > 0
    assert json.loads(meta["calibration"])["thresholds"] == calibration["thresholds"]
    for net, k in (("rnet", 1), ("onet", 2)):
        assert calibration["shifts"][k] == pytest.approx(
            logit((0.6, 0.7, 0.7)[k]) - logit(calibration["thresholds"][k]))
        bias = read_weights(run / net / f"{net}.safetensors")[f"{net}.cls.bias"]
        shifted = read_weights(weights)[f"{net}.cls.bias"]
        torch.testing.assert_close(shifted - bias, torch.tensor([0.0, calibration["shifts"][k]]))

    # everything done: a third run does nothing and returns the file
    assert TrainPipeline(_config([spec], holdout_seed=seed, seed=vseed), run,
                         resume=True).run() == weights


def test_cli_data_onet_needs_rnet_weights(tmp_path, capsys):
    from torchmtcnn.nets import PNet
    from torchmtcnn.weights import save_weights

    spec = f"jsonl:{make_photos(tmp_path / 'photos', n=2)}"
    weights = save_weights({"pnet": PNet()}, tmp_path / "pnet.safetensors")
    argv = ["data", "onet", "--sources", spec, "--weights", str(weights),
            "--out", str(tmp_path / "onet"), "--workers", "1"]
    assert main(argv) == 2
    assert "no rnet" in capsys.readouterr().err
    assert not (tmp_path / "onet").exists()
    # with P-Net weights, R-Net data: proposals of P-Net labelled, 24 px
    argv = ["data", "rnet", "--sources", spec, "--weights", str(weights),
            "--out", str(tmp_path / "rnet"), "--workers", "1", "--val-fraction", "0"]
    assert main(argv) == 0
    store = SampleStore(tmp_path / "rnet" / "train")
    assert store.size == 24 and store.meta["stage"] == "rnet" and len(store) > 0


def test_heldout_jsonl_keeps_partial_points_and_the_split_key(tmp_path):
    from torchmtcnn.data.readers import read_annotations
    from torchmtcnn.data.readers.jsonl import write_records
    from torchmtcnn.data.records import FaceRecord

    image = tmp_path / "a.png"
    cv2.imwrite(str(image), np.zeros((50, 60, 3), np.uint8))
    points = np.array([[[10, 12], [30, 12], [20, 20], [np.nan, np.nan], [np.nan, np.nan]]])
    record = FaceRecord(image, [[5, 5, 40, 40]], points, key="caltech:x/a.png")
    assert write_records([record], tmp_path / "held.jsonl") == 1
    (back,) = read_annotations(tmp_path / "held.jsonl").records
    np.testing.assert_allclose(back.landmarks[0, :3], points[0, :3])
    assert np.isnan(back.landmarks[0, 3:]).all()
    # the photo splits as in its own data set, not by the absolute path written
    assert back.key == "caltech:x/a.png" and is_held_out(back) == is_held_out("caltech:x/a.png")


def _no_boxes(image):
    return np.zeros((0, 4))


def test_photos_without_proposals_give_no_mined_samples(tmp_path):
    import pickle

    from torchmtcnn.data.pipeline import mine_samples
    from torchmtcnn.data.readers import read_annotations
    from torchmtcnn.data.samples import SampleConfig

    records = read_annotations(make_photos(tmp_path / "photos", n=2)).records
    proposer = pickle.loads(pickle.dumps(_no_boxes))
    samples = mine_samples(records, proposer, 24, SampleConfig(workers=1, landmark_jitters_per_face=2))
    assert set(np.unique(samples.labels)) <= {-2}  # only the landmark samples


def test_stage_ratios_and_mined_jitters_reach_each_stages_samples(tmp_path):
    config = PipelineConfig(["jsonl:x"], mined_jitters={"onet": 3}, ratios={"onet": (1, 1, 1, 2)})
    pipeline = TrainPipeline(config, tmp_path / "run")
    onet, rnet, pnet = (pipeline.sample_config(s) for s in (48, 24, 12))
    assert (onet.ratio, onet.mined_jitters_per_face) == ((1.0, 1.0, 1.0, 2.0), 3)
    assert (rnet.ratio, rnet.mined_jitters_per_face) == ((3.0, 1.0, 1.0, 2.0), 0)
    assert pnet.ratio == (3.0, 1.0, 1.0, 2.0)


@pytest.mark.parametrize("ratio, message", [
    (["qnet", "1", "1", "1", "2"], "unknown stage 'qnet'"),
    (["onet", "1", "x", "1", "2"], "four numbers expected, got 1 x 1 2"),
    (["onet", "0", "0", "0", "0"], "must be >= 0, not all 0"),
])
def test_train_all_rejects_a_bad_ratio(tmp_path, capsys, ratio, message):
    argv = ["train", "all", "--sources", "jsonl:x", "--run-dir", str(tmp_path / "run"),
            "--ratio", *ratio]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_calibration_step_can_be_turned_off(tmp_path):
    pipeline = TrainPipeline(PipelineConfig(["jsonl:none.jsonl"], max_false_positives=None), tmp_path)
    assert pipeline._calibrate() == {"skipped": True}  # reads no photos, writes nothing
    assert not (tmp_path / "validation.jsonl").exists()


def test_sources_limited_to_a_stage_without_negatives(tmp_path):
    """A face-crop source (MTFL's LFW crops in the shipped recipe) feeds only the stages it
    names, gives no negatives, and is neither held out for the face evaluation nor mined for
    P-Net; `include` keeps the photos whose name starts with it."""
    from torchmtcnn.train.pipeline import SourceSpec

    main_spec = f"jsonl:{make_photos(tmp_path / 'photos', 12)}"
    crops = make_photos(tmp_path / "crops", 10, seed=1)
    # the crops file names half its photos under another prefix: include keeps the rest
    lines = crops.read_text().splitlines()
    lines = [line.replace('"photo', '"other/photo') if i % 2 else line for i, line in enumerate(lines)]
    (tmp_path / "crops" / "other").mkdir()
    for i in range(1, 10, 2):
        (tmp_path / "crops" / f"photo{i:02d}.png").rename(tmp_path / "crops" / "other" / f"photo{i:02d}.png")
    crops.write_text("\n".join(lines) + "\n")
    source = SourceSpec(f"jsonl:{crops}", include="photo", stages=("onet",), negatives=False)
    config = _config([main_spec, source], holdout_fraction=0.0)
    pipeline = TrainPipeline(config, tmp_path / "run", progress=False)
    assert [len(pipeline.records(s)) for s in ("pnet", "onet")] == [12, 12 + 5]
    assert pipeline.run(until="data_onet") is None
    run = tmp_path / "run"
    pnet_photos = set(SampleStore(run / "data" / "pnet" / "train").meta["photos"])
    assert not any("crops" in p for p in pnet_photos)
    onet = SampleStore(run / "data" / "onet" / "train")
    photos = onet.meta["photos"]
    from_crops = np.array(["crops" in photos[i] for i in np.asarray(onet.photos)])
    labels = np.asarray(onet.labels)
    assert from_crops.any() and (labels[from_crops] != 0).all()  # no negatives from the crops
    assert (labels[~from_crops] == 0).any()
    assert not any("other/" in p for p in photos)
    assert not (run / "data" / "onet_0").exists() and not (run / "data" / "onet_1").exists()
    counts = pipeline.state["done"]["data_onet"]["counts"]
    assert set(counts) == {"part1", "part2"} and counts["part2"]["train"]["negative"] == 0
