"""`mtcnn train`: train one stage on a sample store, or the whole cascade from annotations.

    mtcnn train pnet --store /tmp/mtcnn/pnet --out /tmp/runs/pnet [--resume] [--epochs 10]
    mtcnn train all --sources caltech:../shared/data/caltech_webfaces/WebFaces_GroundThruth.txt \\
        sun2013:../shared/data/sun2013/trainImageList.txt --run-dir /tmp/runs/all [--resume]
    mtcnn train calibrate W.safetensors --annotations jsonl:RUN/validation.jsonl --out C.safetensors

On several GPUs or nodes, run a stage under torchrun (one process per GPU):

    torchrun --nproc-per-node 4 -m torchmtcnn train rnet --store ... --out ...
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..errors import MTCNNError
from ..train.pipeline import STEPS

log = logging.getLogger(__name__)


def _add_train_options(parser: argparse.ArgumentParser, per_stage_epochs: bool) -> None:
    g = parser.add_argument_group("training")
    if per_stage_epochs:
        g.add_argument("--epochs", type=int, nargs=3, default=None, metavar=("P", "R", "O"),
                       help="epochs of P-Net, R-Net, O-Net (default 30 22 22)")
    else:
        g.add_argument("--epochs", type=int, default=None,
                       help="epochs (default: 30 P-Net, 22 R-Net and O-Net)")
    g.add_argument("--batch-size", type=int, default=None, help="samples per step (384)")
    g.add_argument("--optimizer", choices=("sgd", "adam"), default=None, help="(sgd)")
    g.add_argument("--lr", type=float, default=None, help="learning rate (0.01)")
    g.add_argument("--schedule", choices=("step", "cosine", "constant"), default=None,
                   help="learning-rate schedule (step: x0.1 after epochs 6, 14, 20)")
    g.add_argument("--milestones", type=int, nargs="*", default=None,
                   help="epochs after which the step schedule multiplies the lr by gamma")
    g.add_argument("--lowres", type=float, default=None, metavar="P",
                   help="share of samples whose crop is replaced by a low-resolution copy, as "
                        "small faces look (default 0)")
    g.add_argument("--dim", type=float, default=None, metavar="P",
                   help="share of samples shown in dim light (default 0)")
    g.add_argument("--blur", type=float, default=None, metavar="P",
                   help="share of samples blurred (default 0)")
    g.add_argument("--seed", type=int, default=None, help="(0)")
    g.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: a GPU if any)")
    g.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    g.add_argument("--bf16", action="store_true", default=None,
                   help="on a CPU, forward passes under bfloat16 autocast (faster with AMX)")
    g.add_argument("--loader-workers", type=int, default=None,
                   help="DataLoader processes (default 0: load in the training process)")
    g.add_argument("--max-steps", type=int, default=None,
                   help="stop each epoch after N steps (smoke runs)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def _train_changes(args: argparse.Namespace) -> dict:
    changes = {
        "batch_size": args.batch_size, "optimizer": args.optimizer, "lr": args.lr,
        "schedule": args.schedule, "seed": args.seed, "lowres": args.lowres, "device": args.device,
        "dim": args.dim, "blur": args.blur,
        "threads": args.threads, "workers": args.loader_workers, "max_steps": args.max_steps,
        "bf16": args.bf16,
        "milestones": tuple(args.milestones) if args.milestones is not None else None,
    }
    return {k: v for k, v in changes.items() if v is not None}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `mtcnn train` and its subcommands."""
    parser = subparsers.add_parser("train", help="train the networks")
    sub = parser.add_subparsers(dest="train_command", metavar="SUBCOMMAND")
    sub.required = True
    for stage, size in (("pnet", 12), ("rnet", 24), ("onet", 48)):
        p = sub.add_parser(stage, help=f"train {stage} on a {size} px sample store")
        p.add_argument("--store", required=True, type=Path,
                       help="stage store folder (train/ and val/), from `mtcnn data`")
        p.add_argument("--out", required=True, type=Path, help="run folder")
        p.add_argument("--resume", action="store_true",
                       help="continue from the run folder's last checkpoint")
        _add_train_options(p, per_stage_epochs=False)
        p.set_defaults(func=run_stage, stage=stage)

    p = sub.add_parser("all", help="samples, P-Net, mining, R-Net, mining, O-Net, one file")
    p.add_argument("--recipe", type=Path, default=None,
                   help="TOML file with every setting (docs/training.md); the shipped weights' "
                        "is torchmtcnn/weights/recipe.toml. Options given here override it")
    p.add_argument("--data", type=Path, default=None,
                   help="folder that the sources' relative paths start from")
    p.add_argument("--sources", nargs="+", default=None, metavar="SPEC",
                   help="annotation files as FORMAT:PATH (as `mtcnn data pnet`); needed "
                        "without --recipe")
    p.add_argument("--run-dir", required=True, type=Path, help="run folder")
    p.add_argument("--resume", action="store_true", help="continue a run, skipping done steps")
    p.add_argument("--until", choices=STEPS, default=None,
                   help="stop after this step (continue later with --resume)")
    p.add_argument("--workers", type=int, default=None,
                   help="sample-generation processes (default: CPUs)")
    p.add_argument("--max-photos", type=int, default=None,
                   help="first N photos of each source only (smoke runs)")
    p.add_argument("--holdout-fraction", type=float, default=None,
                   help="share of photos held out for evaluation (default 0.1)")
    p.add_argument("--holdout-seed", type=int, default=None,
                   help="seed of the held-out rule (default 0; keep it to compare runs)")
    p.add_argument("--val-fraction", type=float, default=None,
                   help="share of training photos for validation (default 0.1)")
    p.add_argument("--landmark-jitters", type=int, default=None, help="(default 20)")
    p.add_argument("--mined-jitters", type=int, nargs=2, default=None, metavar=("R", "O"),
                   help="crops jittered around each face added to the mined R-Net and O-Net "
                        "proposals (default 0 0, as the reference)")
    p.add_argument("--ratio", nargs=5, action="append", default=[],
                   metavar=("STAGE", "NEG", "POS", "PART", "LANDMARK"),
                   help="mix of a stage's store, e.g. --ratio onet 1 1 1 2 (default 3 1 1 2)")
    p.add_argument("--max-false-positives", type=float, default=None, metavar="F",
                   help="calibration budget: false detections per validation photo at the "
                        "default thresholds (default 0.05; a negative value: no calibration)")
    _add_train_options(p, per_stage_epochs=True)
    p.set_defaults(func=run_all)

    p = sub.add_parser("calibrate", help="shift R-Net's and O-Net's face scores so that the "
                                         "default thresholds find the most faces of validation "
                                         "photos within a false-positive budget")
    p.add_argument("weights", type=Path, help="weight file to calibrate")
    p.add_argument("--annotations", nargs="+", required=True, metavar="SPEC",
                   help="validation photos as FORMAT:PATH, never trained on (a run's "
                        "jsonl:RUN/validation.jsonl)")
    p.add_argument("--out", required=True, type=Path, help="calibrated weight file to write")
    p.add_argument("--max-false-positives", type=float, default=0.05, metavar="F",
                   help="false detections per photo allowed (default 0.05)")
    p.add_argument("--device", default=None, help="cpu, cuda... (default: a GPU if any)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_calibrate)


def run_stage(args: argparse.Namespace) -> int:
    from ..train.config import stage_config
    from ..train.trainer import Trainer

    changes = _train_changes(args)
    if args.epochs is not None:
        changes["epochs"] = args.epochs
    config = stage_config(args.stage, **changes)
    trainer = Trainer(config, args.store, args.out, resume=args.resume,
                      progress=not args.no_progress)
    result = trainer.fit()
    if trainer.rank == 0:
        last = result.history[-1] if result.history else {}
        print(f"{args.stage}: {result.epochs_done} epochs in {result.seconds:.1f} s; "
              + ", ".join(f"{k} {v:.4g}" for k, v in last.items() if k.startswith("val_")))
        print(f"weights: {result.weights}")
    return 0


def _ratios(specs: list[list[str]]) -> dict[str, tuple[float, ...]]:
    ratios = {}
    for stage, *values in specs:
        if stage not in ("pnet", "rnet", "onet"):
            raise MTCNNError(f"--ratio: unknown stage {stage!r} (pnet, rnet or onet)")
        try:
            ratio = tuple(float(v) for v in values)
        except ValueError:
            raise MTCNNError(f"--ratio {stage}: four numbers expected, got {' '.join(values)}") from None
        if any(r < 0 for r in ratio) or not any(ratio):
            raise MTCNNError(f"--ratio {stage}: numbers must be >= 0, not all 0")
        ratios[stage] = ratio
    return ratios


def _pipeline_config(args: argparse.Namespace):
    """The recipe (or the defaults with --sources), with the options given on the command line."""
    from dataclasses import replace

    from ..train.pipeline import PipelineConfig, SourceSpec
    from ..train.recipe import load_recipe

    if args.recipe is not None:
        config = load_recipe(args.recipe, args.data)
    elif args.sources:
        config = PipelineConfig(sources=[SourceSpec(s) for s in args.sources],
                                data_root=str(args.data) if args.data else None)
    else:
        raise MTCNNError("train all needs --recipe FILE or --sources SPEC...")
    changes = {
        "holdout_fraction": args.holdout_fraction, "holdout_seed": args.holdout_seed,
        "val_fraction": args.val_fraction, "workers": args.workers, "seed": args.seed,
        "max_photos": args.max_photos, "landmark_jitters": args.landmark_jitters,
    }
    changes = {k: v for k, v in changes.items() if v is not None}
    if args.recipe is not None and args.sources:
        changes["sources"] = list(args.sources)
    if args.mined_jitters is not None:
        changes["mined_jitters"] = dict(zip(("rnet", "onet"), args.mined_jitters))
    if args.ratio:
        changes["ratios"] = {**config.ratios, **_ratios(args.ratio)}
    if args.epochs:
        changes["epochs"] = dict(zip(("pnet", "rnet", "onet"), args.epochs))
    if args.max_false_positives is not None:
        changes["max_false_positives"] = (args.max_false_positives
                                          if args.max_false_positives >= 0 else None)
    train = _train_changes(args)
    train.pop("seed", None)  # the pipeline's seed seeds every stage
    if train:
        changes["train"] = {**config.train, **train}
    return replace(config, **changes)


def run_all(args: argparse.Namespace) -> int:
    from ..train.pipeline import TrainPipeline

    pipeline = TrainPipeline(_pipeline_config(args), args.run_dir, resume=args.resume,
                             progress=not args.no_progress)
    weights = pipeline.run(until=args.until)
    for step, info in pipeline.state["done"].items():
        print(f"{step}: {info.get('seconds', 0):.1f} s")
    print(f"weights: {weights}")
    return 0


def run_calibrate(args: argparse.Namespace) -> int:
    from ..train.calibrate import calibrate_file
    from ..data.readers import read_sources

    if not args.weights.is_file():
        raise MTCNNError(f"{args.weights}: no such weight file")
    result = calibrate_file(args.weights, read_sources(args.annotations), args.out,
                            max_false_positives=args.max_false_positives, device=args.device,
                            progress=not args.no_progress)
    print(f"{result.photos} photos, {result.faces} faces: thresholds {result.thresholds} "
          f"of {args.weights.name} become the defaults; recall {result.before[0]:.4f} -> "
          f"{result.recall:.4f}, false positives per photo {result.before[1]:.3f} -> "
          f"{result.false_positives:.3f}")
    print(f"weights: {args.out}")
    return 0
