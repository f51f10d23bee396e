"""torchmtcnn: MTCNN face detection in PyTorch."""

from .errors import AnnotationError, ImageError, MissingExtraError, MTCNNError, WeightsError

__version__ = "0.1.0"

__all__ = ["AnnotationError", "ImageError", "MissingExtraError", "MTCNNError", "WeightsError"]

from .align import align
from .detector import MTCNN, Faces, Result
from .draw import draw_faces
from .images import load as load_image

__all__ += ["MTCNN", "Faces", "Result", "align", "draw_faces", "load_image"]
