"""torchmtcnn: MTCNN face detection in PyTorch."""

from .errors import AnnotationError, ImageError, MissingExtraError, MTCNNError, WeightsError

__version__ = "0.1.0"

__all__ = ["AnnotationError", "ImageError", "MissingExtraError", "MTCNNError", "WeightsError"]
