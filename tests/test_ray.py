"""The large-collection job on a local Ray (2 CPUs, 1-2 actors): same faces as the plain loop.

Two actors on two CPUs also check that the pool leaves room for the reading tasks."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

ray = pytest.importorskip("ray", reason="the [ray] extra is installed by .ci/run")
pq = pytest.importorskip("pyarrow.parquet")

from torchmtcnn.assets import ASTRONAUT, group_photo  # noqa: E402
from torchmtcnn.batch_ray import detect_with_ray  # noqa: E402
from torchmtcnn.cli import main  # noqa: E402

MIN_FACE = 40
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=150_000_000, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ray_photos")
    image = cv2.imread(str(ASTRONAUT))
    cv2.imwrite(str(folder / "astronaut.jpg"), cv2.resize(image, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA))
    for seed in range(2):
        cv2.imwrite(str(folder / f"group{seed}.png"), group_photo(320, 240, 3 + seed, seed)[:, :, ::-1])
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    return sorted(str(p) for p in folder.iterdir())


def test_ray_gives_the_plain_loop_faces(local_ray, photos, original_weights, tmp_path):
    from torchmtcnn import MTCNN

    plain = {str(r.source): r for r in MTCNN(weights=original_weights, device="cpu",
                                             min_face_size=MIN_FACE).iter_detect(photos)}
    out = tmp_path / "ray.jsonl"
    summary = detect_with_ray(photos, out, num_actors=2, batch_size=2, progress=False,
                              weights=original_weights, device="cpu", min_face_size=MIN_FACE)
    assert (summary.total, summary.done, len(summary.failed)) == (4, 4, 1)
    rows = {row["image"]: row for row in map(json.loads, open(out))}
    assert set(rows) == set(photos)
    for image, row in rows.items():
        expected = plain[image]
        if expected.error is not None:
            assert row["error"] == str(expected.error)
            continue
        assert (row["height"], row["width"]) == expected.faces.image_size
        assert len(row["faces"]) == len(expected.faces) > 0
        np.testing.assert_allclose([f["box"] for f in row["faces"]], expected.faces.boxes, atol=0.011)
        np.testing.assert_allclose([list(f["keypoints"].values()) for f in row["faces"]],
                                   expected.faces.landmarks, atol=0.011)
    assert summary.faces == sum(len(r.faces) for r in plain.values() if r.faces is not None)

    # the command: Parquet on the Ray already running, then a resume with nothing left to do
    parquet = tmp_path / "ray.parquet"
    args = ["detect", *photos, "--ray", "--actors", "1", "--results", str(parquet), "--no-progress",
            "--weights", original_weights, "--device", "cpu", "--min-face-size", str(MIN_FACE)]
    assert main(args) == 1  # broken.jpg
    table = pq.read_table(parquet).to_pylist()
    assert {r["image"]: len(r["faces"] or []) for r in table} == {k: len(r.get("faces", [])) for k, r in rows.items()}
    assert main(args + ["--resume"]) == 0
    assert pq.read_table(parquet).num_rows == 4
