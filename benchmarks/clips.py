"""Seeded synthetic video clips for the tracker's benchmark (``benchmarks/track.py``).

Real faces with real motion: head-and-shoulders sprites cut from the Sun 2013 photos
(``--data``: the shared data folder, its test list's ``net_7876`` photos, which no shipped
weights trained on) and from the package's two public-domain portraits, over backgrounds
made from patches of Caltech Web Faces photos turned on their side. Three kinds of clip:

* ``pan``: a still scene of faces filmed by a moving camera: pans (faces leave and enter at
  the borders), a zoom in and out, a slow roll of +-6 degrees, and a fast pan with motion blur;
* ``walk``: a steady (hand-held) camera, faces moving on their own paths at 1-6 px per frame,
  growing and shrinking, turning by up to 15 degrees, coming in and going out at the borders;
* ``cut``: a scene of a slow pan over two faces and two walking faces, a dozen frames out of
  focus, then a cut to another scene with three other faces walking.

``render_clip(kind, width, height, frames, seed, data)`` -> list of uint8 RGB [H, W, 3]
frames. The same arguments give the same pixels on any machine with the same OpenCV; the
geometry is relative to the frame, so 640x480 and 1280x720 show the same motion. Nothing is
written to disk: video files are not part of the repository.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from torchmtcnn.assets import ASTRONAUT, GRACE_HOPPER
from torchmtcnn.crops import crop_square
from torchmtcnn.images import read_image

KINDS = ("pan", "walk", "cut")
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"  # the shared data folder
SPRITE = 200  # sprite side in pixels before scaling: faces up to ~120 px at 640x480


def _mask(side: int) -> np.ndarray:
    """A feathered ellipse, float32 [side, side, 1] in 0..1: the sprite's alpha."""
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32)
    r = np.sqrt(((xx - side / 2) / (0.46 * side)) ** 2 + ((yy - side / 2) / (0.49 * side)) ** 2)
    return np.clip((1.0 - r) / 0.08, 0, 1)[:, :, None]


