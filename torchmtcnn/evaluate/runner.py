"""Running a detector over a dataset and keeping its predictions (JSON lines).

Works with :class:`torchmtcnn.MTCNN` (through its one loop, ``iter_detect``: bad images are
set aside, the others detected in batches, sizes taken from the decoded images) and with any
other object that has ``.detect(list_of_paths) -> list`` of results with ``boxes`` [N, 4]
(x1, y1, x2, y2), ``scores`` [N] and ``landmarks`` [N, 5, 2] (numpy or torch): such a detector
reads the images itself, so the same loop (``run_in_batches``) hands it the paths, runs a
failing batch again image by image, and reads an image's size from its header when the result
does not say it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from ..detector import run_in_batches
from ..errors import MTCNNError
from ..faces import Faces, Result, write_faces_jsonl
from ..images import image_size

log = logging.getLogger(__name__)


# what a detector raises for an image it cannot use (ImageError is a ValueError)
_IMAGE_ERRORS = (MTCNNError, OSError, ValueError)


class Detector(Protocol):
    def detect(self, images: list) -> Any: ...


def _size(path: Path) -> tuple[int, int] | None:
    """(height, width) from the image's header; None when it cannot be read (informative only)."""
    try:
        width, height = image_size(path)
        return height, width
    except Exception:  # the detector reported the image; its size is not worth a second error
        return None


def _results(detector: Detector, paths: list[Path], batch_size: int) -> Iterator[Result]:
    iter_detect = getattr(detector, "iter_detect", None)
    if iter_detect is not None:
        return iter_detect(paths, batch_size)
    return run_in_batches(((p, str(p)) for p in paths), detector.detect, batch_size, retry_on=_IMAGE_ERRORS)


def run_detector(
    detector: Detector,
    images: Sequence[str | Path],
    images_root: str | Path | None = None,
    batch_size: int = 8,
    out: str | Path | None = None,
    progress: bool = True,
) -> tuple[list[Faces], list[tuple[str, str]]]:
    """Run ``detector`` over ``images`` in batches; optionally save the JSON lines to ``out``.

    images: paths as the dataset names them, relative to ``images_root`` when given; the
    predictions keep these names (``Faces.image``, so they match the annotations later).
    Images that cannot be read are left out and returned with the reason.

    Returns (predictions in image order, float64, [(image, error message)] for failed images).
    """
    if batch_size < 1:
        raise MTCNNError(f"batch size must be at least 1, got {batch_size}")
    root = Path(images_root) if images_root is not None else None
    names = [str(p) for p in images]
    paths = [(root / p if root is not None and not Path(p).is_absolute() else Path(p)) for p in names]
    preds: list[Faces] = []
    failed: list[tuple[str, str]] = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(paths), desc="detect", unit="img")
    try:
        for name, path, result in zip(names, paths, _results(detector, paths, batch_size)):
            if result.error is not None:
                log.warning("%s: %s", path, result.error)
                failed.append((name, str(result.error)))
            else:
                size = getattr(result.faces, "image_size", None) or _size(path)
                preds.append(Faces.coerce(result.faces, name, size))
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    if failed and not preds:
        raise MTCNNError(f"the detector failed on every image, e.g. {failed[0][0]}: {failed[0][1]}")
    if out is not None:
        write_faces_jsonl(preds, out)
        log.info("wrote %d predictions to %s", len(preds), out)
    return preds, failed
