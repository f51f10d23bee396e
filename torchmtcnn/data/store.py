"""The packed sample store: one folder of .npy files per stage and split, memory-mapped.

It replaces the reference's ``.data / .header / .label`` triple (and TFRecords). A store is a
folder holding

==================  =========================  ============================================
file                dtype [shape]              content
==================  =========================  ============================================
``images.npy``      uint8 [N, S, S, 3]         RGB crops
``labels.npy``      int8 [N]                   0 negative, 1 positive, -1 part, -2 landmark
``boxes.npy``       float32 [N, 4]             box-regression targets (0 when unused)
``landmarks.npy``   float32 [N, 5, 2]          points in [0, 1] of the crop (0 when unused)
``crops.npy``       float32 [N, 4]             crop box in photo pixels (x1, y1, x2, y2)
``photos.npy``      int32 [N]                  index of the photo in meta["photos"]
``meta.json``                                  n, size, counts per label, photos, seed...
==================  =========================  ============================================

Writing is incremental (StoreWriter appends batches straight to the files and fills in the
.npy headers when it closes; ``meta.json`` is written last, so a store without it is
incomplete). Reading (SampleStore) maps the files with ``np.load(mmap_mode="r")``: opening is
instant and sample i costs one O(1) lookup per file.

The train / validation split is by photo (``splits.is_validation``: a hash of the photo's key
and the seed), so one photo is always on one side, whatever the order or folder of the photos.
"""

from __future__ import annotations

import json
import logging
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import MTCNNError
from .samples import LABEL_NAMES, Samples

log = logging.getLogger(__name__)

# (file stem, dtype, shape of one item given the crop size S)
_ARRAYS: dict[str, tuple[np.dtype, Any]] = {
    "images": (np.dtype(np.uint8), lambda s: (s, s, 3)),
    "labels": (np.dtype(np.int8), lambda s: ()),
    "boxes": (np.dtype("<f4"), lambda s: (4,)),
    "landmarks": (np.dtype("<f4"), lambda s: (5, 2)),
    "crops": (np.dtype("<f4"), lambda s: (4,)),
    "photos": (np.dtype("<i4"), lambda s: ()),
}
_HEADER_BYTES = 128  # fixed .npy (version 1.0) header, rewritten with the final shape on close


class StoreError(MTCNNError, ValueError):
    """A sample store is missing, incomplete or inconsistent (names the folder)."""


class _NpyAppender:
    """A .npy file written row block by row block; the header gets the row count on close."""

    def __init__(self, path: Path, dtype: np.dtype, item_shape: tuple[int, ...]):
        self.path, self.dtype, self.item_shape = path, dtype, item_shape
        self.rows = 0
        self.file = open(path, "wb")
        self.file.write(b"\0" * _HEADER_BYTES)

    def append(self, array: np.ndarray) -> None:
        array = np.ascontiguousarray(array, dtype=self.dtype)
        if array.shape[1:] != self.item_shape:
            raise StoreError(f"{self.path}: rows of shape {array.shape[1:]}, "
                             f"expected {self.item_shape}")
        self.file.write(array.tobytes())
        self.rows += len(array)

    def close(self) -> None:
        shape = (self.rows, *self.item_shape)
        text = repr({"descr": np.lib.format.dtype_to_descr(self.dtype),
                     "fortran_order": False, "shape": shape})
        prefix = b"\x93NUMPY\x01\x00"
        room = _HEADER_BYTES - len(prefix) - 2
        text = text.ljust(room - 1) + "\n"
        if len(text) != room:
            raise StoreError(f"{self.path}: .npy header too long for shape {shape}")
        self.file.seek(0)
        self.file.write(prefix + struct.pack("<H", room) + text.encode("latin1"))
        self.file.close()


