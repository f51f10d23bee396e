"""Recipe files: every setting of `train all` in one TOML file, so one command makes a weight file.

    mtcnn train all --recipe torchmtcnn/weights/recipe.toml --data ../shared/data --run-dir RUN

A recipe holds the fields of :class:`~torchmtcnn.train.pipeline.PipelineConfig` at its top
level, its sources as ``[[sources]]`` tables (:class:`SourceSpec` fields), the training
settings of every stage in ``[train]`` and those of one stage in ``[stages.pnet]``,
``[stages.rnet]``, ``[stages.onet]`` (:class:`~torchmtcnn.train.config.TrainConfig` fields,
``epochs`` and a ``loss`` table included)::

    name = "torchmtcnn-caltech-sun2013"
    version = "1.0.0"
    ratios = { onet = [1, 1, 1, 2] }

    [[sources]]
    spec = "caltech:caltech_webfaces/WebFaces_GroundThruth.txt"

    [train]
    optimizer = "adam"

    [stages.onet]
    epochs = 16
    loss = { cls = 1.0, box = 0.5, landmark = 1.0, landmark_loss = "wing" }

Relative source paths start from ``--data`` (or the recipe's ``data_root``). The weights'
metadata keeps the recipe's text, never a machine's folders. A key that is not a setting, or
a value a setting refuses, raises MTCNNError naming the file and the key.
"""

from __future__ import annotations

import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from ..errors import MTCNNError
from .config import STAGES, TrainConfig, stage_config
from .pipeline import PipelineConfig, SourceSpec

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

# PipelineConfig fields a recipe sets by other means (sources tables, [train], [stages.*]).
_STRUCTURED = {"sources", "train", "stage_train", "epochs", "recipe_text"}


def _check_keys(table: dict[str, Any], known: set[str], where: str, path: Path) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        raise MTCNNError(f"{path}: unknown key{'s' if len(unknown) > 1 else ''} "
                         f"{', '.join(repr(k) for k in unknown)} in {where} (known: "
                         f"{', '.join(sorted(known))})")


def parse_recipe(text: str, path: Path, data_root: str | Path | None = None) -> PipelineConfig:
    """A recipe's text -> PipelineConfig (``path`` names the file in errors; ``data_root``
    overrides the recipe's)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MTCNNError(f"{path}: not a valid TOML file: {exc}") from None
    pipeline_keys = {f.name for f in fields(PipelineConfig)} - _STRUCTURED
    train_keys = {f.name for f in fields(TrainConfig)} - {"stage"}
    _check_keys(raw, pipeline_keys | {"sources", "train", "stages"}, "the recipe", path)
    sources = raw.pop("sources", None)
    if not isinstance(sources, list) or not sources:
        raise MTCNNError(f"{path}: a recipe needs at least one [[sources]] table")
    specs = []
    source_keys = {f.name for f in fields(SourceSpec)}
    for i, table in enumerate(sources, 1):
        if not isinstance(table, dict) or "spec" not in table:
            raise MTCNNError(f"{path}: [[sources]] table {i} needs a 'spec' (\"FORMAT:PATH\")")
        _check_keys(table, source_keys, f"[[sources]] table {i}", path)
        specs.append(SourceSpec(**table))
    train = raw.pop("train", {})
    _check_keys(train, train_keys - {"epochs"}, "[train]", path)
    stages = raw.pop("stages", {})
    _check_keys(stages, set(STAGES), "[stages]", path)
    epochs, stage_train = {}, {}
    for stage, table in stages.items():
        _check_keys(table, train_keys, f"[stages.{stage}]", path)
        table = dict(table)
        if "epochs" in table:
            epochs[stage] = table.pop("epochs")
        stage_train[stage] = table
    if "ratios" in raw:
        raw["ratios"] = {k: tuple(v) for k, v in raw["ratios"].items()}
    if data_root is not None:
        raw["data_root"] = str(data_root)
    try:
        config = PipelineConfig(sources=specs, train=train, stage_train=stage_train,
                                epochs=epochs, recipe_text=text, **raw)
        for stage in STAGES:  # every stage's settings are checked now, not an hour in
            stage_config(stage, **{**train, **stage_train.get(stage, {})},
                         **({"epochs": epochs[stage]} if stage in epochs else {}))
    except (TypeError, ValueError) as exc:
        raise MTCNNError(f"{path}: {exc}") from None
    return config


def load_recipe(path: str | Path, data_root: str | Path | None = None) -> PipelineConfig:
    """Read a recipe file -> PipelineConfig (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise MTCNNError(f"{path}: no such recipe file")
    return parse_recipe(path.read_text(encoding="utf-8"), path, data_root)
