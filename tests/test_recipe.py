"""Recipe files: parsed, checked by name, and passed through to every stage of `train all`."""

from __future__ import annotations

from pathlib import Path

import pytest

from torchmtcnn.errors import MTCNNError
from torchmtcnn.train.pipeline import PipelineConfig, SourceSpec, TrainPipeline
from torchmtcnn.train.recipe import load_recipe, parse_recipe

SHIPPED = Path(__file__).resolve().parents[1] / "torchmtcnn" / "weights" / "recipe.toml"

RECIPE = """
name = "my-weights"
version = "2.0.0"
workers = 1
mined_jitters = { onet = 3 }
ratios = { onet = [1, 1, 1, 2] }
max_false_positives = 0.1

[[sources]]
spec = "caltech:caltech/list.txt"

[[sources]]
spec = "mtfl:mtfl/new_training.txt"
include = "lfw_5590/"
stages = ["onet"]
negatives = false

[train]
optimizer = "adam"
lr = 0.002
threads = 1

[stages.pnet]
epochs = 3

[stages.onet]
epochs = 5
lowres = 0.3
bf16 = true
loss = { landmark_loss = "wing", wing_w = 0.1 }
"""


def test_recipe_reaches_every_stage(tmp_path: Path):
    config = parse_recipe(RECIPE, tmp_path / "r.toml", data_root=tmp_path / "data")
    assert config.name == "my-weights" and config.version == "2.0.0"
    assert config.data_root == str(tmp_path / "data") and config.workers == 1
    assert config.sources == [
        SourceSpec("caltech:caltech/list.txt"),
        SourceSpec("mtfl:mtfl/new_training.txt", "lfw_5590/", ("onet",), False)]
    assert config.recipe_text == RECIPE
    pipeline = TrainPipeline(config, tmp_path / "run")
    pnet, rnet, onet = (pipeline.train_config(s) for s in ("pnet", "rnet", "onet"))
    assert (pnet.epochs, rnet.epochs, onet.epochs) == (3, 22, 5)  # R-Net keeps its default
    assert {c.optimizer for c in (pnet, rnet, onet)} == {"adam"}
    assert {c.lr for c in (pnet, rnet, onet)} == {0.002} and pnet.threads == 1
    assert onet.lowres == 0.3 and onet.bf16 and not pnet.bf16 and pnet.lowres == 0
    # a loss table changes only what it names: O-Net keeps its 1 : 0.5 : 1 weights
    assert (onet.loss.cls, onet.loss.box, onet.loss.landmark) == (1.0, 0.5, 1.0)
    assert (onet.loss.landmark_loss, onet.loss.wing_w, onet.loss.wing_eps) == ("wing", 0.1, 0.03)
    assert pnet.loss.landmark_loss == "l2"
    assert pipeline.sample_config(48).mined_jitters_per_face == 3
    assert pipeline.sample_config(48).ratio == (1.0, 1.0, 1.0, 2.0)
    assert pipeline.sample_config(48, negatives=False).ratio == (0.0, 1.0, 1.0, 2.0)
    assert pipeline.sample_config(24).ratio == (3.0, 1.0, 1.0, 2.0)


def test_the_shipped_recipe_parses(tmp_path: Path):
    config = load_recipe(SHIPPED)
    assert config.name == "torchmtcnn-caltech-sun2013" and config.version == "1.0.0"
    assert [s.spec.partition(":")[0] for s in config.sources] == ["caltech", "sun2013", "mtfl"]
    assert all(not Path(s.spec.partition(":")[2]).is_absolute() for s in config.sources)
    onet = TrainPipeline(config, tmp_path / "run").train_config("onet")
    assert onet.epochs == config.epochs["onet"] and onet.optimizer == "adam"


@pytest.mark.parametrize("text, message", [
    ("", "r.toml: a recipe needs at least one"),
    ("names = 'x'\n[[sources]]\nspec = 'caltech:a'\n", "unknown key 'names' in the recipe"),
    ("[[sources]]\nspec = 'caltech:a'\nstage = ['onet']\n", "unknown key 'stage' in \\[\\[sources\\]\\] table 1"),
    ("[[sources]]\nspec = 'caltech:a'\nstages = ['qnet']\n", "stages must be some of"),
    ("[[sources]]\ninclude = 'x'\n", "table 1 needs a 'spec'"),
    ("sources = []\n", "needs at least one"),
    ("[[sources]]\nspec = 'caltech:a'\n[train]\nlrate = 1\n", "unknown key 'lrate' in \\[train\\]"),
    ("[[sources]]\nspec = 'caltech:a'\n[stages.qnet]\nepochs = 1\n", "unknown key 'qnet' in \\[stages\\]"),
    ("[[sources]]\nspec = 'caltech:a'\n[stages.onet]\noptimizer = 'rmsprop'\n", "r.toml: optimizer must be"),
    ("[[sources]]\nspec = 'caltech:a'\n[stages.onet]\nloss = { landmark_loss = 'l1' }\n",
     "r.toml: landmark_loss must be"),
    ("[[sources]\n", "r.toml: not a valid TOML file"),
])
def test_a_bad_recipe_names_the_file_and_the_key(tmp_path: Path, text: str, message: str):
    with pytest.raises(MTCNNError, match=message):
        parse_recipe(text, tmp_path / "r.toml")


def test_missing_recipe_file(tmp_path: Path):
    with pytest.raises(MTCNNError, match="no such recipe file"):
        load_recipe(tmp_path / "none.toml")


def test_portable_source_names_hold_no_machine_folders():
    assert SourceSpec("caltech:/home/me/data/caltech/list.txt").portable() == "caltech:caltech/list.txt"
    assert SourceSpec("sun2013:sun2013/trainImageList.txt").portable() == "sun2013:sun2013/trainImageList.txt"
    assert PipelineConfig(["caltech:a.txt"]).sources == [SourceSpec("caltech:a.txt")]
