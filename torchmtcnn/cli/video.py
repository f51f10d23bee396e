"""`mtcnn video SOURCE`: faces in a camera stream or a video file, shown, saved and/or written as
JSON lines; `--track` follows the faces between full detections (track.py) and numbers them."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from ..draw import draw_faces
from ..errors import MTCNNError
from ..smoothing import OneEuro
from ..track_config import TrackerConfig
from ..writers import JsonlWriter
from .common import add_detector_options, build_detector

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("video", help="detect faces in a camera stream or a video file",
                       description="Show frames with faces and FPS when a display exists; --save writes "
                                   "an annotated video, --json the faces of each frame. The whole cascade "
                                   "runs on every frame unless --track is given.")
    p.add_argument("source", help="camera index (0, 1...) or a video file")
    p.add_argument("--save", type=Path, help="write the annotated video here (.mp4 or .avi)")
    p.add_argument("--json", help="write the faces of each frame as JSON lines here ('-': standard output)")
    p.add_argument("--show", choices=("auto", "yes", "no"), default="auto",
                   help="show a window (auto: when a display is available)")
    p.add_argument("--max-frames", type=int, default=0, help="stop after this many frames (0: all)")
    defaults = TrackerConfig()
    g = p.add_argument_group("tracking")
    g.add_argument("--track", action="store_true",
                   help="follow the faces with O-Net between full detections and give each a track "
                        "id (several times faster; new faces wait for the next full detection: docs/video.md)")
    g.add_argument("--detect-every", type=int, default=None,
                   help=f"with --track: a full detection every N frames (default {defaults.detect_every}); "
                        "a new face is found within N frames")
    g.add_argument("--smooth", action="store_true",
                   help="with --track: smooth boxes and points over time (One Euro filter; adds a little lag)")
    add_detector_options(p)
    p.set_defaults(func=run)


def _display_available() -> bool:
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False
    try:  # opencv-python-headless has no GUI: imshow raises
        cv2.namedWindow("mtcnn")
        return True
    except cv2.error:
        return False


def open_source(source: str) -> cv2.VideoCapture:
    if source.isdigit():
        cap = cv2.VideoCapture(int(source))
        if not cap.isOpened():
            raise MTCNNError(f"camera {source}: cannot be opened (no such camera, or it is busy)")
        return cap
    if not Path(source).is_file():
        raise MTCNNError(f"{source}: no such video file")
    cap = cv2.VideoCapture(source)
    if not cap.isOpened():
        raise MTCNNError(f"{source}: not a readable video")
    return cap


def run(args: argparse.Namespace) -> int:
    if (args.smooth or args.detect_every is not None) and not args.track:
        raise MTCNNError("--detect-every and --smooth apply to --track only")
    cap = open_source(args.source)
    show = {"yes": True, "no": False}.get(args.show, None)
    if show is None:
        show = _display_available()
    elif show and not _display_available():
        raise MTCNNError("--show yes: no display is available (use --save)")
    if not show and not args.save and not args.json:
        raise MTCNNError("no display available: give --save OUT.mp4 to write the annotated video, "
                         "or --json FILE for the faces")
    detector = build_detector(args)
    fps_in = cap.get(cv2.CAP_PROP_FPS) or 25.0
    if args.track:
        try:
            every = {} if args.detect_every is None else {"detect_every": args.detect_every}
            tracker = detector.tracker(smoothing=OneEuro(rate=fps_in) if args.smooth else None, **every)
        except ValueError as exc:  # a nonsense setting: say which, without a traceback
            raise MTCNNError(str(exc)) from exc
        find = tracker.update
    else:
        find = detector.detect
    lines = None if not args.json else JsonlWriter(sys.stdout if args.json == "-" else Path(args.json))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) if not args.source.isdigit() else 0
    if args.max_frames:
        total = min(total, args.max_frames) if total else args.max_frames
    writer = None
    frames = faces_total = 0
    smoothed_fps = 0.0
    bar = tqdm(total=total or None, unit="frame", file=sys.stderr, disable=show)
    try:
        while not args.max_frames or frames < args.max_frames:
            ok, bgr = cap.read()
            if not ok:
                break
            start = time.perf_counter()
            rgb = np.ascontiguousarray(bgr[:, :, ::-1])
            faces = find(rgb)
            elapsed = time.perf_counter() - start
            if lines is not None:
                faces.image = args.source
                lines.write([faces.to_json(frame=frames)])
            smoothed_fps = 1 / elapsed if frames == 0 else 0.9 * smoothed_fps + 0.1 / max(elapsed, 1e-6)
            if args.save or show:
                out = draw_faces(rgb, faces)[:, :, ::-1].copy()
                cv2.putText(out, f"{smoothed_fps:.1f} FPS  {len(faces)} face(s)", (8, 22), cv2.FONT_HERSHEY_SIMPLEX,
                            0.6, (0, 255, 0), 2, cv2.LINE_AA)
            if args.save:
                if writer is None:
                    writer = _open_writer(args.save, fps_in, (out.shape[1], out.shape[0]))
                writer.write(out)
            if show:
                cv2.imshow("mtcnn", out)
                if cv2.waitKey(1) & 0xFF in (27, ord("q")):
                    break
            frames += 1
            faces_total += len(faces)
            bar.update(1)
    finally:
        bar.close()
        cap.release()
        if writer is not None:
            writer.release()
        if lines is not None:
            lines.close()
        if show:
            cv2.destroyAllWindows()
    if frames == 0:
        raise MTCNNError(f"{args.source}: no frame could be read")
    print(f"{frames} frame(s), {faces_total} face(s), {smoothed_fps:.1f} FPS"
          + (f", saved {args.save}" if args.save else "") + (f", faces in {args.json}" if args.json not in (None, "-")
                                                              else ""), file=sys.stderr)
    return 0


def _open_writer(path: Path, fps: float, size: tuple[int, int]) -> cv2.VideoWriter:
    path.parent.mkdir(parents=True, exist_ok=True)
    fourcc = cv2.VideoWriter.fourcc(*("MJPG" if path.suffix.lower() == ".avi" else "mp4v"))
    writer = cv2.VideoWriter(str(path), fourcc, fps, size)
    if not writer.isOpened():
        raise MTCNNError(f"{path}: cannot write a video here (try .avi or .mp4)")
    return writer
