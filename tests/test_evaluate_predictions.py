"""Prediction files, the detector runner, and a pin of the AP to the reference implementation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from torchmtcnn.errors import MTCNNError
from torchmtcnn.evaluate import (
    PredictionError,
    evaluate_wider,
    load_wider_gt,
    read_predictions,
    run_detector,
    write_jsonl,
    write_wider_dir,
)
from torchmtcnn.faces import Faces

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"



def named(image: str, boxes, scores, landmarks=None) -> Faces:
    """A prediction: the faces of one image, named by it."""
    return Faces(boxes, scores, landmarks, image=image)

def test_jsonl_roundtrip_with_keypoints(tmp_path):
    pts = np.arange(10, dtype=float).reshape(1, 5, 2)
    preds = [Faces([[1, 2, 30, 40]], [0.5], pts, (48, 64), "a/b.jpg"),
             Faces(np.zeros((0, 4)), [], image="c.png")]
    assert write_jsonl(preds, tmp_path / "p.jsonl") == 2
    back = read_predictions(tmp_path / "p.jsonl")
    assert back[0].image == "a/b.jpg" and back[0].width == 64 and back[0].height == 48
    assert np.allclose(back[0].boxes, [[1, 2, 30, 40]]) and np.allclose(back[0].landmarks, pts)
    assert len(back[1]) == 0 and back[1].landmarks is None


def test_jsonl_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"image": "a.jpg", "faces": []}\n\nnot json\n')
    with pytest.raises(PredictionError, match=r"bad.jsonl:3"):
        read_predictions(bad)
    bad.write_text('{"image": "a.jpg", "faces": [{"box": [0, 0, 1, 1], "keypoints": [1, 2]}]}\n')
    with pytest.raises(PredictionError, match="5 \\(x, y\\) points"):
        read_predictions(bad)
    with pytest.raises(MTCNNError, match="no such"):
        read_predictions(tmp_path / "absent.jsonl")


def test_wider_txt_and_fddb_files(tmp_path):
    ev = tmp_path / "sub" / "3--Riot"
    ev.mkdir(parents=True)
    (ev / "3_Riot_9.txt").write_text("3_Riot_9.jpg\n0\n")
    (ev / "3_Riot_1.txt").write_text("x/3_Riot_1.jpg\n2\n1 2 3 4 0.9\n10 20 30 40 0.1\n")
    preds = {p.image: p for p in read_predictions(tmp_path / "sub")}
    assert set(preds) == {"3--Riot/3_Riot_1.jpg", "3--Riot/3_Riot_9.jpg"}
    assert np.allclose(preds["3--Riot/3_Riot_1.jpg"].boxes, [[1, 2, 4, 6], [10, 20, 40, 60]])
    assert len(preds["3--Riot/3_Riot_9.jpg"]) == 0
    (ev / "3_Riot_2.txt").write_text("3_Riot_2\n1\n1 2 three 4 0.9\n")
    with pytest.raises(PredictionError, match="3_Riot_2.txt"):
        read_predictions(tmp_path / "sub")
    det = tmp_path / "FDDB-det-fold-01.txt"
    det.write_text("2002/08/11/big/img_591\n1\n1 2 3 4 0.5\n2003/01/01/big/img_1\n0\n")
    got = read_predictions(det)
    assert [p.image for p in got] == ["2002/08/11/big/img_591", "2003/01/01/big/img_1"]
    det.write_text("2002/08/11/big/img_591\n3\n1 2 3 4 0.5\n")
    with pytest.raises(PredictionError, match="file ends"):
        read_predictions(det)


class _Faces:
    def __init__(self, n: int):
        self.boxes = np.tile([[1.0, 2.0, 11.0, 12.0]], (n, 1))
        self.scores = np.linspace(0.9, 0.8, n)
        self.landmarks = np.zeros((n, 5, 2))


class _Detector:
    def __init__(self):
        self.calls: list[list[str]] = []

    def detect(self, images):
        self.calls.append(list(images))
        if any(Path(p).name == "broken.jpg" for p in images):
            raise MTCNNError("cannot decode broken.jpg")
        return [_Faces(len(Path(p).stem)) for p in images]


def test_run_detector_batches_and_isolates_bad_images(tmp_path):
    det = _Detector()
    names = ["a.jpg", "bb.jpg", "broken.jpg", "dddd.jpg", "eeeee.jpg"]
    preds, failed = run_detector(det, names, images_root=tmp_path, batch_size=2,
                                 out=tmp_path / "o.jsonl", progress=False)
    assert [len(c) for c in det.calls] == [2, 2, 1, 1, 1]  # 2nd batch retried one by one
    assert det.calls[0] == [str(tmp_path / "a.jpg"), str(tmp_path / "bb.jpg")]
    assert [p.image for p in preds] == ["a.jpg", "bb.jpg", "dddd.jpg", "eeeee.jpg"]
    assert [len(p) for p in preds] == [1, 2, 4, 5]
    assert failed == [("broken.jpg", "cannot decode broken.jpg")]
    assert [p.image for p in read_predictions(tmp_path / "o.jsonl")] == [p.image for p in preds]
    with pytest.raises(MTCNNError, match="every image"):
        run_detector(_Detector(), ["broken.jpg"], progress=False)


# AP printed by the loop-for-loop transcription of the public Python port of evaluation.m
# (wondervictor/WiderFace-Evaluation), run outside the repository on the submission that
# _synthetic_submission(seed=1) writes. See docs/evaluation.md.
REFERENCE_AP_SEED1 = {"easy": 0.27101753728561406, "medium": 0.34854045257716176,
                      "hard": 0.45364064679443084}


def _synthetic_submission(gt, seed: int) -> list[Faces]:
    rng = np.random.default_rng(seed)
    preds = []
    for name, b in zip(gt.images, gt.boxes):
        keep = rng.random(len(b)) < 0.7
        size = np.repeat(b[keep, 2:] - b[keep, :2] + 1, 2, axis=1)[:, [0, 1, 0, 1]]
        found = b[keep] + rng.normal(0, 0.15, (keep.sum(), 4)) * size
        nfp = rng.integers(0, 5)
        fp = rng.uniform(0, 800, (nfp, 2))
        fp = np.hstack([fp, fp + rng.uniform(5, 80, (nfp, 2))])
        boxes = np.vstack([found, fp, b[keep][:2] + 1.0])
        scores = np.round(rng.random(len(boxes)) * 0.9 + 0.05, 6)
        order = np.argsort(-scores, kind="stable")
        preds.append(named(name + ".jpg", boxes[order], scores[order]))
    return preds


def test_ap_equals_reference_implementation(tmp_path):
    if not DATA.exists():
        pytest.skip("shared data folder ../shared/data is absent")
    gt = load_wider_gt(DATA / "wider_face_eval")
    write_wider_dir(_synthetic_submission(gt, 1), tmp_path / "sub")
    res = evaluate_wider(read_predictions(tmp_path / "sub"), gt)
    for s, ap in REFERENCE_AP_SEED1.items():
        assert res.ap[s] == pytest.approx(ap, abs=1e-12)


def test_error_lines_of_mtcnn_detect_are_missing_predictions_not_empty_images(tmp_path):
    from torchmtcnn.evaluate.predictions import read_jsonl

    path = tmp_path / "p.jsonl"
    path.write_text('{"image": "a.jpg", "width": 10, "height": 10, "faces": []}\n'
                    '{"image": "bad.jpg", "error": "bad.jpg: not a readable image"}\n')
    preds = read_jsonl(path)
    assert [p.image for p in preds] == ["a.jpg"]
