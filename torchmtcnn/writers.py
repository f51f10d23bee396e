"""Where the rows of a large job go: JSON lines (a file or a stream) or a folder of Parquet
part files, the same rows either way.

A row is ``faces.image_line``'s: ``{"image", "width", "height", "faces": [{"box", "score",
"keypoints"}], "error"}`` (``error`` is None for a photo that was read, and the size and faces
are None for one that was not). JSON lines leave out the None fields (``faces.compact``), as
``mtcnn detect --json`` always has; Parquet keeps every column (``parquet_schema``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import IO, Any

from .errors import MissingExtraError, MTCNNError
from .faces import LANDMARK_NAMES, compact

FORMATS = ("jsonl", "parquet")
ROWS_PER_PART = 2000  # Parquet rows per part file: a part is complete or absent


def infer_format(path: str | os.PathLike | None, fmt: str | None = None) -> str:
    """The output format: ``fmt`` if given, else "parquet" for a name ending in .parquet."""
    if fmt is not None:
        if fmt not in FORMATS:
            raise MTCNNError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        return fmt
    return "parquet" if path is not None and str(path).endswith(".parquet") else "jsonl"


def pyarrow_modules() -> tuple[Any, Any]:
    """(pyarrow, pyarrow.parquet), or MissingExtraError naming the [ray] extra."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MissingExtraError("Parquet output", "ray", "pyarrow") from exc
    return pa, pq


def parquet_schema() -> Any:
    """Arrow schema of the rows: faces as a list of {box, score, keypoints{name: [x, y]},
    track_id} (track_id null but for a video tracker's faces)."""
    pa, _ = pyarrow_modules()
    point = pa.list_(pa.float64())
    face = pa.struct([("box", pa.list_(pa.float64())), ("score", pa.float64()),
                      ("keypoints", pa.struct([(name, point) for name in LANDMARK_NAMES])),
                      ("track_id", pa.int64())])
    return pa.schema([("image", pa.string()), ("width", pa.int32()), ("height", pa.int32()),
                      ("faces", pa.list_(face)), ("error", pa.string())])


class JsonlWriter:
    """Rows to a JSON-lines file (or a stream such as standard output), flushed per batch."""

    def __init__(self, out: str | os.PathLike | IO[str], append: bool = False) -> None:
        if isinstance(out, (str, os.PathLike)):
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            self.file: IO[str] = open(out, "a" if append else "w", encoding="utf-8")  # noqa: SIM115 (closed by close())
            self.owned = True
        else:
            self.file, self.owned = out, False

    def write(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            self.file.write(json.dumps(compact(row)) + "\n")
        self.file.flush()

    def close(self) -> None:
        if self.owned:
            self.file.close()


class ParquetWriter:
    """Rows to a folder of Parquet part files (part-00000.parquet...), each written whole
    then renamed, so a stopped job leaves only complete parts. Read with
    ``pyarrow.parquet.read_table(folder)``, pandas or Ray."""

    def __init__(self, folder: str | os.PathLike, append: bool = False, rows_per_part: int = ROWS_PER_PART) -> None:
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise MTCNNError(f"{self.folder}: Parquet output is a folder of part files, and this is a file")
        self.folder.mkdir(parents=True, exist_ok=True)
        existing = sorted(self.folder.glob("part-*.parquet"))
        if existing and not append:
            for part in existing:
                part.unlink()
            existing = []
        self.next_part = 1 + max((int(p.stem.split("-")[1]) for p in existing), default=-1)
        self.rows_per_part = rows_per_part
        self.rows: list[dict[str, Any]] = []
        self.schema = parquet_schema()

    def write(self, rows: list[dict[str, Any]]) -> None:
        self.rows += rows
        while len(self.rows) >= self.rows_per_part:
            self._flush(self.rows[: self.rows_per_part])
            self.rows = self.rows[self.rows_per_part:]

    def _flush(self, rows: list[dict[str, Any]]) -> None:
        pa, pq = pyarrow_modules()
        final = self.folder / f"part-{self.next_part:05d}.parquet"
        tmp = final.with_suffix(".parquet.tmp")
        pq.write_table(pa.Table.from_pylist(rows, schema=self.schema), tmp)
        os.replace(tmp, final)
        self.next_part += 1

    def close(self) -> None:
        if self.rows:
            self._flush(self.rows)
            self.rows = []


def open_writer(out: str | os.PathLike | IO[str], fmt: str, append: bool = False) -> JsonlWriter | ParquetWriter:
    """The writer of ``fmt`` ("jsonl" or "parquet") on ``out``; ``append`` keeps what is there."""
    if fmt == "parquet":
        if not isinstance(out, (str, os.PathLike)):
            raise MTCNNError("Parquet output needs a folder name, not a stream")
        return ParquetWriter(out, append)
    return JsonlWriter(out, append)
