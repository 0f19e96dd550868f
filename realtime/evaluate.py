"""Scoring reported face boxes against the true ones of a generated video.

The rule: a true face is *found* when a reported box has an intersection over union of at least 0.3 with
it or has its centre inside it (each reported box finds at most one face). True boxes are clipped to the
frame; a face with less than `min_visible` of its box inside the frame is not counted either way (neither
to find nor, when a box covers it, as a false face). A reported box that finds no face is a *false face*.
"""

from dataclasses import dataclass

from tapelab.core.faces import Box, overlap

MIN_IOU = 0.3


def clip(box: Box, width: int, height: int) -> Box | None:
    x0, y0 = max(box.x, 0), max(box.y, 0)
    x1, y1 = min(box.x + box.width, width), min(box.y + box.height, height)
    return Box(x0, y0, x1 - x0, y1 - y0) if x1 > x0 and y1 > y0 else None


def matches(reported: Box, true: Box) -> bool:
    center_x, center_y = reported.x + reported.width / 2, reported.y + reported.height / 2
    inside = true.x <= center_x <= true.x + true.width and true.y <= center_y <= true.y + true.height
    return inside or overlap(reported, true) >= MIN_IOU


def match_frame(reported: list[Box], truth: list[Box], width: int, height: int,
                min_visible: float = 2 / 3) -> tuple[list[int | None], int, int]:
    """For each counted true face, the index of the reported box that found it (None: missed); the number of
    counted faces; and the number of false faces."""
    counted, ignored = [], []
    for box in truth:
        clipped = clip(box, width, height)
        visible = clipped.width * clipped.height / (box.width * box.height) if clipped else 0.0
        (counted if visible >= min_visible else ignored).append(clipped)
    free = list(range(len(reported)))
    found = []
    for true in counted:
        best = max(free, key=lambda i: overlap(reported[i], true) + matches(reported[i], true), default=None)
        if best is not None and matches(reported[best], true):
            free.remove(best)
            found.append(best)
        else:
            found.append(None)
    false = [i for i in free if not any(box and matches(reported[i], box) for box in ignored)]
    return found, len(counted), len(false)


@dataclass
class Tally:
    """Faces found and false faces over a video."""

    faces: int = 0
    found: int = 0
    false_faces: int = 0
    frames: int = 0
    blank_frames: int = 0
    blank_frames_with_a_face: int = 0
    frames_with_a_false_face: int = 0

    def add(self, reported: list[Box], truth: list[Box], width: int, height: int) -> list[int | None]:
        found, counted, false = match_frame(reported, truth, width, height)
        self.faces += counted
        self.found += sum(index is not None for index in found)
        self.false_faces += false
        self.frames += 1
        self.frames_with_a_false_face += false > 0
        if not truth:
            self.blank_frames += 1
            self.blank_frames_with_a_face += bool(reported)
        return found

    def summary(self) -> dict:
        return {"faces": self.faces, "recall": self.found / max(1, self.faces),
                "false_faces": self.false_faces, "false_faces_per_frame": self.false_faces / max(1, self.frames),
                "false_face_rate": self.frames_with_a_false_face / max(1, self.frames),
                "blank_frames": self.blank_frames,
                "blank_false_face_rate": self.blank_frames_with_a_face / max(1, self.blank_frames)}
