"""Reading and validating images: everything becomes one uint8 RGB [H, W, 3] array or tensor.

Accepted: a path (str or Path), encoded bytes, a PIL image, a numpy array or a torch tensor.
Arrays are RGB (never BGR), [H, W], [H, W, 1], [H, W, 3] or [H, W, 4]; tensors may also be
[3, H, W] or [1, H, W]. uint8 is taken as 0..255, uint16 as 0..65535, floats as 0..1.
Grayscale is repeated to three channels, alpha is dropped, 16 bits are reduced to 8.
Anything else raises ImageError naming the input and what is wrong.
"""

from __future__ import annotations

import io
import os
import warnings
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Literal, TypeVar

import cv2
import numpy as np
import torch
from PIL import Image

from .errors import ImageError

ImageInput = str | os.PathLike | bytes | np.ndarray | torch.Tensor | Image.Image

# Decoding more pixels than this is refused (a decompression bomb, or a mistake); 1e9
# pixels would need 3 GB for the pixels alone. Settable per call.
MAX_PIXELS = 200_000_000

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm", ".pgm")


def describe(x: object) -> str:
    """A short name of an input for error messages."""
    if isinstance(x, (str, os.PathLike)):
        return str(x)
    if isinstance(x, (np.ndarray, torch.Tensor)):
        return f"{type(x).__name__} of shape {tuple(x.shape)} and dtype {x.dtype}"
    if isinstance(x, bytes):
        return f"{len(x)} bytes"
    return type(x).__name__


def _check_size(width: int, height: int, name: str, max_pixels: int) -> None:
    if width < 1 or height < 1:
        raise ImageError(f"{name}: image has no pixels ({width}x{height})")
    if width * height > max_pixels:
        raise ImageError(
            f"{name}: image is {width}x{height} = {width * height:,} pixels, over the limit of "
            f"{max_pixels:,} (max_pixels)"
        )


def _decode(data: bytes, name: str, max_pixels: int) -> np.ndarray:
    if len(data) == 0:
        raise ImageError(f"{name}: file is empty")
    try:  # the header gives the size before any pixel is decoded
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:
                _check_size(im.width, im.height, name, max_pixels)
    except ImageError:
        raise
    except Image.DecompressionBombError as exc:  # beyond even PIL's own limit
        raise ImageError(f"{name}: image is over the limit of {max_pixels:,} pixels (max_pixels): {exc}") from exc
    except Exception:  # PIL does not know the format; OpenCV may
        pass
    # IMREAD_COLOR applies EXIF orientation, drops alpha, expands gray, reduces 16 bits to 8.
    buf = np.frombuffer(data, dtype=np.uint8)
    bgr = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if bgr is None:
        try:  # formats OpenCV cannot decode (GIF...)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                with Image.open(io.BytesIO(data)) as im:
                    return np.array(im.convert("RGB"))
        except ImageError:
            raise
        except Exception as exc:
            raise ImageError(f"{name}: not a readable image (corrupt or unsupported format)") from exc
    return np.ascontiguousarray(bgr[:, :, ::-1])


