"""The realtime program on a short video the test writes itself (a face photo and empty frames); finding and
following faces on small generated frames; the benchmark's scoring and scenes."""

import io
import itertools
import json
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from tapelab.core.faces import Box, FaceDetector
from tapelab.core.fer import EMOTIONS, preprocess_face
from tapelab.realtime import capture
from tapelab.realtime.app import RealtimeConfig, run
from tapelab.realtime.capture import FrameReader
from tapelab.realtime.output import open_window
from tapelab.realtime.recognizer import EmotionRecognizer
from tapelab.realtime.tracking import FaceTracker
from tapelab.scripts.cli import main

ASTRONAUT = Path(__file__).parent / "fixtures" / "astronaut.png"
FACE_FRAMES, EMPTY_FRAMES = 4, 2


def _face_frame(shift: int) -> np.ndarray:
    frame = np.full((480, 640, 3), 90, np.uint8)
    frame[:, 80 + shift : 560 + shift] = cv2.resize(cv2.imread(str(ASTRONAUT)), (480, 480))
    return frame


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    """Four frames with the astronaut (moving right), then two without a face."""
    path = tmp_path_factory.mktemp("video") / "faces.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 480))
    for index in range(FACE_FRAMES):
        writer.write(_face_frame(8 * index))
    for _ in range(EMPTY_FRAMES):
        writer.write(np.full((480, 640, 3), 90, np.uint8))
    writer.release()
    return path


def _run(video, model_path, **options) -> list[str]:
    out = io.StringIO()
    assert run(RealtimeConfig(camera=str(video), model=model_path, window="off", **options), out=out) == 0
    return out.getvalue().splitlines()


def test_one_line_per_frame_with_faces_or_none(video, emotion_model):
    lines = _run(video, emotion_model[1])
    assert len(lines) == FACE_FRAMES + EMPTY_FRAMES
    for index, line in enumerate(lines):
        assert line.startswith(f"frame {index} t=") and " fps " in line
    for line in lines[:FACE_FRAMES]:
        label = line.split(": ", 1)[1].split()[0]
        assert label in EMOTIONS and " w=" in line
    assert all(line.endswith("no face") for line in lines[FACE_FRAMES:])


def test_json_lines_parse(video, emotion_model):
    records = [json.loads(line) for line in _run(video, emotion_model[1], json=True)]
    assert [record["frame"] for record in records] == list(range(FACE_FRAMES + EMPTY_FRAMES))
    face = records[0]["faces"][0]
    x, _, width, _ = face["box"]
    assert 150 < x + width / 2 - 80 < 420 and width > 60  # the astronaut's face, in frame coordinates
    assert sum(face["probabilities"].values()) == pytest.approx(1, abs=1e-3)
    assert face["confidence"] == max(face["probabilities"].values())
    assert records[-1]["faces"] == []


def test_max_frames_and_every(video, emotion_model):
    records = [json.loads(line) for line in _run(video, emotion_model[1], json=True, max_frames=3, every=2)]
    assert len(records) == 3
    assert [record["analysed"] for record in records] == [True, False, True]
    assert records[1]["faces"] == records[0]["faces"]  # repeated between analyses


def test_annotated_output_video(video, emotion_model, tmp_path):
    target = tmp_path / "annotated.avi"
    _run(video, emotion_model[1], output=target)
    saved = cv2.VideoCapture(str(target))
    frames = []
    while (read := saved.read())[0]:
        frames.append(read[1])
    saved.release()
    assert len(frames) == FACE_FRAMES + EMPTY_FRAMES and frames[0].shape == (480, 640, 3)
    assert not list(tmp_path.glob(".partial.*"))
    original = _face_frame(0).astype(int)
    assert np.abs(frames[0].astype(int) - original).max() > 100  # a box and label were drawn


def test_all_faces_in_one_call_preprocessed_as_in_training(emotion_model):
    model = emotion_model[0]
    calls = []

    def classify(faces):
        calls.append(faces)
        return model(faces, training=False).numpy()

    frame = np.concatenate([cv2.resize(cv2.imread(str(ASTRONAUT)), (320, 320))] * 2, axis=1)
    faces, analysed = EmotionRecognizer(classify, FaceTracker(FaceDetector(detect_width=640))).process(frame)
    assert analysed and len(faces) == 2 and len(calls) == 1 and calls[0].shape == (2, 48, 48, 1)
    gray = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    np.testing.assert_array_equal(calls[0][0], preprocess_face(faces[0].box.crop(gray)))


