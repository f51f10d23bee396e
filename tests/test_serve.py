"""The HTTP service: /detect on good and bad input, options, limits, /health under load."""

from __future__ import annotations

import struct
import sys
import threading
import time
import zlib

import cv2
import numpy as np
import pytest

pytest.importorskip("fastapi", reason="the [serve] extra is installed by .ci/run")
httpx = pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from torchmtcnn.assets import ASTRONAUT, group_photo  # noqa: E402
from torchmtcnn.detector import Faces  # noqa: E402
from torchmtcnn.serve import Settings, create_app  # noqa: E402
from torchmtcnn.serve.background import serve_in_thread  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def png_header(width: int, height: int) -> bytes:
    """A PNG whose header declares width x height, with almost no pixel data behind it."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def jpeg(rgb: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", rgb[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])
    assert ok
    return buf.tobytes()


@pytest.fixture(scope="module")
def client(original_weights):
    app = create_app(Settings(weights=original_weights, device="cpu", max_body_bytes=2_000_000, workers=2))
    with TestClient(app) as c:
        yield c


@pytest.fixture(scope="module")
def group_jpeg() -> bytes:
    return jpeg(group_photo(640, 480, faces=6, seed=1))


def test_detect_raw_body_matches_the_library(client, detector):
    r = client.post("/detect", content=ASTRONAUT.read_bytes(), headers={"content-type": "image/jpeg"})
    assert r.status_code == 200, r.text
    body = r.json()
    expected = detector.detect(ASTRONAUT)
    assert body["count"] == len(expected) == len(body["faces"]) == 1
    assert (body["width"], body["height"]) == (512, 512)
    assert body["model"] == {"name": detector.weights_name, "version": body["model"]["version"]}
    assert body["time_ms"] >= body["detect_ms"] > 0
    face = body["faces"][0]
    np.testing.assert_allclose(face["box"], expected.boxes[0], atol=0.01)
    assert set(face["keypoints"]) == {"left_eye", "right_eye", "nose", "mouth_left", "mouth_right"}
    assert face["score"] > 0.99


def test_detect_multipart_and_options(client, group_jpeg):
    r = client.post("/detect", files={"file": ("group.jpg", group_jpeg, "image/jpeg")})
    assert r.status_code == 200, r.text
    everything = r.json()["count"]
    assert everything >= 4
    big_only = client.post("/detect", files={"file": ("g.jpg", group_jpeg, "image/jpeg")},
                           params={"min_face_size": 120}).json()
    assert big_only["min_face_size"] == 120 and big_only["count"] < everything
    strict = client.post("/detect", content=group_jpeg, params={"thresholds": "0.6,0.7,0.99999"}).json()
    assert strict["thresholds"] == [0.6, 0.7, 0.99999] and strict["count"] <= everything
    # the shared detector keeps its own options
    assert client.post("/detect", content=group_jpeg).json()["count"] == everything


@pytest.mark.parametrize("params, words", [
    ({"thresholds": "0.6,0.7"}, "three comma-separated"),
    ({"thresholds": "a,b,c"}, "three comma-separated"),
    ({"thresholds": "0.6,0.7,1.5"}, "in [0, 1]"),
    ({"thresholds": "nan,0.7,0.7"}, "in [0, 1]"),
    ({"min_face_size": "0"}, "min_face_size"),
    ({"min_face_size": "-5"}, "min_face_size"),
    ({"min_face_size": "big"}, "valid number"),
])
def test_wrong_options_are_422(client, params, words):
    r = client.post("/detect", content=ASTRONAUT.read_bytes(), params=params)
    assert r.status_code == 422
    assert words in r.json()["detail"]


def test_bad_input_is_a_clear_4xx_and_the_service_goes_on(client):
    data = ASTRONAUT.read_bytes()
    cases = [
        (b"", 400, "empty body"),
        (b"this is not an image", 400, "not a readable image"),
        (data[: len(data) // 2], 400, "not a readable image"),  # truncated JPEG
        (png_header(10_000, 5_000), 413, "over the limit of 40,000,000"),  # 50 MP declared
        (png_header(40_000, 40_000), 413, "too large"),  # 1.6 GP: a decompression bomb
        (b"\0" * 2_000_001, 413, "over the limit of 2,000,000 bytes"),
    ]
    for body, status, words in cases:
        r = client.post("/detect", content=body, headers={"content-type": "application/octet-stream"})
        assert r.status_code == status, (words, r.text)
        assert words in r.json()["detail"], r.json()
    r = client.post("/detect", files={"other": ("a.jpg", data, "image/jpeg")})
    assert r.status_code == 422 and "'file' field" in r.json()["detail"]
    r = client.post("/detect", files={"file": ("big.bin", b"\0" * 2_000_001, "image/jpeg")})
    assert r.status_code == 413
    r = client.post("/detect", content=b"--x\r\nbroken", headers={"content-type": "multipart/form-data"})
    assert r.status_code == 400 and "multipart" in r.json()["detail"]
    assert client.post("/detect", content=data).json()["count"] == 1  # still serving
    assert client.get("/health").json()["status"] == "ok"


def test_body_without_length_is_cut_at_the_limit():
    """A chunked upload of 100 MB to a real server: refused with 413 after about the limit."""
    import socket

    app = create_app(Settings(max_body_bytes=2_000_000), detector=SlowDetector())
    with serve_in_thread(app) as url:
        host, port = url.removeprefix("http://").split(":")
        sent = 0
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(b"POST /detect HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                         b"Content-Type: application/octet-stream\r\n\r\n")
            chunk = b"%x\r\n" % 1_000_000 + b"\0" * 1_000_000 + b"\r\n"
            try:
                for _ in range(100):
                    sock.sendall(chunk)
                    sent += 1
            except OSError:  # the server closed the connection after refusing
                pass
            reply = b""
            while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
                part = sock.recv(65536)
                if not part:
                    break
                reply += part
    assert reply.startswith(b"HTTP/1.1 413"), reply[:200]
    assert b"over the limit of 2,000,000 bytes" in reply
    assert sent < 100  # the service stopped reading


def test_page_health_and_openapi(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert 'id="file"' in page.text and "getUserMedia" in page.text
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["rss_bytes"] > 0 and health["workers"] == 2
    # the weights' own name and version (the original weights' metadata), not the package's
    assert health["model"] == {"name": "mtcnn-original", "version": "1"}
    assert client.post("/detect", content=ASTRONAUT.read_bytes()).json()["model"] == health["model"]
    schema = client.get("/openapi.json").json()
    assert "multipart/form-data" in schema["paths"]["/detect"]["post"]["requestBody"]["content"]
    assert client.get("/docs").status_code == 200


class SlowDetector:
    """Stands in for MTCNN: each detection waits until released."""

    weights_name = "slow"
    device = "cpu"

    def __init__(self) -> None:
        from torchmtcnn.cascade_config import CascadeConfig

        self.config = CascadeConfig()
        self.release = threading.Event()
        self.started = threading.Event()

    def detect(self, image: np.ndarray) -> Faces:
        self.started.set()
        assert self.release.wait(20)
        return Faces.empty(image.shape[:2])


def test_health_answers_while_a_slow_detection_runs():
    slow = SlowDetector()
    app = create_app(Settings(workers=1, max_queue=2), detector=slow)
    image = ASTRONAUT.read_bytes()
    with serve_in_thread(app) as url:
        results: dict[int, httpx.Response] = {}

        def post(i: int) -> None:
            results[i] = httpx.post(f"{url}/detect", content=image, timeout=30)

        first = threading.Thread(target=post, args=(0,))
        first.start()
        assert slow.started.wait(10)
        second = threading.Thread(target=post, args=(1,))  # waits for the one detection thread
        second.start()
        deadline = time.monotonic() + 10
        while httpx.get(f"{url}/health").json()["in_flight"] < 2:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        start = time.perf_counter()
        health = httpx.get(f"{url}/health", timeout=5)
        assert health.status_code == 200 and time.perf_counter() - start < 1.0
        assert health.json()["in_flight"] == 2
        assert httpx.get(url, timeout=5).status_code == 200  # the page too
        busy = httpx.post(f"{url}/detect", content=image, timeout=5)  # over max_queue
        assert busy.status_code == 503 and busy.headers["retry-after"] == "1"
        assert first.is_alive()
        slow.release.set()
        first.join(10)
        second.join(10)
        assert results[0].status_code == results[1].status_code == 200
        assert results[0].json()["count"] == 0
        assert httpx.get(f"{url}/health").json()["in_flight"] == 0


def test_missing_extra_names_the_pip_command(monkeypatch):
    from torchmtcnn.errors import MissingExtraError

    monkeypatch.delitem(sys.modules, "torchmtcnn.serve.app", raising=False)
    monkeypatch.setitem(sys.modules, "fastapi", None)
    with pytest.raises(MissingExtraError, match=r"pip install 'torchmtcnn\[serve\]'"):
        create_app(Settings())


def test_cli_parses_serve_options(monkeypatch):
    from torchmtcnn.cli import build_parser, main

    args = build_parser().parse_args(["serve", "--port", "0", "--max-body-mb", "5", "--thresholds", "0.5,0.6,0.7"])
    assert args.func.__module__ == "torchmtcnn.cli.serve" and args.thresholds == (0.5, 0.6, 0.7)
    seen = {}
    monkeypatch.setattr("torchmtcnn.serve.serve", lambda settings: seen.setdefault("s", settings))
    assert main(["serve", "--port", "8123", "--max-body-mb", "5", "--workers", "3"]) == 0
    s = seen["s"]
    assert (s.host, s.port, s.max_body_bytes, s.workers) == ("127.0.0.1", 8123, 5_000_000, 3)
    assert main(["serve", "--workers", "0"]) == 2  # a clear error, no traceback


def test_settings_defaults_and_checks():
    s = Settings()
    assert (s.host, s.port, s.max_body_bytes, s.max_pixels) == ("127.0.0.1", 8000, 20_000_000, 40_000_000)
    with pytest.raises(ValueError, match="max_body_bytes"):
        Settings(max_body_bytes=0)
