"""The video tracker's settings (``TrackerConfig``) and what it did (``TrackerStats``); the
tracker itself is ``track.Tracker``."""

from __future__ import annotations

from dataclasses import dataclass

from .smoothing import OneEuro


@dataclass(frozen=True)
class TrackerConfig:
    """Settings of the video tracker (the detection settings are the detector's).

    detect_every: a full detection every this many frames (1: every frame, as ``detect``).
        A face that appears is reported at the latest in its ``detect_every``-th frame (30: in
        1 s at 30 frames/s). Cost: one full detection per ``detect_every`` frames (30-40 ms at
        640x480 on 2 cores) plus, in the others, one O-Net crop per followed
        face (docs/video.md: 30 takes 2-3 ms a frame less than 10 at 640x480).
    scene_cut: a frame whose colours differ from the previous frame's by more than this is a
        new scene: every face is dropped and a full detection runs at once. The difference is
        the total variation distance (0-1) between the two frames' colour histograms (64x48
        thumbnails, 8 levels per channel). Measured on the benchmark's clips: pans, zooms,
        walking faces and blur up to 0.098 between frames, the cuts 0.32 and 0.48; 1 turns
        the test off.
    match_iou: a detection continues a followed face (keeps its track id) when their boxes
        overlap at least this much (IoU).
    search_margin: the local search covers the face's box grown by this many box sides on
        each side (the face's motion is already allowed for: its box is where it is expected).
    remember: a face no longer found is not reported, but O-Net looks for it again where it
        was for this many frames (one crop a frame); found, it keeps its track id.
    confirm_below: a followed face O-Net scores below this is confirmed by a local search
        (so are faces with over a tenth of their box outside the frame, and faces O-Net
        missed): the faces the per-frame cascade finds only in some frames score 0.7-0.95
        there. 0 turns the score test off; 1 confirms every face in every frame (a search
        costs 3-5 ms at 640x480 on 2 cores).
    confirm_doubted: the same for a face a search once failed to confirm (a face the cascade
        has been seen to miss): it is confirmed whenever O-Net scores it below this.
    smoothing: One Euro filter settings for the reported boxes and points, or None (default:
        off, no lag). Following itself always uses the unsmoothed boxes.
    """

    detect_every: int = 30
    scene_cut: float = 0.2
    match_iou: float = 0.3
    search_margin: float = 0.3
    remember: int = 10
    confirm_below: float = 0.95
    confirm_doubted: float = 0.99
    smoothing: OneEuro | None = None

    def __post_init__(self) -> None:
        if not (isinstance(self.detect_every, int) and self.detect_every >= 1):
            raise ValueError(f"detect_every must be an integer >= 1, got {self.detect_every!r}")
        if not (isinstance(self.scene_cut, (int, float)) and 0 <= self.scene_cut <= 1):
            raise ValueError(f"scene_cut must be a histogram distance in [0, 1], got {self.scene_cut!r}")
        if not (isinstance(self.match_iou, (int, float)) and 0 < self.match_iou <= 1):
            raise ValueError(f"match_iou must be in (0, 1], got {self.match_iou!r}")
        if not (isinstance(self.remember, int) and self.remember >= 0):
            raise ValueError(f"remember must be an integer >= 0 (frames), got {self.remember!r}")
        if not (isinstance(self.search_margin, (int, float)) and 0 <= self.search_margin <= 4):
            raise ValueError(f"search_margin must be in [0, 4] box sides, got {self.search_margin!r}")
        for name in ("confirm_below", "confirm_doubted"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 <= value <= 1):
                raise ValueError(f"{name} must be a face score in [0, 1], got {value!r}")
        if self.smoothing is not None and not isinstance(self.smoothing, OneEuro):
            raise ValueError(f"smoothing must be a smoothing.OneEuro or None, got {self.smoothing!r}")


@dataclass
class TrackerStats:
    """What the tracker did so far: frames seen, full detections run (and why: scheduled,
    scene cuts, after the last face was lost, after two faces came onto one another), faces
    found again by O-Net, local searches (confirming or looking for a face) and the faces
    they found, faces lost."""

    frames: int = 0
    detections: int = 0
    scheduled: int = 0
    scene_cuts: int = 0
    after_loss: int = 0
    after_overlap: int = 0
    followed: int = 0
    searches: int = 0
    found_by_search: int = 0
    lost: int = 0
