"""`mtcnn eval wider|faces|landmarks`: score prediction sets (or a fresh run) and plot them."""

from __future__ import annotations

import argparse
import json
import logging
import math
from pathlib import Path
from typing import Any

from ..errors import MTCNNError
from .common import add_detector_options, build_detector

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- parser


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval", help="evaluate detections: WIDER FACE AP, AP on any annotations, landmarks",
        description="Score one or several prediction sets (or run the detector first) and "
                    "print a table; precision-recall / CED plots go to --out as PNG files.")
    sub = parser.add_subparsers(dest="eval_command", metavar="KIND")
    sub.required = True

    wider = sub.add_parser("wider", help="official WIDER FACE validation AP (easy/medium/hard)")
    wider.add_argument("--gt-dir", required=True, type=Path,
                       help="folder with wider_face_val.mat and wider_{easy,medium,hard}_val.mat")
    _add_common(wider)
    wider.set_defaults(func=run_wider)

    faces = sub.add_parser("faces", help="AP (WIDER protocol) on any annotation file")
    _add_annotations(faces)
    faces.add_argument("--count-fp-on-empty", action="store_true",
                       help="count detections on photos without annotated faces as false "
                            "positives (the official protocol skips those photos)")
    _add_common(faces)
    faces.set_defaults(func=run_faces)

    marks = sub.add_parser("landmarks", help="landmark NME, failure rate and CED")
    _add_annotations(marks)
    _add_common(marks)
    marks.set_defaults(func=run_landmarks)


def _add_annotations(p: argparse.ArgumentParser) -> None:
    p.add_argument("--annotations", required=True, nargs="+", type=Path, metavar="FILE",
                   help="ground-truth file(s) (several for FDDB folds)")
    from ..evaluate.ground_truth import ANNOTATION_FORMATS

    p.add_argument("--format", choices=ANNOTATION_FORMATS, default=None,
                   help="annotation format (guessed from the file when left out)")
    p.add_argument("--limit", type=int, default=None, metavar="N",
                   help="evaluate only the first N annotated images")


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--pred", action="append", default=[], metavar="NAME=PATH",
                   help="a prediction set: JSON lines, a WIDER submission folder or an FDDB "
                        "detection file; repeat to compare detectors")
    p.add_argument("--images-root", type=Path, default=None,
                   help="folder the annotation's image paths are relative to (for --run)")
    p.add_argument("--iou", type=float, default=0.5, help="IoU to match a face (0.5)")
    p.add_argument("--out", type=Path, default=Path("eval_out"),
                   help="folder for plots, the summary and --run predictions (eval_out)")
    p.add_argument("--no-plot", action="store_true", help="write no PNG plot")
    run = add_detector_options(p, "running the detector (--run)", device="cpu", thresholds_nargs="+")
    run.add_argument("--run", action="store_true",
                     help="run MTCNN over the images first and evaluate its predictions too")
    run.add_argument("--run-name", default="mtcnn", help="name of that run in the table")
    run.add_argument("--save-pred", type=Path, default=None,
                     help="JSON-lines file for the run's predictions (OUT/pred-NAME.jsonl)")


# --------------------------------------------------------------------------- helpers


def make_detector(args: argparse.Namespace) -> Any:
    """The detector --run uses (a function, so tests can put a fake one in its place)."""
    return build_detector(args)


def _pred_sets(args: argparse.Namespace, images: list[str]) -> dict[str, list]:
    """Read each --pred NAME=PATH, then run the detector when --run; name -> predictions."""
    from ..evaluate.predictions import read_predictions

    sets: dict[str, list] = {}
    for spec in args.pred:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = Path(spec).stem, spec
        if not name or not path:
            raise MTCNNError(f"--pred {spec!r}: expected NAME=PATH")
        if name in sets:
            raise MTCNNError(f"--pred: the name {name!r} is given twice")
        sets[name] = read_predictions(path)
        log.info("%s: %d images of predictions from %s", name, len(sets[name]), path)
    if args.run:
        from ..evaluate.runner import run_detector

        if args.run_name in sets:
            raise MTCNNError(f"--run-name {args.run_name!r} is also a --pred name")
        save = args.save_pred or args.out / f"pred-{args.run_name}.jsonl"
        detector = make_detector(args)
        preds, failed = run_detector(detector, images, args.images_root, args.batch_size, save)
        if failed:
            log.warning("%d images could not be read, e.g. %s: %s", len(failed), *failed[0])
        print(f"predictions of {args.run_name}: {save}")
        sets[args.run_name] = preds
    if not sets:
        raise MTCNNError("nothing to evaluate: give --pred NAME=PATH and/or --run")
    return sets


def _load_records(args: argparse.Namespace) -> list:
    from ..evaluate.ground_truth import load_ground_truth

    # images are opened only when the detector is to run on them
    return load_ground_truth(args.annotations, args.format, args.images_root, check_images=bool(args.run),
                             limit=args.limit)


