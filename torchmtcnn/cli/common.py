"""Options shared by the subcommands that run the detector."""

from __future__ import annotations

import argparse

from ..errors import MTCNNError


def _thresholds(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"thresholds must be three numbers like 0.6,0.7,0.7, got {text!r}")
    if len(values) != 3 or not all(0 <= v <= 1 for v in values):
        raise argparse.ArgumentTypeError(f"thresholds must be three numbers in [0, 1] like 0.6,0.7,0.7, got {text!r}")
    return values  # type: ignore[return-value]


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def add_detector_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("detector")
    g.add_argument("--min-face-size", type=_positive, default=20, help="smallest face in pixels (default 20)")
    g.add_argument("--thresholds", type=_thresholds, default=(0.6, 0.7, 0.7),
                   help="P-Net,R-Net,O-Net face-probability thresholds (default 0.6,0.7,0.7)")
    g.add_argument("--factor", type=float, default=0.709, help="pyramid scale step (default 0.709)")
    g.add_argument("--device", default=None, help="cpu, cuda, cuda:1... (default: a GPU if there is one)")
    g.add_argument("--weights", default=None,
                   help="weight file, or 'original' (default: the package's weights, else the imported original)")
    g.add_argument("--backend", default="torch", choices=("torch", "onnxruntime"), help="network runtime")
    g.add_argument("--batch-size", type=int, default=8, help="images per detector batch (default 8)")


def build_detector(args: argparse.Namespace):
    from ..detector import MTCNN

    try:
        return MTCNN(min_face_size=args.min_face_size, thresholds=args.thresholds, factor=args.factor,
                     device=args.device, weights=args.weights, backend=args.backend, batch_size=args.batch_size)
    except ValueError as exc:  # a nonsense parameter: say which, without a traceback
        raise MTCNNError(str(exc)) from exc
