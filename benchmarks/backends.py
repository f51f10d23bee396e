"""Run by hand: the detector's speed and accuracy with each network backend on CPU.

    python benchmarks/backends.py [--repeats 15] [--weights original] [--no-eval]

Variants: torch (channels-last, 1 and 2 threads); onnxruntime fp32 with each graph
optimisation level (2 threads) and with 1 thread; onnxruntime int8, static QDQ (MinMax
calibration on the networks' real inputs: pyramid levels and crops of 40 Sun 2013 photos)
and dynamic. Every variant runs the same cascade; only the three network calls differ.

Prints a table: median ms per image for the 640x480 group photo and the 1920x1080 one
(``group_photo(1920, 1080, 40, 1)``), faces found, and the largest box difference from
torch fp32. Variants alternate within each round (the order rotates), because other
processes share the cores: compare numbers of one run only.

Then (unless --no-eval) the accuracy of each onnxruntime variant: AP (WIDER protocol) on
300 held-out Sun 2013 photos (the last 300 of the list with images; calibration used the
first 40), and mean landmark NME on 300 MTFL AFLW test crops.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from torchmtcnn import MTCNN
from torchmtcnn.assets import group_photo
from torchmtcnn.backends import TorchBackend
from torchmtcnn.cascade import Cascade
from torchmtcnn.export import export_nets, load_weights
from torchmtcnn.ort import OnnxRuntimeBackend, graph_input

SUN = "/work/shared/data/sun2013/trainImageList.txt"
MTFL = "/work/shared/data/mtfl/new_testing.txt"
CALIBRATION_PHOTOS = 40
HELD_OUT = 300


class Recorder:
    """A backend that keeps copies of the inputs it is given, as the exported graphs take
    them (calibration data)."""

    def __init__(self, inner: TorchBackend) -> None:
        self.inner, self.device = inner, inner.device
        self.inputs: dict[str, list[np.ndarray]] = {"pnet": [], "rnet": [], "onet": []}

    def pnet(self, x):
        self.inputs["pnet"].append(graph_input(x.numpy()))
        return self.inner.pnet(x)

    def rnet(self, x):
        self.inputs["rnet"].append(graph_input(x.numpy()))
        return self.inner.rnet(x)

    def onet(self, x):
        self.inputs["onet"].append(graph_input(x.numpy()))
        return self.inner.onet(x)


def calibration_inputs(nets, photos: list[str]) -> dict[str, list[np.ndarray]]:
    """The networks' real inputs on these photos, in batches of at most 64 crops."""
    from torchmtcnn.images import load

    rec = Recorder(TorchBackend(nets))
    cascade = Cascade(rec)
    for p in photos:
        cascade.run([torch.from_numpy(np.ascontiguousarray(load(p)))])
    out = {"pnet": rec.inputs["pnet"]}
    for name in ("rnet", "onet"):
        crops = np.concatenate(rec.inputs[name])
        out[name] = [crops[i : i + 64] for i in range(0, len(crops), 64)]
    return out


