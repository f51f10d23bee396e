"""Large-collection jobs: parallel decoding, JSON lines and Parquet, resume, failure summary."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from torchmtcnn.assets import ASTRONAUT, GRACE_HOPPER, group_photo
from torchmtcnn.batch import detect_many
from torchmtcnn.cli import main
from torchmtcnn.images import iter_loaded, list_images
from torchmtcnn.resume import done_images


MIN_FACE = 40  # small photos and a large smallest face keep these tests quick


@pytest.fixture(scope="module")
def detector(original_weights):
    from torchmtcnn import MTCNN

    return MTCNN(weights=original_weights, device="cpu", min_face_size=MIN_FACE)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """Seven photos in a folder tree: faces, no face, and two broken files."""
    folder = tmp_path_factory.mktemp("photos")
    (folder / "sub").mkdir()
    for name, source in (("a_astronaut.jpg", ASTRONAUT), ("b_hopper.jpg", GRACE_HOPPER)):
        image = cv2.imread(str(source))
        cv2.imwrite(str(folder / name), cv2.resize(image, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA))
    for seed in range(2):
        cv2.imwrite(str(folder / "sub" / f"group{seed}.jpg"), group_photo(320, 240, 2 + seed, seed)[:, :, ::-1])
    cv2.imwrite(str(folder / "sub" / "noise.png"), np.random.default_rng(0).integers(0, 256, (90, 120, 3), np.uint8))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    data = ASTRONAUT.read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 3])
    return list_images([folder])


@pytest.fixture(scope="module")
def plain(detector, photos):
    """The plain loop's results, by path."""
    return {str(r.source): r for r in detector.iter_detect(photos, batch_size=4)}


def read_jsonl(path) -> dict[str, dict]:
    rows = [json.loads(line) for line in open(path)]
    by_image = {row["image"]: row for row in rows}
    assert len(by_image) == len(rows), "an image appears twice"
    return by_image


def assert_same_faces(rows: dict[str, dict], plain) -> None:
    assert set(rows) == set(plain)
    for image, row in rows.items():
        expected = plain[image]
        if expected.error is not None:
            assert row["error"] == str(expected.error) and row.get("faces") is None
            continue
        assert row.get("error") is None
        assert (row["height"], row["width"]) == expected.faces.image_size
        faces = expected.faces.to_dicts()
        assert len(row["faces"]) == len(faces)
        for got, want in zip(row["faces"], faces):  # batches of other sizes: float noise only
            np.testing.assert_allclose(got["box"], want["box"], atol=0.011)
            np.testing.assert_allclose(got["score"], want["score"], atol=1e-4)
            assert list(got["keypoints"]) == list(want["keypoints"])
            np.testing.assert_allclose(list(got["keypoints"].values()), list(want["keypoints"].values()), atol=0.011)


def test_parallel_decoding_keeps_order_and_gives_the_plain_loop_faces(detector, photos, plain):
    decoded = list(iter_loaded(photos, workers=3, prefetch=2))
    assert [p for p, _ in decoded] == photos
    items = list(detector.iter_detect(photos, batch_size=3, workers=2))
    assert [i.source for i in items] == photos
    for item in items:
        expected = plain[str(item.source)]
        if expected.error is not None:
            assert str(item.error) == str(expected.error) and item.faces is None
        else:
            np.testing.assert_allclose(item.faces.boxes, expected.faces.boxes, atol=1e-3)
            np.testing.assert_allclose(item.faces.landmarks, expected.faces.landmarks, atol=1e-3)


def test_jsonl_output_summary_and_failures(detector, photos, plain, tmp_path):
    out = tmp_path / "faces.jsonl"
    summary = detect_many(photos, out, detector, workers=2, batch_size=4, progress=False)
    assert (summary.total, summary.done, summary.skipped, len(summary.failed)) == (7, 7, 0, 2)
    assert summary.faces == sum(len(r.faces) for r in plain.values() if r.faces is not None) >= 4
    assert summary.photos_per_second > 0
    assert_same_faces(read_jsonl(out), plain)
    report = summary.report()
    assert "7 photo(s): 7 processed" in report and "2 failed" in report
    assert "failed, not a readable image (corrupt or unsupported format): 2" in report
    assert "broken.jpg" in report and "truncated.jpg" in report


def test_resume_after_a_stop_finishes_without_duplicates(detector, photos, plain, tmp_path):
    out = tmp_path / "faces.jsonl"
    seen = []

    def stop_after_four(item):
        seen.append(item)
        if len(seen) == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        detect_many(photos, out, detector, workers=2, batch_size=2, progress=False, on_item=stop_after_four)
    with open(out, "a") as f:
        f.write('{"image": "half a li')  # killed in the middle of a line
    first = done_images(out, "jsonl")
    assert 3 <= len(first) <= 4 and out.read_text().endswith("\n")
    summary = detect_many(photos, out, detector, workers=2, resume=True, progress=False)
    assert summary.skipped == len(first) and summary.done == 7 - len(first)
    assert_same_faces(read_jsonl(out), plain)
    again = detect_many(photos, out, detector, resume=True, progress=False)
    assert (again.skipped, again.done) == (7, 0)


def test_parquet_output_and_resume(detector, photos, plain, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow is in the [ray] extra")
    out = tmp_path / "faces.parquet"
    detect_many(photos[:4], out, detector, fmt="parquet", workers=2, progress=False)
    summary = detect_many(photos, out, detector, workers=2, resume=True, progress=False)
    assert (summary.skipped, summary.done) == (4, 3)
    assert len(list(out.glob("part-*.parquet"))) == 2
    table = pq.read_table(out)
    assert table.num_rows == 7
    rows = {r["image"]: {k: v for k, v in r.items() if v is not None} for r in table.to_pylist()}
    assert_same_faces(rows, plain)


def test_cli_workers_resume_format_and_summary(photos, original_weights, tmp_path, capsys):
    folder = photos[0].parent
    out = tmp_path / "res.parquet"
    detector_args = ["--weights", original_weights, "--device", "cpu", "--min-face-size", str(MIN_FACE)]
    args = ["detect", str(folder), "--results", str(out), "--workers", "2", "--no-progress", *detector_args]
    assert main(args) == 1  # two broken files
    err = capsys.readouterr().err
    assert "5 image(s) read" in err and "2 failed" in err and "photos/s" in err
    assert main(args + ["--resume"]) == 0  # nothing left to do, nothing failed this time
    assert "7 skipped" in capsys.readouterr().err
    jsonl = tmp_path / "res.jsonl"
    assert main(["detect", str(folder / "sub"), "--results", str(jsonl), "--format", "jsonl",
                 "--workers", "0", "--no-progress", *detector_args]) == 0
    assert len(read_jsonl(jsonl)) == 3
    assert main(["detect", str(folder), "--resume", "--weights", original_weights]) == 2
    assert "--resume needs --results" in capsys.readouterr().err
