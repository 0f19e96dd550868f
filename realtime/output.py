"""What the program shows: one text or JSON line per frame, and boxes, labels and FPS drawn on the frame."""

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

from tapelab.core.errors import TapelabError
from tapelab.core.fer import EMOTIONS
from tapelab.realtime.capture import Frame
from tapelab.realtime.recognizer import FaceResult


def text_line(frame: Frame, faces: list[FaceResult], fps: float) -> str:
    found = "; ".join(f"{face.label} {face.confidence:.2f} at x={face.box.x} y={face.box.y} "
                      f"w={face.box.width} h={face.box.height}" for face in faces)
    return f"frame {frame.index} t={frame.time:.2f}s fps {fps:.1f}: {found or 'no face'}"


def json_line(frame: Frame, faces: list[FaceResult], fps: float, analysed: bool) -> str:
    return json.dumps({
        "frame": frame.index, "time": round(frame.time, 4), "fps": round(fps, 2), "analysed": analysed,
        "faces": [{"label": face.label, "confidence": round(face.confidence, 4),
                   "box": [face.box.x, face.box.y, face.box.width, face.box.height],
                   "probabilities": {name: round(float(p), 4) for name, p in zip(EMOTIONS, face.probabilities)}}
                  for face in faces],
    })


def annotate(image: np.ndarray, faces: list[FaceResult], fps: float) -> np.ndarray:
    """A copy of the frame with a box and `label confidence` per face and the FPS in the corner."""
    shown = image.copy()
    scale = max(0.4, shown.shape[1] / 1200)
    for face in faces:
        box = face.box
        cv2.rectangle(shown, (box.x, box.y), (box.x + box.width, box.y + box.height), (0, 220, 0), 2)
        caption = f"{face.label} {face.confidence:.0%}"
        (width, height), _ = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        top = max(box.y - height - 8, 0)
        cv2.rectangle(shown, (box.x, top), (box.x + width + 6, top + height + 8), (0, 220, 0), -1)
        cv2.putText(shown, caption, (box.x + 3, top + height + 3), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1,
                    cv2.LINE_AA)
    cv2.putText(shown, f"{fps:.1f} FPS", (8, int(30 * scale / 0.5)), cv2.FONT_HERSHEY_SIMPLEX, scale,
                (0, 0, 255), 2, cv2.LINE_AA)
    return shown


def display_available() -> bool:
    """A display may exist: on Linux only with an X11 or Wayland display named; elsewhere assume a desktop."""
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


# Opens and closes a window in a child process. With no display answering, the GUI toolkit aborts the whole
# process (Qt: "could not connect to display", exit 134), which no `except` can catch, so we ask a child first.
_WINDOW_PROBE = "import cv2; cv2.namedWindow('tapelab', cv2.WINDOW_NORMAL); cv2.waitKey(1); cv2.destroyAllWindows()"


def window_opens(timeout: float = 10.0) -> bool:
    """Whether an OpenCV window can really open here (a display is named and answers)."""
    if not display_available():
        return False
    try:
        probe = subprocess.run([sys.executable, "-c", _WINDOW_PROBE], capture_output=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def _display_name() -> str:
    named = [f"{name}={os.environ[name]!r}" for name in ("DISPLAY", "WAYLAND_DISPLAY") if os.environ.get(name)]
    return f"{' and '.join(named)} does not answer" if named else "DISPLAY is not set"


def choose_window(mode: str) -> bool:
    """Whether to show a window. "off": never. "auto": when one can open, else a note on stderr and none.
    "on" (`--window`): the user asked for one, so a display that does not answer is an error, not a silent
    change of mode."""
    if mode == "off":
        return False
    if window_opens():
        return True
    if mode == "on":
        raise TapelabError(f"--window: no window can open ({_display_name()}); start the program where a display "
                           "answers, or pass --no-window")
    print(f"tapelab realtime: no display ({_display_name()}); running without a window (--no-window)",
          file=sys.stderr)
    return False


class Window:
    """An OpenCV window; `show` returns False once the user pressed `q` or Esc or closed it."""

    def __init__(self, title: str = "tapelab realtime"):
        self.title = title
        cv2.namedWindow(title, cv2.WINDOW_NORMAL)

    def show(self, image: np.ndarray) -> bool:
        cv2.imshow(self.title, image)
        key = cv2.waitKey(1) & 0xFF
        closed = cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1
        return key not in (ord("q"), 27) and not closed

    def close(self) -> None:
        cv2.destroyWindow(self.title)


def open_window(force: bool = False) -> Window | None:
    """A window when one can open; otherwise None and a note on stderr (with `force`, an error)."""
    return Window() if choose_window("on" if force else "auto") else None


VIDEO_FORMATS = {".mp4": "mp4v", ".avi": "MJPG"}  # both codecs ship with opencv-python


def check_video_path(path) -> None:
    """Before the camera opens: `path` names a .mp4 or .avi file in an existing folder that takes it. A
    tiny trial video is written there and removed, so the check is the writer itself."""
    path = Path(path)
    if path.is_dir():
        raise TapelabError(f"--output {path} is a folder; give a video file such as {path / 'annotated.mp4'}")
    if path.suffix.lower() not in VIDEO_FORMATS:
        raise TapelabError(f"--output {path}: the video must end in .mp4 or .avi")
    if not path.parent.is_dir():
        problem = "is not a folder" if path.parent.exists() else "does not exist"
        raise TapelabError(f"--output {path}: {path.parent} {problem}; create the folder or choose another")
    VideoOutput(path, 30.0, (16, 16)).close()


class VideoOutput:
    """The annotated stream as a video file (mp4v for .mp4, MJPG otherwise).

    Frames go to a `.partial.` file that replaces `path` only when closed, so a crash never
    leaves a broken file where an earlier video was.
    """

    def __init__(self, path, fps: float, size: tuple[int, int]):
        self.path = Path(path)
        self.partial = self.path.with_name(f".partial.{self.path.name}")
        fourcc = cv2.VideoWriter_fourcc(*VIDEO_FORMATS.get(self.path.suffix.lower(), "MJPG"))
        self.writer = cv2.VideoWriter(str(self.partial), fourcc, fps, size)
        if not self.writer.isOpened():
            raise TapelabError(f"cannot write video {path}; check that its folder exists and may be written, "
                               "and use .mp4 or .avi")
        self.frames = 0

    def write(self, image: np.ndarray) -> None:
        self.writer.write(image)
        self.frames += 1

    def close(self) -> None:
        self.writer.release()
        if self.frames:
            os.replace(self.partial, self.path)
        else:
            self.partial.unlink(missing_ok=True)
