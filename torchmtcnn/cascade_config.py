"""The cascade's settings: what it detects (``CascadeConfig``, the one home of the detection
defaults, ``DEFAULTS``; ``parse_thresholds``) and how it cuts the work into network calls
(``Schedule``). The walk itself is ``cascade.Cascade``."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Schedule:
    """How the cascade cuts its work into network calls. The faces found are the same for any
    schedule (tested); only speed and memory change, so it is a setting of the device, not of
    the detection: ``Schedule.for_device`` picks one, tests and tuning pass their own.

    crops_per_call: R-Net and O-Net crops per network call.
    pnet_pixels: pixels per P-Net call: a pyramid level larger than this goes through P-Net in
        horizontal bands, and (``split_images``) a batch's level a few images at a time.
    split_images: whether a level of several images may be split into several P-Net calls.
    pyramid_bytes: on a CPU, the bytes of the pyramid levels resized side by side at once.

    On a CPU, smaller calls whose activations stay in cache are faster than one big call
    (measured on 32 frames of 640x480, and on the 648x1152 first level of a 1080p photo: 47 ms
    in one call, 20-23 ms in bands of 150k-500k pixels, whose activations stay under the
    32 MiB that malloc keeps, see backends.keep_freed_memory). On a GPU the bounds only keep
    memory bounded when images yield thousands of candidates or huge levels.
    """

    crops_per_call: tuple[int, int] = (256, 64)
    pnet_pixels: int = 300_000
    split_images: bool = True
    pyramid_bytes: int = 64 << 20

    def __post_init__(self) -> None:
        if len(self.crops_per_call) != 2 or min(self.crops_per_call) < 1 or self.pnet_pixels < 1:
            raise ValueError(f"a schedule needs positive crops per call and P-Net pixels, got {self!r}")

    @staticmethod
    def for_device(device: torch.device) -> Schedule:
        return CPU_SCHEDULE if device.type == "cpu" else GPU_SCHEDULE


CPU_SCHEDULE = Schedule()
GPU_SCHEDULE = Schedule(crops_per_call=(2048, 2048), pnet_pixels=4_000_000, split_images=False)


@dataclass(frozen=True)
class CascadeConfig:
    """Detection settings; the defaults are the original MTCNN's.

    This is the one home of the detection defaults: ``MTCNN()``, the command line, the HTTP
    service, mining and the ONNX export's metadata all read them from here (``DEFAULTS``).
    """

    min_face_size: float = 20.0
    thresholds: tuple[float, float, float] = (0.6, 0.7, 0.7)
    factor: float = 0.709
    nms_level: float = 0.5  # among one pyramid level's windows
    nms_image: float = 0.7  # among all levels' windows of one image
    nms_rnet: float = 0.7
    nms_onet: float = 0.7  # intersection over the smaller box

    def __post_init__(self) -> None:
        if not (isinstance(self.min_face_size, (int, float)) and self.min_face_size > 0):
            raise ValueError(f"min_face_size must be a positive number of pixels, got {self.min_face_size!r}")
        message = f"thresholds must be three probabilities in [0, 1], got {self.thresholds!r}"
        try:
            thresholds = tuple(float(t) for t in self.thresholds)
        except (TypeError, ValueError):
            raise ValueError(message) from None
        if len(thresholds) != 3 or not all(0 <= t <= 1 for t in thresholds):
            raise ValueError(message)
        object.__setattr__(self, "thresholds", thresholds)  # a list or numpy values: a tuple of floats
        if not (0 < self.factor < 1):
            raise ValueError(f"factor must be between 0 and 1 (exclusive), got {self.factor!r}")


DEFAULTS = CascadeConfig()


def parse_thresholds(text: str) -> tuple[float, float, float]:
    """'0.6,0.7,0.7' -> (0.6, 0.7, 0.7): the thresholds as the command line and the HTTP
    service take them. ValueError with the reason for anything else (NaN included)."""
    example = ",".join(f"{t:g}" for t in DEFAULTS.thresholds)
    message = (f"thresholds must be three numbers in [0, 1] (three comma-separated values like "
               f"{example}), got {text!r}")
    try:
        values = tuple(float(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise ValueError(message) from None
    if len(values) != 3 or not all(0 <= v <= 1 for v in values):  # NaN fails too
        raise ValueError(message)
    return values[0], values[1], values[2]