def read_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Read an image file -> uint8 RGB [H, W, 3]; ImageError names the file when it fails."""
    p = Path(path)
    if not p.exists():
        raise ImageError(f"{p}: no such file")
    if p.is_dir():
        raise ImageError(f"{p}: is a folder, not an image")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ImageError(f"{p}: cannot read ({exc.strerror or exc})") from exc
    return _decode(data, str(p), max_pixels)


def _hwc(a: np.ndarray | torch.Tensor, name: str, shapes: str) -> None:
    """Refuse (ImageError) anything but [H, W, C] with C in 1, 3, 4 and a size we accept."""
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4):
        raise ImageError(f"{name}: expected {shapes}")
    _check_size(a.shape[1], a.shape[0], name, MAX_PIXELS * 10)


Pixels = TypeVar("Pixels", np.ndarray, torch.Tensor)


def _rgb(a: Pixels) -> Pixels:
    """[H, W, 1|3|4] -> [H, W, 3]: gray repeated, alpha dropped (numpy arrays and tensors)."""
    return a[:, :, [0, 0, 0]] if a.shape[2] == 1 else a[:, :, :3] if a.shape[2] == 4 else a


def to_rgb_array(a: np.ndarray, name: str = "array") -> np.ndarray:
    """An in-memory RGB array of any accepted shape and dtype -> uint8 RGB [H, W, 3]."""
    if a.ndim == 2:
        a = a[:, :, None]
    _hwc(a, name, "an image of shape [H, W], [H, W, 1], [H, W, 3] or [H, W, 4]")
    if a.dtype == np.uint8:
        pass
    elif a.dtype == np.uint16:
        a = (a >> 8).astype(np.uint8)
    elif a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    elif np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all() or a.min() < 0 or a.max() > 1:
            raise ImageError(f"{name}: float images must hold values in [0, 1]")
        a = np.rint(a * 255).astype(np.uint8)
    else:
        raise ImageError(f"{name}: unsupported pixel type {a.dtype} (use uint8, uint16 or float in [0, 1])")
    return np.ascontiguousarray(_rgb(a))


def _tensor_to_rgb(t: torch.Tensor, name: str) -> torch.Tensor:
    if t.ndim == 3 and t.shape[0] in (1, 3, 4) and t.shape[2] not in (1, 3, 4):
        t = t.permute(1, 2, 0)  # CHW -> HWC
    if t.ndim == 2:
        t = t[:, :, None]
    _hwc(t, name, "a tensor of shape [H, W, C] or [C, H, W] with C in 1, 3, 4")
    if t.dtype == torch.uint8:
        pass
    elif t.dtype.is_floating_point:
        if not torch.isfinite(t).all() or t.min() < 0 or t.max() > 1:
            raise ImageError(f"{name}: float tensors must hold values in [0, 1]")
        t = (t * 255).round().to(torch.uint8)
    else:
        raise ImageError(f"{name}: unsupported tensor dtype {t.dtype} (use uint8 or float in [0, 1])")
    return _rgb(t).contiguous()


def load(x: ImageInput, max_pixels: int = MAX_PIXELS) -> np.ndarray | torch.Tensor:
    """Any accepted input -> uint8 RGB [H, W, 3]: a numpy array, or a tensor for tensor inputs
    (kept on their device)."""
    if isinstance(x, (str, os.PathLike)):
        return read_image(x, max_pixels)
    if isinstance(x, (bytes, bytearray, memoryview)):
        return _decode(bytes(x), "image bytes", max_pixels)
    if isinstance(x, Image.Image):
        _check_size(x.width, x.height, "PIL image", max_pixels)
        mode = x.mode
        if mode in ("I;16", "I;16B", "I;16L", "I"):
            a = np.asarray(x).astype(np.uint32)
            return to_rgb_array((np.clip(a, 0, 65535) >> 8).astype(np.uint8), "PIL image")
        return np.array(x.convert("RGB"))
    if isinstance(x, np.ndarray):
        return to_rgb_array(x, describe(x))
    if isinstance(x, torch.Tensor):
        return _tensor_to_rgb(x.detach(), describe(x))
    raise ImageError(f"cannot read an image from a {type(x).__name__}")


def list_images(paths: list[str | os.PathLike], recursive: bool = True) -> list[Path]:
    """Expand files, folders (recursively) and glob patterns into image paths, sorted per
    argument; a name that matches nothing raises ImageError."""
    import glob

    found: list[Path] = []
    for arg in paths:
        p = Path(arg)
        if p.is_dir():
            pattern = "**/*" if recursive else "*"
            found += sorted(f for f in p.glob(pattern) if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS)
        elif p.exists():
            found.append(p)
        else:
            matches = sorted(Path(m) for m in glob.glob(str(arg), recursive=True))
            if not matches:
                raise ImageError(f"{arg}: no such file, folder or pattern")
            found += [m for m in matches if m.is_file()]
    return found


def iter_loaded(inputs: Iterable[ImageInput], workers: int = 0, max_pixels: int = MAX_PIXELS,
                prefetch: int | None = None) -> Iterator[tuple[ImageInput, np.ndarray | torch.Tensor | ImageError]]:
    """(input, its pixels as ``load`` gives them, or the ImageError that stopped it) per input,
    in input order. ``workers`` threads decode ahead (file reads and OpenCV release the GIL),
    at most ``prefetch`` inputs ahead (default 4 per worker); 0 decodes in this thread, when
    the consumer asks for the next one."""
    def decode(x: ImageInput) -> np.ndarray | torch.Tensor | ImageError:
        try:
            return load(x, max_pixels)
        except ImageError as exc:
            return exc

    if workers <= 0:
        for x in inputs:
            yield x, decode(x)
        return
    window: deque[tuple[ImageInput, Future]] = deque()
    ahead = prefetch or workers * 4
    with ThreadPoolExecutor(workers, thread_name_prefix="mtcnn-decode") as pool:
        try:
            for x in inputs:
                window.append((x, pool.submit(decode, x)))
                if len(window) >= ahead:
                    done, future = window.popleft()
                    yield done, future.result()
            while window:
                done, future = window.popleft()
                yield done, future.result()
        finally:
            for _, future in window:
                future.cancel()


_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def header_size(path: str | os.PathLike) -> tuple[int, int] | None:
    """(width, height) of a JPEG or PNG from its first bytes, or None to ask PIL.

    About ten times faster than ``PIL.Image.open`` (which also parses tables we do not
    need); anything unusual (other formats, a marker past the first 64 KiB, odd sizes)
    returns None and the caller falls back to PIL, which is the reference.
    """
    with open(path, "rb", buffering=0) as f:
        head = f.read(2048)
        size = _scan_header(head)
        if size is False:  # the frame header lies further: EXIF thumbnails and the like
            size = _scan_header(head + f.read(65536 - 2048))
    return size or None


def _scan_header(head: bytes) -> tuple[int, int] | None | Literal[False]:
    """Size from the bytes of a file start; None: not found / not usable; False: need more."""
    if head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR":
        w, h = int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
        return (w, h) if w > 0 and h > 0 else None
    if head[:2] != b"\xff\xd8":
        return None
    i, n = 2, len(head)
    while i + 9 < n:
        if head[i] != 0xFF:
            return None
        marker = head[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in _SOF_MARKERS:
            h = int.from_bytes(head[i + 5 : i + 7], "big")
            w = int.from_bytes(head[i + 7 : i + 9], "big")
            return (w, h) if w > 0 and h > 0 else None
        if marker == 0xD8 or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            return None
        i += 2 + int.from_bytes(head[i + 2 : i + 4], "big")
    return False if n >= 2048 and n < 65536 else None


def image_size(path: str | os.PathLike) -> tuple[int, int]:
    """(width, height) of an image file from its header, without decoding the pixels (the
    fast JPEG / PNG parser, else PIL). Raises OSError (FileNotFoundError...) or PIL's
    UnidentifiedImageError when the file cannot be read."""
    size = header_size(path)
    if size is None:
        with Image.open(path) as im:
            size = (int(im.size[0]), int(im.size[1]))
    return size