class StoreWriter:
    """Append Samples to a new store folder without holding them in memory.

    Use as a context manager (closing writes the headers and meta.json); photo indices in the
    appended Samples refer to ``photos``, the list of photo paths saved in meta.json.
    """

    def __init__(self, path: str | Path, size: int, photos: list[str] | None = None,
                 meta: dict[str, Any] | None = None):
        self.path = Path(path)
        self.size = size
        self.photos = [str(p) for p in (photos or [])]
        self.meta = dict(meta or {})
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / "meta.json").unlink(missing_ok=True)
        self._files = {name: _NpyAppender(self.path / f"{name}.npy", dt, shape(size))
                       for name, (dt, shape) in _ARRAYS.items()}
        self._counts = {name: 0 for name in LABEL_NAMES.values()}
        self._closed = False

    def append(self, samples: Samples) -> None:
        """Append a batch: Samples with images of size x size."""
        for name, appender in self._files.items():
            appender.append(getattr(samples, name))
        for label, name in LABEL_NAMES.items():
            self._counts[name] += int((samples.labels == label).sum())

    def __len__(self) -> int:
        return self._files["labels"].rows

    def close(self) -> None:
        if self._closed:
            return
        for appender in self._files.values():
            appender.close()
        meta = {"n": len(self), "size": self.size, "counts": self._counts,
                "photos": self.photos, **self.meta}
        tmp = self.path / "meta.json.tmp"
        tmp.write_text(json.dumps(meta, indent=1))
        os.replace(tmp, self.path / "meta.json")
        self._closed = True

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SampleStore:
    """A store opened read-only and memory-mapped.

    Attributes images, labels, boxes, landmarks, crops, photos: the arrays (see the module
    docstring), numpy memmaps; meta: the dict of meta.json.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        meta_path = self.path / "meta.json"
        if not meta_path.is_file():
            raise StoreError(f"{self.path} is not a complete sample store (no meta.json)")
        self.meta: dict[str, Any] = json.loads(meta_path.read_text())
        self.size = int(self.meta["size"])
        n = int(self.meta["n"])
        arrays: list[np.ndarray] = []
        for name, (dtype, shape) in _ARRAYS.items():
            file = self.path / f"{name}.npy"
            if not file.is_file():
                raise StoreError(f"{self.path}: {name}.npy is missing")
            array = np.load(file, mmap_mode="r" if n else None)
            if array.shape != (n, *shape(self.size)) or array.dtype != dtype:
                raise StoreError(f"{file}: {array.dtype} {array.shape}, expected {dtype} "
                                 f"{(n, *shape(self.size))}")
            arrays.append(array)
        self.images, self.labels, self.boxes, self.landmarks, self.crops, self.photos = arrays  # _ARRAYS' order

    def __len__(self) -> int:
        return int(self.meta["n"])

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        """Sample ``index`` as a dict of copies: image [S, S, 3] uint8, label int8 [],
        box [4], landmarks [5, 2], crop [4], photo int32 []."""
        return {
            "image": np.array(self.images[index]), "label": np.array(self.labels[index]),
            "box": np.array(self.boxes[index]), "landmarks": np.array(self.landmarks[index]),
            "crop": np.array(self.crops[index]), "photo": np.array(self.photos[index]),
        }

    def read(self, index: np.ndarray | slice) -> Samples:
        """Several samples as in-memory Samples."""
        return Samples(*(np.array(getattr(self, name)[index]) for name in _ARRAYS))

    @property
    def counts(self) -> dict[str, int]:
        """Samples per label name."""
        return dict(self.meta["counts"])

    def photo_path(self, index: int) -> str:
        """Path of the photo that sample ``index`` was cut from."""
        return self.meta["photos"][int(self.photos[index])]


def merge_stores(parts: list[str | Path], out: str | Path, chunk: int = 8192) -> SampleStore:
    """Concatenate store folders of one crop size into a new store at ``out``.

    Samples keep their order (``parts`` in turn); each part's photo list is appended to the
    merged one and its photo indices shifted to match. meta.json keeps the first part's
    settings and lists every part's sources and folder (``merged_from``). Used to add samples
    built with other settings (another source, another mix of kinds) to a stage's store.
    """
    if Path(out).resolve() in {Path(p).resolve() for p in parts}:
        raise StoreError(f"{out}: the merged store would overwrite one of the stores it reads")
    stores = [SampleStore(p) for p in parts]
    if not stores:
        raise StoreError("merge_stores needs at least one store")
    sizes = {store.size for store in stores}
    if len(sizes) != 1:
        raise StoreError(f"cannot merge stores of different crop sizes {sorted(sizes)}: "
                         + ", ".join(f"{st.path} ({st.size} px)" for st in stores))
    meta = {k: v for k, v in stores[0].meta.items() if k not in ("n", "size", "counts", "photos")}
    meta["sources"] = [src for store in stores for src in store.meta.get("sources", [])]
    meta["merged_from"] = [str(store.path) for store in stores]
    photos = [photo for store in stores for photo in store.meta.get("photos", [])]
    with StoreWriter(out, stores[0].size, photos, meta) as writer:
        offset = 0
        for store in stores:
            for start in range(0, len(store), chunk):
                samples = store.read(slice(start, start + chunk))
                samples.photos = samples.photos + offset
                writer.append(samples)
            offset += len(store.meta.get("photos", []))
    return SampleStore(out)


def find_stores(path: str | Path) -> list[Path]:
    """The store folders at ``path``: itself if it is one, else its subfolders that are
    (``train`` and ``val`` of a stage folder), sorted."""
    path = Path(path)
    if (path / "meta.json").is_file():
        return [path]
    found = sorted(p.parent for p in path.glob("*/meta.json"))
    if not found:
        raise StoreError(f"no sample store in {path}")
    return found
