"""`mtcnn data`: build the P-Net, R-Net and O-Net sample stores and inspect stores.

    mtcnn data pnet --sources caltech:../shared/data/caltech_webfaces/WebFaces_GroundThruth.txt \\
        sun2013:../shared/data/sun2013/trainImageList.txt --out /tmp/mtcnn/pnet
    mtcnn data inspect /tmp/mtcnn/pnet --sheet /tmp/pnet.png

R-Net and O-Net stores: the trained cascade's earlier stages propose the crops
(``build_mined_store`` with a ``CascadeProposer``): P-Net for R-Net data, P-Net and R-Net
for O-Net data (the weight file must hold them):

    mtcnn data rnet --sources ... --weights /tmp/run/pnet/pnet.safetensors --out /tmp/mtcnn/rnet
    mtcnn data onet --sources ... --weights /tmp/run/pnet_rnet.safetensors --out /tmp/mtcnn/onet
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

# Drawing colours (BGR) of the contact sheet, per label.
_COLOURS = {0: (128, 128, 128), 1: (0, 200, 0), -1: (0, 200, 255), -2: (255, 80, 0)}
_POINT_COLOURS = [(255, 0, 0), (0, 0, 255), (0, 255, 0), (255, 0, 255), (0, 255, 255)]


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `mtcnn data` and its subcommands."""
    parser = subparsers.add_parser("data", help="build and inspect training sample stores")
    sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    sub.required = True

    pnet = sub.add_parser("pnet", help="build the 12 px P-Net store (train and val)")
    _add_build_options(pnet)
    pnet.set_defaults(func=run_pnet)

    for stage, size, until in (("rnet", 24, "P-Net"), ("onet", 48, "P-Net and R-Net")):
        mined = sub.add_parser(stage, help=f"build the {size} px {stage} store from the "
                                           f"proposals of {until}")
        _add_build_options(mined)
        mined.add_argument("--weights", required=True, type=Path,
                           help=f"weight file holding {until} (trained so far)")
        mined.add_argument("--min-face-size", type=float, default=20.0,
                           help="smallest face the proposing cascade looks for (default 20)")
        mined.set_defaults(func=run_mined, stage=stage, size=size)

    merge = sub.add_parser("merge", help="concatenate stage folders (train/ and val/ each) into one")
    merge.add_argument("stores", type=Path, nargs="+", help="stage folders built with the same crop size")
    merge.add_argument("--out", type=Path, required=True, help="the merged stage folder")
    merge.set_defaults(func=run_merge)

    inspect = sub.add_parser("inspect", help="print counts of a store, draw a contact sheet")
    inspect.add_argument("store", type=Path, help="a store folder or a stage folder")
    inspect.add_argument("--sheet", type=Path, default=None, help="write a PNG contact sheet")
    inspect.add_argument("--count", type=int, default=64, help="samples on the sheet")
    inspect.add_argument("--seed", type=int, default=0)
    inspect.set_defaults(func=run_inspect)


def _add_build_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--sources", nargs="+", required=True, metavar="SPEC",
                        help="annotation files as FORMAT:PATH (wider, sun2013, mtfl, caltech, "
                             "jsonl) or PATH (format guessed from the name)")
    parser.add_argument("--out", required=True, type=Path, help="output folder (train/, val/)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None, help="processes (default: CPUs)")
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--max-photos", type=int, default=None,
                        help="use only the first N photos (after joining the sources)")
    parser.add_argument("--ratio", type=float, nargs=4, default=(3.0, 1.0, 1.0, 2.0),
                        metavar=("NEG", "POS", "PART", "LANDMARK"),
                        help="mix of the kinds kept (default 3 1 1 2; 0 drops a kind)")
    parser.add_argument("--landmark-jitters", type=int, default=20,
                        help="jittered crops tried per face with points (default 20)")
    parser.add_argument("--mined-jitters", type=int, default=0,
                        help="rnet/onet: crops jittered around each face added to the "
                             "proposals (default 0, as the reference)")


def _records_and_config(args: argparse.Namespace, size: int):
    from ..data.samples import SampleConfig

    start = time.perf_counter()
    from ..data.readers import read_sources

    records = read_sources(args.sources)
    if args.max_photos is not None:
        records = records[: args.max_photos]
    read_s = time.perf_counter() - start
    config = SampleConfig(size=size, seed=args.seed, workers=args.workers,
                          val_fraction=args.val_fraction, ratio=tuple(args.ratio),
                          landmark_jitters_per_face=args.landmark_jitters,
                          mined_jitters_per_face=args.mined_jitters)
    return records, config, read_s


