"""Landmark NME, failure rate, CED/AUC and face pairing on hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest

from torchmtcnn.data.records import FaceRecord
from torchmtcnn.evaluate import (
    ced_auc,
    ced_curve,
    evaluate_landmarks,
    match_faces,
    nme,
)
from torchmtcnn.faces import Faces

# eyes 40 px apart
GT = np.array([[[30, 40], [70, 40], [50, 60], [35, 80], [65, 80]]], np.float64)
BOX = np.array([[10, 10, 90, 100]], np.float64)



def named(image: str, boxes, scores, landmarks=None) -> Faces:
    """A prediction: the faces of one image, named by it."""
    return Faces(boxes, scores, landmarks, image=image)

def test_nme_hand_computed():
    assert nme(GT, GT)[0] == 0.0
    shifted = GT + np.array([4.0, 0.0])  # every point 4 px off: 4 / 40
    assert nme(shifted, GT)[0] == pytest.approx(0.1)
    one = GT.copy()
    one[0, 2] += [6.0, 8.0]  # only the nose, 10 px off: mean 2 px, / 40
    assert nme(one, GT)[0] == pytest.approx(0.05)
    # normalised by the TRUE eyes, not the predicted ones
    wide = GT.copy()
    wide[0, 1, 0] += 40  # right eye 40 px off: 8 px mean / 40
    assert nme(wide, GT)[0] == pytest.approx(0.2)


def test_nme_missing_points():
    gt = GT.copy()
    gt[0, 3] = np.nan  # a point the truth lacks is left out of the mean
    pred = GT.copy()
    pred[0, 2] += [0.0, 10.0]
    assert nme(pred, gt)[0] == pytest.approx(10 / 4 / 40)
    no_eyes = GT.copy()
    no_eyes[0, 0] = np.nan
    assert np.isnan(nme(GT, no_eyes)[0])
    pred_missing = GT.copy()
    pred_missing[0, 4] = np.nan
    assert np.isnan(nme(pred_missing, GT)[0])


def test_ced_and_auc_hand_computed():
    errors = np.array([0.0, 0.05, 0.2, 0.1])
    x, y = ced_curve(errors, 0.1, steps=10)
    assert x[-1] == pytest.approx(0.1) and len(x) == 11
    assert y[0] == pytest.approx(0.25)  # only the 0 error at x = 0
    assert y[5] == pytest.approx(0.5)  # 0 and 0.05 at x = 0.05
    assert y[-1] == pytest.approx(0.75)  # 0.1 counts as <= 0.1
    # AUC: mean of max(0, 0.1 - e) / 0.1 = (1 + 0.5 + 0 + 0) / 4
    assert ced_auc(errors) == pytest.approx(0.375)
    # the grid curve's trapezoid area agrees with the exact value
    x, y = ced_curve(errors, 0.1, steps=10000)
    assert np.trapezoid(y, x) / 0.1 == pytest.approx(0.375, abs=1e-3)
    assert ced_auc(np.zeros(3)) == pytest.approx(1.0)


def test_match_faces_one_to_one_by_iou():
    gt = np.array([[0, 0, 10, 10], [100, 100, 110, 110], [200, 0, 210, 10]], float)
    pred = np.array([[101, 101, 111, 111], [0, 0, 10, 10], [1, 0, 11, 10], [200, 5, 210, 15]],
                    float)
    # face 2's only candidate has IoU 50/150 < 0.5; face 0 takes the exact box
    assert list(match_faces(gt, pred)) == [1, 0, -1]
    # two faces, one prediction: the better overlap keeps it
    gt2 = np.array([[0, 0, 10, 10], [1, 0, 11, 10]], float)
    assert list(match_faces(gt2, np.array([[1, 0, 11, 10]], float))) == [-1, 0]


def test_evaluate_landmarks_counts_missed_separately():
    far_pts = GT + 4.0 * np.array([1.0, 0.0])
    second_gt = GT + 200.0
    rec_a = FaceRecord("set/a.jpg", np.vstack([BOX, BOX + 200]),
                       landmarks=np.vstack([GT, second_gt]))
    rec_b = FaceRecord("set/b.jpg", BOX, landmarks=GT)
    rec_c = FaceRecord("set/c.jpg", BOX, landmarks=GT)  # no prediction file entry
    rec_d = FaceRecord("set/d.jpg", BOX, landmarks=GT, ignore=np.array([True]))
    preds = [
        # a: face 1 exact, face 2 with a 10 % error; plus a stray detection
        named("a.jpg", np.vstack([BOX, BOX + 200, BOX + 500]), [0.9, 0.8, 0.7],
              np.vstack([GT, second_gt + [4.0, 0.0], GT])),
        # b: the box misses the face entirely
        named("b.jpg", BOX + 300, [0.9], far_pts),
        named("d.jpg", BOX, [0.9], GT + 100),
    ]
    res = evaluate_landmarks([rec_a, rec_b, rec_c, rec_d], preds)
    assert res.num_faces == 4  # the ignored face is not counted
    assert res.num_missed == 2  # b's face and c's face
    assert sorted(res.errors.tolist()) == pytest.approx([0.0, 0.1])
    assert res.mean_nme == pytest.approx(0.05)
    assert res.failure_rate == pytest.approx(0.0)  # 0.1 is not above 10 %
    assert res.auc == pytest.approx(0.5)
    assert res.missing_images == ["set/c.jpg"]


def test_evaluate_landmarks_failure_and_no_points():
    rec = FaceRecord("x.jpg", np.vstack([BOX, BOX + 200]),
                     landmarks=np.vstack([GT, GT + 200]))
    pred = named("x.jpg", np.vstack([BOX, BOX + 200]), [0.9, 0.8],
                 np.vstack([GT + [8.0, 0.0], GT + 200]))
    res = evaluate_landmarks([rec], [pred])
    assert res.failure_rate == pytest.approx(0.5)  # 8 / 40 = 0.2 fails
    assert res.mean_nme == pytest.approx(0.1)
    no_pts = named("x.jpg", np.vstack([BOX, BOX + 200]), [0.9, 0.8])
    res = evaluate_landmarks([rec], [no_pts])
    assert res.num_no_points == 2 and len(res.errors) == 0 and res.num_missed == 0
