"""`tapelab realtime`: emotions of the faces in a camera stream, one line per frame."""

from pathlib import Path

from tapelab.core.config import at_least
from tapelab.realtime.app import RealtimeConfig

DEFAULTS = RealtimeConfig()


def cmd_realtime(args) -> int:
    from tapelab.realtime.app import run

    window = "off" if args.no_window else "on" if args.window else "auto"
    config = RealtimeConfig(camera=args.camera, model=args.model, json=args.json, window=window, smooth=args.smooth,
                            every=args.every, max_frames=args.max_frames, output=args.output,
                            detect_width=args.detect_width, min_face=args.min_face, retries=args.retries,
                            full_every=args.full_every, hold=args.hold)
    return run(config)


def add_realtime_parser(commands) -> None:
    parser = commands.add_parser(
        "realtime", help="classify the faces of a camera stream in real time",
        description="Read frames from a camera, find the faces (OpenCV Haar cascade), classify their emotion with "
        "the .h5 model and print one line per frame: frame number, time, FPS, and per face label, confidence and "
        "box (or 'no face'). Stop with Ctrl-C (or SIGTERM), q in the window, or at the end of a video file.")
    parser.add_argument("--camera", default=DEFAULTS.camera,
                        help="camera index (0), /dev/videoN path, video file or stream URL (default: %(default)s)")
    parser.add_argument("--model", type=Path, help="emotion .h5 model (default: the shipped models/fer2013_emotion.h5)")
    parser.add_argument("--json", action="store_true", help="print one JSON object per frame, for other programs")
    shown = parser.add_mutually_exclusive_group()
    shown.add_argument("--no-window", action="store_true", help="never open a window (default: open one when a "
                       "display answers, else run without one and say so on stderr)")
    shown.add_argument("--window", action="store_true", help="open a window with boxes, labels and FPS; an error "
                       "if no display answers")
    parser.add_argument("--smooth", type=at_least(1), default=DEFAULTS.smooth,
                        help="average each face's probabilities over its last N analyses (default: %(default)s)")
    parser.add_argument("--every", type=at_least(1), default=DEFAULTS.every,
                        help="analyse every Nth frame and repeat the result in between (default: %(default)s)")
    parser.add_argument("--max-frames", type=at_least(0), default=DEFAULTS.max_frames,
                        help="stop after N frames; 0: no limit (default: %(default)s)")
    parser.add_argument("--output", type=Path, help="save the annotated stream as a video (.mp4 or .avi, "
                        "in an existing folder; checked before the camera opens)")
    parser.add_argument("--detect-width", type=at_least(1), default=DEFAULTS.detect_width,
                        help="frames are shrunk to this width to find faces; smaller is faster (default: %(default)s)")
    parser.add_argument("--min-face", type=at_least(1), default=DEFAULTS.min_face,
                        help="smallest face side in frame pixels; smaller finds far faces but is slower "
                        "(default: %(default)s)")
    parser.add_argument("--full-every", type=at_least(1), default=DEFAULTS.full_every,
                        help="search the whole frame every Nth frame (and at scene cuts); in between only near the "
                        "faces already found, which is faster (default: %(default)s)")
    parser.add_argument("--hold", type=at_least(0), default=DEFAULTS.hold,
                        help="frames a face the search missed keeps its box and label (default: %(default)s)")
    parser.add_argument("--retries", type=at_least(0), default=DEFAULTS.retries,
                        help="read retries before a camera that stopped sending counts as lost (default: %(default)s)")
    parser.set_defaults(run=cmd_realtime)
