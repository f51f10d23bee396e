"""`mtcnn detect PATH...`: faces in files, folders and globs, to images, JSON lines or Parquet, and
crops; photos decoded by parallel threads, or the whole job on Ray Data (--ray)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import TextIO

import cv2

from ..align import align
from ..batch import BatchSummary, detect_many
from ..draw import draw_faces
from ..errors import MTCNNError
from ..faces import Result
from ..images import list_images
from ..writers import FORMATS
from .common import add_detector_options, build_detector

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("detect", help="detect faces in images, folders (recursively) or globs",
                       description="Detect faces; write annotated images, JSON lines and aligned crops.")
    p.add_argument("paths", nargs="+", help="image files, folders or glob patterns")
    p.add_argument("--out", type=Path, help="folder for annotated copies of the images")
    p.add_argument("--json", "--results", dest="json_out",
                   help="results: a JSON-lines file ('-' for standard output), or with --format parquet "
                        "(or a name ending in .parquet) a folder of Parquet part files")
    p.add_argument("--format", choices=FORMATS, default=None,
                   help="results format (default: parquet for a name ending in .parquet, else jsonl)")
    p.add_argument("--resume", action="store_true",
                   help="skip the photos already in the results (same paths as given), append the others")
    p.add_argument("--crops", type=Path, help="folder for aligned face crops")
    p.add_argument("--crop-size", type=int, default=112, help="side of the aligned crops (default 112)")
    p.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1),
                   help="threads decoding photos ahead of the detector (default min(4, CPUs); 0: none)")
    p.add_argument("--ray", nargs="?", const="local", metavar="ADDRESS", default=None,
                   help="run on Ray Data (the [ray] extra): a local Ray, or the cluster at ADDRESS "
                        "(e.g. auto, ray://host:10001); needs --results")
    p.add_argument("--actors", type=int, default=2, help="with --ray: detector actors (default 2)")
    p.add_argument("--gpus-per-actor", type=float, default=0.0, help="with --ray: GPUs per actor (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_detector_options(p)
    p.set_defaults(func=run)


def _relative_name(path: Path, roots: list[Path]) -> Path:
    """Output name of an input: its path under the folder argument it came from."""
    for root in roots:
        try:
            return path.resolve().relative_to(root)
        except ValueError:
            continue
    return Path(path.name)


def _save_rgb(path: Path, rgb) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), rgb[:, :, ::-1]):
        raise MTCNNError(f"{path}: cannot write the image")


def _run_ray(args: argparse.Namespace, files: list[Path]) -> BatchSummary:
    from ..batch_ray import detect_with_ray

    if not args.json_out or args.json_out == "-":
        raise MTCNNError("--ray needs --results FILE (JSON lines) or FOLDER (Parquet)")
    if args.out or args.crops:
        raise MTCNNError("--ray writes results only: --out and --crops are not supported with it")
    return detect_with_ray(
        files, args.json_out, address=None if args.ray == "local" else args.ray, fmt=args.format,
        num_actors=args.actors, num_gpus_per_actor=args.gpus_per_actor, batch_size=args.batch_size,
        resume=args.resume, progress=not args.no_progress, weights=args.weights, device=args.device,
        min_face_size=args.min_face_size, thresholds=args.thresholds, factor=args.factor)


def run(args: argparse.Namespace) -> int:
    files: list = []
    failed: list[tuple[str, str]] = []
    for arg in args.paths:
        try:
            files += list_images([arg])
        except MTCNNError as exc:
            failed.append((arg, str(exc)))
    if not files:
        raise MTCNNError("; ".join(message for _, message in failed) or "no images found in " + " ".join(args.paths))
    if args.resume and (not args.json_out or args.json_out == "-"):
        raise MTCNNError("--resume needs --results FILE to read back")
    if args.ray is not None:
        summary = _run_ray(args, files)
        summary.failed = failed + summary.failed
        print(summary.report(), file=sys.stderr)
        return 1 if summary.failed else 0
    detector = build_detector(args)
    roots = [Path(a).resolve() for a in args.paths if Path(a).is_dir()]
    out: str | TextIO | None = sys.stdout if args.json_out == "-" else args.json_out

    def handle(result: Result) -> None:
        if result.error is not None or result.faces is None:
            log.warning("skipped %s", result.error)
            return
        faces, path = result.faces, Path(str(result.source))
        if result.image is not None:
            name = _relative_name(path, roots)
            if args.out:
                _save_rgb((args.out / name).with_suffix(".jpg"), draw_faces(result.image, faces))
            if args.crops and len(faces) and faces.landmarks is not None:
                for i, crop in enumerate(align(result.image, faces.landmarks, args.crop_size)):
                    _save_rgb(args.crops / name.parent / f"{name.stem}_face{i}.jpg", crop)
        if out is None and not args.out and not args.crops:
            print(f"{path}: {len(faces)} face(s)" + "".join(
                f"\n  box {[round(float(v), 1) for v in b]} score {float(s):.3f}"
                for b, s in zip(faces.boxes, faces.scores)))

    summary = detect_many(files, out, detector, fmt=args.format, workers=args.workers,
                          batch_size=args.batch_size, resume=args.resume, progress=not args.no_progress,
                          keep_images=bool(args.out or args.crops), on_item=handle)
    summary.failed = failed + summary.failed
    ok = summary.done - (len(summary.failed) - len(failed))
    print(f"{ok} image(s) read, {summary.faces} face(s), {len(summary.failed)} failed", file=sys.stderr)
    print(summary.report(), file=sys.stderr)
    return 1 if summary.failed else 0