def test_smoothing_averages_a_face_over_frames():
    one_hot = iter([np.eye(7)[[0]], np.eye(7)[[3]], np.eye(7)[[3]]])
    detector = FaceDetector()
    detector.detect = lambda gray: [Box(10, 10, 50, 50)]
    recognizer = EmotionRecognizer(lambda faces: next(one_hot), FaceTracker(detector, full_every=1), smooth=2)
    image = np.zeros((100, 100, 3), np.uint8)
    probabilities = [recognizer.process(image)[0][0].probabilities for _ in range(3)]
    np.testing.assert_allclose(probabilities[0], np.eye(7)[0])
    np.testing.assert_allclose(probabilities[1], (np.eye(7)[0] + np.eye(7)[3]) / 2)
    np.testing.assert_allclose(probabilities[2], np.eye(7)[3])


class _Camera:
    """A fake live camera: `frames` good frames (None: endless), then nothing."""

    def __init__(self, frames=None, delay=0.001):
        self.frames, self.delay, self.read_count, self.released = frames, delay, 0, False

    def read(self):
        time.sleep(self.delay)
        if self.frames is not None and self.read_count >= self.frames:
            return False, None
        self.read_count += 1
        return True, np.zeros((8, 8, 3), np.uint8)

    def get(self, _):
        return 0

    def release(self):
        self.released = True


def test_live_reader_drops_stale_frames():
    camera = _Camera()
    with FrameReader(camera, live=True) as reader:
        indices = []
        for _ in range(5):
            indices.append(reader.next_frame().index)
            time.sleep(0.03)  # slow processing
    assert all(later > earlier + 1 for earlier, later in itertools.pairwise(indices))  # skipped, not queued
    assert camera.released


def test_lost_camera_retries_then_fails_with_nonzero_status(monkeypatch, emotion_model, capsys):
    camera = _Camera(frames=3)
    monkeypatch.setattr(capture, "open_capture", lambda source: camera)
    status = main(["realtime", "--camera", "0", "--model", str(emotion_model[1]), "--no-window", "--retries", "2"])
    assert status != 0
    assert "stopped arriving" in capsys.readouterr().err
    assert camera.released


def test_camera_that_cannot_be_opened(emotion_model, tmp_path, capsys):
    missing = tmp_path / "nothing.mp4"
    assert main(["realtime", "--camera", str(missing), "--model", str(emotion_model[1]), "--no-window"]) == 2
    error = capsys.readouterr().err
    assert f"cannot open camera '{missing}'" in error and "no such device or file" in error


def test_wrong_model_fails_before_the_camera_opens(tmp_path, monkeypatch, capsys):
    from tapelab.core.models import build_cnn

    wrong = tmp_path / "mnist.h5"
    build_cnn((28, 28, 1), 10, widths=(4,), dense_units=0).save(wrong)
    opened = []
    monkeypatch.setattr(capture, "open_capture", lambda source: opened.append(source))
    assert main(["realtime", "--model", str(wrong), "--no-window"]) == 2
    assert "takes inputs of shape (28, 28, 1)" in capsys.readouterr().err and not opened


def test_headless_auto_mode_runs_without_window(video, emotion_model, monkeypatch, capsys):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    assert open_window() is None
    assert "no display" in capsys.readouterr().err
    out = io.StringIO()
    assert run(RealtimeConfig(camera=str(video), model=emotion_model[1], max_frames=2), out=out) == 0
    assert len(out.getvalue().splitlines()) == 2


def _missing_display() -> str:
    """An X display number with no server behind it."""
    number = next(n for n in range(99, 200) if not Path(f"/tmp/.X11-unix/X{n}").exists())
    return f":{number}"


def test_a_display_that_does_not_answer_means_no_window(video, emotion_model, monkeypatch, capsys):
    """With DISPLAY naming no server, the GUI toolkit would abort the whole process (exit 134): the window is
    tried in a child process first, and the program runs on without one, saying so in one line."""
    monkeypatch.setenv("DISPLAY", _missing_display())
    out = io.StringIO()
    assert run(RealtimeConfig(camera=str(video), model=emotion_model[1], max_frames=2), out=out) == 0
    assert len(out.getvalue().splitlines()) == 2
    notes = [line for line in capsys.readouterr().err.splitlines() if "window" in line]
    assert len(notes) == 1 and "no display" in notes[0] and "does not answer" in notes[0]


