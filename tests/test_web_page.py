"""The in-browser page at /web/ in a real headless Chromium (Debian's, driven by Playwright):
the whole cascade runs in the page with onnxruntime-web, and its faces for the bundled photo
are the Python cascade's."""

from __future__ import annotations

import os
import shutil

import httpx
import pytest
from face_match import assert_same_faces

pytest.importorskip("fastapi", reason="the [serve] extra is installed by .ci/run")
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is in the [test] extra")

from torchmtcnn import MTCNN, web  # noqa: E402
from torchmtcnn.assets import ASSETS  # noqa: E402
from torchmtcnn.images import read_image  # noqa: E402
from torchmtcnn.serve import Settings, create_app  # noqa: E402
from torchmtcnn.serve.background import serve_in_thread  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
CHROMIUM = os.environ.get("TORCHMTCNN_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
PHOTO = ASSETS / "group.jpg"


@pytest.fixture(scope="module")
def service_url(original_weights):
    web.check_runtime()  # fails naming `python -m torchmtcnn.web.vendor` (run by .ci/run)
    app = create_app(Settings(weights=original_weights, device="cpu", workers=1))
    with serve_in_thread(app) as url:
        yield url


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install -y chromium (done by .ci/run)")
    with playwright.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(str(tmp_path_factory.mktemp("chromium-profile")),
                                                       executable_path=CHROMIUM, headless=True, args=FLAGS,
                                                       viewport={"width": 1200, "height": 900})
        yield context
        context.close()


def _open(browser, url):
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url + "/web/")
    page.wait_for_function("['ready', 'error'].includes(document.body.dataset.state)", timeout=120_000)
    assert page.evaluate("document.body.dataset.state") == "ready", page.inner_text("#status")
    return page, errors


