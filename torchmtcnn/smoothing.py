"""Smoothing of positions over time: the One Euro filter (Casiez, Roussel and Vogel, CHI 2012).

A low-pass filter whose cut-off frequency rises with the speed of what it follows: still faces
get heavy smoothing (no jitter), moving ones light smoothing (little lag). The video tracker
uses it, when asked, on each face's box and five points (``track_config.TrackerConfig.smoothing``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OneEuro:
    """Settings of a One Euro filter.

    min_cutoff: cut-off frequency in Hz when still; lower means smoother and, when slow, more
        lag (a first-order low-pass at f Hz lags 1 / (2 pi f) s behind a steady motion).
    beta: how fast the cut-off rises with speed, per (face side per second): speeds are taken
        relative to the face's size, so one setting serves small and large faces.
    d_cutoff: cut-off frequency in Hz of the speed estimate itself.
    rate: frames per second of the stream (the filter works in seconds).

    The defaults, measured at 30 frames/s on a 100 px face (``tests/test_smoothing.py``): a
    still face's jitter (1.5 px of noise) shrinks to 0.36 of itself; the smoothed position
    lags 2.4 frames behind a face moving a tenth of its size per second, 1.1 frames at half
    its size per second, 0.8 frames at its size per second.
    """

    min_cutoff: float = 1.0
    beta: float = 3.0
    d_cutoff: float = 1.0
    rate: float = 30.0

    def __post_init__(self) -> None:
        for name in ("min_cutoff", "d_cutoff", "rate"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"OneEuro.{name} must be a positive number, got {value!r}")
        if not (isinstance(self.beta, (int, float)) and math.isfinite(self.beta) and self.beta >= 0):
            raise ValueError(f"OneEuro.beta must be a number >= 0, got {self.beta!r}")


def _alpha(cutoff: np.ndarray | float, rate: float) -> np.ndarray | float:
    """Weight of the new sample in an exponential low-pass at ``cutoff`` Hz, ``rate`` samples/s."""
    tau = 1.0 / (2 * math.pi * cutoff)
    return 1.0 / (1.0 + tau * rate)


class OneEuroFilter:
    """One filter per followed thing: ``filter(x, scale)`` -> the smoothed x (same shape).

    x: float [...] positions in pixels; scale: the thing's size in pixels (speeds are
    divided by it before beta applies). The first call returns x as it is.
    """

    def __init__(self, settings: OneEuro) -> None:
        self.settings = settings
        self.value: np.ndarray | None = None
        self.speed: np.ndarray | None = None

    def __call__(self, x: np.ndarray, scale: float) -> np.ndarray:
        s = self.settings
        x = np.asarray(x, np.float64)
        if self.value is None or self.speed is None:
            self.value, self.speed = x.copy(), np.zeros_like(x)
            return x.copy()
        speed = (x - self.value) * s.rate
        self.speed = self.speed + _alpha(s.d_cutoff, s.rate) * (speed - self.speed)
        cutoff = s.min_cutoff + s.beta * np.abs(self.speed) / max(scale, 1.0)
        self.value = self.value + _alpha(cutoff, s.rate) * (x - self.value)
        return self.value.copy()
