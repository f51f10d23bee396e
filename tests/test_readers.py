"""Annotation readers: each format on tiny crafted files, every broken line, the box rule,
and the real shared data (skipped only when ../shared/data is absent)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from torchmtcnn.data.readers import (
    AnnotationSet,
    Problem,
    box_from_landmarks,
    box_from_points,
    guess_format,
    read_annotations,
)
from torchmtcnn.images import header_size
from torchmtcnn.data.readers.boxrule import STANDARD_BOX, BoxRule
from torchmtcnn.errors import AnnotationError

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="shared data folder absent")


def make_image(path: Path, size: tuple[int, int] = (100, 80)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (120, 90, 60)).save(path)
    return path


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def kinds_at(result: AnnotationSet) -> list[tuple[str, str]]:
    """(kind, "name:line") of every problem, file name only."""
    prefix = f"{result.path.parent}/"
    assert all(p.source.startswith(prefix) for p in result.problems)
    return [(p.kind, p.source[len(prefix):]) for p in result.problems]


# ---------------------------------------------------------------- WIDER text


def wider_tree(tmp_path: Path, text: str) -> Path:
    images = tmp_path / "WIDER_train" / "images"
    make_image(images / "0--Parade" / "a.jpg")
    make_image(images / "0--Parade" / "b.jpg")
    make_image(images / "1--Handshaking" / "c.jpg", (60, 50))
    return write(tmp_path / "wider_face_split" / "wider_face_train_bbx_gt.txt", text)


def test_wider_txt_good(tmp_path: Path) -> None:
    path = wider_tree(
        tmp_path,
        "0--Parade/a.jpg\n2\n"
        "10 20 30 40 1 0 0 0 2 0 \n"
        "50 5 10 10 2 1 1 1 0 1 \n"
        "0--Parade/b.jpg\n0\n0 0 0 0 0 0 0 0 0 0 \n"
        "1--Handshaking/c.jpg\n1\n1 2 3 4 0 0 0 0 0 0 \n",
    )
    result = read_annotations(path)  # format guessed, images root defaulted
    assert result.fmt == "wider" and result.problems == []
    a, b, c = result.records
    assert a.image == tmp_path / "WIDER_train" / "images" / "0--Parade" / "a.jpg"
    np.testing.assert_array_equal(a.boxes, [[10, 20, 40, 60], [50, 5, 60, 15]])
    assert a.boxes.dtype == np.float32 and a.landmarks is None
    np.testing.assert_array_equal(a.ignore, [False, True])
    np.testing.assert_array_equal(a.attributes["blur"], [1, 2])
    np.testing.assert_array_equal(a.attributes["occlusion"], [2, 0])
    np.testing.assert_array_equal(a.attributes["pose"], [0, 1])
    assert set(a.attributes) == {"blur", "expression", "illumination", "invalid", "occlusion", "pose"}
    assert a.source.endswith("wider_face_train_bbx_gt.txt:1")
    assert len(b) == 0 and b.source.endswith(":5")  # a photo without faces is a record
    np.testing.assert_array_equal(c.boxes, [[1, 2, 4, 6]])
    assert result.num_faces == 3 and result.num_ignored == 1
    assert "3 records, 3 faces (1 ignored), 0 problems" in result.summary()


def test_wider_txt_broken_lines_reported_and_skipped(tmp_path: Path) -> None:
    path = wider_tree(
        tmp_path,
        "0--Parade/a.jpg\n4\n"  # 1-2
        "10 20 30 40 0 0 0 0 0 0\n"  # 3 good
        "10 20 x 40 0 0 0 0 0 0\n"  # 4 not numbers
        "10 20 0 40 0 0 0 0 0 0\n"  # 5 zero width
        "500 500 10 10 0 0 0 0 0 0\n"  # 6 outside the 100x80 image
        "0--Parade/missing.jpg\n1\n1 1 5 5 0 0 0 0 0 0\n"  # 7-9 missing image
        "1--Handshaking/c.jpg\n3\n1 2 3 4 0 0 0 0 0 0\n"  # 10-12 fewer faces than count
        "0--Parade/b.jpg\nmany\n1 1 5 5 0 0 0 0 0 0\n"  # 13-15 bad count
        "0--Parade/b.jpg\n1\n1 1 5 5 0 0 0 0 0 0\n2 2 5 5 0 0 0 0 0 0\n"  # 16-19 extra line
        "1--Handshaking/c.jpg\n2\n1 2 3 4 0 0 0 0 0 0\n",  # 20-22 truncated
    )
    result = read_annotations(path)
    names = [r.image.name for r in result.records]
    assert names == ["a.jpg", "c.jpg", "b.jpg", "c.jpg"]
    np.testing.assert_array_equal(result.records[0].boxes, [[10, 20, 40, 60]])
    f = "wider_face_train_bbx_gt.txt"
    assert kinds_at(result) == [
        ("parse", f"{f}:4"),
        ("bad-box", f"{f}:5"),
        ("box-outside", f"{f}:6"),
        ("missing-image", f"{f}:7"),
        ("count-mismatch", f"{f}:10"),
        ("parse", f"{f}:14"),
        ("count-mismatch", f"{f}:19"),
        ("truncated", f"{f}:20"),
    ]
    assert "8 problems" in result.summary() and "count-mismatch: 2" in result.summary()
    with pytest.raises(AnnotationError, match=r"wider_face_train_bbx_gt.txt:4"):
        read_annotations(path, validate=True)


def test_wider_txt_file_ending_after_name(tmp_path: Path) -> None:
    path = wider_tree(tmp_path, "0--Parade/a.jpg\n1\n1 1 5 5 0 0 0 0 0 0\n0--Parade/b.jpg\n")
    result = read_annotations(path)
    assert len(result.records) == 1
    assert kinds_at(result) == [("truncated", "wider_face_train_bbx_gt.txt:4")]


def test_box_clipped_when_past_the_border(tmp_path: Path) -> None:
    path = wider_tree(
        tmp_path, "0--Parade/a.jpg\n2\n90 70 20 20 0 0 0 0 0 0\n0 0 100.5 80 0 0 0 0 0 0\n"
    )
    result = read_annotations(path)
    np.testing.assert_array_equal(result.records[0].boxes, [[90, 70, 100, 80], [0, 0, 100, 80]])
    assert kinds_at(result) == [("box-clipped", "wider_face_train_bbx_gt.txt:3")]


def test_check_images_false_touches_no_image(tmp_path: Path) -> None:
    path = write(tmp_path / "wider_face_val_bbx_gt.txt", "x/nothere.jpg\n1\n500 500 10 10 0 0 0 0 0 0\n")
    result = read_annotations(path, check_images=False)
    assert result.problems == [] and len(result.records) == 1
    assert result.records[0].image == tmp_path.parent / "WIDER_val" / "images" / "x" / "nothere.jpg"


# ---------------------------------------------------------------- WIDER .mat


def _cells(items: list) -> np.ndarray:
    out = np.empty((len(items), 1), dtype=object)
    for k, item in enumerate(items):
        out[k, 0] = item
    return out


def write_wider_mat(folder: Path) -> Path:
    from scipy.io import savemat

    folder.mkdir(parents=True, exist_ok=True)
    boxes = [[np.array([[10, 10, 20, 20], [30, 30, 0, 5], [40, 40, 8, 8]], np.int32),
              np.zeros((1, 4), np.int32)]]
    invalid = [[np.array([[0], [0], [1]], np.uint8), np.zeros((1, 1), np.uint8)]]
    blur = [[np.array([[2], [1], [0]], np.uint8), np.zeros((1, 1), np.uint8)]]
    common = {
        "event_list": _cells([np.array(["0--Parade"])]),
        "file_list": _cells([_cells([np.array(["p_1"]), np.array(["p_2"])])]),
        "face_bbx_list": _cells([_cells(boxes[0])]),
        "invalid_label_list": _cells([_cells(invalid[0])]),
        "blur_label_list": _cells([_cells(blur[0])]),
    }
    savemat(folder / "wider_face_val.mat", common)
    hard = dict(common, gt_list=_cells([_cells([np.array([[1]], np.uint8), np.zeros((0, 1), np.uint8)])]))
    savemat(folder / "wider_hard_val.mat", hard)
    return folder / "wider_face_val.mat"


def test_wider_mat(tmp_path: Path) -> None:
    path = write_wider_mat(tmp_path / "eval")
    result = read_annotations(path, check_images=False)
    assert result.fmt == "wider-mat"
    p1, p2 = result.records
    assert p1.image == tmp_path / "WIDER_val" / "images" / "0--Parade" / "p_1.jpg"
    np.testing.assert_array_equal(p1.boxes, [[10, 10, 30, 30], [40, 40, 48, 48]])
    np.testing.assert_array_equal(p1.ignore, [False, True])
    np.testing.assert_array_equal(p1.attributes["blur"], [2, 0])
    np.testing.assert_array_equal(p1.attributes["hard"], [1, 0])  # from the sibling file
    assert len(p2) == 0  # the all-zero placeholder row is no face
    assert kinds_at(result) == [("bad-box", "wider_face_val.mat:0--Parade/p_1#2")]
    # the setting file itself: faces outside its gt_list are ignored, as in the evaluation
    hard = read_annotations(path.with_name("wider_hard_val.mat"), check_images=False)
    np.testing.assert_array_equal(hard.records[0].ignore, [False, True])


def test_wider_mat_unreadable_file(tmp_path: Path) -> None:
    path = write(tmp_path / "wider_face_val.mat", "not a mat file")
    result = read_annotations(path, check_images=False)
    assert result.records == [] and kinds_at(result) == [("unreadable-file", "wider_face_val.mat:0")]


# ---------------------------------------------------------------- Sun 2013


def test_sun2013(tmp_path: Path) -> None:
    make_image(tmp_path / "net_7876" / "a.jpg", (200, 150))
    make_image(tmp_path / "lfw_5590" / "b.jpg", (200, 150))
    path = write(
        tmp_path / "trainImageList.txt",
        "net_7876\\a.jpg 10 110 20 120 30 50 80 50 55 70 35 95 75 95\r\n"  # 1 good
        "lfw_5590\\b.jpg 10 110 20 120 30 50 80 50 55 70 35\r\n"  # 2 too few fields
        "lfw_5590\\b.jpg 10 110 20 120 30 50 80 50 55 nan 35 95 75 95\r\n"  # 3 not finite
        "lfw_5590\\none.jpg 10 110 20 120 30 50 80 50 55 70 35 95 75 95\r\n"  # 4 missing
        "lfw_5590/b.jpg 110 10 20 120 30 50 80 50 55 70 35 95 75 95\r\n"  # 5 right < left
        "lfw_5590/b.jpg 10 110 20 120 30 50 80 50 55 70 35 95 75 95",  # 6 good, no newline
    )
    result = read_annotations(path)
    assert result.fmt == "sun2013"
    a, b = result.records
    assert a.image == tmp_path / "net_7876" / "a.jpg" and b.image == tmp_path / "lfw_5590" / "b.jpg"
    np.testing.assert_array_equal(a.landmarks[0], [[30, 50], [80, 50], [55, 70], [35, 95], [75, 95]])
    # the list's own box (left right top bottom: brows to chin) gives way to the standard box
    np.testing.assert_allclose(a.boxes, box_from_landmarks(a.landmarks), rtol=1e-6)
    assert a.boxes[0, 1] < 20 and a.boxes[0, 3] > 120  # taller than the list's 20-120
    assert a.source.endswith("trainImageList.txt:1") and b.source.endswith(":6")
    assert (a.key, b.key) == ("sun2013:net_7876/a.jpg", "sun2013:lfw_5590/b.jpg")
    f = "trainImageList.txt"
    assert kinds_at(result) == [
        ("parse", f"{f}:2"), ("parse", f"{f}:3"), ("missing-image", f"{f}:4"), ("bad-box", f"{f}:5"),
    ]


# ---------------------------------------------------------------- MTFL


def test_mtfl(tmp_path: Path) -> None:
    make_image(tmp_path / "AFLW" / "1.jpg", (80, 80))
    path = write(
        tmp_path / "new_testing.txt",
        "AFLW/1.jpg 30 50 40 32 48 35 35 45 55 55\n"
        "AFLW/1.jpg 30 50 40 32 48 35 35 45 55 95\n"  # a mouth corner below the crop
        "AFLW/1.jpg 30 50 40\n",
    )
    result = read_annotations(path)
    assert result.fmt == "mtfl" and len(result.records) == 1
    rec = result.records[0]
    points = np.array([[30, 35], [50, 35], [40, 45], [32, 55], [48, 55]], np.float32)
    np.testing.assert_array_equal(rec.landmarks[0], points)
    np.testing.assert_allclose(rec.boxes, box_from_landmarks(points[None]), rtol=1e-6)
    assert kinds_at(result) == [
        ("point-outside", "new_testing.txt:2"), ("record-skipped", "new_testing.txt:2"),
        ("parse", "new_testing.txt:3"),
    ]
    assert "truncated" in result.problems[-1].message  # the last line


@needs_shared
def test_shared_mtfl_lfw_crops_get_standard_boxes_from_their_points() -> None:
    crops = [r for r in read_annotations(SHARED / "mtfl" / "new_training.txt").records
             if r.key.startswith("mtfl:lfw_5590/")]
    assert len(crops) == 4_151
    boxes = np.concatenate([r.boxes for r in crops])
    np.testing.assert_allclose(boxes, box_from_landmarks(np.concatenate([r.landmarks for r in crops])),
                               rtol=1e-5)
    heights = boxes[:, 3] - boxes[:, 1]
    assert 25 < np.median(heights) < 50  # small faces in 80x80 crops, forehead to chin


# ---------------------------------------------------------------- Caltech


def test_caltech_groups_faces_by_photo(tmp_path: Path) -> None:
    make_image(tmp_path / "images" / "pic1.jpg", (300, 200))
    make_image(tmp_path / "images" / "pic2.jpg", (300, 200))
    path = write(
        tmp_path / "WebFaces_GroundThruth.txt",
        "pic1.jpg 100 50 120 50 110 60 110 70\n"
        "pic2.jpg 10 10 20 10 15 15 15 20\n"
        "pic1.jpg 200 100 220 100 210 110 210 120\n"  # second face of pic1, not adjacent
        "pic2.jpg 10 10 20 10 15 15 15\n"  # too few numbers
        "pic3.jpg 10 10 20 10 15 15 15 20\n",  # missing photo
    )
    result = read_annotations(path)
    assert result.fmt == "caltech"
    p1, p2 = result.records
    assert p1.image == tmp_path / "images" / "pic1.jpg" and len(p1) == 2 and len(p2) == 1
    assert p1.source.endswith(":1") and p2.source.endswith(":2")
    np.testing.assert_array_equal(p1.landmarks[1, :3], [[200, 100], [220, 100], [210, 110]])
    assert np.isnan(p1.landmarks[:, 3:]).all()  # mouth corners unknown
    expected = box_from_points([[200, 100]], [[220, 100]], [[210, 110]], [[210, 120]])
    np.testing.assert_allclose(p1.boxes[1], expected[0], rtol=1e-6)
    assert (p1.key, p2.key) == ("caltech:pic1.jpg", "caltech:pic2.jpg")
    assert kinds_at(result) == [
        ("parse", "WebFaces_GroundThruth.txt:4"), ("missing-image", "WebFaces_GroundThruth.txt:5")
    ]


# ---------------------------------------------------------------- jsonl


def test_jsonl(tmp_path: Path) -> None:
    make_image(tmp_path / "imgs" / "a.png", (64, 48))
    lines = [
        {"image": "imgs/a.png", "faces": [
            {"box": [1, 2, 30, 40], "keypoints": {"left_eye": [10, 12], "nose": [15, 20]}},
            {"box": [5, 5, 9, 9], "ignore": True, "attributes": {"occlusion": 2}},
        ]},
        {"image": "imgs/a.png", "faces": []},
        {"image": "imgs/a.png", "faces": [{"box": [1, 2, 3]}, {"box": [1, 1, 5, 5],
                                            "keypoints": {"chin": [1, 1]}}]},
        {"image": "imgs/a.png", "faces": [{"box": [1, 1, 1, 5]}, {"box": [2, 2, 8, 8]}]},
        {"faces": []},
    ]
    text = "\n".join(json.dumps(x) for x in lines) + '\n{"image": "imgs/a.png", "fa'
    path = write(tmp_path / "faces.jsonl", text)
    result = read_annotations(path)
    assert [len(r) for r in result.records] == [2, 0, 1]
    a, empty, d = result.records
    np.testing.assert_array_equal(a.boxes, [[1, 2, 30, 40], [5, 5, 9, 9]])
    np.testing.assert_array_equal(a.landmarks[0, 0], [10, 12])
    np.testing.assert_array_equal(a.landmarks[0, 2], [15, 20])
    assert np.isnan(a.landmarks[0, 1]).all() and np.isnan(a.landmarks[1]).all()
    np.testing.assert_array_equal(a.ignore, [False, True])
    np.testing.assert_array_equal(a.attributes["occlusion"], [-1, 2])
    assert empty.landmarks.shape == (0, 5, 2)  # points in the file: every record has the array
    np.testing.assert_array_equal(d.boxes, [[2, 2, 8, 8]])
    assert kinds_at(result) == [
        ("parse", "faces.jsonl:3"), ("parse", "faces.jsonl:3"), ("record-skipped", "faces.jsonl:3"),
        ("bad-box", "faces.jsonl:4"), ("parse", "faces.jsonl:5"), ("parse", "faces.jsonl:6"),
    ]
    assert "chin" in result.problems[1].message


def test_jsonl_without_keypoints_has_no_landmarks(tmp_path: Path) -> None:
    make_image(tmp_path / "a.jpg")
    path = write(tmp_path / "x.jsonl", json.dumps({"image": "a.jpg", "faces": [{"box": [1, 1, 9, 9]}]}))
    assert read_annotations(path).records[0].landmarks is None


# ---------------------------------------------------------------- API


def test_guess_format() -> None:
    assert guess_format("x/wider_face_train_bbx_gt.txt") == "wider"
    assert guess_format("wider_face_val.mat") == "wider-mat"
    assert guess_format("wider_easy_val.mat") == "wider-mat"
    assert guess_format("testImageList.txt") == "sun2013"
    assert guess_format("new_training.txt") == "mtfl"
    assert guess_format("WebFaces_GroundThruth.txt") == "caltech"
    assert guess_format("mine.jsonl") == "jsonl"
    with pytest.raises(AnnotationError, match="fmt="):
        guess_format("labels.txt")


def test_api_errors(tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match="not found"):
        read_annotations(tmp_path / "nothere.jsonl")
    with pytest.raises(AnnotationError, match="unknown annotation format"):
        read_annotations(write(tmp_path / "a.txt", ""), fmt="coco")


def test_problem_and_validate_message(tmp_path: Path) -> None:
    path = write(tmp_path / "x.jsonl", "{}\n")
    result = read_annotations(path)
    assert isinstance(result.problems[0], Problem)
    assert str(result.problems[0]).startswith(f"{path}:1: ")
    with pytest.raises(AnnotationError, match=r"1 annotation problems: .*x.jsonl:1"):
        read_annotations(path, validate=True)


# ---------------------------------------------------------------- box rule and image sizes


def test_standard_box_of_an_upright_face_by_hand() -> None:
    # eyes 20 px apart, mouth 20 px below them, nose on the midline: no roll, no yaw
    box = box_from_points([[40, 40]], [[60, 40]], [[50, 52]], [[50, 60]])[0]
    assert STANDARD_BOX == BoxRule(t=0.28, u=-1.1398, aw=1.2744, bw=0.816, ah=1.1384,
                                   bh=1.5854, k=0.0953)
    # centre (50, 40 + 0.28 * 20); w = (1.2744 + 0.816) * 20 = 41.808, h = 54.476
    np.testing.assert_allclose(box, [29.096, 18.362, 70.904, 72.838], atol=1e-9)
    # forehead to chin: the box starts well above the eyes and ends below the mouth
    assert box[1] < 40 - 20 and box[3] > 60 + 10
    # the same face turned (nose 4 px right of the midline: yaw 0.2 eye distances): the box
    # moves by u * 0.2 * 20 = -4.5592 px, to the side the face turns from
    turned = box_from_points([[40, 40]], [[60, 40]], [[54, 52]], [[50, 60]])[0]
    np.testing.assert_allclose(turned, box + [-4.5592, 0, -4.5592, 0], atol=1e-9)
    # an unknown nose (Caltech has one; MTFL and Sun 2013 too) means no yaw term
    np.testing.assert_allclose(box_from_points([[40, 40]], [[60, 40]], None, [[50, 60]])[0], box)
    np.testing.assert_allclose(box_from_landmarks(
        [[[40, 40], [60, 40], [50, 52], [44, 60], [56, 60]]])[0], box)  # mouth centre of corners


def test_box_rule_turns_and_scales_with_the_face() -> None:
    pts = np.array([[40.0, 40], [60, 40], [52, 51], [50, 60]])
    a = box_from_points(*pts[:, None])[0]
    c = box_from_points(*(pts * 2)[:, None])[0]
    np.testing.assert_allclose(c, 2 * a)
    rot = np.array([[0.0, -1], [1, 0]])  # a quarter turn about the origin
    b = box_from_points(*(pts @ rot.T)[:, None])[0]
    centre = lambda x: (x[:2] + x[2:]) / 2  # noqa: E731
    np.testing.assert_allclose(centre(b), rot @ centre(a), atol=1e-9)
    np.testing.assert_allclose([b[2] - b[0], b[3] - b[1]], [a[3] - a[1], a[2] - a[0]], atol=1e-9)
    # half a quarter turn, by hand, with a simple rule (w = de = 10, h = 2 dm = 20): eyes
    # midpoint at 0, down axis d = (c, c), right axis r = (c, -c), c = sqrt(1/2)
    c = np.sqrt(0.5)
    le, re, mouth = np.array([[-5 * c, 5 * c]]), np.array([[5 * c, -5 * c]]), np.array([[10 * c, 10 * c]])
    centre = np.array([5 * c, 5 * c])  # eyes + 0.5 (mouth - eyes)
    hull = box_from_points(le, re, None, mouth, BoxRule(0.5, 0.0, 1.0, 0.0, 0.0, 2.0, 1.0))[0]
    half = (10 + 20) * c / 2  # the turned 10 x 20 rectangle's extent, both ways
    np.testing.assert_allclose(hull, np.r_[centre - half, centre + half], atol=1e-9)
    swap = box_from_points(le, re, None, mouth, BoxRule(0.5, 0.0, 1.0, 0.0, 0.0, 2.0, 0.0))[0]
    np.testing.assert_allclose(swap, np.r_[centre - 7.5, centre + 7.5], atol=1e-9)  # (10 + 20) / 4


def test_header_size_matches_pil(tmp_path: Path) -> None:
    rgb = Image.new("RGB", (123, 45), (1, 2, 3))
    rgb.save(tmp_path / "a.jpg")
    rgb.save(tmp_path / "p.jpg", progressive=True)
    rgb.save(tmp_path / "a.png")
    rgb.save(tmp_path / "a.bmp")
    for name in ("a.jpg", "p.jpg", "a.png"):
        assert header_size(tmp_path / name) == (123, 45)
    assert header_size(tmp_path / "a.bmp") is None  # left to PIL


# ---------------------------------------------------------------- the real shared data


@needs_shared
def test_shared_sun2013_train() -> None:
    path = SHARED / "sun2013" / "trainImageList.txt"
    full = read_annotations(path, check_images=False)
    assert len(full.records) == 10_000 and full.problems == []
    start = time.perf_counter()
    here = read_annotations(path)
    assert time.perf_counter() - start < 20
    # only the net_7876 part has its images here; the lfw_5590 lines are reported
    assert len(here.records) == 5_849 and all("net_7876" in str(r.image) for r in here.records)
    assert here.problems_by_kind() == {"missing-image": 4_151}


@needs_shared
def test_shared_caltech() -> None:
    result = read_annotations(SHARED / "caltech_webfaces" / "WebFaces_GroundThruth.txt")
    assert len(result.records) == 7_092 and result.num_faces == 10_524
    assert result.problems == []


@needs_shared
def test_shared_wider_val_mat() -> None:
    result = read_annotations(SHARED / "wider_face_eval" / "wider_face_val.mat", check_images=False)
    assert len(result.records) == 3_226
    empty = sum(len(r) == 0 for r in result.records)  # photos whose only row is 0 0 0 0
    kinds = result.problems_by_kind()
    assert set(kinds) <= {"bad-box"}
    assert result.num_faces + kinds.get("bad-box", 0) + empty == 39_708
    assert {"easy", "medium", "hard", "blur", "invalid"} <= set(result.records[0].attributes)
    assert result.num_ignored == sum(int(r.attributes["invalid"].sum()) for r in result.records)


@needs_shared
def test_shared_mtfl() -> None:
    test = read_annotations(SHARED / "mtfl" / "new_testing.txt")
    assert len(test.records) == 2_995 and test.problems == []
    train = read_annotations(SHARED / "mtfl" / "new_training.txt")
    assert len(train.records) + train.problems_by_kind().get("record-skipped", 0) == 10_000
    assert set(train.problems_by_kind()) <= {"point-outside", "record-skipped"}
