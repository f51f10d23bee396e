"""The Trainer on tiny generated stores: it learns, checkpoints, resumes to the same weights."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch

from torchmtcnn.data.samples import Samples
from torchmtcnn.data.store import StoreWriter
from torchmtcnn.nets import PNet
from torchmtcnn.train.config import stage_config
from torchmtcnn.train.trainer import Trainer, epoch_seed, rng_states, set_rng_states
from torchmtcnn.weights import load_into, read_metadata, read_weights


def make_samples(n: int, size: int, seed: int) -> Samples:
    """A learnable mix: faces are a bright square on dark noise, with box offsets that follow
    the square's shift; negatives are plain noise; landmark samples carry fixed points."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(np.array([0, 1, -1, -2], np.int8), n, p=[0.4, 0.2, 0.2, 0.2])
    images = rng.integers(0, 60, (n, size, size, 3)).astype(np.uint8)
    boxes = np.zeros((n, 4), np.float32)
    marks = np.zeros((n, 5, 2), np.float32)
    q = size // 4
    for i, lab in enumerate(labels):
        if lab == 0:
            continue
        shift = int(rng.integers(-q // 2, q // 2 + 1)) if lab == -1 else 0
        images[i, q:3 * q, q + shift:3 * q + shift] = 220
        if lab in (1, -1):
            boxes[i] = [shift / size, 0, shift / size, 0]
        if lab == -2:
            marks[i] = [[0.3, 0.35], [0.7, 0.35], [0.5, 0.5], [0.35, 0.7], [0.65, 0.7]]
    crops = np.zeros((n, 4), np.float32)
    return Samples(images, labels, boxes, marks, crops, np.zeros(n, np.int32))


def make_store(root, size: int = 12, n_train: int = 256, n_val: int = 64, seed: int = 0):
    for split, n, s in (("train", n_train, seed), ("val", n_val, seed + 1)):
        with StoreWriter(root / split, size, ["photo.jpg"], {"split": split}) as w:
            w.append(make_samples(n, size, s))
    return root


@pytest.fixture(autouse=True)
def _one_thread():
    """One torch thread: tiny batches are faster, and steady on a loaded machine."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _config(**changes):
    base = dict(epochs=2, batch_size=32, optimizer="adam", lr=0.01, weight_decay=0.0,
                schedule="step", milestones=(1,), gamma=0.5, device="cpu", threads=1)
    stage = changes.pop("stage", "pnet")
    base.update(changes)
    return stage_config(stage, **base)


def test_training_lowers_the_loss_and_writes_the_run(tmp_path):
    store = make_store(tmp_path / "store")
    run = tmp_path / "run"
    trainer = Trainer(_config(epochs=3), store, run, progress=False)
    result = trainer.fit()
    rows = list(csv.DictReader(open(run / "log.csv")))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    first, last = float(rows[0]["train_loss"]), float(rows[-1]["train_loss"])
    assert last < 0.7 * first, (first, last)
    assert float(rows[-1]["val_loss"]) < float(rows[0]["val_loss"])
    assert float(rows[-1]["val_accuracy"]) > 0.9 and float(rows[-1]["val_recall"]) > 0.8
    assert float(rows[1]["lr"]) == pytest.approx(0.005)  # step schedule, gamma 0.5 at epoch 1
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "epoch_001.pt", "epoch_002.pt", "epoch_003.pt"]
    assert (run / "curves.png").stat().st_size > 1000
    # final weights: the stage's network in a safetensors file the weight loader takes
    assert result.weights == run / "pnet.safetensors" and result.epochs_done == 3
    net = PNet()
    load_into({"pnet": net}, read_weights(result.weights), "test", required=("pnet",))
    assert torch.equal(net.cls.weight, trainer.model.cls.weight.cpu())
    assert read_metadata(result.weights)["stage"] == "pnet"
    # checkpoints load with weights_only=True
    state = torch.load(run / "checkpoints" / "epoch_003.pt", weights_only=True)
    assert state["epoch"] == 3 and set(state) >= {"model", "optimizer", "scheduler", "rng"}


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tmp_path):
    store = make_store(tmp_path / "store", size=24, n_train=96, n_val=32)
    config = _config(stage="rnet", epochs=3, batch_size=16, optimizer="sgd", lr=0.05)
    full = Trainer(config, store, tmp_path / "full", progress=False)
    full.fit()
    part = Trainer(config, store, tmp_path / "part", progress=False)
    first = part.fit(stop_after=1)
    assert first.weights is None and first.epochs_done == 1
    assert not (tmp_path / "part" / "rnet.safetensors").exists()
    torch.manual_seed(1234)  # disturb the global RNGs: the resumed run must not depend on them
    np.random.seed(99)
    resumed = Trainer(config, store, tmp_path / "part", resume=True, progress=False)
    assert resumed.start_epoch == 1
    result = resumed.fit()
    assert result.epochs_done == 3 and result.weights is not None
    for (name, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    assert resumed.optimizer.param_groups[0]["lr"] == full.optimizer.param_groups[0]["lr"]
    full_log = list(csv.DictReader(open(tmp_path / "full" / "log.csv")))
    part_log = list(csv.DictReader(open(tmp_path / "part" / "log.csv")))
    assert [r["train_loss"] for r in full_log] == [r["train_loss"] for r in part_log]


def test_resume_without_checkpoint_starts_afresh_and_rejects_other_stage(tmp_path):
    store = make_store(tmp_path / "store", n_train=32, n_val=16)
    trainer = Trainer(_config(epochs=1), store, tmp_path / "run", resume=True, progress=False)
    assert trainer.start_epoch == 0
    trainer.fit()
    other = tmp_path / "store24"
    make_store(other, size=24, n_train=32, n_val=16)
    (tmp_path / "run2").mkdir()
    (tmp_path / "run2" / "checkpoints").symlink_to(tmp_path / "run" / "checkpoints")
    with pytest.raises(ValueError, match="pnet checkpoint"):
        Trainer(_config(stage="rnet", epochs=1), other, tmp_path / "run2", resume=True,
                progress=False)
    # a fresh (not resumed) run in the same folder drops the earlier run's checkpoints
    (tmp_path / "run" / "checkpoints" / "epoch_007.pt").write_bytes(b"stale")
    Trainer(_config(epochs=1), store, tmp_path / "run", progress=False)
    assert not (tmp_path / "run" / "checkpoints" / "epoch_007.pt").exists()


def test_store_of_the_wrong_size_is_refused(tmp_path):
    from torchmtcnn.data.store import StoreError

    store = make_store(tmp_path / "store", size=24, n_train=16, n_val=8)
    with pytest.raises(StoreError, match="pnet needs 12 px"):
        Trainer(_config(), store, tmp_path / "run", progress=False)


def test_rng_states_round_trip_and_epoch_seeds_differ():
    states = rng_states()
    a = (torch.rand(3), np.random.rand(3))
    set_rng_states(states)
    b = (torch.rand(3), np.random.rand(3))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert len({epoch_seed(0, e) for e in range(50)} | {epoch_seed(1, 0)}) == 51


def test_cli_train_stage(tmp_path, capsys):
    from torchmtcnn.cli import main

    store = make_store(tmp_path / "store", n_train=64, n_val=16)
    argv = ["train", "pnet", "--store", str(store), "--out", str(tmp_path / "run"),
            "--epochs", "1", "--batch-size", "32", "--device", "cpu", "--threads", "1",
            "--no-progress"]
    assert main(argv) == 0
    assert "weights:" in capsys.readouterr().out
    assert (tmp_path / "run" / "pnet.safetensors").is_file()
    # --resume of a finished run trains nothing more and keeps the weights
    assert main(argv + ["--resume"]) == 0
    assert len(list((tmp_path / "run" / "checkpoints").glob("*.pt"))) == 1


def test_resume_with_more_epochs_follows_the_longer_schedule(tmp_path):
    store = make_store(tmp_path / "store", n_train=32, n_val=16)
    Trainer(_config(epochs=2, schedule="cosine", lr=0.01), store, tmp_path / "run", progress=False).fit()
    longer = Trainer(_config(epochs=4, schedule="cosine", lr=0.01), store, tmp_path / "run", resume=True,
                     progress=False)
    assert longer.start_epoch == 2
    # epoch 3 of a 4-epoch cosine: 0.01 * (1 + cos(pi / 2)) / 2, not the 2-epoch run's final 0
    assert longer.optimizer.param_groups[0]["lr"] == pytest.approx(0.005)
    longer.fit()
    assert longer.optimizer.param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
