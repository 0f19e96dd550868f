"""Following faces from frame to frame: a whole-frame search now and then, a search near each face between.

A whole-frame pass of the cascade costs tens of milliseconds at 640x480; searching only a region a
little larger than each known face, for sizes near its own, costs a fraction of that. So the tracker
searches the whole frame every `full_every` frames, and also when the picture changes abruptly (a cut,
a camera moved); in between it looks only near the faces it follows.
A face missed in a frame keeps its last box for up to `hold` frames (marked `missed`), then is dropped.
"""

from dataclasses import dataclass
from itertools import count

import cv2
import numpy as np

from tapelab.core.faces import Box, FaceDetector, inside, overlap


@dataclass
class Track:
    id: int
    box: Box
    missed: int = 0  # frames in a row this face was not found; its box is then the last one seen


class FaceTracker:
    """`update(gray)` -> the faces followed in this frame, largest first.

    `full_every`: frames between whole-frame passes (1: every frame, no region search). `hold`: frames a
    missed face is kept. `margin`: the region searched around a face, in face sides added on every side.
    `cut_threshold`: mean absolute change (grey levels) of a 32x24 thumbnail that counts as a new scene.
    """

    def __init__(self, detector: FaceDetector, full_every: int = 6, hold: int = 2, margin: float = 0.5,
                 cut_threshold: float = 20.0, min_overlap: float = 0.3):
        if full_every < 1 or hold < 0:
            raise ValueError(f"full_every must be at least 1 and hold at least 0, got {full_every} and {hold}")
        self.detector, self.full_every, self.hold, self.margin = detector, full_every, hold, margin
        self.cut_threshold, self.min_overlap = cut_threshold, min_overlap
        self.tracks: list[Track] = []
        self.frames_seen = 0
        self.full_passes = 0
        self._since_full = 0
        self._thumbnail: np.ndarray | None = None
        self._ids = count()

    def _is_cut(self, gray: np.ndarray) -> bool:
        thumbnail = cv2.resize(gray, (32, 24), interpolation=cv2.INTER_AREA).astype(np.int16)
        previous, self._thumbnail = self._thumbnail, thumbnail
        return previous is not None and float(np.abs(thumbnail - previous).mean()) > self.cut_threshold

    def update(self, gray: np.ndarray) -> list[Track]:
        cut = self._is_cut(gray)
        full = cut or self.frames_seen == 0 or self._since_full + 1 >= self.full_every
        self.frames_seen += 1
        if full:
            self.full_passes += 1
            self._since_full = 0
            self._match(self.detector.detect(gray), forget=cut)
        else:
            self._since_full += 1
            self._follow(gray)
        self.tracks = self._without_nested(self.tracks)
        return self.tracks

    @staticmethod
    def _without_nested(tracks: list[Track]) -> list[Track]:
        """Largest first, without nested boxes: faces do not nest, so of two boxes one of which lies mostly
        inside the other, one is the cascade firing on part of a face (a forehead) or on a face with its
        surroundings; the box more neighbouring windows agreed on is kept."""
        kept: list[Track] = []
        for track in sorted(tracks, key=lambda track: (-track.box.score, -track.box.width * track.box.height)):
            if all(inside(track.box, other.box) < 0.5 and inside(other.box, track.box) < 0.5 for other in kept):
                kept.append(track)
        return sorted(kept, key=lambda track: -track.box.width * track.box.height)

    def _match(self, boxes: list[Box], forget: bool) -> None:
        """Give the boxes of a whole-frame pass the ids of the faces they overlap; after a cut, faces not
        found again are dropped at once."""
        unmatched, tracks = list(self.tracks), []
        for box in boxes:
            best = max(unmatched, key=lambda track: overlap(track.box, box), default=None)
            if best is None or overlap(best.box, box) < self.min_overlap:
                best = Track(next(self._ids), box)
            else:
                unmatched.remove(best)
            best.box, best.missed = box, 0
            tracks.append(best)
        self.tracks = tracks + ([] if forget else self._held(unmatched))

    def _follow(self, gray: np.ndarray) -> None:
        """Search near each followed face; a face found where another already is, is the same face."""
        found, missed = [], []
        for track in self.tracks:
            near = [box for box in self.detector.detect_near(gray, track.box, self.margin)
                    if all(overlap(box, other.box) < self.min_overlap for other in found)]
            if near:
                track.box, track.missed = near[0], 0
                found.append(track)
            else:
                missed.append(track)
        self.tracks = found + self._held(missed)

    def _held(self, tracks: list[Track]) -> list[Track]:
        for track in tracks:
            track.missed += 1
        return [track for track in tracks if track.missed <= self.hold]
