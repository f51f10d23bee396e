"""The library's errors: one small hierarchy, each message names the file, line or parameter."""

from __future__ import annotations


class MTCNNError(Exception):
    """Base class of every error raised on purpose by torchmtcnn."""


class ImageError(MTCNNError, ValueError):
    """An image could not be read or is not usable (missing, corrupt, wrong type or size)."""


class WeightsError(MTCNNError):
    """A weight file is missing, corrupt, or does not fit the network (names file and layer)."""


class AnnotationError(MTCNNError, ValueError):
    """An annotation line or file could not be parsed (names the file and line)."""


class MissingExtraError(MTCNNError, ImportError):
    """An optional part was asked for but its extra is not installed."""

    def __init__(self, feature: str, extra: str, package: str):
        super().__init__(
            f"{feature} needs the optional package '{package}': "
            f"pip install 'torchmtcnn[{extra}]'"
        )
        self.extra = extra
