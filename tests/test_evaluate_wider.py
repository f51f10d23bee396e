"""The WIDER protocol and AP core on crafted predictions with hand-known results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from torchmtcnn.data.records import FaceRecord
from torchmtcnn.evaluate import (
    evaluate_faces,
    evaluate_wider,
    load_wider_gt,
    match_images,
    normalize_scores,
    overlaps,
    pr_curve,
    read_predictions,
    voc_ap,
    write_jsonl,
    write_wider_dir,
)
from torchmtcnn.faces import Faces
from torchmtcnn.evaluate.fddb import discrete_roc, ellipse_to_box, read_fddb_ellipses
from torchmtcnn.evaluate.wider import WiderGroundTruth

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
WIDER_DIR = DATA / "wider_face_eval"

# four well separated faces in one image (x1, y1, x2, y2)
FACES = np.array([[0, 0, 20, 20], [100, 0, 120, 20], [200, 0, 220, 20], [300, 0, 320, 20]],
                 np.float64)
KEEP = np.ones(4, bool)
FAR = np.array([[500, 500, 520, 520]], np.float64)



def named(image: str, boxes, scores, landmarks=None) -> Faces:
    """A prediction: the faces of one image, named by it."""
    return Faces(boxes, scores, landmarks, image=image)

def ap_of(boxes, scores, gt=FACES, keep=KEEP, **kw) -> float:
    return pr_curve([(np.asarray(boxes, float), np.asarray(scores, float))], [(gt, keep)],
                    **kw).ap


def test_overlaps_official_plus_one_convention():
    a = np.array([[0, 0, 9, 9]])  # 10 x 10 pixels with the +1 rule
    b = np.array([[5, 0, 14, 9]])
    assert overlaps(a, b)[0, 0] == pytest.approx(50 / 150)
    assert overlaps(a, b, offset=0.0)[0, 0] == pytest.approx(36 / 126)
    assert overlaps(a, np.array([[20, 20, 30, 30]]))[0, 0] == 0.0


def test_perfect_predictions_ap_one():
    assert ap_of(FACES, [0.9, 0.8, 0.7, 0.6]) == pytest.approx(1.0)


def test_all_wrong_ap_zero():
    far = FACES + 1000
    assert ap_of(far, [0.9, 0.8, 0.7, 0.6]) == 0.0


def test_half_found_ap_half():
    # two of four faces, both above every false positive: precision 1 up to recall 0.5
    assert ap_of(FACES[:2], [0.9, 0.3]) == pytest.approx(0.5)


def test_false_positive_ranked_first():
    # FP (score 1) then the four faces: precision at recall k/4 is k/(k+1); the VOC
    # envelope (best precision at this recall or more) lifts all four to 4/5
    boxes = np.vstack([FAR, FACES])
    assert ap_of(boxes, [1.0, 0.9, 0.8, 0.7, 0.0]) == pytest.approx(0.8)
    # FP in the middle: precision 1, 1, then 3/4, 4/5 -> envelope 1, 1, 4/5, 4/5
    boxes = np.vstack([FACES[:2], FAR, FACES[2:]])
    assert ap_of(boxes, [1.0, 0.9, 0.8, 0.7, 0.0]) == pytest.approx(0.9)


def test_duplicate_detection_is_false_positive():
    # face 0 found twice (the copy scores second), then faces 1..3
    boxes = np.vstack([FACES[:1], FACES[:1] + 1, FACES[1:]])
    scores = [1.0, 0.95, 0.5, 0.4, 0.0]
    # precision 1, 2/3, 3/4, 4/5 at recall 1/4..1 -> envelope 1, 4/5, 4/5, 4/5
    expected = 0.25 * (1 + 3 * 4 / 5)
    curve = pr_curve([(boxes, np.array(scores))], [(FACES, KEEP)])
    assert curve.ap == pytest.approx(expected)
    assert curve.proposals[-1] == 5 and curve.recalled[-1] == 4


def test_detection_on_ignored_face_neither_tp_nor_fp():
    keep = np.array([True, True, False, False])
    # the two ignored faces are found with the highest scores: no effect at all
    boxes = np.vstack([FACES[2:], FACES[:2]])
    curve = pr_curve([(boxes, np.array([1.0, 0.9, 0.5, 0.0]))], [(FACES, keep)])
    assert curve.ap == pytest.approx(1.0)
    assert curve.num_faces == 2
    assert curve.proposals[-1] == 2  # the ignored hits are not proposals
    # whereas a far box scored the same is a false positive
    boxes = np.vstack([FAR, FAR + 50, FACES[:2]])
    # precision 1/3 at recall 1/2, 2/4 at recall 1 -> envelope 1/2, 1/2
    assert ap_of(boxes, [1.0, 0.9, 0.5, 0.0], keep=keep) == pytest.approx(0.5)
    # an ignored hit ranked between the two faces leaves precision 1 (were it an FP: 2/3)
    boxes = np.vstack([FACES[:1], FACES[2:3], FACES[1:2]])
    assert ap_of(boxes, [1.0, 0.5, 0.0], keep=keep) == pytest.approx(1.0)
    boxes = np.vstack([FACES[:1], FAR, FACES[1:2]])
    assert ap_of(boxes, [1.0, 0.5, 0.0], keep=keep) == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_scores_normalised_over_whole_set_and_thresholds():
    # raw scores far outside [0, 1]: min-max normalisation makes them usable
    assert ap_of(FACES, [900.0, 800.0, 700.0, 600.0]) == pytest.approx(1.0)
    norm = normalize_scores([np.array([2.0, 4.0]), np.array([]), np.array([6.0])])
    assert np.allclose(norm[0], [0.0, 0.5]) and np.allclose(norm[2], [1.0])
    # normalisation spans images: image B's best score is image A's worst
    preds = [(FACES[:2], np.array([10.0, 5.0])), (FACES[:2], np.array([5.0, 0.0]))]
    curve = pr_curve(preds, [(FACES[:2], KEEP[:2]), (FACES[:2], KEEP[:2])])
    assert curve.ap == pytest.approx(1.0)
    i = np.searchsorted(-curve.thresholds, -0.5)  # threshold 0.5
    assert curve.thresholds[i] == pytest.approx(0.5)
    assert curve.recalled[i] == 3 and curve.recall[i] == pytest.approx(0.75)


def test_official_skip_of_images_without_faces():
    preds = [(FACES, np.ones(4) * 0.5), (FAR, np.array([1.0]))]
    gts = [(FACES, KEEP), (np.zeros((0, 4)), np.zeros(0, bool))]
    assert pr_curve(preds, gts).ap == pytest.approx(1.0)
    assert pr_curve(preds, gts, skip_empty=False).ap == pytest.approx(0.8)


def test_voc_ap_is_envelope_area_and_skips_nan():
    rec = np.array([0.0, 0.5, 0.5, 1.0])
    prec = np.array([np.nan, 1.0, 0.5, 0.5])
    assert voc_ap(rec, prec) == pytest.approx(0.5 * 1.0 + 0.5 * 0.5)


def _tiny_gt() -> WiderGroundTruth:
    boxes = [FACES.copy(), FACES[:2].copy()]
    keep = {"easy": [np.array([1, 1, 0, 0], bool), np.array([1, 0], bool)],
            "medium": [np.ones(4, bool), np.ones(2, bool)],
            "hard": [np.ones(4, bool), np.ones(2, bool)]}
    return WiderGroundTruth(["0--Parade/0_Parade_a_1", "1--Handshaking/1_Hand_b_2"], boxes, keep)


def test_evaluate_wider_settings_and_missing_images():
    gt = _tiny_gt()
    preds = [named("images/0--Parade/0_Parade_a_1.jpg", FACES, [0.9, 0.8, 0.7, 0.6])]
    res = evaluate_wider(preds, gt)
    assert res.missing == ["1--Handshaking/1_Hand_b_2"]
    assert res.ap["easy"] == pytest.approx(2 / 3)  # 2 of 3 easy faces, no false positive
    assert res.ap["hard"] == pytest.approx(4 / 6)


def test_wider_submission_folder_roundtrip(tmp_path):
    gt = _tiny_gt()
    preds = [named("0--Parade/0_Parade_a_1.jpg", FACES, [0.9, 0.8, 0.7, 0.6]),
             named("1--Handshaking/1_Hand_b_2.jpg", FACES[:2], [0.95, 0.1])]
    assert write_wider_dir(preds, tmp_path / "sub") == 2
    text = (tmp_path / "sub" / "0--Parade" / "0_Parade_a_1.txt").read_text().splitlines()
    assert text[:2] == ["0_Parade_a_1", "4"] and text[2].split()[:4] == ["0.0", "0.0", "20.0",
                                                                         "20.0"]
    back = read_predictions(tmp_path / "sub")
    assert {p.image for p in back} == {"0--Parade/0_Parade_a_1", "1--Handshaking/1_Hand_b_2"}
    res = evaluate_wider(back, gt)
    assert res.missing == [] and res.ap["hard"] == pytest.approx(1.0)
    write_jsonl(preds, tmp_path / "p.jsonl")
    assert evaluate_wider(read_predictions(tmp_path / "p.jsonl"), gt).ap == res.ap


def test_match_images_tolerant():
    gt = ["/data/sun/net_7876/a.jpg", "lfw_5590/a.jpg", "x/b.jpg", "c.png"]
    pred = ["net_7876\\a.jpg", "/elsewhere/lfw_5590/a.jpg", "b", "d.png"]
    m = match_images(gt, pred)
    assert m.pairs == [0, 1, 2, -1]
    assert m.missing == ["c.png"] and m.unused == ["d.png"]
    # one name, two folders: an ambiguous bare name matches nothing
    m = match_images(["p/a.jpg", "q/a.jpg"], ["a.jpg"])
    assert m.pairs == [-1, -1] and len(m.ambiguous) == 2


def test_evaluate_faces_uses_ignore_mask():
    rec = FaceRecord("imgs/a.jpg", FACES, ignore=np.array([0, 0, 1, 1], bool))
    preds = [named("a.jpg", np.vstack([FACES[2:], FACES[:1]]), [0.9, 0.8, 0.1])]
    res = evaluate_faces([rec], preds)
    assert res.curve.num_faces == 2 and res.ap == pytest.approx(0.5)
    assert res.missing == []


def test_fddb_ellipse_box_and_discrete_score(tmp_path):
    assert np.allclose(ellipse_to_box(20, 10, 0.0, 50, 60), [30, 50, 70, 70])
    assert np.allclose(ellipse_to_box(20, 10, np.pi / 2, 50, 60), [40, 40, 60, 80])
    (tmp_path / "FDDB-fold-01-ellipseList.txt").write_text(
        "2002/08/11/big/img_591\n1\n20.0 10.0 1.5707963 50.0 60.0  1\n"
        "2002/08/26/big/img_265\n2\n20 10 0 100 100 1\n20 10 0 300 100 1\n")
    recs = read_fddb_ellipses(tmp_path / "FDDB-fold-01-ellipseList.txt")
    assert [len(r) for r in recs] == [1, 2]
    assert np.allclose(recs[0].boxes[0], [40, 40, 60, 80], atol=1e-4)
    (tmp_path / "det.txt").write_text(
        "2002/08/11/big/img_591\n2\n40 40 20 40 0.9\n41 41 20 40 0.8\n"
        "2002/08/26/big/img_265\n1\n80 90 40 20 0.7\n")
    preds = read_predictions(tmp_path / "det.txt")
    res = evaluate_faces(recs, preds, offset=0.0)
    # scores 0.9 TP, 0.8 duplicate FP, 0.7 TP; one face never found
    assert list(res.roc.tp) == [1, 1, 2] and list(res.roc.fp) == [0, 1, 1]
    assert res.roc.tpr_at(0) == pytest.approx(1 / 3)
    assert res.roc.tpr_at(1000) == pytest.approx(2 / 3)


def test_discrete_roc_uses_maximum_matching():
    # detection 0 overlaps both faces, detection 1 only face 0: greedy order would find one
    gt = np.array([[0, 0, 10, 10], [4, 0, 14, 10]], float)
    boxes = np.array([[2, 0, 12, 10], [0, 0, 10, 10]], float)
    roc = discrete_roc([(boxes, np.array([0.9, 0.8]))], [(gt, np.ones(2, bool))], 0.5)
    assert list(roc.tp) == [1, 2] and list(roc.fp) == [0, 0]


@pytest.fixture(scope="module")
def wider_gt():
    if not DATA.exists():
        pytest.skip("shared data folder ../shared/data is absent")
    return load_wider_gt(WIDER_DIR)


def test_official_mat_files_load(wider_gt):
    assert len(wider_gt.images) == 3226
    assert wider_gt.num_boxes == 39708
    counts = {s: int(sum(k.sum() for k in wider_gt.keep[s])) for s in ("easy", "medium", "hard")}
    assert counts == {"easy": 7211, "medium": 13319, "hard": 31958}
    assert wider_gt.images[0] == "0--Parade/0_Parade_marchingband_1_465"
    assert np.allclose(wider_gt.boxes[0][0], [345, 211, 349, 215])


def test_official_gt_as_predictions(wider_gt):
    # every ground-truth box predicted exactly: AP is 1 but for the few duplicate boxes
    rng = np.random.default_rng(0)
    preds = [named(name, b, rng.random(len(b)))
             for name, b in zip(wider_gt.images, wider_gt.boxes)]
    res = evaluate_wider(preds, wider_gt)
    assert res.missing == []
    for s in ("easy", "medium", "hard"):
        assert 0.999 < res.ap[s] <= 1.0
    # half the images predicted: hard AP about halves
    half = evaluate_wider(preds[::2], wider_gt)
    assert len(half.missing) == 3226 // 2
    assert 0.35 < half.ap["hard"] < 0.65


def test_fddb_files_that_end_early_or_hold_a_bad_line_name_the_line(tmp_path):
    from torchmtcnn.errors import AnnotationError
    from torchmtcnn.evaluate.predictions import PredictionError, read_fddb_detections

    short = tmp_path / "FDDB-fold-02-ellipseList.txt"
    short.write_text("img_1\n2\n20 10 0 50 60 1\n")
    with pytest.raises(AnnotationError, match=r"ellipseList.txt:1: img_1 says 2 faces, file ends first"):
        read_fddb_ellipses(short)
    bad = tmp_path / "FDDB-fold-03-ellipseList.txt"
    bad.write_text("img_1\n1\n20 10 zero 50 60 1\n")
    with pytest.raises(AnnotationError, match=r"ellipseList.txt:3: expected an ellipse"):
        read_fddb_ellipses(bad)
    det = tmp_path / "dets.txt"
    det.write_text("img_1\nmany\n")
    with pytest.raises(PredictionError, match=r"dets.txt:2: expected the number of faces"):
        read_fddb_detections(det)