def test_the_page_finds_the_python_cascades_faces_in_the_bundled_photo(service_url, browser, original_weights):
    page, errors = _open(browser, service_url)
    assert page.evaluate("self.crossOriginIsolated")  # the service's headers: threads in the page
    assert "mtcnn-original" in page.inner_text("#model")
    page.set_input_files("#file", str(PHOTO))
    page.wait_for_function("['done', 'error'].includes(document.body.dataset.state)", timeout=120_000)
    assert page.evaluate("document.body.dataset.state") == "done", page.inner_text("#status")
    result = page.evaluate("window.mtcnn.result")
    want = MTCNN(weights=original_weights, device="cpu").detect(read_image(PHOTO))
    assert len(want) >= 2 and (result["height"], result["width"]) == want.image_size
    faces = result["faces"]
    boxes = [f["box"] for f in faces]
    points = [[f["keypoints"][k] for k in ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")]
              for f in faces]
    worst = assert_same_faces(boxes, [f["score"] for f in faces], points, want)
    assert page.get_attribute("#canvas", "data-drawn") == str(len(want))
    assert page.inner_text("#count") == f"{len(want)} faces"
    x1, y1, x2, _ = want.boxes[0]
    pixel = page.evaluate(f"Array.from(document.getElementById('canvas').getContext('2d')"
                          f".getImageData({int((x1 + x2) / 2)}, {int(round(y1))}, 1, 1).data)")
    assert pixel[0] > 200 and pixel[2] < 80, pixel  # the box colour, #ffb000
    print(f"\npage: {result['ms']:.0f} ms for {PHOTO.name}; worst IoU {worst['iou']:.4f}, "
          f"points {worst['points_px']:.3f} px, scores {worst['score']:.2e}")
    if os.environ.get("TORCHMTCNN_SCREENSHOT"):
        page.screenshot(path=os.environ["TORCHMTCNN_SCREENSHOT"], full_page=True)

    # other settings typed in; then a file that is not an image: the page says why
    page.fill("#min-face", "60")
    page.fill("#thresholds", "0.6,0.7,0.95")
    page.set_input_files("#file", str(PHOTO))
    page.wait_for_function("window.mtcnn.photos === 2 || document.body.dataset.state === 'error'", timeout=120_000)
    other = MTCNN(weights=original_weights, device="cpu", min_face_size=60, thresholds=(0.6, 0.7, 0.95))
    faces = page.evaluate("window.mtcnn.result.faces")
    assert_same_faces([f["box"] for f in faces], [f["score"] for f in faces],
                      [list(f["keypoints"].values()) for f in faces], other.detect(read_image(PHOTO)))
    page.set_input_files("#file", files=[{"name": "bad.jpg", "mimeType": "image/jpeg", "buffer": b"not an image"}])
    page.wait_for_function("document.body.dataset.state === 'error'", timeout=30_000)
    assert "not a readable image" in page.inner_text("#status")
    assert errors == []
    page.close()


def test_camera_frames_are_detected_in_the_page(service_url, browser):
    """Chromium's fake camera: start it, frames are detected one after another."""
    page, errors = _open(browser, service_url)
    page.click("#camera")
    page.wait_for_function("window.mtcnn.frames >= 2", timeout=120_000)
    assert page.inner_text("#camera") == "Stop camera"
    assert page.evaluate("document.body.dataset.state") == "done", page.inner_text("#status")
    assert "frames/s" in page.inner_text("#status")
    width = page.evaluate("document.getElementById('video').videoWidth")
    assert width > 0 and page.evaluate("document.getElementById('canvas').width") == width
    page.click("#camera")
    assert page.inner_text("#camera") == "Start camera"
    assert errors == []
    page.close()


def test_files_served_and_missing_runtime(service_url, monkeypatch, tmp_path):
    r = httpx.get(f"{service_url}/web/model.json", timeout=60)
    assert r.json()["weights_name"] == "mtcnn-original" and r.json()["thresholds"] == "0.6,0.7,0.7"
    r = httpx.get(f"{service_url}/web/ort/ort-wasm-simd-threaded.wasm", timeout=60)
    assert r.headers["content-type"] == "application/wasm"
    assert r.headers["cross-origin-embedder-policy"] == "require-corp"
    assert httpx.get(f"{service_url}/web/ort/secret.txt").status_code == 404
    monkeypatch.setattr(web, "ORT_DIR", tmp_path)
    r = httpx.get(f"{service_url}/web/ort/ort.wasm.min.mjs")
    assert r.status_code == 404 and "python -m torchmtcnn.web.vendor" in r.json()["detail"]
    with pytest.raises(web.WebRuntimeMissing, match="python -m torchmtcnn.web.vendor"):
        web.check_runtime(tmp_path)


def test_export_web_writes_a_site_any_static_server_serves(tmp_path, browser, original_weights, capsys):
    """`mtcnn export web`: the folder, served by Python's plain http.server (no isolation
    headers, so onnxruntime-web runs on one thread), finds the Python cascade's faces."""
    import functools
    import http.server
    import threading

    from torchmtcnn.cli import main

    site = tmp_path / "site"
    assert main(["export", "web", "--out", str(site), "--weights", original_weights]) == 0
    assert "index.html" in capsys.readouterr().out
    assert sorted(p.name for p in site.iterdir()) == ["cascade.onnx", "index.html", "model.json", "ort"]
    assert sorted(p.name for p in (site / "ort").iterdir()) == sorted(web.ORT_FILES)
    assert web.model_info((site / "cascade.onnx").read_bytes())["weights_name"] == "mtcnn-original"

    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{server.server_address[1]}/index.html")
        page.wait_for_function("['ready', 'error'].includes(document.body.dataset.state)", timeout=120_000)
        assert page.evaluate("document.body.dataset.state") == "ready", page.inner_text("#status")
        assert not page.evaluate("self.crossOriginIsolated")
        page.set_input_files("#file", str(PHOTO))
        page.wait_for_function("['done', 'error'].includes(document.body.dataset.state)", timeout=120_000)
        assert page.evaluate("document.body.dataset.state") == "done", page.inner_text("#status")
        faces = page.evaluate("window.mtcnn.result.faces")
        assert_same_faces([f["box"] for f in faces], [f["score"] for f in faces],
                          [list(f["keypoints"].values()) for f in faces],
                          MTCNN(weights=original_weights, device="cpu").detect(read_image(PHOTO)))
        page.close()
    finally:
        server.shutdown()
        server.server_close()


def test_export_web_without_the_runtime_names_the_command(tmp_path, monkeypatch, original_weights, capsys):
    from torchmtcnn.cli import main

    monkeypatch.setattr(web, "ORT_DIR", tmp_path / "no-ort")
    assert main(["export", "web", "--out", str(tmp_path / "site"), "--weights", original_weights]) == 2
    assert "python -m torchmtcnn.web.vendor" in capsys.readouterr().err