def run_pnet(args: argparse.Namespace) -> int:
    from ..data.pipeline import build_pnet_store

    records, config, read_s = _records_and_config(args, 12)
    report = build_pnet_store(records, args.out, config, sources=list(args.sources))
    _print_report(report, read_s, args.out)
    return 0


def run_mined(args: argparse.Namespace) -> int:
    from ..data.mining import CascadeProposer
    from ..data.pipeline import build_mined_store
    from ..errors import WeightsError
    from ..weights import read_weights

    until = "pnet" if args.stage == "rnet" else "rnet"
    present = {key.partition(".")[0] for key in read_weights(args.weights)}
    needed = ["pnet"] if until == "pnet" else ["pnet", "rnet"]
    missing = [n for n in needed if n not in present]
    if missing:
        raise WeightsError(f"{args.weights}: {args.stage} data needs {' and '.join(needed)} "
                           f"weights; the file has no {', '.join(missing)}")
    records, config, read_s = _records_and_config(args, args.size)
    proposer = CascadeProposer(str(args.weights), until, min_face_size=args.min_face_size)
    report = build_mined_store(records, proposer, args.size, args.out, config,
                               sources=list(args.sources))
    _print_report(report, read_s, args.out)
    return 0


def _print_report(report, read_s: float, out: Path) -> None:
    print(f"photos: {report.photos} ({len(report.failed)} unreadable); "
          f"annotations read in {read_s:.1f} s, samples in {report.seconds:.1f} s")
    print(f"generated: {report.raw_counts}")
    for split, counts in report.counts.items():
        print(f"{split}: {sum(counts.values())} samples {counts} -> {out / split}")


def run_merge(args: argparse.Namespace) -> int:
    from ..data.store import find_stores, merge_stores

    splits = [{p.name: p for p in find_stores(folder)} for folder in args.stores]
    names = sorted(set.intersection(*(set(s) for s in splits)))
    if not names:
        log.error("no split (train/, val/) is in every one of %s", ", ".join(map(str, args.stores)))
        return 1
    for name in names:
        merged = merge_stores([s[name] for s in splits], args.out / name)
        print(f"{name}: {len(merged)} samples {merged.counts} -> {merged.path}")
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    from ..data.store import SampleStore, find_stores

    stores = [SampleStore(p) for p in find_stores(args.store)]
    for store in stores:
        meta = store.meta
        print(f"{store.path}: {len(store)} samples of {store.size} px, split "
              f"{meta.get('split', '?')}, stage {meta.get('stage', '?')}, seed "
              f"{meta.get('seed', '?')}, from {len(meta.get('photos', []))} photos")
        for name, count in store.counts.items():
            share = count / max(len(store), 1)
            print(f"  {name:9s} {count:9d}  {share:6.1%}")
    if args.sheet is not None:
        sheet = contact_sheet(stores[0], args.count, args.seed)
        import cv2

        args.sheet.parent.mkdir(parents=True, exist_ok=True)
        if not cv2.imwrite(str(args.sheet), sheet):
            log.error("cannot write %s", args.sheet)
            return 1
        print(f"contact sheet of {stores[0].path}: {args.sheet}")
    return 0


def contact_sheet(store, count: int = 64, seed: int = 0, cell: int = 96,
                  columns: int = 8) -> np.ndarray:
    """BGR uint8 image of ``count`` random samples of a store, each enlarged to cell px, with
    its label (frame colour), its regression box (positives, parts) and its points drawn."""
    import cv2

    rng = np.random.default_rng(seed)
    n = min(count, len(store))
    picks = np.sort(rng.choice(len(store), n, replace=False)) if n else np.zeros(0, int)
    rows = max(1, -(-n // columns))
    sheet = np.full((rows * cell, columns * cell, 3), 255, np.uint8)
    for k, i in enumerate(picks):
        sample = store[int(i)]
        label = int(sample["label"])
        tile = cv2.resize(sample["image"][..., ::-1], (cell, cell),
                          interpolation=cv2.INTER_NEAREST)
        colour = _COLOURS.get(label, (0, 0, 0))
        if label in (1, -1):
            dx1, dy1, dx2, dy2 = sample["box"] * cell
            cv2.rectangle(tile, (int(dx1), int(dy1)), (int(cell + dx2), int(cell + dy2)),
                          colour, 1)
        if label == -2:
            for (x, y), point_colour in zip(sample["landmarks"] * cell, _POINT_COLOURS):
                cv2.circle(tile, (int(x), int(y)), 2, point_colour, -1)
        cv2.rectangle(tile, (0, 0), (cell - 1, cell - 1), colour, 2)
        r, c = divmod(k, columns)
        sheet[r * cell : (r + 1) * cell, c * cell : (c + 1) * cell] = tile
    return sheet
