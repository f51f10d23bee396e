"""Evaluation: the WIDER FACE protocol, AP on any annotation source, landmark error.

* :func:`evaluate_wider` with :func:`load_wider_gt`: the official WIDER FACE validation AP
  (easy / medium / hard), as the MATLAB eval_tools compute it.
* :func:`evaluate_faces`: the same AP (and FDDB's discrete ROC) on a list of FaceRecord.
* :func:`evaluate_landmarks`: inter-ocular NME, failure rate at 10 %, CED and its AUC.
* :func:`read_predictions` / :func:`write_jsonl`: prediction sets on disk (lists of
  :class:`torchmtcnn.faces.Faces`, each named by its image);
  :func:`run_detector`: run a detector over a dataset and keep its predictions.

The submodules import nothing heavy; plotting (:mod:`.plots`) needs matplotlib.
"""

from .ap import PRCurve, normalize_scores, overlaps, pr_curve, voc_ap
from .faces import FacesResult, evaluate_faces
from .fddb import DiscreteROC, discrete_roc, ellipse_to_box, read_fddb_ellipses
from .landmarks import LandmarkResult, ced_auc, ced_curve, evaluate_landmarks, match_faces, nme
from .predictions import (
    PredictionError,
    match_images,
    read_predictions,
    write_jsonl,
    write_wider_dir,
)
from .runner import run_detector
from .wider import SETTINGS, WiderGroundTruth, WiderResult, evaluate_wider, load_wider_gt

__all__ = [
    "PRCurve", "normalize_scores", "overlaps", "pr_curve", "voc_ap",
    "FacesResult", "evaluate_faces",
    "DiscreteROC", "discrete_roc", "ellipse_to_box", "read_fddb_ellipses",
    "LandmarkResult", "ced_auc", "ced_curve", "evaluate_landmarks", "match_faces", "nme",
    "PredictionError", "match_images", "read_predictions", "write_jsonl",
    "write_wider_dir",
    "run_detector",
    "SETTINGS", "WiderGroundTruth", "WiderResult", "evaluate_wider", "load_wider_gt",
]