def test_window_asked_for_without_a_display_is_one_error_line(video, emotion_model, monkeypatch, capsys):
    monkeypatch.setenv("DISPLAY", _missing_display())
    opened = []
    monkeypatch.setattr(capture, "open_capture", lambda source: opened.append(source))
    assert main(["realtime", "--camera", str(video), "--model", str(emotion_model[1]), "--window"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tapelab: error: --window: no window can open") and "--no-window" in err
    assert "\n" not in err and not opened


@pytest.mark.parametrize("name, message", [("missing/annotated.mp4", "does not exist"),
                                           ("annotated.txt", "must end in .mp4 or .avi"),
                                           ("folder", "is a folder")])
def test_output_video_is_checked_before_the_camera_opens(name, message, emotion_model, tmp_path, monkeypatch,
                                                        capsys):
    (tmp_path / "folder").mkdir()
    opened = []
    monkeypatch.setattr(capture, "open_capture", lambda source: opened.append(source))
    status = main(["realtime", "--model", str(emotion_model[1]), "--no-window", "--output", str(tmp_path / name)])
    err = capsys.readouterr().err.strip()
    assert status == 2 and err.startswith("tapelab: error: --output") and message in err and "\n" not in err
    assert not opened and sorted(path.name for path in tmp_path.iterdir()) == ["emotion.h5", "folder"]


def test_sigterm_finishes_the_video_like_ctrl_c(video, emotion_model, tmp_path, capsys):
    """SIGTERM during --output takes Ctrl-C's way out: the frames so far are saved, no .partial file stays,
    the camera is released and the previous SIGTERM handler is back."""
    import os
    import signal

    class TerminatedAtSecondFrame(io.StringIO):
        def write(self, text):
            if text.startswith("frame 1 "):
                os.kill(os.getpid(), signal.SIGTERM)
            return super().write(text)

    received = []
    previous = signal.signal(signal.SIGTERM, lambda *_: received.append(True))  # so the test survives without it
    try:
        target = tmp_path / "annotated.avi"
        config = RealtimeConfig(camera=str(video), model=emotion_model[1], window="off", output=target)
        assert run(config, out=TerminatedAtSecondFrame()) == 0
        assert not received
        signal.raise_signal(signal.SIGTERM)
        assert received  # our handler is back after the run
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert "stopped" in capsys.readouterr().err
    saved = cv2.VideoCapture(str(target))
    assert 1 <= saved.get(cv2.CAP_PROP_FRAME_COUNT) < FACE_FRAMES + EMPTY_FRAMES
    saved.release()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["annotated.avi", "emotion.h5"]


def test_settings_are_checked_when_made():
    from tapelab.core.errors import TapelabError

    for bad in ({"max_frames": -1}, {"every": 0}, {"smooth": 0}, {"retries": -1}, {"camera": " "},
                {"window": "maybe"}):
        with pytest.raises(TapelabError):
            RealtimeConfig(**bad)


def test_empty_camera_says_what_to_pass(emotion_model, capsys):
    assert main(["realtime", "--camera", "", "--model", str(emotion_model[1]), "--no-window"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == ("tapelab: error: --camera is empty; give a camera index (0), a /dev/videoN path, a video file "
                   "or a stream URL")


# Finding and following faces, on 320x240 frames with the astronaut's head and shoulders 120 pixels wide (the
# face about 55 pixels, at x = 72 + shift, y = 72).


def _small_frame(shift: int = 0, face: bool = True, hide_face: bool = False) -> np.ndarray:
    frame = np.full((240, 320, 3), 90, np.uint8)
    if face:
        head = cv2.imread(str(ASTRONAUT))[0:230, 110:340]
        frame[40:160, 40 + shift : 160 + shift] = cv2.resize(head, (120, 120))
    if hide_face:
        frame[60:140, 60 + shift : 140 + shift] = 90
    return frame


def _gray(frame):
    return cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)


class _CountingDetector(FaceDetector):
    def __init__(self):
        super().__init__(min_face=24)
        self.full_passes, self.near_searches = 0, 0

    def detect(self, gray):
        self.full_passes += 1
        return super().detect(gray)

    def detect_near(self, gray, box, margin=0.5, size_range=1.35):
        self.near_searches += 1
        return super().detect_near(gray, box, margin, size_range)


def test_region_search_follows_a_face_that_moved():
    detector = _CountingDetector()
    tracker = FaceTracker(detector, full_every=10)
    first = [(track.id, track.box) for track in tracker.update(_gray(_small_frame(0)))]
    moved = tracker.update(_gray(_small_frame(14)))
    assert len(first) == len(moved) == 1 and detector.full_passes == 1 and detector.near_searches == 1
    assert moved[0].id == first[0][0] and moved[0].missed == 0
    assert 8 <= moved[0].box.x - first[0][1].x <= 20  # found where it went, not held where it was


def test_a_missed_face_keeps_its_box_and_label_for_hold_frames_then_drops():
    labels = iter(np.eye(7)[[[3]]])  # classified once: happiness
    calls = []

    def classify(faces):
        calls.append(len(faces))
        return next(labels)

    tracker = FaceTracker(FaceDetector(min_face=24), full_every=10, hold=2, cut_threshold=255)
    recognizer = EmotionRecognizer(classify, tracker)
    seen, _ = recognizer.process(_small_frame())
    held = [recognizer.process(_small_frame(hide_face=True))[0] for _ in range(3)]
    assert len(seen) == 1 and not seen[0].held
    for faces in held[:2]:
        assert len(faces) == 1 and faces[0].held and faces[0].box == seen[0].box
        assert faces[0].label == "happiness"
    assert held[2] == [] and calls == [1]  # dropped after two frames; a held face is not classified again


def test_a_whole_frame_pass_runs_every_n_frames_and_at_a_cut():
    detector = _CountingDetector()
    tracker = FaceTracker(detector, full_every=3)
    passes = []
    for _ in range(7):
        tracker.update(_gray(_small_frame()))
        passes.append(detector.full_passes)
    assert passes == [1, 1, 1, 2, 2, 2, 3]
    assert detector.near_searches == 4
    another_scene = np.full((240, 320), 200, np.uint8)
    assert tracker.update(another_scene) == []  # a cut: searched whole, nothing held
    assert detector.full_passes == 4


def test_no_face_on_blank_frames():
    tracker = FaceTracker(FaceDetector(min_face=24), full_every=2)
    for frame in (np.full((240, 320), 90, np.uint8), np.zeros((240, 320), np.uint8),
                  np.random.default_rng(0).integers(0, 256, (240, 320)).astype(np.uint8)):
        assert tracker.update(frame) == []


def test_tracker_settings_are_checked():
    with pytest.raises(ValueError, match="full_every"):
        FaceTracker(FaceDetector(), full_every=0)


def test_scoring_rule_iou_or_centre_inside_and_edge_faces():
    from tapelab.realtime.evaluate import Tally, match_frame

    truth = [Box(100, 100, 60, 60), Box(-50, 0, 80, 80)]  # the second: 5/8 inside the frame, not counted
    found, counted, false = match_frame([Box(110, 105, 80, 80), Box(0, 0, 30, 40), Box(300, 300, 20, 20)],
                                        truth, 640, 480)
    assert counted == 1 and found == [0] and false == 1  # the box on the edge face is neither found nor false
    tally = Tally()
    tally.add([], [], 640, 480)
    tally.add([Box(5, 5, 10, 10)], [], 640, 480)
    assert tally.summary()["blank_false_face_rate"] == 0.5 and tally.summary()["recall"] == 0


def test_generated_scenes_know_their_faces():
    from tapelab.realtime.scenes import make_scenes, render

    tile = cv2.resize(cv2.imread(str(ASTRONAUT)), (200, 200))
    scenes = make_scenes(np.random.default_rng(0), 1, 12, frames=(3, 4))
    frames = list(render(scenes, [tile]))
    assert len(frames) == sum(scene.frames for scene in scenes)
    assert {len(boxes) for _, boxes in frames} <= {0, 1, 2, 3, 4} and any(not boxes for _, boxes in frames)
    for frame, boxes in frames:
        assert frame.shape == (480, 640, 3)
        assert all(60 * 0.85 <= box.width <= 300 * 1.15 for box in boxes)


def test_of_two_nested_boxes_the_one_more_windows_agreed_on_is_kept():
    from tapelab.realtime.tracking import Track

    face, forehead, other = Box(100, 100, 120, 120, score=30), Box(130, 105, 50, 50, score=6), Box(400, 0, 60, 60)
    kept = FaceTracker._without_nested([Track(0, forehead), Track(1, other), Track(2, face)])
    assert [track.box for track in kept] == [face, other]
    around = Box(50, 50, 250, 250, score=7)  # the cascade firing on a face with its surroundings
    kept = FaceTracker._without_nested([Track(0, around), Track(1, face)])
    assert [track.box for track in kept] == [face]
