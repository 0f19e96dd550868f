"""Camera input: any OpenCV source, with stale frames of live sources dropped rather than queued.

A live camera or stream runs on its own clock: a thread keeps reading and holds only the newest
frame, so slow processing skips frames instead of falling behind. A video file has no clock of
its own and is read frame by frame, so every frame is processed.
"""

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from tapelab.core.errors import TapelabError


class CameraError(TapelabError):
    """The camera cannot be opened, or its frames stopped arriving."""


@dataclass(frozen=True)
class Frame:
    index: int  # 0-based count of frames read from the source; gaps are dropped stale frames
    time: float  # seconds since the source was opened
    image: np.ndarray  # BGR


def parse_source(text: str) -> int | str:
    """`"0"` is camera index 0; a `/dev/videoN` path, a video file or a stream URL stay as given."""
    if not text.strip():
        raise CameraError("--camera is empty; give a camera index (0), a /dev/videoN path, a video file or a "
                          "stream URL")
    return int(text) if text.strip().isdigit() else text


def is_live(source: int | str) -> bool:
    return isinstance(source, int) or "://" in source or source.startswith("/dev/video")


def _open_hint(source: int | str) -> str:
    if isinstance(source, int):
        return "is a camera connected and free (not used by another program)? try another index such as --camera 1"
    if "://" in source:
        return "check the URL and that the stream is live"
    if not Path(source).exists():
        return "no such device or file; give a camera index (0), a /dev/videoN path, a video file or a stream URL"
    if Path(source).is_dir():
        return "this is a folder; give a video file in it, a camera index (0) or a /dev/videoN path"
    if source.startswith("/dev/video"):
        return "check that you may read it (the video group) and that no other program holds it"
    return "OpenCV cannot decode this file; give a video it can read (mp4, avi, ...)"


def open_capture(source: int | str) -> cv2.VideoCapture:
    capture = cv2.VideoCapture(source)
    if not capture.isOpened():
        capture.release()
        raise CameraError(f"cannot open camera {source!r}: {_open_hint(source)}")
    return capture


class FrameReader:
    """Frames from an opened capture. `live`: read on a thread and hand out only the newest frame.

    When a live source stops delivering, reading is retried `retries` times `retry_delay`
    seconds apart, then `CameraError` is raised; a video file simply ends (`next_frame` gives None).
    The capture is always released by `close` (or leaving the `with` block).
    """

    def __init__(self, capture, live: bool, name: str = "camera", retries: int = 5, retry_delay: float = 0.2):
        self.capture, self.live, self.name = capture, live, name
        self.retries, self.retry_delay = retries, retry_delay
        self.start = time.perf_counter()
        self._count = 0
        self._latest: Frame | None = None
        self._last_given = -1
        self._failed = False
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read_forever, daemon=True) if live else None
        if self._thread:
            self._thread.start()

    @classmethod
    def open(cls, source: int | str, **options) -> "FrameReader":
        return cls(open_capture(source), live=is_live(source), name=str(source), **options)

    @property
    def fps(self) -> float | None:
        """The source's frame rate when it reports one."""
        rate = self.capture.get(cv2.CAP_PROP_FPS) if hasattr(self.capture, "get") else 0
        return rate if rate and 0 < rate < 1000 else None

    def _read_one(self) -> Frame | None:
        ok, image = self.capture.read()
        if not ok or image is None:
            return None
        frame = Frame(self._count, time.perf_counter() - self.start, image)
        self._count += 1
        return frame

    def _read_forever(self) -> None:
        failures = 0
        try:
            while not self._stop.is_set() and failures <= self.retries:
                frame = self._read_one()
                if frame is None:
                    failures += 1
                    self._stop.wait(self.retry_delay)
                    continue
                failures = 0
                with self._changed:
                    self._latest = frame
                    self._changed.notify_all()
        finally:  # however the thread ends, a waiting reader must wake up
            with self._changed:
                self._failed = True
                self._changed.notify_all()

    def next_frame(self) -> Frame | None:
        """The next frame to process: for live sources the newest one not yet given out."""
        if not self.live:
            return self._read_one()
        with self._changed:
            self._changed.wait_for(lambda: self._failed or (self._latest and self._latest.index > self._last_given))
            if self._latest is None or self._latest.index <= self._last_given:
                raise CameraError(f"frames from camera {self.name!r} stopped arriving ({self.retries} retries "
                                  f"{self.retry_delay:g} s apart); check the cable or the stream and start again")
            self._last_given = self._latest.index
            return self._latest

    def close(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        self.capture.release()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
