"""The page at / in a real headless Chromium (Debian's, driven by Playwright): choose a photo,
and the faces drawn on the canvas are those /detect returns."""

from __future__ import annotations

import os
import shutil

import cv2
import httpx
import pytest

pytest.importorskip("fastapi", reason="the [serve] extra is installed by .ci/run")
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is in the [test] extra")

from torchmtcnn.assets import group_photo  # noqa: E402
from torchmtcnn.serve import Settings, create_app  # noqa: E402
from torchmtcnn.serve.background import serve_in_thread  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
CHROMIUM = os.environ.get("TORCHMTCNN_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def service_url(original_weights):
    app = create_app(Settings(weights=original_weights, device="cpu", workers=1))
    with serve_in_thread(app) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install -y chromium (done by .ci/run)")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"])
        yield b
        b.close()


def test_page_draws_the_faces_of_a_chosen_photo(service_url, browser, tmp_path):
    photo = tmp_path / "group.jpg"
    cv2.imwrite(str(photo), group_photo(800, 600, faces=5, seed=3)[:, :, ::-1])
    expected = httpx.post(f"{service_url}/detect", content=photo.read_bytes(), timeout=60).json()
    assert expected["count"] >= 3

    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(service_url + "/")
    assert page.title().startswith("torchmtcnn")
    page.set_input_files("#file", str(photo))
    page.wait_for_function("document.body.dataset.state === 'done' || document.body.dataset.state === 'error'",
                           timeout=60_000)
    assert page.evaluate("document.body.dataset.state") == "done", page.inner_text("#status")
    assert page.get_attribute("#count", "data-faces") == str(expected["count"])
    assert page.get_attribute("#canvas", "data-drawn") == str(expected["count"])
    assert page.inner_text("#count") == f"{expected['count']} faces"
    assert page.evaluate("[document.getElementById('canvas').width, document.getElementById('canvas').height]") \
        == [800, 600]
    # a box was drawn: the box colour is on the canvas where the first face's top edge is
    x1, y1, x2, _ = expected["faces"][0]["box"]
    pixel = page.evaluate(f"Array.from(document.getElementById('canvas').getContext('2d')"
                          f".getImageData({int((x1 + x2) / 2)}, {int(round(y1))}, 1, 1).data)")
    assert pixel[0] > 200 and pixel[2] < 80, pixel  # #ffb000
    if os.environ.get("TORCHMTCNN_SCREENSHOT"):
        page.screenshot(path=os.environ["TORCHMTCNN_SCREENSHOT"], full_page=True)

    # a file that is not an image: the page says why, and the next photo works again
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not an image")
    page.set_input_files("#file", str(bad))
    page.wait_for_function("document.body.dataset.state === 'error'", timeout=30_000)
    assert "not a readable image" in page.inner_text("#status")
    assert errors == []
    page.close()


def test_camera_frame_is_sent_and_drawn(service_url, browser):
    """Chromium's fake camera: start it, detect on a frame, the page reaches 'done'."""
    page = browser.new_page()
    page.goto(service_url + "/")
    page.click("#camera")
    page.wait_for_function("document.getElementById('video').videoWidth > 0", timeout=20_000)
    assert page.inner_text("#camera") == "Stop camera"
    page.click("#snap")
    page.wait_for_function("['done', 'error'].includes(document.body.dataset.state)", timeout=60_000)
    assert page.evaluate("document.body.dataset.state") == "done", page.inner_text("#status")
    assert page.get_attribute("#count", "data-faces").isdigit()
    width = page.evaluate("document.getElementById('video').videoWidth")
    assert page.evaluate("document.getElementById('canvas').width") == width
    page.click("#camera")  # stops it
    assert page.inner_text("#camera") == "Start camera"
    page.close()
