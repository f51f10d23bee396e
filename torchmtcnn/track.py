"""Following faces through a video: ``Tracker`` (``MTCNN.tracker``), the tracking mode of
``mtcnn video --track``.

Most of a per-frame detection repeats the previous frame's work: the faces are where they
were, give or take a few pixels. So between full detections each known face is found again
by the cascade's own O-Net stage (``Cascade.output``, the very function a detection runs)
on one crop around where it was (its box moved by its last motion), as if R-Net had
proposed that box; O-Net's box regression follows the face. The pyramid, P-Net and R-Net,
most of a detection's cost, are skipped.

The per-frame cascade finds some faces only now and then (half out of the frame, blurred,
turned, small): P-Net proposes them in one frame and not the next, or O-Net takes R-Net's
box for one and not another. Following them in every frame would report faces the
cascade does not. So a face is confirmed by a local search, the cascade itself on a region
around it (P-Net on the frame's own pyramid levels there, ``Cascade.propose_window``, then
R-Net and O-Net), when O-Net scored it below ``confirm_below``, when over a tenth of its
box lies outside the frame, and when O-Net missed it; a face a search once failed to
confirm is held to ``confirm_doubted`` from then on. A face the search does not find is
lost: no longer reported (O-Net still looks for it where it was for ``remember`` frames).
The per-frame cascade would not have found it there either (the search is that cascade on
a window), so a lost face alone is no reason for a full detection; losing the last face is
(nothing is left to follow).

New faces come from full detections (``Cascade.run``, the same call as ``MTCNN.detect``):
every ``detect_every`` frames, at once on a scene cut (the colours of two frames shrunk to
64x48 differ: a pan or a zoom keeps them, a cut changes them), when the last followed face is
lost, and when two followed faces come onto one another. A face that appears is thus reported
at the latest in its ``detect_every``-th frame. Detections are matched to the known
faces by overlap (IoU); a known face a full detection does not find is dropped.

Tracking is the wrong choice for many small faces (each costs an O-Net crop per frame, and a
face below ``min_face_size`` is never followed) and for footage with cuts every few frames
(each cut costs a full detection); ``MTCNN.detect`` per frame is then as fast or faster.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch
from torch import Tensor

from .boxes import box_overlap, clip_boxes, iou_numpy, nms, square
from .cascade import Candidates, Cascade
from .errors import ImageError
from .faces import Faces
from .images import ImageInput, load
from .smoothing import OneEuroFilter
from .track_config import TrackerConfig, TrackerStats

if TYPE_CHECKING:
    from .detector import MTCNN

log = logging.getLogger(__name__)

THUMBNAIL = (64, 48)  # the scene-cut test's frame size (width, height)
# The local search runs R-Net and O-Net only on candidates overlapping the face (IoU over
# this): those elsewhere in its region cannot become it, and cost an O-Net crop each.
NEAR = 0.1
# A face with more of its box than this outside the frame is confirmed by a local search: the
# per-frame cascade finds faces half out of the frame only now and then. (Confirming every
# face that crosses the border at all cost 0.3 ms a frame on the pan clip and no extra face.)
OUTSIDE = 0.1
LEVELS = 8  # the scene-cut test's colour histogram: levels per channel


class Tracker:
    """Faces of a video, frame by frame, each with a track id that stays the same while the
    face is followed.

    detector: the MTCNN whose cascade (networks, backend, settings) does all the work;
    config: TrackerConfig (default: its defaults). Make one with ``MTCNN.tracker(...)``.

    ``update(frame)`` takes one frame (what ``MTCNN.detect`` takes: an RGB uint8 array
    [H, W, 3], a tensor, a path...) and returns its Faces with ``track_ids`` (int64 [N]).
    A frame that cannot be read raises ImageError naming the frame; a frame of another size
    than the one before resets the tracker (every face dropped, logged), as ``reset()`` does.
    ``detected`` says why the last frame got a full detection ("first", "scheduled", "scene
    cut", "lost": the last followed face was not found again, "overlap": two came onto one
    another),
    or None when it got none; ``stats`` counts them (TrackerStats).
    """

    def __init__(self, detector: MTCNN, config: TrackerConfig | None = None) -> None:
        self.cascade: Cascade = detector.cascade
        self.device = detector.device
        self.config = config or TrackerConfig()
        self.stats = TrackerStats()
        self.detected: str | None = None
        self._next_id = 0
        self.reset()

    def reset(self) -> None:
        """Forget every face and the previous frame: the next frame gets a full detection and
        new track ids (ids are never reused)."""
        self._boxes = np.zeros((0, 4))  # the cascade's boxes (pixel indices, unclipped), float64
        self._motion = np.zeros((0, 4))  # per-frame change of each box, smoothed
        self._scores = np.zeros(0)
        self._points = np.zeros((0, 5, 2))
        self._ids = np.zeros(0, np.int64)
        self._missing = np.zeros(0, np.int64)  # frames since each face was last found (0: found now)
        self._filters: dict[int, OneEuroFilter] = {}
        self._doubted: set[int] = set()  # ids of faces a confirming search did not find once
        self._size: tuple[int, int] | None = None
        self._colours: np.ndarray | None = None
        self._since_detection = 0

    def __len__(self) -> int:
        """The number of faces reported in the last frame."""
        return int((self._missing == 0).sum())

    def update(self, frame: ImageInput) -> Faces:
        """The faces of the next frame -> Faces (boxes [N, 4], scores [N], landmarks [N, 5, 2],
        track_ids [N]), by decreasing score."""
        index = self.stats.frames
        try:
            pixels = load(frame)
        except ImageError as exc:
            raise ImageError(f"Tracker.update: frame {index}: {exc}") from None
        image = (pixels if isinstance(pixels, Tensor) else torch.from_numpy(pixels)).to(self.device)
        size = (int(image.shape[0]), int(image.shape[1]))
        if self._size is not None and size != self._size:
            log.warning("frame %d is %dx%d, the frames before %dx%d: tracker reset", index, size[1], size[0],
                        self._size[1], self._size[0])
            self.reset()
        self.stats.frames += 1
        colours = _colours(pixels)
        cut = self._colours is not None and 0.5 * float(np.abs(colours - self._colours).sum()) > self.config.scene_cut
        self._colours = colours
        if cut:  # another scene: nobody in it is anybody of the last one
            self.stats.scene_cuts += 1
            self._keep(np.zeros(0, np.int64))
        self.detected = "first" if self._size is None else "scene cut" if cut else None
        if self.detected is None and self._since_detection + 1 >= self.config.detect_every:
            self.detected = "scheduled"
            self.stats.scheduled += 1
        self._size = size
        if self.detected is not None:
            self._detect(image, followed=False)
        else:
            self._since_detection += 1
            self.detected = self._follow(image)
            if self.detected is not None:
                self.stats.after_loss += self.detected == "lost"
                self.stats.after_overlap += self.detected == "overlap"
                self._detect(image, followed=True)
        return self._faces(size)

    # --- the three ways faces are found ---------------------------------------------------

    def _detect(self, image: Tensor, followed: bool) -> None:
        """A full detection. Its faces continue the known ones whose box in this frame
        (``followed``: found or coasted by ``_follow`` already, else expected from the last
        frame's) they overlap most; the others are new faces. A known face it does not find
        is no longer reported, and is remembered (tried again by O-Net) for ``remember``
        frames."""
        self.stats.detections += 1
        self._since_detection = 0
        found = self.cascade.run([image])
        k = len(self._ids)
        if len(found) and found.landmarks is not None:
            boxes, scores = found.boxes.cpu().numpy(), found.scores.cpu().numpy()
            points = found.landmarks.cpu().numpy()
        else:
            boxes, scores, points = np.zeros((0, 4)), np.zeros(0), np.zeros((0, 5, 2))
        where = self._boxes if followed else self._boxes + self._motion
        overlap = iou_numpy(boxes, where) if k and len(boxes) else np.zeros((len(boxes), k))
        matched = np.zeros(k, bool)
        new = np.ones(len(boxes), bool)
        while overlap.size and overlap.max() >= self.config.match_iou:
            d, t = np.unravel_index(int(overlap.argmax()), overlap.shape)
            if not followed:
                self._motion[t] = 0.5 * self._motion[t] + 0.5 * (boxes[d] - self._boxes[t])
            self._boxes[t], self._scores[t], self._points[t] = boxes[d], scores[d], points[d]
            self._missing[t] = 0
            matched[t], new[d] = True, False
            overlap[d, :] = overlap[:, t] = -1
        self._missing[~matched & (self._missing == 0)] = 1
        n = int(new.sum())
        ids = np.arange(self._next_id, self._next_id + n)
        self._next_id += n
        self._set(np.concatenate([self._boxes, boxes[new]]), np.concatenate([self._motion, np.zeros((n, 4))]),
                  np.concatenate([self._scores, scores[new]]), np.concatenate([self._points, points[new]]),
                  np.concatenate([self._ids, ids]), np.concatenate([self._missing, np.zeros(n, np.int64)]))
        self._forget()

    def _follow(self, image: Tensor) -> str | None:
        """Each known face again where it is expected (its box moved by its motion): O-Net on
        it, as the cascade runs O-Net on an R-Net box, then the local search (``_search``) for
        a reported face O-Net misses and for a face O-Net finds only weakly (score below
        ``confirm_below``, ``confirm_doubted`` for a face a search failed to confirm before)
        or over a tenth out of the frame, where the per-frame cascade finds faces only now and
        then. Returns why a full detection must run: "lost" (no face is left: the
        last ones were not found), "overlap" (two reported faces came onto one another: the
        cascade judges which are faces), or None."""
        k = len(self._ids)
        if k == 0:
            return None
        h, w = self._size or (0, 0)
        expected = self._boxes + self._motion
        squares = square(torch.from_numpy(expected))
        in_frame = ((squares[:, 2] > 0) & (squares[:, 3] > 0) & (squares[:, 0] < w) & (squares[:, 1] < h)).numpy()
        visible = self._missing == 0
        ask = np.flatnonzero(in_frame)
        found = np.zeros(k, bool)
        boxes, scores, points = expected.copy(), self._scores.copy(), self._points.copy()
        if len(ask):
            candidates = Candidates(
                torch.zeros(len(ask), dtype=torch.long, device=self.device), squares[ask].to(self.device),
                torch.from_numpy(self._scores[ask]).to(self.device), group=torch.from_numpy(ask).to(self.device))
            out = self.cascade.output([image], candidates)
            if len(out) and out.landmarks is not None and out.group is not None:
                which = out.group.cpu().numpy()
                boxes[which], scores[which] = out.boxes.cpu().numpy(), out.scores.cpu().numpy()
                points[which] = out.landmarks.cpu().numpy()
                found[which] = True
        self.stats.followed += int(found.sum())
        bw, bh = boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1
        inside_w = np.clip(np.minimum(boxes[:, 2], w - 1) - np.maximum(boxes[:, 0], 0) + 1, 0, None)
        inside_h = np.clip(np.minimum(boxes[:, 3], h - 1) - np.maximum(boxes[:, 1], 0) + 1, 0, None)
        outside = inside_w * inside_h < (1 - OUTSIDE) * bw * bh
        doubted = np.isin(self._ids, list(self._doubted))
        confirm = np.where(doubted, self.config.confirm_doubted, self.config.confirm_below)
        doubtful = (~found & visible) | (found & ((scores < confirm) | outside))
        for t in np.flatnonzero(doubtful):
            self.stats.searches += 1
            again = self._search(image, boxes[t])
            if again is None:
                self._doubted.add(int(self._ids[t]))
                found[t] = False
                boxes[t], scores[t], points[t] = expected[t], self._scores[t], self._points[t]
            else:
                self.stats.found_by_search += 1
                boxes[t], scores[t], points[t] = again
                found[t] = True
        # A face not found coasts along its motion, slowing down, while it is remembered.
        motion = np.where(found[:, None], 0.5 * self._motion + 0.5 * (boxes - self._boxes), 0.5 * self._motion)
        missing = np.where(found, 0, self._missing + 1)
        lost = int((~found & visible).sum())
        self.stats.lost += lost
        self._set(boxes, motion, scores, points, self._ids, missing)
        if lost and not (missing == 0).any():  # nothing left to follow: look everywhere, at once
            return "lost"
        shown = np.flatnonzero(self._missing == 0)
        if len(shown) > 1:
            overlap = box_overlap(torch.from_numpy(boxes[shown]), torch.from_numpy(boxes[shown]), "min", offset=1.0)
            if bool((overlap.triu(1) > self.cascade.config.nms_onet).any()):
                return "overlap"
        self._forget()
        return None

    def _search(self, image: Tensor, box: np.ndarray) -> tuple[np.ndarray, float, np.ndarray] | None:
        """The per-frame cascade on a region around ``box`` (float64 [4]): P-Net on the
        frame's own pyramid levels there (``propose_window``), those whose 12 px window spans
        half to one side of the box, or ``min_face_size`` (P-Net proposes a face from the
        levels where it fills the window: the wider ones cost 0.5-1 ms a frame on the clips
        and changed no face), then
        R-Net and O-Net -> the found face that overlaps ``box`` most (box, score, points), or
        None."""
        h, w = int(image.shape[0]), int(image.shape[1])
        side = float(max(box[2] - box[0], box[3] - box[1]))
        margin = self.config.search_margin * side
        x0, y0 = max(0, math.floor(box[0] - margin)), max(0, math.floor(box[1] - margin))
        x1, y1 = min(w, math.ceil(box[2] + margin)), min(h, math.ceil(box[3] + margin))
        if x1 - x0 < 12 or y1 - y0 < 12:
            return None
        widest = max(side, self.cascade.config.min_face_size)
        found = self.cascade.propose_window(image, (x0, y0, x1, y1), side / 2, widest)
        # R-Net and O-Net only on the candidates that may still become this face (those
        # overlapping it): R-Net's survivors elsewhere in the region cost an O-Net crop each.
        found = self._near(found, box)
        if len(found):
            found = self._near(self.cascade.refine([image], found), box)
        if len(found):
            found = self.cascade.output([image], found)
        if len(found) == 0 or found.landmarks is None:
            return None
        boxes = found.boxes.cpu().numpy()
        overlap = iou_numpy(boxes, box[None])[:, 0]
        best = int(overlap.argmax())
        if overlap[best] < self.config.match_iou:
            return None
        return boxes[best], float(found.scores[best]), found.landmarks[best].cpu().numpy()

    def _near(self, c: Candidates, box: np.ndarray) -> Candidates:
        """The candidates overlapping ``box`` (float64 [4]) by IoU over NEAR."""
        if len(c) == 0:
            return c
        near = np.flatnonzero(iou_numpy(c.boxes.cpu().numpy(), box[None])[:, 0] > NEAR)
        return c.select(torch.from_numpy(near).to(self.device))

    # --- the state --------------------------------------------------------------------------

    def _set(self, boxes: np.ndarray, motion: np.ndarray, scores: np.ndarray, points: np.ndarray,
             ids: np.ndarray, missing: np.ndarray) -> None:
        self._boxes, self._motion, self._scores = boxes.astype(np.float64), motion, scores.astype(np.float64)
        self._points, self._ids, self._missing = points.astype(np.float64), ids, missing

    def _keep(self, keep: np.ndarray) -> None:
        """Keep the known faces at positions ``keep`` (int64 [K]) and forget the others."""
        for i in set(self._ids.tolist()) - set(self._ids[keep].tolist()):
            self._filters.pop(i, None)
            self._doubted.discard(i)
        self._set(self._boxes[keep], self._motion[keep], self._scores[keep], self._points[keep], self._ids[keep],
                  self._missing[keep])

    def _forget(self) -> None:
        """Forget the faces missing for over ``remember`` frames, and of two known faces that
        came onto one face the weaker, as the cascade's last NMS would (intersection over the
        smaller box; a reported face before a missing one, then the higher score)."""
        keep = np.flatnonzero(self._missing <= self.config.remember)
        if len(keep) > 1:
            rank = torch.from_numpy((self._missing[keep] == 0) * 2.0 + self._scores[keep])
            kept = nms(torch.from_numpy(self._boxes[keep]), rank, self.cascade.config.nms_onet, mode="min", offset=1.0)
            keep = keep[np.sort(kept.numpy())]
        if len(keep) < len(self._ids):
            self._keep(keep)

    def _faces(self, size: tuple[int, int]) -> Faces:
        """The reported faces (found in this frame), by decreasing score."""
        shown = np.flatnonzero(self._missing == 0)
        order = shown[np.argsort(-self._scores[shown], kind="stable")]
        boxes, points, ids = self._boxes[order], self._points[order], self._ids[order]
        if self.config.smoothing is not None:
            boxes, points = boxes.copy(), points.copy()
            for k, i in enumerate(ids.tolist()):
                smoother = self._filters.setdefault(i, OneEuroFilter(self.config.smoothing))
                side = float(max(boxes[k, 2] - boxes[k, 0], boxes[k, 3] - boxes[k, 1]))
                both = smoother(np.concatenate([boxes[k], points[k].reshape(-1)]), side)
                boxes[k], points[k] = both[:4], both[4:].reshape(5, 2)
        clipped = clip_boxes(torch.from_numpy(boxes), size[1], size[0]).numpy()
        return Faces(clipped.astype(np.float32), self._scores[order].astype(np.float32), points.astype(np.float32),
                     size, track_ids=ids.copy())


def _colours(pixels: np.ndarray | Tensor) -> np.ndarray:
    """uint8 RGB [H, W, 3] -> float64 [LEVELS**3], the share of a 64x48 thumbnail's pixels
    in each colour bin: the scene-cut test's view of a frame (0.03 ms at 640x480)."""
    array = pixels.cpu().numpy() if isinstance(pixels, Tensor) else pixels
    small = cv2.resize(array, THUMBNAIL, interpolation=cv2.INTER_LINEAR).astype(np.int32) * LEVELS >> 8
    code = (small[..., 0] * LEVELS + small[..., 1]) * LEVELS + small[..., 2]
    return np.bincount(code.ravel(), minlength=LEVELS**3) / code.size
