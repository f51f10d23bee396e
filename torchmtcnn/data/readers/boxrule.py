"""Face boxes estimated from four points, for sources that annotate points but no box.

The rule (one for Caltech WebFaces and MTFL), with E the midpoint of the eyes and M the
mouth centre (midpoint of the mouth corners when those are known)::

    centre = E + T * (M - E)                 # along the eyes-to-mouth axis: follows roll
    side   = A * |right_eye - left_eye| + B * |M - E|
    box    = square of that side around centre

The constants were fitted by ``benchmarks/fit_caltech_box.py`` (maximum mean IoU with the
annotated boxes of the Sun 2013 training list, 10,000 faces, Nelder-Mead) and measured on
the held-out Sun 2013 test list (3,466 faces): mean IoU 0.826, median 0.838, 5th
percentile 0.670. See docs/data.md.
"""

from __future__ import annotations

import numpy as np

# Fitted by benchmarks/fit_caltech_box.py on the Sun 2013 train list; held-out mean IoU 0.826.
BOX_RULE_T = 0.4773
BOX_RULE_A = 0.9802
BOX_RULE_B = 1.0400


def box_from_points(
    left_eye: np.ndarray,
    right_eye: np.ndarray,
    mouth_centre: np.ndarray,
    t: float = BOX_RULE_T,
    a: float = BOX_RULE_A,
    b: float = BOX_RULE_B,
) -> np.ndarray:
    """Square face boxes from eye and mouth points.

    Args:
        left_eye, right_eye, mouth_centre: float [N, 2] (x, y) in pixels.
        t, a, b: the rule's constants (defaults: the fitted ones).

    Returns:
        float64 [N, 4] boxes x1, y1, x2, y2 (x2 = x1 + side); NaN where a point is NaN.
    """
    left_eye = np.asarray(left_eye, dtype=np.float64).reshape(-1, 2)
    right_eye = np.asarray(right_eye, dtype=np.float64).reshape(-1, 2)
    mouth_centre = np.asarray(mouth_centre, dtype=np.float64).reshape(-1, 2)
    eyes = (left_eye + right_eye) / 2
    axis = mouth_centre - eyes
    centre = eyes + t * axis
    side = a * np.linalg.norm(right_eye - left_eye, axis=1) + b * np.linalg.norm(axis, axis=1)
    half = side[:, None] / 2
    return np.concatenate([centre - half, centre + half], axis=1)


def box_from_landmarks(landmarks: np.ndarray, **constants: float) -> np.ndarray:
    """Boxes from 5-point landmarks [N, 5, 2] (mouth centre = midpoint of the corners).

    Returns float64 [N, 4]; see :func:`box_from_points`.
    """
    pts = np.asarray(landmarks, dtype=np.float64).reshape(-1, 5, 2)
    return box_from_points(pts[:, 0], pts[:, 1], (pts[:, 3] + pts[:, 4]) / 2, **constants)
