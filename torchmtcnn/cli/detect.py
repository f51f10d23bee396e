"""`mtcnn detect PATH...`: faces in files, folders and globs, to images, JSON lines and crops."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import cv2
from tqdm import tqdm

from ..align import align
from ..draw import draw_faces
from ..errors import MTCNNError
from ..images import list_images, load
from .common import add_detector_options, build_detector

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("detect", help="detect faces in images, folders (recursively) or globs",
                       description="Detect faces; write annotated images, JSON lines and aligned crops.")
    p.add_argument("paths", nargs="+", help="image files, folders or glob patterns")
    p.add_argument("--out", type=Path, help="folder for annotated copies of the images")
    p.add_argument("--json", dest="json_out", help="JSON-lines file of the faces ('-' for standard output)")
    p.add_argument("--crops", type=Path, help="folder for aligned face crops")
    p.add_argument("--crop-size", type=int, default=112, help="side of the aligned crops (default 112)")
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


def run(args: argparse.Namespace) -> int:
    files: list = []
    failed: list[tuple[Path, str]] = []
    for arg in args.paths:
        try:
            files += list_images([arg])
        except MTCNNError as exc:
            failed.append((Path(arg), str(exc)))
    if not files:
        reasons = "; ".join(message for _, message in failed)
        raise MTCNNError(reasons or "no images found in " + " ".join(args.paths))
    detector = build_detector(args)
    roots = [Path(a).resolve() for a in args.paths if Path(a).is_dir()]
    out_json = None
    if args.json_out == "-":
        out_json = sys.stdout
    elif args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        out_json = open(args.json_out, "w", encoding="utf-8")
    found = ok = 0
    bar = tqdm(total=len(files), unit="img", disable=args.no_progress or len(files) < 2, file=sys.stderr)
    try:
        for result in detector.iter_detect(files):
            path: Path = result.source
            bar.update(1)
            if result.error is not None:
                failed.append((path, str(result.error)))
                log.warning("skipped %s", result.error)
                if out_json:
                    out_json.write(json.dumps({"image": str(path), "error": str(result.error)}) + "\n")
                continue
            faces = result.faces
            found += len(faces)
            ok += 1
            h, w = faces.image_size
            if out_json:
                out_json.write(json.dumps({"image": str(path), "width": w, "height": h,
                                           "faces": faces.to_dicts()}) + "\n")
            if args.out or (args.crops and len(faces)):
                image = load(path)
                name = _relative_name(path, roots)
                if args.out:
                    _save_rgb((args.out / name).with_suffix(".jpg"), draw_faces(image, faces))
                if args.crops and len(faces):
                    for i, crop in enumerate(align(image, faces.landmarks, args.crop_size)):
                        _save_rgb(args.crops / name.parent / f"{name.stem}_face{i}.jpg", crop)
            if out_json is None and not args.out and not args.crops:
                print(f"{path}: {len(faces)} face(s)" + "".join(
                    f"\n  box {[round(float(v), 1) for v in b]} score {float(s):.3f}"
                    for b, s in zip(faces.boxes, faces.scores)))
    finally:
        bar.close()
        if out_json not in (None, sys.stdout):
            out_json.close()
    print(f"{ok} image(s) read, {found} face(s), {len(failed)} failed", file=sys.stderr)
    for path, message in failed:
        print(f"  failed: {message}", file=sys.stderr)
    return 1 if failed else 0
