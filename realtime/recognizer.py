"""Faces in a frame to emotions: detect, preprocess (the training function), classify in one call.

Each face is followed from frame to frame by the overlap of its boxes, so its probabilities can
be averaged over the last `smooth` analyses and its label does not flicker.
"""

from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from core.faces import Box, FaceDetector
from core.fer import EMOTIONS, preprocess_face
from realtime.timing import StageTimer


@dataclass
class FaceResult:
    box: Box
    probabilities: np.ndarray  # averaged over the face's last `smooth` analyses

    @property
    def label(self) -> str:
        return EMOTIONS[int(self.probabilities.argmax())]

    @property
    def confidence(self) -> float:
        return float(self.probabilities.max())


def overlap(a: Box, b: Box) -> float:
    """Intersection over union of two boxes."""
    width = min(a.x + a.width, b.x + b.width) - max(a.x, b.x)
    height = min(a.y + a.height, b.y + b.height) - max(a.y, b.y)
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    return inter / (a.width * a.height + b.width * b.height - inter)


class _Track:
    def __init__(self, box: Box, smooth: int):
        self.box = box
        self.history: deque = deque(maxlen=smooth)


class EmotionRecognizer:
    """`classify`: faces (n, 48, 48, 1) -> probabilities (n, 7), e.g. `core.lite.LiteModel(model)`.
    `every`: analyse every Nth frame and repeat the last result in between."""

    def __init__(self, classify, detector: FaceDetector, smooth: int = 1, every: int = 1,
                 timer: StageTimer | None = None, min_overlap: float = 0.3):
        self.classify, self.detector = classify, detector
        self.smooth, self.every, self.min_overlap = max(1, smooth), max(1, every), min_overlap
        self.timer = timer or StageTimer()
        self.tracks: list[_Track] = []
        self.frames_seen = 0
        self.last: list[FaceResult] = []

    def process(self, image: np.ndarray) -> tuple[list[FaceResult], bool]:
        """The faces of a BGR frame, largest first, and whether they were analysed in this frame."""
        analyse = self.frames_seen % self.every == 0
        self.frames_seen += 1
        if not analyse:
            return self.last, False
        with self.timer.stage("detect"):
            gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY) if image.ndim == 3 else image
            boxes = self.detector.detect(gray)
        with self.timer.stage("preprocess"):
            faces = np.stack([preprocess_face(box.crop(gray)) for box in boxes]) if boxes else None
        with self.timer.stage("classify"):
            probabilities = np.asarray(self.classify(faces)) if boxes else np.zeros((0, len(EMOTIONS)))
        self.last = self._smooth(boxes, probabilities)
        return self.last, True

    def _smooth(self, boxes: list[Box], probabilities: np.ndarray) -> list[FaceResult]:
        unmatched = list(self.tracks)
        tracks = []
        for box in boxes:
            best = max(unmatched, key=lambda track: overlap(track.box, box), default=None)
            if best is None or overlap(best.box, box) < self.min_overlap:
                best = _Track(box, self.smooth)
            else:
                unmatched.remove(best)
            best.box = box
            tracks.append(best)
        for track, p in zip(tracks, probabilities):
            track.history.append(p)
        self.tracks = tracks  # faces not seen in this frame are forgotten
        return [FaceResult(track.box, np.mean(track.history, axis=0)) for track in tracks]

