"""Public-domain photos shipped with the package, and group photos made from them.

astronaut.jpg: Eileen Collins, NASA (public domain; as in scikit-image's ``data.astronaut``).
grace_hopper.jpg: Grace Hopper, U.S. Navy (public domain; as in matplotlib's sample data).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from ..images import read_image

ASSETS = Path(__file__).parent
ASTRONAUT = ASSETS / "astronaut.jpg"
GRACE_HOPPER = ASSETS / "grace_hopper.jpg"
# Face-and-shoulders regions (rows, columns) of the two photos used for group photos.
_PORTRAITS = ((ASTRONAUT, (slice(0, 260), slice(130, 330))), (GRACE_HOPPER, (slice(0, 300), slice(60, 460))))


def group_photo(width: int = 640, height: int = 480, faces: int = 6, seed: int = 0) -> np.ndarray:
    """A group photo: the two portraits pasted ``faces`` times at random scales on a grid.

    -> uint8 RGB [height, width, 3]; the same arguments always give the same pixels.
    """
    rng = np.random.default_rng(seed)
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = rng.integers(90, 160, (1, 1, 3))
    portraits = [read_image(path)[region] for path, region in _PORTRAITS]
    cols = int(np.ceil(np.sqrt(faces * width / height)))
    rows = int(np.ceil(faces / cols))
    cell_w, cell_h = width // cols, height // rows
    for i in range(faces):
        src = portraits[i % len(portraits)]
        scale = rng.uniform(0.35, 0.95) * min(cell_w / src.shape[1], cell_h / src.shape[0])
        pasted = cv2.resize(src, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        x = (i % cols) * cell_w + rng.integers(0, cell_w - pasted.shape[1] + 1)
        y = (i // cols) * cell_h + rng.integers(0, cell_h - pasted.shape[0] + 1)
        canvas[y : y + pasted.shape[0], x : x + pasted.shape[1]] = pasted
    return canvas
