"""`tapelab realtime`: the loop that ties camera, recognizer and output together.

The model is loaded and traced before the camera opens, so a bad model file fails fast and the
first frame is not slow. Ctrl-C, `q` in the window or the end of a video file stop the loop;
the camera, the window and the video file are closed whatever happens.
"""

import sys
from dataclasses import dataclass
from pathlib import Path

from core.faces import FaceDetector
from realtime.capture import FrameReader, parse_source
from realtime.output import VideoOutput, annotate, json_line, open_window, text_line
from realtime.recognizer import EmotionRecognizer
from realtime.timing import FpsMeter, StageTimer


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
    detect_width: int = 320
    min_face: int = 60
    retries: int = 5


def build_recognizer(config: RealtimeConfig, timer: StageTimer) -> EmotionRecognizer:
    from core.lite import LiteModel
    from train.fer import load_emotion_model

    classify = LiteModel(load_emotion_model(config.model))  # converted and allocated now, not on a face
    return EmotionRecognizer(classify, FaceDetector(config.detect_width, config.min_face),
                             smooth=config.smooth, every=config.every, timer=timer)


def run(config: RealtimeConfig, out=sys.stdout, timer: StageTimer | None = None) -> int:
    """Process frames until the source ends, `max_frames` is reached or the user stops; 0 on success."""
    timer = timer or StageTimer()
    recognizer = build_recognizer(config, timer)
    window = None if config.window == "off" else open_window(force=config.window == "on")
    video = None
    meter = FpsMeter()
    count = 0
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
        print("tapelab realtime: stopped", file=sys.stderr)
    finally:
        if video:
            video.close()
        if window:
            window.close()
    print(f"tapelab realtime: {count} frames", file=sys.stderr)
    return 0

