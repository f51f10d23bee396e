"""Face alignment: a similarity transform of the 5 landmarks onto the usual template.

The template is the 112x112 five-point layout that ArcFace-style recognition models expect
(eyes, nose tip, mouth corners); other sizes scale it.
"""

from __future__ import annotations

import cv2
import numpy as np

from .images import ImageInput, load

# (x, y) of left eye, right eye, nose, left and right mouth corner in a 112x112 face crop.
TEMPLATE_112 = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares rotation + uniform scale + translation taking src [N, 2] onto dst [N, 2]
    (Umeyama 1991) -> 2x3 matrix for cv2.warpAffine."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sigma, vt = np.linalg.svd(cov)
    sign = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[-1] = -1
    rot = u @ np.diag(sign) @ vt
    var_s = (s**2).sum() / len(src)
    scale = (sigma * sign).sum() / var_s if var_s > 0 else 1.0
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rot
    matrix[:, 2] = mu_d - scale * rot @ mu_s
    return matrix


def align(image: ImageInput, landmarks: np.ndarray, size: int = 112) -> np.ndarray:
    """Warp faces onto the 5-point template.

    image: anything ``load`` accepts; landmarks: [5, 2] for one face or [N, 5, 2]
    -> uint8 RGB [size, size, 3] or [N, size, size, 3].
    """
    if not (isinstance(size, int) and size >= 8):
        raise ValueError(f"size must be an integer of at least 8 pixels, got {size!r}")
    img = load(image)
    img = img.cpu().numpy() if hasattr(img, "cpu") else img
    points = np.asarray(landmarks, np.float64)
    single = points.ndim == 2
    points = points.reshape(-1, 5, 2)
    template = TEMPLATE_112 * (size / 112.0)
    crops = np.zeros((len(points), size, size, 3), np.uint8)
    for i, p in enumerate(points):
        matrix = similarity_transform(p, template)
        crops[i] = cv2.warpAffine(img, matrix, (size, size), flags=cv2.INTER_LINEAR, borderValue=0)
    return crops[0] if single else crops
