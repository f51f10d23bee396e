"""The library's errors: one small hierarchy, each message names the file, line or parameter."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .faces import Faces, Result


class MTCNNError(Exception):
    """Base class of every error raised on purpose by torchmtcnn."""


class ImageError(MTCNNError, ValueError):
    """An image could not be read or is not usable (missing, corrupt, wrong type or size)."""


class BatchImageError(ImageError):
    """Some images of a list given to ``MTCNN.detect`` could not be read. The others were
    detected all the same: ``results`` holds a Result per input, in order (its faces, or its
    error), ``faces`` the Faces of each input (None for a failed one)."""

    def __init__(self, results: Sequence[Result]) -> None:
        self.results = list(results)
        failed = [r for r in self.results if r.error is not None]
        first = f"{failed[0].error}" if failed else "none"
        more = f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""
        super().__init__(f"{len(failed)} of {len(self.results)} images could not be read: {first}{more}; "
                         "the faces of the others are in this error's .faces and .results")

    def __reduce__(self):  # pickled with its results (across processes), not its message
        return type(self), (self.results,)

    @property
    def faces(self) -> list[Faces | None]:
        return [r.faces for r in self.results]


class WeightsError(MTCNNError):
    """A weight file is missing, corrupt, or does not fit the network (names file and layer)."""


class AnnotationError(MTCNNError, ValueError):
    """An annotation line or file could not be parsed (names the file and line)."""


class PredictionError(AnnotationError):
    """A prediction file or line could not be read (names the file and line)."""


class MissingExtraError(MTCNNError, ImportError):
    """An optional part was asked for but its extra is not installed."""

    def __init__(self, feature: str, extra: str, package: str):
        super().__init__(
            f"{feature} needs the optional package '{package}': "
            f"pip install 'torchmtcnn[{extra}]'"
        )
        self.extra = extra
