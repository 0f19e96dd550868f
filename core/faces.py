"""Face finding with the Haar cascade that ships with opencv-python 4.x.

`FaceDetector.detect` searches a whole greyscale frame (shrunk to `detect_width` first when wider);
`FaceDetector.detect_near` searches only a region around a known face, for sizes near its own, which
costs a small fraction of a whole pass (`realtime/tracking.py` uses both). Boxes come back in the
frame's own coordinates.
"""

from dataclasses import dataclass, field

import cv2
import numpy as np

from tapelab.core.errors import TapelabError

CASCADE = "haarcascade_frontalface_default.xml"


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    width: int
    height: int
    # How many neighbouring windows of the cascade agreed on this box (0: unknown): a real face gathers many,
    # a false one few, which decides between two boxes of which one lies inside the other.
    score: int = field(default=0, compare=False)

    def crop(self, image: np.ndarray) -> np.ndarray:
        return image[max(self.y, 0) : self.y + self.height, max(self.x, 0) : self.x + self.width]

    @property
    def center(self) -> tuple[float, float]:
        return self.x + self.width / 2, self.y + self.height / 2

    def grown(self, margin: float, width: int, height: int) -> "Box":
        """This box with `margin` of its side added on every side, clipped to a width x height frame."""
        dx, dy = round(self.width * margin), round(self.height * margin)
        x0, y0 = max(self.x - dx, 0), max(self.y - dy, 0)
        x1, y1 = min(self.x + self.width + dx, width), min(self.y + self.height + dy, height)
        return Box(x0, y0, max(0, x1 - x0), max(0, y1 - y0))


def overlap(a: Box, b: Box) -> float:
    """Intersection over union of two boxes."""
    width = min(a.x + a.width, b.x + b.width) - max(a.x, b.x)
    height = min(a.y + a.height, b.y + b.height) - max(a.y, b.y)
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    return inter / (a.width * a.height + b.width * b.height - inter)


def inside(a: Box, b: Box) -> float:
    """The fraction of box `a`'s area that lies inside box `b`."""
    width = min(a.x + a.width, b.x + b.width) - max(a.x, b.x)
    height = min(a.y + a.height, b.y + b.height) - max(a.y, b.y)
    return max(width, 0) * max(height, 0) / max(1, a.width * a.height)


def load_cascade(name: str = CASCADE) -> cv2.CascadeClassifier:
    if not hasattr(cv2, "CascadeClassifier"):
        raise TapelabError("this OpenCV has no CascadeClassifier (OpenCV 5 dropped it); install opencv-python<5")
    path = cv2.data.haarcascades + name
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():
        raise TapelabError(f"cannot load the Haar cascade {path}; reinstall opencv-python<5")
    return cascade


class FaceDetector:
    """Find frontal faces. `detect_width`: frames wider than this are shrunk first (0: never);
    `min_face`: smallest face side in pixels of the original frame (0: the cascade's own 24);
    `equalize`: equalise the histogram first (helps in dim light, but finds more false faces)."""

    def __init__(self, detect_width: int = 640, min_face: int = 48, scale_factor: float = 1.1,
                 min_neighbors: int = 5, equalize: bool = False):
        self.cascade = load_cascade()
        self.detect_width, self.min_face, self.equalize = detect_width, min_face, equalize
        self.scale_factor, self.min_neighbors = scale_factor, min_neighbors

    def _search(self, gray: np.ndarray, min_side: int, max_side: int = 0) -> tuple[np.ndarray, list[int]]:
        """Boxes (n, 4) as floats and the number of neighbours that agreed on each."""
        gray = cv2.equalizeHist(gray) if self.equalize else gray
        found, neighbours = self.cascade.detectMultiScale2(
            gray, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors, minSize=(min_side, min_side),
            maxSize=(max_side, max_side))
        return np.asarray(found, dtype=float).reshape(-1, 4), [int(n) for n in np.ravel(neighbours)]

    def detect(self, gray: np.ndarray) -> list[Box]:
        """Boxes of the faces in a greyscale frame, largest first."""
        scale = min(1.0, self.detect_width / gray.shape[1]) if self.detect_width else 1.0
        small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else gray
        found, neighbours = self._search(small, int(self.min_face * scale))
        boxes = [Box(*(int(v / scale + 0.5) for v in face), score=n) for face, n in zip(found, neighbours)]
        return sorted(boxes, key=lambda box: -box.width * box.height)

    def detect_near(self, gray: np.ndarray, box: Box, margin: float = 0.5, size_range: float = 1.35,
                    shrink_to: int = 36) -> list[Box]:
        """Faces in the region around `box` (`margin` of its side added on every side) whose side is within
        `size_range` times of its own, in frame coordinates, closest to `box` first. The region is shrunk so
        that the smallest side searched is `shrink_to` pixels (0: never), which saves time on large faces."""
        region = box.grown(margin, gray.shape[1], gray.shape[0])
        side = max(box.width, box.height)
        scale = min(1.0, shrink_to / (side / size_range)) if shrink_to else 1.0
        patch = region.crop(gray)
        if scale < 1:
            patch = cv2.resize(patch, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        smallest = max(24, int(side * scale / size_range))
        largest = min(int(side * scale * size_range) + 1, patch.shape[0], patch.shape[1])
        if largest < smallest:
            return []
        found, neighbours = self._search(patch, smallest, largest)
        boxes = [Box(int(x + 0.5) + region.x, int(y + 0.5) + region.y, int(w + 0.5), int(h + 0.5), score=n)
                 for (x, y, w, h), n in zip(found / scale, neighbours)]
        return sorted(boxes, key=lambda other: -overlap(box, other))
