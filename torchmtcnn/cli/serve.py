"""`mtcnn serve`: the HTTP face-detection service (needs the [serve] extra)."""

from __future__ import annotations

import argparse

from ..errors import MTCNNError
from ..serve.settings import Settings
from .common import _positive, _thresholds, thresholds_text


def register(sub: argparse._SubParsersAction) -> None:
    d = Settings()
    p = sub.add_parser("serve", help="run the HTTP face-detection service (POST /detect, page at /)",
                       description="Serve MTCNN over HTTP: POST /detect, GET /health, a page at /, "
                                   "the API docs at /docs. Needs: pip install 'torchmtcnn[serve]'.")
    p.add_argument("--host", default=d.host, help=f"address to listen on (default {d.host}: this machine only)")
    p.add_argument("--port", type=int, default=d.port, help=f"TCP port (default {d.port})")
    p.add_argument("--max-body-mb", type=_positive, default=d.max_body_bytes / 1e6,
                   help=f"largest request body in MB (default {d.max_body_bytes / 1e6:g})")
    p.add_argument("--max-megapixels", type=_positive, default=d.max_pixels / 1e6,
                   help=f"largest image in megapixels (default {d.max_pixels / 1e6:g})")
    p.add_argument("--workers", type=int, default=d.workers, help=f"detection threads (default {d.workers})")
    p.add_argument("--max-queue", type=int, default=d.max_queue,
                   help=f"requests in progress before refusing with 503 (default {d.max_queue}; 0: no bound)")
    p.add_argument("--torch-threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    g = p.add_argument_group("detector")
    g.add_argument("--weights", default=None, help="weight file, or 'original' (default: the package's)")
    g.add_argument("--device", default=None, help="cpu, cuda, cuda:1... (default: a GPU if there is one)")
    g.add_argument("--min-face-size", type=_positive, default=d.min_face_size,
                   help=f"default smallest face in pixels (default {d.min_face_size:g})")
    g.add_argument("--thresholds", type=_thresholds, default=d.thresholds,
                   help=f"default P-Net,R-Net,O-Net thresholds (default {thresholds_text(d.thresholds)})")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        settings = Settings(host=args.host, port=args.port, max_body_bytes=int(args.max_body_mb * 1e6),
                            max_pixels=int(args.max_megapixels * 1e6), weights=args.weights, device=args.device,
                            min_face_size=args.min_face_size, thresholds=args.thresholds, workers=args.workers,
                            max_queue=args.max_queue, torch_threads=args.torch_threads)
    except ValueError as exc:
        raise MTCNNError(str(exc)) from exc
    from ..serve import serve  # raises MissingExtraError without the [serve] extra

    try:
        serve(settings)
    except ValueError as exc:  # a nonsense detector option
        raise MTCNNError(str(exc)) from exc
    return 0
