"""Options shared by the subcommands that run the detector: flags only, mapped onto MTCNN's
arguments; their defaults are read from ``CascadeConfig`` (``cascade_config.DEFAULTS``)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from ..cascade_config import DEFAULTS, parse_thresholds
from ..errors import MTCNNError


def _thresholds(text: str) -> tuple[float, float, float]:
    try:
        return parse_thresholds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class _ThresholdsAction(argparse.Action):
    """--thresholds 0.6,0.7,0.7, or (with nargs="+") --thresholds 0.6 0.7 0.7."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: str | Sequence[Any] | None, option_string: str | None = None) -> None:
        text = values if isinstance(values, str) else ",".join(str(v) for v in values or ())
        try:
            setattr(namespace, self.dest, parse_thresholds(text))
        except ValueError as exc:
            raise argparse.ArgumentError(self, str(exc)) from None


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def thresholds_text(thresholds: Sequence[float] = DEFAULTS.thresholds) -> str:
    return ",".join(f"{t:g}" for t in thresholds)


def add_detector_options(parser: argparse.ArgumentParser, title: str = "detector", device: str | None = None,
                         thresholds_nargs: str | None = None) -> argparse._ArgumentGroup:
    """The detector's flags in a group named ``title``. ``device``: the default device (None: a GPU
    when there is one); ``thresholds_nargs="+"`` also takes ``--thresholds P R O`` (only for a
    command without positional arguments, which the values would swallow)."""
    g = parser.add_argument_group(title)
    g.add_argument("--min-face-size", type=_positive, default=DEFAULTS.min_face_size,
                   help=f"smallest face in pixels (default {DEFAULTS.min_face_size:g})")
    g.add_argument("--thresholds", action=_ThresholdsAction, nargs=thresholds_nargs, default=DEFAULTS.thresholds,
                   help=f"P-Net,R-Net,O-Net face-probability thresholds (default {thresholds_text()})")
    g.add_argument("--factor", type=float, default=DEFAULTS.factor,
                   help=f"pyramid scale step (default {DEFAULTS.factor:g})")
    g.add_argument("--device", default=device,
                   help=f"cpu, cuda, cuda:1... (default: {device or 'a GPU if there is one'})")
    g.add_argument("--weights", default=None,
                   help="weight file, or 'original' (default: the package's weights, else the imported original)")
    g.add_argument("--backend", default="torch", choices=("torch", "onnxruntime"), help="network runtime")
    g.add_argument("--batch-size", type=int, default=8, help="images per detector batch (default 8)")
    return g


def build_detector(args: argparse.Namespace):
    from ..detector import MTCNN

    try:
        return MTCNN(min_face_size=args.min_face_size, thresholds=args.thresholds, factor=args.factor,
                     device=args.device, weights=args.weights, backend=args.backend, batch_size=args.batch_size)
    except ValueError as exc:  # a nonsense parameter: say which, without a traceback
        raise MTCNNError(str(exc)) from exc
