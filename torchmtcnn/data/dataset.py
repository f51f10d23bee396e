"""A torch Dataset over a sample store, with the training augmentations.

Each item is a dict (the default collate stacks it into a batch):

* ``image``: float32 [3, S, S], RGB, normalised as MTCNN does: (x - 127.5) / 128;
* ``label``: int64 [] (0 negative, 1 positive, -1 part, -2 landmark);
* ``box``: float32 [4], box-regression targets (meaningful for positives and parts);
* ``landmarks``: float32 [5, 2], points in [0, 1] of the crop (meaningful for landmarks).

Augmentations (``Augment``): a horizontal flip with probability flip_prob, which mirrors the
image, the box targets ((dx1, dy1, dx2, dy2) -> (-dx2, dy1, -dx1, dy2)) and the points (x ->
1 - x, left / right eye and mouth corners swapped); colour jitter: brightness, contrast and
saturation each scaled by a factor uniform in [1 - a, 1 + a]; with probability lowres_prob, a
low-resolution copy: the crop shrunk to a side uniform in [lowres_min * S, S] and enlarged
back, as a small face looks once the cascade has enlarged its crop to S (the labels hold);
with probability dim_prob, dim light (:func:`dim_light`: darker mid-tones, less light, sensor
noise), as faces in a dark room or an audience look; with probability blur_prob, a Gaussian
blur of sigma uniform in [0.3, 1.2] crop pixels (motion, focus).

Randomness: a numpy Generator seeded from ``seed`` and torch's per-worker seed
(torch.initial_seed(), which the DataLoader sets differently in each worker and epoch); set
torch.manual_seed for reproducible runs. The store is opened lazily in each process, so the
dataset pickles cheaply to DataLoader workers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from ..nets import PIXEL_MEAN, PIXEL_SCALE
from .landmark_samples import FLIP_ORDER
from .store import SampleStore

# RGB -> luma weights (ITU-R BT.601), for the saturation and contrast jitter.
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


@dataclass
class Augment:
    """Training augmentations; Augment(0, 0, 0, 0) (or augment=None) changes nothing."""

    flip_prob: float = 0.5
    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2
    lowres_prob: float = 0.0
    lowres_min: float = 0.3
    dim_prob: float = 0.0
    blur_prob: float = 0.0

    def __post_init__(self) -> None:
        if not (0 <= self.lowres_prob <= 1 and 0 < self.lowres_min <= 1):
            raise ValueError(f"lowres_prob must be in [0, 1] and lowres_min in (0, 1], got "
                             f"{self.lowres_prob!r} and {self.lowres_min!r}")
        for name in ("dim_prob", "blur_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")


def low_resolution(image: np.ndarray, side: int) -> np.ndarray:
    """float32 [S, S, 3] -> the same crop shrunk to side x side (INTER_AREA) and enlarged
    back to S x S (bilinear)."""
    size = image.shape[0]
    if side >= size:
        return image
    small = cv2.resize(image, (side, side), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_LINEAR)


def dim_light(image: np.ndarray, gamma: float, light: float, noise: float,
              rng: np.random.Generator) -> np.ndarray:
    """float32 [S, S, 3] in [0, 255] -> the same scene in dim light: mid-tones darkened by a
    gamma (>= 1), the light scaled by ``light`` (<= 1), and Gaussian noise of sigma ``noise``
    grey levels; clipped to [0, 255]."""
    out = 255.0 * (np.clip(image, 0, 255) / 255.0) ** gamma * light
    if noise > 0:
        out = out + rng.normal(0.0, noise, out.shape)
    return np.clip(out, 0, 255).astype(np.float32)


def normalize(images: np.ndarray) -> torch.Tensor:
    """uint8 or float RGB [..., S, S, 3] -> float32 tensor [..., 3, S, S], (x - 127.5) / 128."""
    x = torch.from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    return ((x - PIXEL_MEAN) * PIXEL_SCALE).movedim(-1, -3).contiguous()


def flip_targets(box: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mirror box targets [4] and normalised points [5, 2] of a left-right flipped crop."""
    box = np.array([-box[2], box[1], -box[0], box[3]], np.float32)
    marks = landmarks[FLIP_ORDER].astype(np.float32, copy=True)
    marks[:, 0] = 1.0 - marks[:, 0]
    return box, marks


