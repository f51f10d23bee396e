"""The standard face box from face points: forehead to chin, about as wide as the jaw line.

WIDER FACE, which the original MTCNN learned, draws a face from the top of the forehead to
the chin. Sun 2013 draws tighter boxes (brows to chin) and Caltech WebFaces and MTFL draw none,
so every point-annotated source gets its box from one rule here, fitted to the boxes the
original MTCNN weights draw (``benchmarks/fit_face_box.py``; docs/data.md gives the fit).

With E the midpoint of the eyes, M the mouth centre (midpoint of the mouth corners when those
are known), N the nose tip, the face's down axis ``d = (M - E) / |M - E|`` and its right axis
``r = (d_y, -d_x)``::

    de, dm = |right_eye - left_eye|, |M - E|           # eye distance, eyes-to-mouth distance
    yaw    = (N - (E + M) / 2) . r / de                 # nose off the midline: a turned face
    centre = E + T * (M - E) + U * yaw * de * r
    w, h   = AW * de + BW * dm,  AH * de + BH * dm      # the face's own width and height
    c, s   = |d_y|, |d_x|                               # cosine and sine of the roll
    hull   = (w c + h s,  w s + h c)                    # the turned rectangle's extent
    swap   = (w c^2 + h s^2,  w s^2 + h c^2)            # its sides, swapped as it turns
    box    = centre -+ (K * hull + (1 - K) * swap) / 2

The face-frame rectangle turns with the face's roll: both extents give (w, h) upright and
(h, w) at a quarter turn, and K says how much the box grows in between (K = 1: the turned
rectangle's whole hull). Where the nose is unknown (NaN) the yaw term is 0.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass

import numpy as np


@dataclass(frozen=True)
class BoxRule:
    """The rule's constants (module docstring)."""

    t: float
    u: float
    aw: float
    bw: float
    ah: float
    bh: float
    k: float


# Fitted by benchmarks/fit_face_box.py to the original MTCNN's boxes on 14,112 faces of the
# training photos of Caltech WebFaces and Sun 2013; on 1,620 faces of the held-out photos the
# rule's box has a median IoU of 0.851 with the original's (docs/data.md, "Face boxes").
STANDARD_BOX = BoxRule(t=0.28, u=-1.1398, aw=1.2744, bw=0.816, ah=1.1384, bh=1.5854, k=0.0953)


def box_from_points(
    left_eye: np.ndarray,
    right_eye: np.ndarray,
    nose: np.ndarray | None,
    mouth_centre: np.ndarray,
    rule: BoxRule = STANDARD_BOX,
) -> np.ndarray:
    """Standard face boxes from eye, nose and mouth points.

    Args:
        left_eye, right_eye, mouth_centre: float [N, 2] (x, y) in pixels.
        nose: float [N, 2], or None / NaN rows where it is unknown (no yaw term).
        rule: the constants (default: the fitted STANDARD_BOX).

    Returns:
        float64 [N, 4] boxes x1, y1, x2, y2; NaN where an eye or the mouth is NaN.
    """
    le = np.asarray(left_eye, dtype=np.float64).reshape(-1, 2)
    re = np.asarray(right_eye, dtype=np.float64).reshape(-1, 2)
    mouth = np.asarray(mouth_centre, dtype=np.float64).reshape(-1, 2)
    eyes = (le + re) / 2
    axis = mouth - eyes
    de = np.linalg.norm(re - le, axis=1)
    dm = np.linalg.norm(axis, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        down = axis / dm[:, None]
        right = np.stack([down[:, 1], -down[:, 0]], axis=1)
        yaw = np.zeros(len(le))
        if nose is not None:
            offset = np.asarray(nose, dtype=np.float64).reshape(-1, 2) - (eyes + mouth) / 2
            yaw = np.nan_to_num((offset * right).sum(1) / de, nan=0.0)
    centre = eyes + rule.t * axis + (rule.u * yaw * de)[:, None] * right
    w = rule.aw * de + rule.bw * dm
    h = rule.ah * de + rule.bh * dm
    cos, sin = np.abs(down[:, 1]), np.abs(down[:, 0])
    hull = np.stack([w * cos + h * sin, w * sin + h * cos], axis=1)
    swap = np.stack([w * cos**2 + h * sin**2, w * sin**2 + h * cos**2], axis=1)
    half = (rule.k * hull + (1 - rule.k) * swap) / 2
    return np.concatenate([centre - half, centre + half], axis=1)


def box_from_landmarks(landmarks: np.ndarray, rule: BoxRule = STANDARD_BOX) -> np.ndarray:
    """Standard boxes from 5-point landmarks [N, 5, 2] (left eye, right eye, nose, mouth
    corners; the mouth centre is their midpoint) -> float64 [N, 4]."""
    pts = np.asarray(landmarks, dtype=np.float64).reshape(-1, 5, 2)
    return box_from_points(pts[:, 0], pts[:, 1], pts[:, 2], (pts[:, 3] + pts[:, 4]) / 2, rule)


def rule_vector(rule: BoxRule) -> np.ndarray:
    """The constants as a float64 vector (for fitting)."""
    return np.array(astuple(rule), dtype=np.float64)
