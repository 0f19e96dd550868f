"""Faces in a frame to emotions: find (`realtime/tracking.py`), preprocess (the training function), classify
in one call.

Each face keeps an id while the tracker follows it, so its probabilities can be averaged over its last
`smooth` analyses and its label does not flicker. A face the tracker holds for a frame or two after
missing it keeps its last box and label and is not classified again.
"""

from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np

from tapelab.core.faces import Box
from tapelab.core.fer import EMOTIONS, preprocess_face
from tapelab.realtime.timing import StageTimer
from tapelab.realtime.tracking import FaceTracker


@dataclass
class FaceResult:
    box: Box
    probabilities: np.ndarray  # averaged over the face's last `smooth` analyses
    held: bool = False  # not found in this frame: the last box and label, kept for a frame or two

    @property
    def label(self) -> str:
        return EMOTIONS[int(self.probabilities.argmax())]

    @property
    def confidence(self) -> float:
        return float(self.probabilities.max())


class EmotionRecognizer:
    """`classify`: faces (n, 48, 48, 1) -> probabilities (n, 7), e.g. `core.lite.LiteModel(model)`.
    `tracker`: finds and follows the faces. `every`: analyse every Nth frame and repeat the last result
    in between."""

    def __init__(self, classify, tracker: FaceTracker, smooth: int = 1, every: int = 1,
                 timer: StageTimer | None = None):
        self.classify, self.tracker = classify, tracker
        self.smooth, self.every = max(1, smooth), max(1, every)
        self.timer = timer or StageTimer()
        self.history: dict[int, deque] = {}
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
            tracks = self.tracker.update(gray)
        seen = [track for track in tracks if not track.missed]
        with self.timer.stage("preprocess"):
            faces = np.stack([preprocess_face(track.box.crop(gray)) for track in seen]) if seen else None
        with self.timer.stage("classify"):
            probabilities = np.asarray(self.classify(faces)) if seen else np.zeros((0, len(EMOTIONS)))
        for track, p in zip(seen, probabilities):
            self.history.setdefault(track.id, deque(maxlen=self.smooth)).append(p)
        self.history = {track.id: self.history[track.id] for track in tracks if track.id in self.history}
        self.last = [FaceResult(track.box, np.mean(self.history[track.id], axis=0), held=bool(track.missed))
                     for track in tracks if track.id in self.history]
        return self.last, True
