"""Settings of the `mtcnn serve` service: one dataclass, importable without the [serve] extra."""

from __future__ import annotations

from dataclasses import dataclass

from ..cascade_config import DEFAULTS


@dataclass
class Settings:
    """What the service listens on, what it accepts and how it detects.

    host: address to listen on (default 127.0.0.1: this machine only).
    port: TCP port (default 8000).
    max_body_bytes: largest request body accepted, raw or multipart (default 20 MB);
        a larger body is refused with 413 after reading at most this many bytes.
    max_pixels: largest image accepted, width x height from the header, checked before
        decoding (default 40 MP); more is refused with 413.
    weights: weight file, "original", or None for the package's default weights.
    device: "cpu", "cuda", "cuda:1"... or None for a GPU when there is one.
    min_face_size: default smallest face in pixels (a request may ask for another).
    thresholds: default P-Net, R-Net, O-Net thresholds (a request may ask for others).
    factor: pyramid scale step. These three default to ``CascadeConfig``'s.
    workers: detection threads; requests beyond them wait in a queue.
    max_queue: requests waiting or running at once; more are refused with 503 (0: no bound).
    torch_threads: intra-op threads of torch (None: leave torch's setting).
    """

    host: str = "127.0.0.1"
    port: int = 8000
    max_body_bytes: int = 20_000_000
    max_pixels: int = 40_000_000
    weights: str | None = None
    device: str | None = None
    min_face_size: float = DEFAULTS.min_face_size
    thresholds: tuple[float, float, float] = DEFAULTS.thresholds
    factor: float = DEFAULTS.factor
    workers: int = 2
    max_queue: int = 64
    torch_threads: int | None = None

    def __post_init__(self) -> None:
        for name in ("port", "max_body_bytes", "max_pixels", "workers"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value > 0):
                raise ValueError(f"Settings.{name} must be a positive integer, got {value!r}")
        if not (isinstance(self.max_queue, int) and self.max_queue >= 0):
            raise ValueError(f"Settings.max_queue must be an integer >= 0, got {self.max_queue!r}")
        self.thresholds = tuple(float(t) for t in self.thresholds)  # type: ignore[assignment]