def _fmt(x: float, pct: bool = False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{100 * x:.2f}" if pct else f"{x:.4f}"


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    """Print a plain aligned table (the first column left-aligned, numbers right)."""
    widths = [max(len(str(r[k])) for r in [headers, *rows]) for k in range(len(headers))]
    def line(cells: list[str]) -> str:
        return "  ".join(str(c).ljust(w) if k == 0 else str(c).rjust(w)
                         for k, (c, w) in enumerate(zip(cells, widths)))
    print(line(headers))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(line(r))


def _write_summary(args: argparse.Namespace, kind: str, summary: dict) -> None:
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"summary-{kind}.json"
    def clean(x: Any) -> Any:
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, float) and not math.isfinite(x):
            return None
        return x

    path.write_text(json.dumps(clean(summary), indent=2) + "\n", encoding="utf-8")
    print(f"summary: {path}")


def _plot(func, *a) -> None:
    path = func(*a)
    print(f"plot: {path}")


# --------------------------------------------------------------------------- commands


def run_wider(args: argparse.Namespace) -> int:
    from ..evaluate.wider import SETTINGS, evaluate_wider, load_wider_gt

    gt = load_wider_gt(args.gt_dir)
    sets = _pred_sets(args, [f"{name}.jpg" for name in gt.images])
    results = {name: evaluate_wider(preds, gt, args.iou) for name, preds in sets.items()}
    rows = [[name, *(_fmt(r.curves[s].ap) for s in SETTINGS), str(len(r.missing))]
            for name, r in results.items()]
    print(f"WIDER FACE val: {len(gt.images)} images, {gt.num_boxes} boxes")
    print_table(["detector", *SETTINGS, "images without prediction"], rows)
    _write_summary(args, "wider", {name: {**r.ap, "missing_images": len(r.missing)}
                                   for name, r in results.items()})
    if not args.no_plot:
        from ..evaluate.plots import plot_wider_pr

        _plot(plot_wider_pr, {n: r.curves for n, r in results.items()},
              args.out / "wider_pr.png")
    return 0


def run_faces(args: argparse.Namespace) -> int:
    from ..evaluate.faces import evaluate_faces
    from ..evaluate.ground_truth import image_names

    records = _load_records(args)
    sets = _pred_sets(args, image_names(records, args.images_root))
    results = {name: evaluate_faces(records, preds, args.iou,
                                    skip_empty=not args.count_fp_on_empty)
               for name, preds in sets.items()}
    num_faces = sum(int((~r.ignore).sum()) for r in records)
    print(f"{len(records)} images, {num_faces} faces (not ignored)")
    headers = ["detector", "AP", "recall", "TPR@1000FP", "images without prediction"]
    rows = []
    for name, r in results.items():
        finite = r.curve.recall[-1] if len(r.curve.recall) else float("nan")
        rows.append([name, _fmt(r.ap), _fmt(float(finite)), _fmt(r.roc.tpr_at(1000)),
                     str(len(r.missing))])
    print_table(headers, rows)
    _write_summary(args, "faces", {
        name: {"ap": r.ap, "recall": float(r.curve.recall[-1]), "tpr_at_1000fp":
               r.roc.tpr_at(1000), "images": r.num_images, "faces": r.curve.num_faces,
               "missing_images": len(r.missing)} for name, r in results.items()})
    if not args.no_plot:
        from ..evaluate.plots import plot_pr, plot_roc

        _plot(plot_pr, {n: r.curve for n, r in results.items()}, args.out / "faces_pr.png")
        _plot(plot_roc, {n: r.roc for n, r in results.items()}, args.out / "faces_roc.png")
    return 0


def run_landmarks(args: argparse.Namespace) -> int:
    from ..evaluate.ground_truth import image_names
    from ..evaluate.landmarks import evaluate_landmarks

    records = _load_records(args)
    sets = _pred_sets(args, image_names(records, args.images_root))
    results = {name: evaluate_landmarks(records, preds, args.iou) for name, preds in sets.items()}
    headers = ["detector", "NME %", "failure % (>10%)", "AUC@0.1", "faces", "missed",
               "no points"]
    rows = [[name, _fmt(r.mean_nme, True), _fmt(r.failure_rate, True), _fmt(r.auc),
             str(r.num_faces), str(r.num_missed), str(r.num_no_points)]
            for name, r in results.items()]
    print_table(headers, rows)
    _write_summary(args, "landmarks", {
        name: {"nme": r.mean_nme, "failure_rate": r.failure_rate, "auc_0.1": r.auc,
               "faces": r.num_faces, "evaluated": int(len(r.errors)), "missed": r.num_missed,
               "no_points": r.num_no_points, "missing_images": len(r.missing_images)}
        for name, r in results.items()})
    if not args.no_plot:
        from ..evaluate.plots import plot_ced

        curves = {n: (*r.ced(), r.auc) for n, r in results.items()}
        _plot(plot_ced, curves, args.out / "landmarks_ced.png")
    return 0
