"""Running a detector over a dataset and keeping its predictions (JSON lines).

Works with anything that has ``.detect(list_of_paths) -> list`` of objects with ``boxes``
[N, 4] (x1, y1, x2, y2), ``scores`` [N] and ``landmarks`` [N, 5, 2] (numpy-convertible,
torch tensors included), such as :class:`torchmtcnn.MTCNN`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence

import numpy as np

from ..errors import MTCNNError
from .predictions import ImagePrediction, write_jsonl

log = logging.getLogger(__name__)


# what a detector raises for an image it cannot use (ImageError is a ValueError)
_IMAGE_ERRORS = (MTCNNError, OSError, ValueError)


class Detector(Protocol):
    def detect(self, images: list) -> list: ...


def _numpy(x: Any, shape: tuple[int, ...]) -> np.ndarray | None:
    if x is None:
        return None
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, np.float64).reshape(shape)


def _image_size(path: Path) -> tuple[int | None, int | None]:
    try:
        from PIL import Image

        with Image.open(path) as im:
            return im.size
    except Exception:  # size is informative only; the detector reports unreadable images
        return None, None


def to_prediction(image: str, faces: Any, size: tuple[int | None, int | None] = (None, None)
                  ) -> ImagePrediction:
    """Turn one detector result (boxes, scores, landmarks attributes) into an ImagePrediction."""
    boxes = _numpy(getattr(faces, "boxes", None), (-1, 4))
    if boxes is None:
        boxes = np.zeros((0, 4))
    scores = _numpy(getattr(faces, "scores", None), (-1,))
    if scores is None:
        scores = np.ones(len(boxes))
    lms = _numpy(getattr(faces, "landmarks", None), (-1, 5, 2))
    return ImagePrediction(image, boxes, scores, lms, size[0], size[1])


def _batches(items: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def run_detector(
    detector: Detector,
    images: Sequence[str | Path],
    images_root: str | Path | None = None,
    batch_size: int = 8,
    out: str | Path | None = None,
    progress: bool = True,
) -> tuple[list[ImagePrediction], list[tuple[str, str]]]:
    """Run ``detector`` over ``images`` in batches; optionally save the JSON lines to ``out``.

    images: paths as the dataset names them, relative to ``images_root`` when given; the
    predictions keep these names (so they match the annotations later). A batch that fails
    is retried image by image; images that still fail are left out and returned with the
    reason.

    Returns (predictions in image order, [(image, error message)] for failed images).
    """
    if batch_size < 1:
        raise MTCNNError(f"batch size must be at least 1, got {batch_size}")
    root = Path(images_root) if images_root is not None else None
    names = [str(p) for p in images]
    paths = [(root / p if root is not None and not Path(p).is_absolute() else Path(p))
             for p in names]
    preds: list[ImagePrediction] = []
    failed: list[tuple[str, str]] = []
    bar = None
    if progress:
        try:
            from tqdm import tqdm

            bar = tqdm(total=len(paths), desc="detect", unit="img")
        except ImportError:
            bar = None
    try:
        for batch in _batches(list(range(len(paths))), batch_size):
            try:
                results = detector.detect([str(paths[i]) for i in batch])
                if len(results) != len(batch):
                    raise MTCNNError(f"detector gave {len(results)} results for {len(batch)}")
                done = list(zip(batch, results))
            except _IMAGE_ERRORS as exc:
                done = []
                if len(batch) == 1:
                    log.warning("%s: %s", paths[batch[0]], exc)
                    failed.append((names[batch[0]], str(exc)))
                for i in batch if len(batch) > 1 else []:
                    try:
                        done.append((i, detector.detect([str(paths[i])])[0]))
                    except _IMAGE_ERRORS as exc:
                        log.warning("%s: %s", paths[i], exc)
                        failed.append((names[i], str(exc)))
            for i, faces in done:
                preds.append(to_prediction(names[i], faces, _image_size(paths[i])))
            if bar is not None:
                bar.update(len(batch))
    finally:
        if bar is not None:
            bar.close()
    if failed and not preds:
        raise MTCNNError(f"the detector failed on every image, e.g. {failed[0][0]}: {failed[0][1]}")
    if out is not None:
        write_jsonl(preds, out)
        log.info("wrote %d predictions to %s", len(preds), out)
    return preds, failed
