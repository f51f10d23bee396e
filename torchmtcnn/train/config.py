"""Training settings of the three stages, as dataclasses.

Defaults follow the paper (Zhang et al. 2016) and its reference TensorFlow implementation
(AITTSMD/MTCNN-Tensorflow): SGD with momentum 0.9, learning rate 0.01, weight decay 5e-4,
batch 384, the learning rate divided by 10 after epochs 6, 14 and 20; 30 epochs for P-Net,
22 for R-Net and O-Net; loss weights cls : box : landmark = 1 : 0.5 : 0.5 (P-Net, R-Net) and
1 : 0.5 : 1 (O-Net); OHEM keeps the hardest 70 % of the classification samples. Validation
counts a face when its probability reaches the stage's detection threshold (0.6, 0.7, 0.7).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from .losses import LossWeights

STAGES = ("pnet", "rnet", "onet")
STAGE_SIZE = {"pnet": 12, "rnet": 24, "onet": 48}
STAGE_THRESHOLD = {"pnet": 0.6, "rnet": 0.7, "onet": 0.7}


@dataclass
class TrainConfig:
    """How one stage is trained.

    Attributes:
        stage: "pnet", "rnet" or "onet".
        epochs: passes over the training store.
        batch_size: samples per step (per process under torchrun).
        optimizer: "sgd" (momentum) or "adam".
        lr / momentum / weight_decay: optimiser settings.
        schedule: "step" (lr * gamma at each of ``milestones``), "cosine" (to 0 over the
            epochs) or "constant". Stepped once per epoch.
        milestones / gamma: the step schedule.
        loss: the task weights and the OHEM ratio.
        threshold: face-probability threshold of validation accuracy and recall.
        seed: seeds torch, numpy and the data order (re-seeded per epoch from (seed, epoch),
            so that a resumed run draws what an uninterrupted one would).
        workers: DataLoader worker processes (spawned); 0 loads in the training process.
        augment: flip and colour jitter of the training samples.
        lowres: share of training samples whose crop is replaced by a low-resolution copy
            (shrunk to 30-100 % of its side and enlarged back, as a small face looks), 0 for none.
        dim: share of training samples shown in dim light (data.dataset.dim_light), 0 for none.
        blur: share of training samples blurred (Gaussian, sigma 0.3-1.2 crop pixels).
        device: "cpu", "cuda"... or None for a GPU when there is one (AMP on a GPU).
        bf16: on a CPU, run the forward pass under bfloat16 autocast (weights, gradients and
            the loss stay float32); faster where the CPU has bf16 instructions.
        threads: torch CPU threads (None: torch's default).
        max_steps: stop an epoch after this many steps (tests, smoke runs); None for all.
    """

    stage: str = "pnet"
    epochs: int = 30
    batch_size: int = 384
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "step"
    milestones: tuple[int, ...] = (6, 14, 20)
    gamma: float = 0.1
    loss: LossWeights = field(default_factory=LossWeights)
    threshold: float = 0.6
    seed: int = 0
    workers: int = 0
    augment: bool = True
    lowres: float = 0.0
    dim: float = 0.0
    blur: float = 0.0
    device: str | None = None
    bf16: bool = False
    threads: int | None = None
    max_steps: int | None = None

    def __post_init__(self) -> None:
        if self.stage not in STAGES:
            raise ValueError(f"stage must be one of {STAGES}, got {self.stage!r}")
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")
        if self.schedule not in ("step", "cosine", "constant"):
            raise ValueError(f"schedule must be step, cosine or constant, got {self.schedule!r}")
        for name in ("lowres", "dim", "blur"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be a share in [0, 1], got {getattr(self, name)!r}")
        if self.epochs < 1 or self.batch_size < 1:
            raise ValueError("epochs and batch_size must be positive")
        if isinstance(self.loss, dict):
            self.loss = LossWeights(**self.loss)
        self.milestones = tuple(int(m) for m in self.milestones)

    @property
    def size(self) -> int:
        """Input crop side of the stage (12, 24, 48)."""
        return STAGE_SIZE[self.stage]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def with_overrides(self, **changes: Any) -> TrainConfig:
        """A copy with the given (non-None) fields changed; a ``loss`` dict changes only the
        loss fields it names."""
        changes = {k: v for k, v in changes.items() if v is not None}
        if isinstance(changes.get("loss"), dict):
            changes["loss"] = replace(self.loss, **changes["loss"])
        return replace(self, **changes)


def stage_config(stage: str, **changes: Any) -> TrainConfig:
    """The default configuration of a stage (paper / reference), with changes applied."""
    base = {
        "pnet": TrainConfig("pnet", epochs=30, loss=LossWeights(1.0, 0.5, 0.5), threshold=0.6),
        "rnet": TrainConfig("rnet", epochs=22, loss=LossWeights(1.0, 0.5, 0.5), threshold=0.7),
        "onet": TrainConfig("onet", epochs=22, loss=LossWeights(1.0, 0.5, 1.0), threshold=0.7),
    }
    if stage not in base:
        raise ValueError(f"stage must be one of {STAGES}, got {stage!r}")
    return base[stage].with_overrides(**changes)
