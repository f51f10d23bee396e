"""Training of the three MTCNN stages: losses, configs, the Trainer and the `train all` pipeline."""

from .config import STAGES, TrainConfig, stage_config
from .losses import LossParts, LossWeights, mtcnn_loss, ohem_count
from .trainer import Trainer, TrainResult

__all__ = ["STAGES", "TrainConfig", "stage_config", "LossParts", "LossWeights", "mtcnn_loss",
           "ohem_count", "Trainer", "TrainResult"]
