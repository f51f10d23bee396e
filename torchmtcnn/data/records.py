"""The one face-annotation record that every reader produces."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..faces import LANDMARK_NAMES

__all__ = ["LANDMARK_NAMES", "FaceRecord"]


@dataclass
class FaceRecord:
    """The faces annotated in one photo.

    Boxes are (x1, y1, x2, y2) in pixels of the full photo, x2 = x1 + width (exclusive end).

    Attributes:
        image: path of the photo.
        boxes: float32 [N, 4].
        landmarks: float32 [N, 5, 2] (x, y) in LANDMARK_NAMES order, or None when the source
            has no points; a face without points in a source that has some is all NaN.
        ignore: bool [N]; faces a detector is neither rewarded nor punished for (WIDER
            "invalid", faces too small to annotate reliably...).
        attributes: per-face int arrays [N] from the source (WIDER blur, occlusion, pose...).
        source: where the record came from, "file:line", for error messages.
        key: the photo as its annotation file names it, prefixed with the reader's format
            (``"sun2013:net_7876/000001.jpg"``), '/'-separated: what the held-out and
            validation splits hash (:mod:`torchmtcnn.data.splits`), so that they do not
            depend on the folder the data set lies in. Empty for records built in code.
    """

    image: Path
    boxes: np.ndarray
    landmarks: np.ndarray | None = None
    ignore: np.ndarray = None  # type: ignore[assignment]  # None: no face ignored (filled below)
    attributes: dict[str, np.ndarray] = field(default_factory=dict)
    source: str = ""
    key: str = ""

    def __post_init__(self) -> None:
        self.image = Path(self.image)
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        if self.landmarks is not None:
            self.landmarks = np.asarray(self.landmarks, dtype=np.float32).reshape(-1, 5, 2)
        if self.ignore is None:
            self.ignore = np.zeros(len(self.boxes), dtype=bool)
        else:
            self.ignore = np.asarray(self.ignore, dtype=bool).reshape(-1)

    def __len__(self) -> int:
        return len(self.boxes)
