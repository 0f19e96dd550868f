"""Measuring the realtime program on generated videos: faces found, false faces, FPS and emotions, side by side
with a plain full-resolution pipeline. `scripts/bench_realtime.py` is the command; this is the library.

Every pipeline runs through the program itself (`realtime.app.run`: the video file read as the camera, JSON
lines printed to a string), so the FPS counts capture, detection, preprocessing, classification and output.
All pipelines share one classifier, so they differ only in how they find faces.
"""

import io
import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from tapelab.core.faces import Box, FaceDetector
from tapelab.core.fer import EMOTIONS, KAGGLE_FOLDERS, preprocess_face
from tapelab.realtime.app import RealtimeConfig, build_recognizer, build_tracker, run
from tapelab.realtime.evaluate import Tally
from tapelab.realtime.output import annotate
from tapelab.realtime.recognizer import FaceResult
from tapelab.realtime.scenes import background, paste
from tapelab.realtime.timing import StageTimer
from tapelab.realtime.tracking import FaceTracker


@dataclass(frozen=True)
class Setting:
    """One way to find faces: the tracker's settings, or `baseline` (a full-resolution cascade pass on every
    frame, scale factor 1.1, 5 neighbours, no smallest size: what the popular `fer` package does)."""

    name: str
    full_every: int = 6
    detect_width: int = 640
    min_face: int = 48
    hold: int = 2
    baseline: bool = False

    def tracker(self) -> FaceTracker:
        if self.baseline:
            return FaceTracker(FaceDetector(detect_width=0, min_face=0), full_every=1, hold=0)
        return build_tracker(RealtimeConfig(full_every=self.full_every, detect_width=self.detect_width,
                                            min_face=self.min_face, hold=self.hold))


BASELINE = Setting("full-resolution Haar (fer)", baseline=True)


def run_pipeline(video: Path, classify, setting: Setting) -> tuple[list[dict], StageTimer, float]:
    """The program's JSON records for every frame of `video`, its stage times, and its FPS (from the frame
    times it printed, so start-up is not counted)."""
    timer = StageTimer()
    recognizer = build_recognizer(RealtimeConfig(), timer, tracker=setting.tracker(), classify=classify)
    printed = io.StringIO()
    run(RealtimeConfig(camera=str(video), window="off", json=True), out=printed, timer=timer, recognizer=recognizer)
    records = [json.loads(line) for line in printed.getvalue().splitlines()]
    span = records[-1]["time"] - records[0]["time"]
    return records, timer, (len(records) - 1) / span if span > 0 else float("nan")


def boxes_of(record: dict) -> list[Box]:
    return [Box(*face["box"]) for face in record["faces"]]


def score(records: list[dict], truth: list[list[Box]], size=(640, 480)) -> dict:
    tally = Tally()
    for record, boxes in zip(records, truth, strict=True):
        tally.add(boxes_of(record), boxes, *size)
    return tally.summary()


def measure(video: Path, truth, classify, setting: Setting) -> dict:
    records, timer, fps = run_pipeline(video, classify, setting)
    return {"setting": setting.__dict__, "fps": fps, **score(records, truth), "stages": timer.summary(),
            "records": records}


def window_frame(frames: list[np.ndarray], truth, records: list[dict], size=(640, 480)) -> np.ndarray:
    """What the window shows for the frame with the most faces (largest spread of sizes on ties) where
    every face was found and no false face reported."""
    best, best_key = 0, (-1, -1)
    for index, (boxes, record) in enumerate(zip(truth, records)):
        tally = Tally()
        tally.add(boxes_of(record), boxes, *size)
        if tally.found == tally.faces == len(boxes) and not tally.false_faces and boxes:
            key = (len(boxes), max(b.width for b in boxes) - min(b.width for b in boxes))
            if key > best_key:
                best, best_key = index, key
    record = records[best]
    faces = [FaceResult(Box(*face["box"]), np.array([face["probabilities"][name] for name in EMOTIONS]))
             for face in record["faces"]]
    return annotate(frames[best], faces, record["fps"])


def fer_faces(data_dir: Path, count: int, rng: np.random.Generator) -> tuple[list[np.ndarray], list[int]]:
    """`count` faces drawn at random from the FER2013 test split (folders EMOTION/*.jpg), with their labels
    in the product's order."""
    paths = [(path, label) for label, folder in enumerate(KAGGLE_FOLDERS)
             for path in sorted((data_dir / folder).glob("*.jpg"))]
    chosen = rng.choice(len(paths), size=min(count, len(paths)), replace=False)
    return [cv2.imread(str(paths[i][0]), cv2.IMREAD_GRAYSCALE) for i in chosen], [paths[i][1] for i in chosen]


def emotion_frames(faces: list[np.ndarray], rng: np.random.Generator, per_frame: int = 4, frames_each: int = 5,
                   size=(640, 480)):
    """Yield (frame, true boxes, face indices): the faces `per_frame` at a time on a 2x2 grid, each enlarged to
    100-200 pixels and drifting slowly for `frames_each` frames."""
    width, height = size
    for first in range(0, len(faces), per_frame):
        group = list(range(first, min(first + per_frame, len(faces))))
        ground = background(rng, size)
        sides = rng.uniform(100, 200, len(group))
        drift = rng.uniform(-2, 2, (len(group), 2))
        for t in range(frames_each):
            frame, boxes = ground.copy(), []
            for k, index in enumerate(group):
                x, y = width * (k % 2 + 0.5) / 2 + drift[k, 0] * t, height * (k // 2 + 0.5) / 2 + drift[k, 1] * t
                face = cv2.cvtColor(faces[index], cv2.COLOR_GRAY2BGR)
                boxes.append(paste(frame, face, x, y, sides[k], margin=1.0))  # a FER image is all face
            yield frame, boxes, group


def emotion_accuracy(records: list[dict], truth, groups, labels: list[int], crops_correct: list[bool],
                     size=(640, 480)) -> dict:
    """Per face and frame: found, and found with the right emotion; against the classifier on the crops."""
    shown = found = right = 0
    for record, boxes, group in zip(records, truth, groups, strict=True):
        tally = Tally()
        matched = tally.add(boxes_of(record), boxes, *size)
        for index, face in zip(group, matched):
            shown += 1
            if face is not None:
                found += 1
                right += record["faces"][face]["label"] == EMOTIONS[labels[index]]
    return {"faces_shown": shown, "found": found / shown, "right_emotion": right / shown,
            "classifier_on_crops": float(np.mean(crops_correct))}


def classifier_on_crops(classify, faces: list[np.ndarray], labels: list[int]) -> list[bool]:
    probabilities = np.concatenate([np.asarray(classify(np.stack([preprocess_face(f) for f in faces[i : i + 8]])))
                                    for i in range(0, len(faces), 8)])
    return list(probabilities.argmax(axis=1) == np.asarray(labels))
