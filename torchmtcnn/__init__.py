"""torchmtcnn: MTCNN face detection in PyTorch."""

import os as _os
import sys as _sys

# Before torch loads libgomp (read once, at its start): idle OpenMP threads then spin 30,000
# turns after a parallel region instead of 300,000 before they sleep, which leaves the cores
# to the OpenCV resizes that run between torch calls. A 640x480 detection: pyramid 8.2 ->
# 5.7 ms, whole 41 -> 38 ms (README, Speed). A GOMP_SPINCOUNT or OMP_WAIT_POLICY already set
# is kept; when torch was imported first, nothing changes.
if "torch" not in _sys.modules and "OMP_WAIT_POLICY" not in _os.environ:
    _os.environ.setdefault("GOMP_SPINCOUNT", "30000")

from .errors import AnnotationError, BatchImageError, ImageError, MissingExtraError, MTCNNError, WeightsError

__version__ = "0.1.0"

__all__ = ["AnnotationError", "BatchImageError", "ImageError", "MissingExtraError", "MTCNNError", "WeightsError"]

from .align import align
from .detector import MTCNN
from .faces import Faces, Result
from .draw import draw_faces
from .images import load as load_image

__all__ += ["MTCNN", "Faces", "Result", "align", "draw_faces", "load_image"]