def quantize(fp32: dict[str, bytes], calib: dict[str, list[np.ndarray]], folder: Path) -> dict[str, dict[str, Path]]:
    """Static QDQ (per-channel int8 weights, uint8 activations) and dynamic int8 models."""
    from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType, quantize_dynamic,
                                          quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self, batches: list[np.ndarray]) -> None:
            self.it = iter(batches)

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {"image": x}

    out: dict[str, dict[str, Path]] = {"static": {}, "dynamic": {}}
    for name, data in fp32.items():
        src = folder / f"{name}.onnx"
        src.write_bytes(data)
        out["static"][name] = folder / f"{name}.qdq.onnx"
        quantize_static(str(src), str(out["static"][name]), Reader(calib[name]), quant_format=QuantFormat.QDQ,
                        per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        out["dynamic"][name] = folder / f"{name}.dyn.onnx"
        quantize_dynamic(str(src), str(out["dynamic"][name]), weight_type=QuantType.QUInt8)
    return out


def build_variants(weights: str | None, models: dict[str, dict]) -> dict[str, tuple[MTCNN, int]]:
    """name -> (detector, torch threads)."""
    variants: dict[str, tuple[MTCNN, int]] = {}

    base = MTCNN(weights=weights, device="cpu")

    def det(backend=None) -> MTCNN:
        return base.with_config(backend=backend)

    variants["torch, 2 threads"] = (det(), 2)
    variants["torch, 1 thread"] = (det(), 1)
    for level in ("all", "extended", "basic", "disable"):
        variants[f"ort fp32, opt {level}"] = (det(OnnxRuntimeBackend.from_models(models["fp32"], threads=2,
                                                                                 optimization=level)), 2)
    variants["ort fp32, opt all, 1 thread"] = (det(OnnxRuntimeBackend.from_models(models["fp32"], threads=1)), 1)
    variants["ort int8 static QDQ"] = (det(OnnxRuntimeBackend.from_models(models["static"], threads=2)), 2)
    variants["ort int8 dynamic"] = (det(OnnxRuntimeBackend.from_models(models["dynamic"], threads=2)), 2)
    return variants


def time_variants(variants, images: dict[str, np.ndarray], repeats: int) -> dict[tuple[str, str], list[float]]:
    names = list(variants)
    times: dict[tuple[str, str], list[float]] = {(v, i): [] for v in names for i in images}
    for img_name, img in images.items():
        for v in names:  # warm-up
            torch.set_num_threads(variants[v][1])
            variants[v][0].detect(img)
        for r in range(repeats):
            order = names[r % len(names):] + names[: r % len(names)]
            for v in order:
                d, threads = variants[v]
                torch.set_num_threads(threads)
                t = time.perf_counter()
                d.detect(img)
                times[(v, img_name)].append((time.perf_counter() - t) * 1000)
    torch.set_num_threads(2)
    return times


def evaluate(variants, names: list[str]) -> dict[str, tuple[float, float, int]]:
    """name -> (Sun 2013 AP, MTFL mean NME, MTFL faces missed)."""
    from torchmtcnn.data.readers import read_annotations
    from torchmtcnn.evaluate.faces import evaluate_faces
    from torchmtcnn.evaluate.landmarks import evaluate_landmarks
    from torchmtcnn.evaluate.runner import run_detector

    sun = read_annotations(SUN, "sun2013").records[-HELD_OUT:]
    mtfl = read_annotations(MTFL, "mtfl").records[:HELD_OUT]
    out = {}
    for v in names:
        d = variants[v][0]
        torch.set_num_threads(2)
        preds, _ = run_detector(d, [r.image for r in sun], progress=False)
        ap = evaluate_faces(sun, preds).ap
        preds, _ = run_detector(d, [r.image for r in mtfl], progress=False)
        lm = evaluate_landmarks(mtfl, preds)
        out[v] = (ap, lm.mean_nme, lm.num_missed)
    return out


def box_difference(found: np.ndarray, ref: np.ndarray) -> float:
    """Largest coordinate difference between each reference box and its nearest found box
    (nan when the counts differ)."""
    if len(found) != len(ref):
        return float("nan")
    if len(ref) == 0:
        return 0.0
    d = np.abs(ref[:, None, :] - found[None, :, :]).max(axis=2)
    return float(d.min(axis=1).max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--weights", default="original", help="the original MTCNN weights by default")
    parser.add_argument("--no-eval", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)

    nets, info, _ = load_weights(args.weights)
    from torchmtcnn.data.readers import read_annotations

    calib_photos = [r.image for r in read_annotations(SUN, "sun2013").records[:CALIBRATION_PHOTOS]]
    t = time.perf_counter()
    models = {"fp32": export_nets(nets)}
    logging.getLogger().setLevel(logging.ERROR)  # the quantiser's advice on pre-processing
    with tempfile.TemporaryDirectory() as tmp:
        models.update(quantize(models["fp32"], calibration_inputs(nets, calib_photos), Path(tmp)))
        variants = build_variants(args.weights, models)
    print(f"exported and quantised in {time.perf_counter() - t:.1f} s")

    images = {"640x480": group_photo(640, 480, 6, 0), "1920x1080": group_photo(1920, 1080, 40, 1)}
    ref = {k: variants["torch, 2 threads"][0].detect(img) for k, img in images.items()}
    load_before = os.getloadavg()[0]
    times = time_variants(variants, images, args.repeats)

    load = os.getloadavg()[0]
    print(f"\n{datetime.date.today()} {platform.node()} {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores, torch {torch.__version__}, weights {info['name']}; median of {args.repeats}, "
          f"ms per image; 1-min load average {load_before:.1f} before timing, {load:.1f} after")
    print("| variant | 640x480 ms | faces | max box diff | 1920x1080 ms | faces | max box diff |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for v, (d, _) in variants.items():
        cells = []
        for k, img in images.items():
            f = d.detect(img)
            diff = box_difference(f.boxes, ref[k].boxes)
            cells += [f"{statistics.median(times[(v, k)]):.1f}", str(len(f)), f"{diff:.2g}"]
        print(f"| {v} | " + " | ".join(cells) + " |")

    if args.no_eval:
        return
    names = ["ort fp32, opt all", "ort int8 static QDQ", "ort int8 dynamic"]
    res = evaluate(variants, names)
    base_ap, base_nme, _ = res[names[0]]
    print(f"\nAccuracy: AP on {HELD_OUT} held-out Sun 2013 photos; NME (inter-ocular) on {HELD_OUT} MTFL AFLW crops")
    print("| variant | AP | AP loss | mean NME | NME change (points of %) | NME change (relative) "
          "| MTFL faces missed |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for v in names:
        ap, nme, missed = res[v]
        print(f"| {v} | {ap:.4f} | {base_ap - ap:+.4f} | {nme:.4f} | {100 * (nme - base_nme):+.3f} "
              f"| {100 * (nme - base_nme) / base_nme:+.2f} % | {missed} |")


if __name__ == "__main__":
    main()
