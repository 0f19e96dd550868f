"""`tapelab realtime`: the loop that ties camera, recognizer and output together.

The output video's folder and format, the window and the model are checked (the model loaded and
traced) before the camera opens, so a bad setting fails fast and the first frame is not slow.
Ctrl-C, SIGTERM, `q` in the window or the end of a video file stop the loop; the camera, the window
and the video file are closed whatever happens.
"""

import signal
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from tapelab.core.errors import ConfigError
from tapelab.core.faces import FaceDetector
from tapelab.realtime.capture import FrameReader, parse_source
from tapelab.realtime.output import VideoOutput, Window, annotate, check_video_path, choose_window, json_line, text_line
from tapelab.realtime.recognizer import EmotionRecognizer
from tapelab.realtime.timing import FpsMeter, StageTimer
from tapelab.realtime.tracking import FaceTracker


@dataclass
class RealtimeConfig:
    """The program's settings; `scripts/realtime_cli.py` documents each option."""

    camera: str = "0"
    model: Path | None = None
    json: bool = False
    window: str = "auto"  # auto: when a display exists; on; off
    smooth: int = 1
    every: int = 1
    max_frames: int = 0  # 0: no limit
    output: Path | None = None
    detect_width: int = 640  # frames wider are shrunk for the whole-frame search (0: never)
    min_face: int = 48  # smallest face side found, in frame pixels
    full_every: int = 6  # frames between whole-frame searches; between them only near known faces
    hold: int = 2  # frames a face missed by the search keeps its box and label
    retries: int = 5

    def __post_init__(self):
        parse_source(self.camera)  # an empty --camera fails here, before the model loads
        if self.window not in ("auto", "on", "off"):
            raise ConfigError(f"window must be auto, on or off, got {self.window!r}")
        for name, minimum in (("smooth", 1), ("every", 1), ("detect_width", 0), ("min_face", 0),
                              ("full_every", 1), ("hold", 0), ("max_frames", 0), ("retries", 0)):
            if getattr(self, name) < minimum:
                raise ConfigError(f"--{name.replace('_', '-')} must be at least {minimum}, got {getattr(self, name)}")


def build_tracker(config: RealtimeConfig) -> FaceTracker:
    return FaceTracker(FaceDetector(config.detect_width, config.min_face), full_every=config.full_every,
                       hold=config.hold)


def build_recognizer(config: RealtimeConfig, timer: StageTimer, tracker: FaceTracker | None = None,
                     classify=None) -> EmotionRecognizer:
    """The recognizer of `config`; `tracker` and `classify` replace the configured ones (the benchmark runs
    other detection settings with the same classifier)."""
    if classify is None:
        from tapelab.core.lite import LiteModel
        from tapelab.train.fer import load_emotion_model

        classify = LiteModel(load_emotion_model(config.model))  # converted and allocated now, not on a face
    return EmotionRecognizer(classify, tracker or build_tracker(config), smooth=config.smooth, every=config.every,
                             timer=timer)


class _SigtermAsCtrlC:
    """While the loop runs, SIGTERM raises KeyboardInterrupt, so it leaves by Ctrl-C's path: the camera is
    released and the video finished. Once shutting down (`disarm`), a further SIGTERM is ignored so the
    cleanup completes. Signal handlers can only be set from the main thread; elsewhere nothing changes."""

    def __init__(self):
        self.armed, self.previous = False, None

    def __enter__(self) -> "_SigtermAsCtrlC":
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGTERM, self._handle)
        self.armed = True
        return self

    def _handle(self, signum, frame):
        if self.armed:
            self.armed = False
            raise KeyboardInterrupt

    def disarm(self) -> None:
        self.armed = False

    def __exit__(self, *exc_info):
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, signal.SIG_DFL if self.previous is None else self.previous)


def run(config: RealtimeConfig, out=sys.stdout, timer: StageTimer | None = None,
        recognizer: EmotionRecognizer | None = None) -> int:
    """Process frames until the source ends, `max_frames` is reached or the user stops (Ctrl-C, SIGTERM, the
    window); 0 on success. The output video and the window are checked before the model loads. `recognizer`
    (with `timer` as its timer) replaces the one `config` describes."""
    timer = timer or StageTimer()
    if config.output:
        check_video_path(config.output)
    show_window = choose_window(config.window)
    recognizer = recognizer or build_recognizer(config, timer)
    window = Window() if show_window else None
    video = None
    meter = FpsMeter()
    count = 0
    with _SigtermAsCtrlC() as stop_signal:
        try:
            with FrameReader.open(parse_source(config.camera), retries=config.retries) as reader:
                while not config.max_frames or count < config.max_frames:
                    with timer.stage("capture"):
                        frame = reader.next_frame()
                    if frame is None:
                        break
                    faces, analysed = recognizer.process(frame.image)
                    fps = meter.tick()
                    count += 1
                    with timer.stage("output"):
                        print(json_line(frame, faces, fps, analysed) if config.json else text_line(frame, faces, fps),
                              file=out, flush=True)
                        if window or config.output:
                            shown = annotate(frame.image, faces, fps)
                            if config.output and video is None:
                                video = VideoOutput(config.output, reader.fps or 30.0, shown.shape[1::-1])
                            if video:
                                video.write(shown)
                            if window and not window.show(shown):
                                break
        except KeyboardInterrupt:
            stop_signal.disarm()
            print("tapelab realtime: stopped", file=sys.stderr)
        finally:
            stop_signal.disarm()
            if video:
                video.close()
            if window:
                window.close()
    print(f"tapelab realtime: {count} frames", file=sys.stderr)
    return 0
