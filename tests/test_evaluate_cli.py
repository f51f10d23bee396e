"""`mtcnn eval` end to end on tiny files: tables, summaries, plots, --run with a fake detector."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from torchmtcnn.cli import main
from torchmtcnn.evaluate import read_predictions

LM = {"left_eye": [30, 40], "right_eye": [70, 40], "nose": [50, 60], "mouth_left": [35, 80],
      "mouth_right": [65, 80]}


def _shift(points: dict, dx: float) -> dict:
    return {k: [v[0] + dx, v[1]] for k, v in points.items()}


def _write_jsonl(path: Path, items: list[dict]) -> Path:
    path.write_text("".join(json.dumps(x) + "\n" for x in items))
    return path


@pytest.fixture()
def dataset(tmp_path):
    """Three 120x120 images, one face each (box 10..90 x 10..100), with points."""
    cv2 = pytest.importorskip("cv2")
    root = tmp_path / "imgs"
    (root / "sub").mkdir(parents=True)
    names = ["sub/a.jpg", "sub/b.jpg", "c.jpg"]
    for name in names:
        cv2.imwrite(str(root / name), np.full((120, 120, 3), 128, np.uint8))
    gt = [{"image": n, "faces": [{"box": [10, 10, 90, 100], "keypoints": LM}]} for n in names]
    ann = _write_jsonl(tmp_path / "gt.jsonl", gt)
    return SimpleNamespace(root=root, names=names, ann=ann, tmp=tmp_path)


def _pred_line(image: str, faces: list[tuple[list[float], float, dict | None]]) -> dict:
    out = []
    for box, score, pts in faces:
        face = {"box": box, "score": score}
        if pts is not None:
            face["keypoints"] = pts
        out.append(face)
    return {"image": image, "width": 120, "height": 120, "faces": out}


def test_eval_faces_two_detectors_table_and_plot(dataset, capsys):
    t = dataset.tmp
    # "good" finds all three faces; "half" finds a and puts a false positive above b's face
    good = _write_jsonl(t / "good.jsonl", [
        _pred_line(str(dataset.root / n), [([10, 10, 90, 100], 0.9, None)]) for n in dataset.names])
    half = _write_jsonl(t / "half.jsonl", [
        _pred_line("sub/a.jpg", [([11, 10, 90, 100], 0.99, None)]),
        _pred_line("sub/b.jpg", [([95, 95, 119, 119], 0.98, None), ([10, 10, 90, 100], 0.5, None)]),
    ])
    out = t / "out"
    rc = main(["eval", "faces", "--annotations", str(dataset.ann), "--format", "jsonl",
               "--images-root", str(dataset.root), "--pred", f"good={good}",
               "--pred", f"half={half}", "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0
    assert "good" in text and "half" in text and "AP" in text
    summary = json.loads((out / "summary-faces.json").read_text())
    assert summary["good"]["ap"] == pytest.approx(1.0)
    # half: 1/3 recall at precision 1, then 2/3 recall at precision 2/3 -> 1/3 + 1/3 * 2/3
    assert summary["half"]["ap"] == pytest.approx(1 / 3 + 2 / 9)
    assert summary["half"]["missing_images"] == 1
    for png in ("faces_pr.png", "faces_roc.png"):
        data = (out / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000


def test_eval_landmarks_table_and_ced_plot(dataset, capsys):
    t = dataset.tmp
    pred = _write_jsonl(t / "p.jsonl", [
        _pred_line("sub/a.jpg", [([10, 10, 90, 100], 0.9, LM)]),
        _pred_line("sub/b.jpg", [([10, 10, 90, 100], 0.9, _shift(LM, 8.0))]),  # NME 0.2
    ])
    out = t / "out"
    rc = main(["eval", "landmarks", "--annotations", str(dataset.ann), "--format", "jsonl",
               "--images-root", str(dataset.root), "--pred", f"ours={pred}", "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0 and "NME" in text and "ours" in text
    s = json.loads((out / "summary-landmarks.json").read_text())["ours"]
    assert s["nme"] == pytest.approx(0.1) and s["failure_rate"] == pytest.approx(0.5)
    assert s["auc_0.1"] == pytest.approx(0.5)
    assert s["faces"] == 3 and s["missed"] == 1 and s["evaluated"] == 2
    assert (out / "landmarks_ced.png").read_bytes()[:4] == b"\x89PNG"


class FakeFaces:
    def __init__(self, boxes, scores, landmarks):
        self.boxes, self.scores, self.landmarks = boxes, scores, landmarks


class FakeDetector:
    """Finds the face of a.jpg and c.jpg exactly (points 4 px off), nothing in b.jpg."""

    calls: list[int] = []

    def detect(self, images):
        FakeDetector.calls.append(len(images))
        out = []
        for path in images:
            assert Path(path).is_file(), path
            if Path(path).name == "b.jpg":
                out.append(FakeFaces(np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2))))
            else:
                pts = np.array([LM[k] for k in LM], float)[None] + [4.0, 0.0]
                out.append(FakeFaces(np.array([[10.0, 10, 90, 100]]), np.array([0.97]), pts))
        return out


def test_eval_run_with_fake_detector(dataset, capsys, monkeypatch):
    import torchmtcnn.cli.eval as cli_eval

    made = []

    def fake_make(args):
        made.append((args.weights, args.min_face_size, tuple(args.thresholds)))
        return FakeDetector()

    monkeypatch.setattr(cli_eval, "make_detector", fake_make)
    FakeDetector.calls = []
    out = dataset.tmp / "out"
    rc = main(["eval", "landmarks", "--annotations", str(dataset.ann), "--format", "jsonl",
               "--images-root", str(dataset.root), "--run", "--weights", "w.safetensors",
               "--batch-size", "2", "--out", str(out), "--no-plot"])
    assert rc == 0
    assert made == [("w.safetensors", 20, (0.6, 0.7, 0.7))]
    assert FakeDetector.calls == [2, 1]  # batched
    saved = read_predictions(out / "pred-mtcnn.jsonl")
    assert [p.image for p in saved] == dataset.names  # relative to --images-root
    assert saved[0].width == 120 and saved[0].landmarks.shape == (1, 5, 2)
    s = json.loads((out / "summary-landmarks.json").read_text())["mtcnn"]
    assert s["nme"] == pytest.approx(0.1) and s["missed"] == 1
    assert not (out / "landmarks_ced.png").exists()


def _save_tiny_wider(folder: Path) -> None:
    from scipy.io import savemat

    def cells(items):
        arr = np.empty((len(items), 1), dtype=object)
        for k, x in enumerate(items):
            arr[k, 0] = x
        return arr

    boxes = [np.array([[0, 0, 20, 20], [100, 0, 20, 20], [200, 0, 20, 20]], np.int32)]
    full = {"event_list": cells([np.array(["0--Parade"])]),
            "file_list": cells([cells([np.array(["0_Parade_x_1"])])]),
            "face_bbx_list": cells([cells(boxes)])}
    folder.mkdir()
    savemat(str(folder / "wider_face_val.mat"), full)
    keeps = {"easy": [1], "medium": [1, 2], "hard": [1, 2, 3]}
    for s, k in keeps.items():
        gt = cells([cells([np.array(k, np.uint8).reshape(-1, 1)])])
        savemat(str(folder / f"wider_{s}_val.mat"), {**full, "gt_list": gt})


def test_eval_wider_submission_folder(tmp_path, capsys):
    _save_tiny_wider(tmp_path / "gt")
    sub = tmp_path / "sub" / "0--Parade"
    sub.mkdir(parents=True)
    # finds faces 1 and 2; a false positive scored between them
    (sub / "0_Parade_x_1.txt").write_text(
        "0_Parade_x_1\n3\n0 0 20 20 0.9\n500 500 20 20 0.8\n100 0 20 20 0.7\n")
    out = tmp_path / "out"
    rc = main(["eval", "wider", "--gt-dir", str(tmp_path / "gt"), "--pred",
               f"peer={tmp_path / 'sub'}", "--out", str(out)])
    text = capsys.readouterr().out
    assert rc == 0 and "easy" in text and "peer" in text
    s = json.loads((out / "summary-wider.json").read_text())["peer"]
    assert s["easy"] == pytest.approx(1.0)
    assert s["medium"] == pytest.approx(0.5 + 0.5 * 2 / 3)
    assert s["hard"] == pytest.approx(1 / 3 + 1 / 3 * 2 / 3)
    assert (out / "wider_pr.png").read_bytes()[:4] == b"\x89PNG"


def test_eval_user_errors(dataset, tmp_path, capsys):
    rc = main(["eval", "faces", "--annotations", str(dataset.ann), "--format", "jsonl",
               "--images-root", str(dataset.root), "--out", str(tmp_path / "o")])
    assert rc == 2 and "--pred" in capsys.readouterr().err
    rc = main(["eval", "faces", "--annotations", str(dataset.ann), "--format", "jsonl",
               "--pred", f"x={tmp_path / 'nope.jsonl'}", "--out", str(tmp_path / "o")])
    assert rc == 2 and "nope.jsonl" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"image": "a.jpg", "faces": [{"box": [1, 2]}]}\n')
    rc = main(["eval", "faces", "--annotations", str(dataset.ann), "--format", "jsonl",
               "--pred", f"x={bad}", "--out", str(tmp_path / "o")])
    assert rc == 2 and "bad.jsonl:1" in capsys.readouterr().err
    rc = main(["eval", "wider", "--gt-dir", str(tmp_path), "--pred", f"x={bad}"])
    assert rc == 2 and "wider_face_val.mat" in capsys.readouterr().err


def test_plots_without_matplotlib(dataset, tmp_path, capsys, monkeypatch):
    for mod in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, mod, None)
    good = _write_jsonl(tmp_path / "g.jsonl", [
        _pred_line(n, [([10, 10, 90, 100], 0.9, None)]) for n in dataset.names])
    args = ["eval", "faces", "--annotations", str(dataset.ann), "--format", "jsonl",
            "--images-root", str(dataset.root), "--pred", f"g={good}", "--out",
            str(tmp_path / "o")]
    assert main(args) == 2
    assert "torchmtcnn[plots]" in capsys.readouterr().err
    assert main([*args, "--no-plot"]) == 0


def test_eval_wider_run_over_images(tmp_path, capsys, monkeypatch):
    cv2 = pytest.importorskip("cv2")
    import torchmtcnn.cli.eval as cli_eval

    _save_tiny_wider(tmp_path / "gt")
    root = tmp_path / "WIDER_val" / "images"
    (root / "0--Parade").mkdir(parents=True)
    cv2.imwrite(str(root / "0--Parade" / "0_Parade_x_1.jpg"), np.zeros((40, 240, 3), np.uint8))

    class Det:
        def detect(self, images):
            assert [Path(p).name for p in images] == ["0_Parade_x_1.jpg"]
            boxes = np.array([[0.0, 0, 20, 20], [100, 0, 120, 20]])
            return [FakeFaces(boxes, np.array([0.9, 0.8]), np.zeros((2, 5, 2)))]

    monkeypatch.setattr(cli_eval, "make_detector", lambda args: Det())
    out = tmp_path / "out"
    rc = main(["eval", "wider", "--gt-dir", str(tmp_path / "gt"), "--run", "--images-root",
               str(root), "--out", str(out), "--no-plot"])
    assert rc == 0
    s = json.loads((out / "summary-wider.json").read_text())["mtcnn"]
    assert s["easy"] == pytest.approx(1.0) and s["medium"] == pytest.approx(1.0)
    assert s["hard"] == pytest.approx(2 / 3)
    saved = read_predictions(out / "pred-mtcnn.jsonl")
    assert [p.image for p in saved] == ["0--Parade/0_Parade_x_1.jpg"]
