"""Benchmark: faces found, false faces and FPS of `tapelab realtime` against a full-resolution Haar pipeline.

    python scripts/bench_realtime.py --faces ../shared/datasets/faces --fer ../shared/datasets/fer2013/test
    python scripts/bench_realtime.py --plot-only      # redraw the curve and the table from the saved JSON

A 640x480 video is generated from face photos (`realtime/scenes.py`: scenes of zero to four faces, 60 to 300
pixels, moving, some drifting partly off the frame edge, blank scenes) with the true face boxes known. The
program's defaults, the plain pipeline (the same cascade on every full-resolution frame, scale factor 1.1,
5 neighbours, the same classifier) and a few other settings each run through the program on that video.
Then the end-to-end emotion accuracy on a video of FER2013 test faces, against the classifier on the same
crops. Results: bench_realtime.{json,md}, curve.png (faces found against FPS) and window.png.
"""

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2
import numpy as np

from tapelab.core.io import ensure_writable_dir, save_json, write_atomic
from tapelab.realtime import benchmark
from tapelab.realtime.benchmark import BASELINE, Setting
from tapelab.realtime.scenes import face_tiles, make_scenes, render, write_video

# "every Nth": the whole frame is searched every Nth frame (and at cuts), only near known faces between.
DEFAULTS = Setting("every 6th (defaults)")
CURVE = [Setting("every frame", full_every=1, hold=0), Setting("every 2nd", full_every=2),
         Setting("every 4th", full_every=4), Setting("every 6th, no hold", hold=0),
         Setting("every 10th", full_every=10), Setting("every 6th, 320 wide", detect_width=320),
         Setting("every frame, 320 wide", full_every=1, detect_width=320, min_face=60, hold=0)]


def _summary(measured: dict) -> dict:
    keys = ("setting", "fps", "faces", "recall", "false_faces", "false_faces_per_frame", "false_face_rate",
            "blank_frames", "blank_false_face_rate", "stages")
    return {key: measured[key] for key in keys}


def detection_runs(args, video: Path, truth, frames, classify, out: Path) -> dict:
    runs = {}
    for setting in [DEFAULTS, BASELINE, *([] if args.quick else CURVE)]:
        measured = benchmark.measure(video, truth, classify, setting)
        print(f"{setting.name}: {measured['fps']:.1f} FPS, found {measured['recall']:.2%} of {measured['faces']} "
              f"faces, frames with a false face {measured['false_face_rate']:.2%}", flush=True)
        if setting is DEFAULTS:
            cv2.imwrite(str(out / "window.png"), benchmark.window_frame(frames, truth, measured["records"]))
        runs[setting.name] = _summary(measured)
    return runs


def emotion_run(args, classify, folder: Path) -> dict:
    rng = np.random.default_rng(args.seed)
    faces, labels = benchmark.fer_faces(args.fer, args.fer_faces, rng)
    generated = list(benchmark.emotion_frames(faces, rng))
    video = folder / "fer.avi"
    truth = write_video(video, ((frame, boxes) for frame, boxes, _ in generated))
    records, _, _ = benchmark.run_pipeline(video, classify, DEFAULTS)
    crops = benchmark.classifier_on_crops(classify, faces, labels)
    return benchmark.emotion_accuracy(records, truth, [group for *_, group in generated], labels, crops)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path, default=Path("../shared/datasets/faces"), help="folder of face photos")
    parser.add_argument("--fer", type=Path, default=Path("../shared/datasets/fer2013/test"),
                        help="FER2013 test faces, EMOTION/*.jpg (skipped when missing)")
    parser.add_argument("--model", type=Path, help="emotion .h5 (default: the shipped model)")
    parser.add_argument("--scenes", type=int, default=40, help="scenes in the face video (30-60 frames each)")
    parser.add_argument("--fer-faces", type=int, default=400, help="FER2013 faces in the emotion video")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="only the defaults and the plain pipeline")
    parser.add_argument("--plot-only", action="store_true", help="redraw curve.png and the .md from the JSON")
    parser.add_argument("--out", type=Path, default=Path("results/bench_realtime"), help="where to write results")
    args = parser.parse_args(argv)
    out = ensure_writable_dir(args.out)
    if not args.plot_only:
        save_json(out / "bench_realtime.json", measure_all(args, out))
    result = benchmark_report(out)
    print(result)


def measure_all(args, out: Path) -> dict:
    from tapelab.core.lite import LiteModel
    from tapelab.train.fer import load_emotion_model

    classify = LiteModel(load_emotion_model(args.model))
    tiles = face_tiles(args.faces)
    scenes = make_scenes(np.random.default_rng(args.seed), len(tiles), args.scenes)
    with tempfile.TemporaryDirectory() as folder:
        video = Path(folder) / "faces.avi"
        frames_and_boxes = list(render(scenes, tiles, seed=args.seed))
        truth = write_video(video, frames_and_boxes)
        runs = detection_runs(args, video, truth, [frame for frame, _ in frames_and_boxes], classify, out)
        emotion = emotion_run(args, classify, Path(folder)) if args.fer.is_dir() else None
    chosen, plain = runs[DEFAULTS.name], runs[BASELINE.name]
    return {"command": " ".join(["python", "scripts/bench_realtime.py", *sys.argv[1:]]),
            "cpu_count": os.cpu_count(), "frame_size": [640, 480], "frames": len(truth),
            "faces": chosen["faces"], "blank_frames": chosen["blank_frames"],
            "fps": chosen["fps"], "recall": chosen["recall"], "false_face_rate": chosen["false_face_rate"],
            "fps_ratio_vs_full_resolution": chosen["fps"] / plain["fps"], "stages": chosen["stages"],
            "faces_found_per_frame": {"true": chosen["faces"] / len(truth),
                                      "defaults": chosen["recall"] * chosen["faces"] / len(truth),
                                      "full resolution": plain["recall"] * plain["faces"] / len(truth)},
            "defaults": DEFAULTS.name, "full_resolution": BASELINE.name, "runs": runs, "emotion": emotion}


def benchmark_report(out: Path) -> str:
    """curve.png and bench_realtime.md from bench_realtime.json."""
    from tapelab.realtime.report import markdown, plot_curve

    result = json.loads((out / "bench_realtime.json").read_text())
    plot_curve(result, out / "curve.png")
    text = markdown(result)
    write_atomic(out / "bench_realtime.md", text)
    return text


if __name__ == "__main__":
    main()
