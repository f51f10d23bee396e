"""The `mtcnn` command: thin subcommands that parse, call the library and print.

Each subcommand group lives in its own module with ``register(subparsers)``, which adds its
parser and sets ``func`` (taking the parsed args, returning the exit code).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from ..errors import MTCNNError

# Modules under torchmtcnn.cli, one per subcommand group, in the order `--help` lists them.
COMMAND_MODULES = ("detect", "video", "weights", "data", "train", "eval", "export", "serve")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mtcnn", description="MTCNN face detection, training and evaluation (torchmtcnn)."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"{__name__}.{name}":
                continue  # that group is not part of this version
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except MTCNNError as exc:
        print(f"mtcnn: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # output piped into a program that stopped reading (head...)
        sys.stderr.close()
        return 0


if __name__ == "__main__":
    sys.exit(main())