def color_jitter(image: np.ndarray, rng: np.random.Generator, augment: Augment) -> np.ndarray:
    """float32 RGB [S, S, 3] in [0, 255] -> jittered, clipped to [0, 255]."""
    if augment.brightness > 0:
        image = image * rng.uniform(1 - augment.brightness, 1 + augment.brightness)
    if augment.contrast > 0:
        mean = float((image @ _LUMA).mean())
        image = (image - mean) * rng.uniform(1 - augment.contrast, 1 + augment.contrast) + mean
    if augment.saturation > 0:
        gray = (image @ _LUMA)[..., None]
        image = (image - gray) * rng.uniform(1 - augment.saturation,
                                             1 + augment.saturation) + gray
    return np.clip(image, 0, 255)


class SampleDataset(Dataset):
    """Samples of one store (a folder written by StoreWriter) as training tensors.

    Args:
        store: a SampleStore or the path of one.
        augment: the augmentations, or None for none (validation).
        seed: mixed with torch.initial_seed() into the augmentation generator.
    """

    def __init__(self, store: SampleStore | str | Path, augment: Augment | None = None,
                 seed: int = 0):
        self.path = Path(store.path if isinstance(store, SampleStore) else store)
        self._store = store if isinstance(store, SampleStore) else SampleStore(self.path)
        self.augment = augment
        self.seed = seed
        self._rng: np.random.Generator | None = None
        self._rng_key: tuple[int, int] | None = None
        self._length = len(self._store)

    @property
    def store(self) -> SampleStore:
        if self._store is None:
            self._store = SampleStore(self.path)
        return self._store

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_store"] = None  # memory maps are reopened in the worker, not pickled
        state["_rng"] = None
        return state

    def __len__(self) -> int:
        return self._length

    def labels(self) -> np.ndarray:
        """int8 [N] labels of all samples (for samplers)."""
        return np.asarray(self.store.labels)

    def _generator(self) -> np.random.Generator:
        key = (os.getpid(), torch.initial_seed())
        if self._rng is None or self._rng_key != key:
            self._rng = np.random.default_rng([self.seed, key[1] % 2**63])
            self._rng_key = key
        return self._rng

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        store = self.store
        image = np.asarray(store.images[index], np.float32)
        label = int(store.labels[index])
        box = np.array(store.boxes[index], np.float32)
        marks = np.array(store.landmarks[index], np.float32)
        aug = self.augment
        if aug is not None:
            rng = self._generator()
            if aug.flip_prob > 0 and rng.random() < aug.flip_prob:
                image = image[:, ::-1]
                flipped_box, flipped_marks = flip_targets(box, marks)
                # unused targets stay zero
                box = flipped_box if label in (1, -1) else box
                marks = flipped_marks if label == -2 else marks
            if aug.lowres_prob > 0 and rng.random() < aug.lowres_prob:
                side = int(round(image.shape[0] * rng.uniform(aug.lowres_min, 1.0)))
                image = low_resolution(np.ascontiguousarray(image), max(side, 2))
            image = color_jitter(image, rng, aug)
            if aug.dim_prob > 0 and rng.random() < aug.dim_prob:
                image = dim_light(image, rng.uniform(1.0, 2.2), rng.uniform(0.4, 1.0),
                                  rng.uniform(0.0, 4.0), rng)
            if aug.blur_prob > 0 and rng.random() < aug.blur_prob:
                image = cv2.GaussianBlur(np.ascontiguousarray(image), (0, 0),
                                         rng.uniform(0.3, 1.2)).astype(np.float32)
        return {
            "image": normalize(image),
            "label": torch.tensor(label, dtype=torch.int64),
            "box": torch.from_numpy(box),
            "landmarks": torch.from_numpy(marks),
        }