def face_sprites(data: Path, count: int, rng: np.random.Generator) -> list[np.ndarray]:
    """``count`` head-and-shoulders crops, uint8 RGB [SPRITE, SPRITE, 3]: Sun 2013 test
    photos (a square 1.8x the annotated face box, centred on it) and the two portraits."""
    sprites = []
    for path, (x1, y1, x2, y2) in ((ASTRONAUT, (180, 40, 280, 160)), (GRACE_HOPPER, (160, 60, 350, 290))):
        side = int(1.8 * max(x2 - x1, y2 - y1))
        cx, cy = (x1 + x2) // 2, (y1 + y2) // 2
        sprites.append(crop_square(read_image(path), cx - side // 2, cy - side // 2 + side // 10, side, SPRITE))
    lines = [line.split() for line in (data / "sun2013" / "testImageList.txt").read_text().splitlines()
             if line.startswith("net_7876")]
    for k in rng.choice(len(lines), size=max(0, count - len(sprites)), replace=False):
        name, left, right, top, bottom = lines[k][:5]
        image = read_image(data / "sun2013" / name.replace("\\", "/"))
        x1, x2, y1, y2 = float(left), float(right), float(top), float(bottom)
        side = int(1.8 * max(x2 - x1, y2 - y1))
        cx, cy = int((x1 + x2) / 2), int((y1 + y2) / 2)
        sprites.append(crop_square(image, cx - side // 2, cy - side // 2 + side // 10, side, SPRITE))
    order = rng.permutation(len(sprites))
    return [sprites[i] for i in order][:count]


def background(data: Path, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A width x height mosaic of pieces of Caltech Web Faces photos (a random square of 40 %
    of a photo's height, enlarged to a third of the frame's), each turned by 90, 180 or 270
    degrees (MTCNN finds no face on its side or upside down) and slightly blurred, with film
    grain: the colours, edges and clutter of real places, and hardly a face in them."""
    photos = sorted((data / "caltech_webfaces" / "images").glob("*.jpg"))
    side = max(16, height // 3)
    canvas = np.empty((height + side, width + side, 3), np.uint8)
    for y in range(0, height, side):
        for x in range(0, width, side):
            photo = read_image(photos[int(rng.integers(len(photos)))])
            piece = int(0.4 * min(photo.shape[:2]))
            top, left = (int(rng.integers(0, n - piece + 1)) for n in photo.shape[:2])
            patch = cv2.resize(photo[top : top + piece, left : left + piece], (side, side),
                               interpolation=cv2.INTER_LINEAR)
            canvas[y : y + side, x : x + side] = np.rot90(patch, int(rng.integers(1, 4)))
    canvas = cv2.GaussianBlur(canvas[:height, :width], (0, 0), 0.004 * width)
    noise = rng.normal(0, 3, canvas.shape)  # film grain: a flat blur is unlike any camera
    return np.clip(canvas + noise, 0, 255).astype(np.uint8)


def paste(frame: np.ndarray, sprite: np.ndarray, cx: float, cy: float, size: float, angle: float) -> None:
    """Draw ``sprite`` into ``frame`` (in place) centred at (cx, cy), ``size`` px wide,
    turned by ``angle`` degrees, through its feathered ellipse."""
    h, w = frame.shape[:2]
    half = size * 0.75  # the turned sprite's reach from its centre
    x0, y0 = max(0, int(cx - half)), max(0, int(cy - half))
    x1, y1 = min(w, int(cx + half) + 1), min(h, int(cy + half) + 1)
    if x1 <= x0 or y1 <= y0:
        return
    s = sprite.shape[0]
    m = cv2.getRotationMatrix2D((s / 2, s / 2), angle, size / s)
    m[0, 2] += cx - s / 2 - x0
    m[1, 2] += cy - s / 2 - y0
    roi = (x1 - x0, y1 - y0)
    pixels = cv2.warpAffine(sprite, m, roi, flags=cv2.INTER_LINEAR).astype(np.float32)
    alpha = cv2.warpAffine(_mask(s), m, roi, flags=cv2.INTER_LINEAR)[:, :, None]
    region = frame[y0:y1, x0:x1].astype(np.float32)
    frame[y0:y1, x0:x1] = (region + alpha * (pixels - region)).astype(np.uint8)


@dataclass
class Walker:
    """A face moving on its own: on screen from frame ``start`` to ``stop``, along a straight
    line from ``a`` to ``b`` (frame fractions, may lie outside) with a sideways sway, its size
    (a fraction of the frame height) and angle swinging slowly."""

    sprite: np.ndarray
    start: int
    stop: int
    a: tuple[float, float]
    b: tuple[float, float]
    size: float
    grow: float
    turn: float
    phase: float

    def draw(self, frame: np.ndarray, t: int) -> None:
        if not self.start <= t < self.stop:
            return
        h, w = frame.shape[:2]
        u = (t - self.start) / max(1, self.stop - self.start - 1)
        sway = 0.03 * math.sin(2 * math.pi * (2 * u + self.phase))
        x = self.a[0] + (self.b[0] - self.a[0]) * u + sway
        y = self.a[1] + (self.b[1] - self.a[1]) * u + 0.5 * sway
        size = self.size * (1 + self.grow * math.sin(2 * math.pi * (u + self.phase))) * h
        angle = self.turn * math.sin(2 * math.pi * (1.5 * u + self.phase))
        paste(frame, self.sprite, x * w, y * h, size, angle)


def _walkers(sprites: list[np.ndarray], frames: int, rng: np.random.Generator, start: int = 0) -> list[Walker]:
    """Faces with their own paths: some cross the frame (in and out at the borders), some stay
    inside; staggered so that 1-5 are on screen at a time."""
    walkers = []
    for k, sprite in enumerate(sprites):
        crossing = k % 2 == 0
        if crossing:  # from beyond one side to beyond the other
            y0, y1 = rng.uniform(0.25, 0.75, 2)
            left = rng.random() < 0.5
            a, b = ((-0.15, y0), (1.15, y1)) if left else ((1.15, y0), (-0.15, y1))
            begin = start + int(rng.integers(0, max(1, frames // 2)))
            stop = begin + int(rng.integers(frames // 2, frames + 1))
        else:
            a = (float(rng.uniform(0.2, 0.8)), float(rng.uniform(0.3, 0.7)))
            b = (float(np.clip(a[0] + rng.uniform(-0.3, 0.3), 0.15, 0.85)),
                 float(np.clip(a[1] + rng.uniform(-0.15, 0.15), 0.25, 0.75)))
            begin, stop = start, start + frames
        walkers.append(Walker(sprite, begin, stop, a, b, float(rng.uniform(0.14, 0.34)), float(rng.uniform(0.1, 0.3)),
                              float(rng.uniform(5, 15)), float(rng.uniform(0, 1))))
    return walkers


def _camera(canvas: np.ndarray, width: int, height: int, cx: float, cy: float, zoom: float,
            angle: float) -> np.ndarray:
    """The frame a camera sees of ``canvas``: centred at canvas fraction (cx, cy), magnified
    ``zoom`` times (at 1, the frame's height spans 1 / 1.6 of the canvas's), rolled by
    ``angle`` degrees."""
    ch, cw = canvas.shape[:2]
    scale = zoom * height / ch * 1.6  # the canvas is 1.6x the frame at zoom 1
    m = cv2.getRotationMatrix2D((cx * cw, cy * ch), angle, scale)
    m[0, 2] += width / 2 - cx * cw
    m[1, 2] += height / 2 - cy * ch
    return cv2.warpAffine(canvas, m, (width, height), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def _scene(data: Path, width: int, height: int, sprites: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """A still scene 2.4x the frame's width and 1.6x its height: a background with the
    sprites' faces on it, spread along it, of different sizes."""
    cw, ch = int(width * 2.4), int(height * 1.6)
    canvas = background(data, cw, ch, rng)
    for k, sprite in enumerate(sprites):
        x = (k + 0.5 + rng.uniform(-0.25, 0.25)) / len(sprites) * cw
        y = rng.uniform(0.35, 0.65) * ch
        paste(canvas, sprite, x, y, rng.uniform(0.12, 0.3) * ch, rng.uniform(-10, 10))
    return canvas


def _motion_blur(frame: np.ndarray, length: int, angle: float) -> np.ndarray:
    """A camera moving during the exposure: the average of ``length`` px along ``angle``."""
    if length < 2:
        return frame
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1.0 / length
    m = cv2.getRotationMatrix2D(((length - 1) / 2, (length - 1) / 2), angle, 1.0)
    kernel = cv2.warpAffine(kernel, m, (length, length))
    return cv2.filter2D(frame, -1, kernel / kernel.sum())


def render_clip(kind: str, width: int, height: int, frames: int = 240, seed: int = 0,
                data: Path = SHARED) -> list[np.ndarray]:
    """The frames of one clip (see the module's docstring), uint8 RGB [height, width, 3]."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    rng = np.random.default_rng([seed, KINDS.index(kind)])
    sprites = face_sprites(data, 7, rng)  # each face once per clip
    out = []
    if kind == "pan":
        canvas = _scene(data, width, height, sprites[:5], rng)

        def pose(u: float) -> tuple[float, float, float]:
            """(centre, zoom, roll): left to right and back, with a fast stretch at u 0.55-0.7."""
            fast = 0.12 * math.sin(math.pi * (u - 0.55) / 0.15) if 0.55 <= u < 0.7 else 0.0
            return (0.5 + 0.28 * math.sin(2 * math.pi * u) + fast, 1.0 + 0.4 * math.sin(math.pi * u) ** 2,
                    6 * math.sin(3 * math.pi * u))

        for t in range(frames):
            cx, zoom, roll = pose(t / frames)
            frame = _camera(canvas, width, height, cx, 0.5, zoom, roll)
            # The exposure smears what moves over 4 px a frame (in frame pixels).
            speed = abs(cx - pose(max(0, t - 1) / frames)[0]) * canvas.shape[1] * zoom * height / canvas.shape[0] * 1.6
            out.append(_motion_blur(frame, int(speed) if speed > 4 else 0, roll))
        return out
    if kind == "walk":
        scene = background(data, width, height, rng)
        walkers = _walkers(sprites[:6], frames, rng)
        for t in range(frames):
            shake = rng.normal(0, 0.004 * width, 2)  # a hand-held camera
            m = np.float32([[1, 0, shake[0]], [0, 1, shake[1]]])
            frame = cv2.warpAffine(scene, m, (width, height), borderMode=cv2.BORDER_REFLECT)
            for walker in walkers:
                walker.draw(frame, t)
            out.append(frame)
        return out
    # "cut": scene A (a slow pan over three faces, two walking faces, a defocus), then scene B
    half = frames // 2
    canvas = _scene(data, width, height, sprites[:2], rng)
    walkers = _walkers(sprites[2:4], half, rng)
    scene_b = background(data, width, height, rng)
    walkers_b = _walkers(sprites[4:7], frames - half, rng, start=half)
    for t in range(frames):
        if t < half:
            u = t / half
            frame = _camera(canvas, width, height, 0.35 + 0.3 * u, 0.5, 1.1, 0.0)
            for walker in walkers:
                walker.draw(frame, t)
            focus = max(0.0, 1 - abs(t - 0.4 * half) / 6)  # out of focus for a dozen frames
            if focus > 0:
                frame = cv2.GaussianBlur(frame, (0, 0), 0.004 * width * 3 * focus + 0.1)
        else:
            frame = scene_b.copy()
            for walker in walkers_b:
                walker.draw(frame, t)
        out.append(frame)
    return out
