"""The One Euro filter (smoothing.py): its jitter and lag at the defaults, as the docs state them."""

from __future__ import annotations

import numpy as np
import pytest

from torchmtcnn.smoothing import OneEuro, OneEuroFilter


def jitter(settings: OneEuro, sigma: float = 1.5, side: float = 100.0) -> float:
    """Spread of the filtered position of a still thing seen with noise, over the noise's."""
    rng = np.random.default_rng(0)
    f = OneEuroFilter(settings)
    out = [f(np.array([50 + rng.normal(0, sigma)]), side)[0] for _ in range(600)]
    return float(np.std(out[100:]) / sigma)


def lag(settings: OneEuro, sides_per_second: float, side: float = 100.0) -> float:
    """Frames the filtered position trails a steady motion by, once settled."""
    f = OneEuroFilter(settings)
    step = sides_per_second * side / settings.rate
    last = [f(np.array([i * step]), side)[0] for i in range(300)][-1]
    return float((299 * step - last) / step)


def test_the_defaults_jitter_and_lag_as_documented():
    s = OneEuro()
    assert jitter(s) == pytest.approx(0.36, abs=0.02)
    assert lag(s, 0.1) == pytest.approx(2.4, abs=0.1)
    assert lag(s, 0.5) == pytest.approx(1.1, abs=0.1)
    assert lag(s, 1.0) == pytest.approx(0.8, abs=0.1)


def test_the_first_value_passes_and_a_still_value_stays():
    f = OneEuroFilter(OneEuro())
    x = np.array([[10.0, 20.0], [30.0, 40.0]])
    np.testing.assert_array_equal(f(x, 50), x)
    for _ in range(5):
        np.testing.assert_allclose(f(x, 50), x)


def test_speeds_are_relative_to_size():
    """The same motion in face sides per second lags the same for a small and a large face."""
    assert lag(OneEuro(), 0.5, side=40) == pytest.approx(lag(OneEuro(), 0.5, side=400), abs=1e-6)


@pytest.mark.parametrize("field, value", [("min_cutoff", 0), ("d_cutoff", -1), ("rate", float("nan")), ("beta", -1)])
def test_bad_settings_name_the_field(field, value):
    with pytest.raises(ValueError, match=f"OneEuro.{field}"):
        OneEuro(**{field: value})
