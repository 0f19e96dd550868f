"""Benchmark: end-to-end FPS of `tapelab realtime` on a 640x480 video made from real face photos.

    python scripts/bench_realtime.py --faces ../shared/datasets/faces

The video has a part with one face and a part with several faces per frame (square crops around the
faces of the photos), moving and changing size. It is read as the camera (a file: every frame is
processed), with no window, printing to a null stream. Reported: frames per second over the whole
run and per part, and the time per stage (capture, detect, preprocess, classify, output), p50 and p95.
"""

import argparse
import io
import math
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2
import numpy as np

from core.errors import DataError
from core.faces import FaceDetector
from core.io import ensure_writable_dir, save_json, write_atomic
from realtime.app import RealtimeConfig, build_recognizer, run
from realtime.output import annotate
from realtime.timing import StageTimer

WIDTH, HEIGHT = 640, 480
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def face_tiles(folder: Path) -> list[np.ndarray]:
    """From each photo, a square crop around its largest face with room around it (so several fit in a frame)."""
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
    detector = FaceDetector(detect_width=800, min_face=40)
    tiles = []
    for photo in (cv2.imread(str(p)) for p in paths):
        boxes = detector.detect(cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)) if photo is not None else []
        if boxes:
            box = boxes[0]
            side = int(box.width * 2.0)
            x0, y0 = box.x + box.width // 2 - side // 2, box.y + box.height // 2 - side // 2
            padded = cv2.copyMakeBorder(photo, side, side, side, side, cv2.BORDER_REPLICATE)
            tiles.append(padded[y0 + side : y0 + 2 * side, x0 + side : x0 + 2 * side])
    if not tiles:
        raise DataError(f"no photos with a findable face (jpg, png) in {folder}; pass --faces with such a folder")
    return tiles


def _paste(frame: np.ndarray, photo: np.ndarray, center_x: float, height: int) -> None:
    """Paste `photo` scaled to `height` pixels, centred at `center_x`, clipped to the frame."""
    width = max(1, round(photo.shape[1] * height / photo.shape[0]))
    scaled = cv2.resize(photo, (width, height), interpolation=cv2.INTER_AREA)
    left, top = round(center_x - width / 2), (HEIGHT - height) // 2
    x0, x1 = max(left, 0), min(left + width, WIDTH)
    y0, y1 = max(top, 0), min(top + height, HEIGHT)
    if x1 > x0 and y1 > y0:
        frame[y0:y1, x0:x1] = scaled[y0 - top : y1 - top, x0 - left : x1 - left]


def make_frame(tiles: list[np.ndarray], index: int, faces: int) -> np.ndarray:
    """Frame `index` of a scene with `faces` face tiles side by side, swaying and breathing in size."""
    frame = np.full((HEIGHT, WIDTH, 3), 70, np.uint8)
    phase = 2 * math.pi * index / 60
    slot = WIDTH / faces
    largest = min(HEIGHT, slot) * 0.95
    for k in range(faces):
        tile = tiles[(index // 30 + k) % len(tiles)]
        height = round(largest * (0.8 + 0.2 * math.sin(phase + k)))
        sway = 0.5 * (slot - height) * math.sin(phase / 2 + k)
        _paste(frame, tile, slot * (k + 0.5) + sway, height)
    return frame


def write_video(path: Path, tiles, frames_per_part: int, several: int) -> dict:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (WIDTH, HEIGHT))
    parts = {"one face": (0, frames_per_part), f"{several} faces": (frames_per_part, 2 * frames_per_part)}
    for index in range(2 * frames_per_part):
        writer.write(make_frame(tiles, index, 1 if index < frames_per_part else several))
    writer.release()
    return parts


def frame_rates(lines: list[str], parts: dict) -> dict:
    """FPS per part from the frame times printed by the program itself."""
    times = [float(line.split(" t=")[1].split("s ")[0]) for line in lines]
    rates = {}
    for name, (first, end) in parts.items():
        span = times[end - 1] - times[first]
        rates[name] = (end - 1 - first) / span if span > 0 else float("nan")
    return rates


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path, default=Path("../shared/datasets/faces"), help="folder of face photos")
    parser.add_argument("--model", type=Path, help="emotion .h5 (default: the shipped model)")
    parser.add_argument("--frames", type=int, default=300, help="frames per part (one face, several faces)")
    parser.add_argument("--several", type=int, default=3, help="faces per frame in the second part")
    parser.add_argument("--out", type=Path, default=Path("results/bench_realtime"), help="where to write results")
    args = parser.parse_args(argv)
    out = ensure_writable_dir(args.out)
    tiles = face_tiles(args.faces)
    with tempfile.TemporaryDirectory() as folder:
        video = Path(folder) / "faces.avi"
        parts = write_video(video, tiles, args.frames, args.several)
        timer, printed = StageTimer(), io.StringIO()
        start = time.perf_counter()
        run(RealtimeConfig(camera=str(video), model=args.model, window="off"), out=printed, timer=timer)
        seconds = time.perf_counter() - start
        lines = printed.getvalue().splitlines()
    found = [line.count(" at x=") for line in lines]
    result = {
        "command": " ".join(["python", "scripts/bench_realtime.py", *sys.argv[1:]]),
        "cpu_count": os.cpu_count(), "frame_size": [WIDTH, HEIGHT], "frames": len(lines),
        "seconds_with_startup": seconds,
        "fps": frame_rates(lines, {"all": (0, len(lines))})["all"],
        "fps_per_part": frame_rates(lines, parts),
        "faces_found_per_frame": {name: float(np.mean(found[a:b])) for name, (a, b) in parts.items()},
        "stages": timer.summary(),
    }
    save_json(out / "bench_realtime.json", result)
    _save_screenshot(out / "window.png", make_frame(tiles, args.frames + 20, args.several), args.model,
                     result["fps"])
    write_atomic(out / "bench_realtime.md", _markdown(result))
    print(_markdown(result))


def _save_screenshot(path: Path, image: np.ndarray, model_path, fps: float) -> None:
    """What the window shows for one frame with several faces (with the run's FPS), for the README."""
    faces, _ = build_recognizer(RealtimeConfig(model=model_path), StageTimer()).process(image)
    cv2.imwrite(str(path), annotate(image, faces, fps))


def _markdown(result: dict) -> str:
    lines = ["# Realtime pipeline benchmark", "", f"Produced by `{result['command']}` on {result['cpu_count']} CPU "
             f"cores: {result['frames']} frames of {result['frame_size'][0]}x{result['frame_size'][1]} video.", "",
             f"End-to-end **{result['fps']:.1f} FPS** (goal: at least 30, aim 60).", "",
             "| part | FPS | faces found per frame |", "|---|---|---|"]
    lines += [f"| {name} | {fps:.1f} | {result['faces_found_per_frame'][name]:.2f} |"
              for name, fps in result["fps_per_part"].items()]
    lines += ["", "| stage | calls | mean ms | p50 ms | p95 ms |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {s['calls']} | {s['mean_ms']:.2f} | {s['p50_ms']:.2f} | {s['p95_ms']:.2f} |"
              for name, s in result["stages"].items()]
    lines += ["", "Classify: one model call per frame for all its faces (goal: p50 at most 3 ms).",
              "", "![window](window.png)", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
