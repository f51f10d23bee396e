"""MTCNN: the entry point. Input normalisation, batching, device, weights, and Faces."""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .backends import NetworkBackend, make_backend, pick_device
from .boxes import clip_boxes
from .cascade import DEFAULTS, Cascade, CascadeConfig, Schedule
from .data.records import LANDMARK_NAMES
from .errors import ImageError, MTCNNError
from .images import ImageInput, load
from .weights import load_nets

log = logging.getLogger(__name__)


@dataclass
class Faces:
    """The faces found in one image, by decreasing score; empty arrays when there is none.

    boxes: float32 [N, 4] (x1, y1, x2, y2) in pixels, clipped to the image;
    scores: float32 [N] face probabilities; landmarks: float32 [N, 5, 2] (x, y) of left eye,
    right eye, nose, left and right mouth corner; image_size: (height, width).
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray
    image_size: tuple[int, int]

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls, image_size: tuple[int, int]) -> "Faces":
        return cls(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, 5, 2), np.float32), image_size)

    def to_dicts(self, decimals: int = 2) -> list[dict]:
        """[{"box": [x1, y1, x2, y2], "score": s, "keypoints": {"left_eye": [x, y], ...}}]"""
        out = []
        for box, score, points in zip(self.boxes, self.scores, self.landmarks):
            out.append({
                "box": [round(float(v), decimals) for v in box],
                "score": round(float(score), 5),
                "keypoints": {n: [round(float(p[0]), decimals), round(float(p[1]), decimals)]
                              for n, p in zip(LANDMARK_NAMES, points)},
            })
        return out


@dataclass
class Result:
    """One input of a batch job: its faces, or the error that stopped it (never both)."""

    source: object
    faces: Faces | None = None
    error: MTCNNError | None = None


class MTCNN:
    """The MTCNN face detector.

    Args:
        min_face_size: smallest face to find, in pixels (default 20, the original's).
        thresholds: face-probability thresholds of P-Net, R-Net and O-Net (0.6, 0.7, 0.7).
        factor: scale step of the image pyramid (0.709, about 1/sqrt(2)).
            The defaults are ``CascadeConfig``'s (``cascade.DEFAULTS``).
        device: "cpu", "cuda", "cuda:1"... or None for a GPU when there is one.
        weights: None (the package's weights, else the imported original ones), "original",
            or the path of a weight file.
        backend: "torch", or "onnxruntime" (needs the [onnx] extra).
        batch_size: images per cascade run in ``detect`` over many inputs.

    ``detect(x)`` takes a path, bytes, a PIL image, an RGB uint8 array, a tensor, or a list
    of them (sizes may differ) and returns Faces, or a list of Faces for a list.
    """

    def __init__(
        self,
        min_face_size: float = DEFAULTS.min_face_size,
        thresholds: Sequence[float] = DEFAULTS.thresholds,
        factor: float = DEFAULTS.factor,
        device: str | torch.device | None = None,
        weights: str | Path | None = None,
        backend: str = "torch",
        batch_size: int = 16,
    ) -> None:
        self.config = CascadeConfig(float(min_face_size), tuple(thresholds), float(factor))
        if not (isinstance(batch_size, int) and batch_size > 0):
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.batch_size = batch_size
        self.device = pick_device(device)
        loaded = load_nets(weights)
        self.weights_path = loaded.path
        self.weights_name = loaded.name
        self.weights_version = loaded.version
        self.nets = loaded.nets
        self.backend_name = backend
        self.cascade = Cascade(make_backend(backend, loaded.nets, self.device), self.config)

    def with_config(self, config: CascadeConfig | None = None, *, backend: NetworkBackend | None = None,
                    schedule: Schedule | None = None, **changes: Any) -> "MTCNN":
        """A detector that shares this one's networks (no weights are read or copied) with
        other settings: ``config`` (a whole CascadeConfig) and/or ``changes`` to its fields
        (``with_config(min_face_size=40, thresholds=(0.6, 0.7, 0.9))``), another ``backend``
        (a NetworkBackend), another ``schedule`` (cascade.Schedule). This detector is left as
        it is; the two may run side by side (the HTTP service does, per request).
        """
        other = copy.copy(self)
        other.config = dataclasses.replace(config or self.config, **changes)
        if backend is None:
            backend, schedule = self.cascade.backend, schedule or self.cascade.schedule
        else:  # the new backend's device picks the schedule unless one is given
            other.backend_name = getattr(backend, "name", type(backend).__name__)
            other.device = backend.device
        other.cascade = Cascade(backend, other.config, schedule)
        return other

    def __repr__(self) -> str:
        c = self.config
        return (f"MTCNN(min_face_size={c.min_face_size:g}, thresholds={c.thresholds}, factor={c.factor}, "
                f"device='{self.device}', weights='{self.weights_name}', backend='{self.backend_name}')")

    def _to_tensor(self, x: ImageInput) -> torch.Tensor:
        img = load(x)
        t = img if isinstance(img, torch.Tensor) else torch.from_numpy(img)
        return t.to(self.device)

    def detect_tensors(self, images: list[torch.Tensor]) -> list[Faces]:
        """uint8 RGB [H, W, 3] tensors on this detector's device -> Faces per image."""
        found = self.cascade.run(images)
        out = []
        order = torch.argsort(found.scores, descending=True, stable=True)
        found = found.select(order)
        for i, img in enumerate(images):
            h, w = int(img.shape[0]), int(img.shape[1])
            sel = (found.image_index == i).nonzero().squeeze(1)
            if sel.numel() == 0:
                out.append(Faces.empty((h, w)))
                continue
            boxes = clip_boxes(found.boxes[sel], w, h)
            out.append(Faces(
                boxes.float().cpu().numpy(),
                found.scores[sel].float().cpu().numpy(),
                found.landmarks[sel].float().cpu().numpy(),
                (h, w),
            ))
        return out

    def detect(self, x: ImageInput | list[ImageInput]) -> Faces | list[Faces]:
        """Faces in one image, or a list of Faces for a list of images.

        Raises ImageError naming the input that cannot be read; use ``iter_detect`` to go on
        past bad inputs.
        """
        if isinstance(x, (list, tuple)):
            results: list[Faces] = []
            for start in range(0, len(x), self.batch_size):
                chunk = x[start : start + self.batch_size]
                results += self.detect_tensors([self._to_tensor(item) for item in chunk])
            return results
        return self.detect_tensors([self._to_tensor(x)])[0]

    __call__ = detect

    def iter_detect(self, inputs: Iterable[ImageInput], batch_size: int | None = None) -> Iterator[Result]:
        """Detect over many inputs, in batches, yielding a Result per input in input order; an
        input that cannot be read yields a Result with its error, and the others go on."""
        batch_size = batch_size or self.batch_size
        pending: list[tuple[object, torch.Tensor | ImageError]] = []
        for item in inputs:
            try:
                pending.append((item, self._to_tensor(item)))
            except ImageError as exc:
                pending.append((item, exc))
            if len(pending) >= batch_size:
                yield from self._run_pending(pending)
                pending = []
        if pending:
            yield from self._run_pending(pending)

    def _run_pending(self, pending: list[tuple[object, torch.Tensor | ImageError]]) -> Iterator[Result]:
        tensors = [t for _, t in pending if isinstance(t, torch.Tensor)]
        faces = iter(self.detect_tensors(tensors) if tensors else [])
        for item, t in pending:
            yield Result(item, faces=next(faces)) if isinstance(t, torch.Tensor) else Result(item, error=t)
