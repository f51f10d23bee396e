"""MTCNN: the entry point (inputs, batching, device, weights), and the one loop over many
inputs that the batch job, Ray and evaluation share (``MTCNN.iter_detect``, ``run_in_batches``).

The faces it finds are ``faces.Faces``; the one format they are written in is ``faces.py``'s.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .backends import NetworkBackend, make_backend, pick_device
from .boxes import clip_boxes
from .cascade import Cascade
from .cascade_config import DEFAULTS, CascadeConfig, Schedule
from .errors import BatchImageError
from .faces import Faces, Result
from .images import MAX_PIXELS, ImageInput, iter_loaded, load
from .track import Tracker
from .track_config import TrackerConfig
from .weights import load_nets

log = logging.getLogger(__name__)

__all__ = ["MTCNN", "Faces", "Result", "Tracker", "run_in_batches"]


def run_in_batches(loaded: Iterable[tuple[object, Any]], detect: Callable[[list[Any]], Sequence[Any]],
                   batch_size: int, keep_images: bool = False,
                   retry_on: tuple[type[Exception], ...] = ()) -> Iterator[Result]:
    """The one loop over many inputs: set aside the inputs that could not be loaded, detect
    the others ``batch_size`` at a time, and yield a Result per input in input order.

    loaded: (source, loaded input or the exception that stopped it) per input;
    detect: loaded inputs -> one result per input (Faces, or any object with boxes...);
    keep_images: put each loaded input in its Result's ``image`` (to draw or crop);
    retry_on: exceptions that ``detect`` raises for one bad input of a batch (a detector that
    reads its inputs itself): the batch is run again one input at a time, so that only the
    bad one fails.
    """
    pending: list[tuple[object, Any]] = []
    for item in loaded:
        pending.append(item)
        if len(pending) >= batch_size:
            yield from _detect_pending(pending, detect, keep_images, retry_on)
            pending = []
    if pending:
        yield from _detect_pending(pending, detect, keep_images, retry_on)


def _detect_pending(pending: list[tuple[object, Any]], detect: Callable[[list[Any]], Sequence[Any]],
                    keep_images: bool, retry_on: tuple[type[Exception], ...]) -> Iterator[Result]:
    good = [k for k, (_, value) in enumerate(pending) if not isinstance(value, Exception)]
    outcome: dict[int, Any] = {}
    if good:
        try:
            found = detect([pending[k][1] for k in good])
            if len(found) != len(good):
                raise RuntimeError(f"the detector gave {len(found)} results for {len(good)} inputs")
            outcome.update(zip(good, found))
        except retry_on as exc:
            if len(good) == 1:
                outcome[good[0]] = exc
            else:
                for k in good:
                    try:
                        outcome[k] = detect([pending[k][1]])[0]
                    except retry_on as one:
                        outcome[k] = one
    for k, (source, value) in enumerate(pending):
        got = outcome.get(k, value)  # a failed load stays its own exception
        if isinstance(got, Exception):
            yield Result(source, error=got)
        else:
            yield Result(source, faces=got, image=value if keep_images else None)


class MTCNN:
    """The MTCNN face detector.

    Args:
        min_face_size: smallest face to find, in pixels (default 20, the original's).
        thresholds: face-probability thresholds of P-Net, R-Net and O-Net (0.6, 0.7, 0.7).
        factor: scale step of the image pyramid (0.709, about 1/sqrt(2)).
            The defaults are ``CascadeConfig``'s (``cascade_config.DEFAULTS``).
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
        # CascadeConfig checks the thresholds and keeps them as a tuple of three floats
        self.config = CascadeConfig(float(min_face_size), thresholds, float(factor))  # type: ignore[arg-type]
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
                    schedule: Schedule | None = None, **changes: Any) -> MTCNN:
        """A detector that shares this one's networks (no weights are read or copied) with
        other settings: ``config`` (a whole CascadeConfig) and/or ``changes`` to its fields
        (``with_config(min_face_size=40, thresholds=(0.6, 0.7, 0.9))``), another ``backend``
        (a NetworkBackend), another ``schedule`` (cascade_config.Schedule). This detector is left as
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

    def tracker(self, config: TrackerConfig | None = None, **changes: Any) -> Tracker:
        """A video tracker on this detector's cascade (networks, backend and settings):
        ``tracker.update(frame)`` gives each frame's Faces with ``track_ids``, following known
        faces with O-Net between full detections (track.py). ``config``: a whole
        TrackerConfig and/or ``changes`` to its fields (``tracker(detect_every=5)``)."""
        return Tracker(self, dataclasses.replace(config or TrackerConfig(), **changes))

    def __repr__(self) -> str:
        c = self.config
        return (f"MTCNN(min_face_size={c.min_face_size:g}, thresholds={c.thresholds}, factor={c.factor}, "
                f"device='{self.device}', weights='{self.weights_name}', backend='{self.backend_name}')")

    def _tensors(self, images: list[np.ndarray | torch.Tensor]) -> list[Faces]:
        """Loaded images (``images.load``'s arrays or tensors) -> Faces per image."""
        return self.detect_tensors([(x if isinstance(x, torch.Tensor) else torch.from_numpy(x)).to(self.device)
                                    for x in images])

    def detect_tensors(self, images: list[torch.Tensor]) -> list[Faces]:
        """uint8 RGB [H, W, 3] tensors on this detector's device -> Faces per image."""
        found = self.cascade.run(images)
        out = []
        order = torch.argsort(found.scores, descending=True, stable=True)
        found = found.select(order)
        for i, img in enumerate(images):
            h, w = int(img.shape[0]), int(img.shape[1])
            sel = (found.image_index == i).nonzero().squeeze(1)
            if sel.numel() == 0 or found.landmarks is None:  # no candidate left: no landmarks either
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
        """Faces in one image, or a list of Faces for a list of images (in batches).

        One image that cannot be read raises ImageError naming it. In a list, the images that
        can be read are detected all the same; if any cannot, BatchImageError (an ImageError
        naming the first bad input) carries every input's Result (``.results``, ``.faces``),
        so their work is not lost. ``iter_detect`` yields the errors instead of raising.
        """
        if isinstance(x, (list, tuple)):
            results = list(self.iter_detect(x))
            if any(r.error is not None for r in results):
                raise BatchImageError(results)
            return [r.faces for r in results]  # type: ignore[misc]
        return self._tensors([load(x)])[0]

    __call__ = detect

    def iter_detect(self, inputs: Iterable[ImageInput], batch_size: int | None = None, *, workers: int = 0,
                    keep_images: bool = False, max_pixels: int = MAX_PIXELS) -> Iterator[Result]:
        """Detect over many inputs, ``batch_size`` images per cascade run, yielding a Result
        per input in input order; an input that cannot be read yields a Result with its error,
        and the others go on.

        workers: threads decoding inputs ahead of the detector (0: decode in this thread);
        keep_images: keep each decoded image in its Result (``image``, uint8 RGB [H, W, 3]);
        max_pixels: larger images are refused (ImageError in their Result).
        """
        batch_size = batch_size or self.batch_size
        loaded = iter_loaded(inputs, workers, max_pixels, prefetch=max(2 * batch_size, 4 * workers))
        yield from run_in_batches(loaded, self._tensors, batch_size, keep_images)
