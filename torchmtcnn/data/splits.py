"""Which photos are held out, which validate, which train: one hashing rule for every split.

A photo's side of a split is a function of its **key** and a salt only, never of the order of
the photos or of the folder the data set was copied to. The key is what the annotation file
calls the photo, prefixed with the reader's format (:attr:`FaceRecord.key`, e.g.
``"sun2013:net_7876/000001.jpg"`` or ``"caltech:pic00001.jpg"``), so two copies of a data set in
different folders split identically. A record without a key (built in code) falls back to its
image path.

The rule: the first 64 bits of ``sha256(f"{salt}:{key}")``, read as a number in [0, 1), are
compared with the fraction. Salts: ``"holdout:{seed}"`` for the photos kept out of training
for evaluation (``train all``), ``"{seed}"`` for the train / validation split of the sample
stores. The two salts make the two sets independent.
"""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .records import FaceRecord


def photo_key(photo: FaceRecord | str | Path) -> str:
    """The key a split hashes: a record's ``key`` (or its image path when it has none), or a
    path / key given as such ('/'-separated)."""
    if isinstance(photo, (str, Path)):
        return Path(photo).as_posix() if isinstance(photo, Path) else photo.replace("\\", "/")
    return photo.key or Path(photo.image).as_posix()


def hash_fraction(salt: str, photo: FaceRecord | str | Path) -> float:
    """sha256(f"{salt}:{key}")'s first 64 bits as a number in [0, 1)."""
    digest = hashlib.sha256(f"{salt}:{photo_key(photo)}".encode()).digest()
    return struct.unpack(">Q", digest[:8])[0] / 2.0**64


def is_held_out(photo: FaceRecord | str | Path, fraction: float = 0.1, seed: int = 0) -> bool:
    """Whether a photo is kept out of training for evaluation."""
    return hash_fraction(f"holdout:{seed}", photo) < fraction


def is_validation(photo: FaceRecord | str | Path, seed: int, fraction: float) -> bool:
    """Whether a training photo's samples go to the validation split of the stores."""
    return hash_fraction(str(seed), photo) < fraction


def split_held_out(records: list[FaceRecord], fraction: float, seed: int
                   ) -> tuple[list[FaceRecord], list[FaceRecord]]:
    """(training records, held-out records), each in the input order."""
    held = [is_held_out(r, fraction, seed) for r in records]
    return ([r for r, h in zip(records, held) if not h], [r for r, h in zip(records, held) if h])


def validation_records(records: list[FaceRecord], seed: int, fraction: float) -> list[FaceRecord]:
    """The records whose samples the stores put in validation, in the input order."""
    return [r for r in records if is_validation(r, seed, fraction)]
