"""Face finding with the Haar cascade that ships with opencv-python 4.x, tuned for speed.

Detection runs on a downscaled greyscale copy of the frame; boxes come back in the frame's
own coordinates.
"""

from dataclasses import dataclass

import cv2
import numpy as np

from core.errors import TapelabError

CASCADE = "haarcascade_frontalface_default.xml"


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    width: int
    height: int

    def crop(self, image: np.ndarray) -> np.ndarray:
        return image[self.y : self.y + self.height, self.x : self.x + self.width]


class FaceDetector:
    """Find frontal faces. `detect_width`: frames wider than this are shrunk first (speed);
    `min_face`: smallest face side in pixels of the original frame."""

    def __init__(self, detect_width: int = 320, min_face: int = 40, scale_factor: float = 1.15,
                 min_neighbors: int = 5):
        if not hasattr(cv2, "CascadeClassifier"):
            raise TapelabError("this OpenCV has no CascadeClassifier (OpenCV 5 dropped it); install opencv-python<5")
        path = cv2.data.haarcascades + CASCADE
        self.cascade = cv2.CascadeClassifier(path)
        if self.cascade.empty():
            raise TapelabError(f"cannot load the Haar cascade {path}; reinstall opencv-python<5")
        self.detect_width, self.min_face = detect_width, min_face
        self.scale_factor, self.min_neighbors = scale_factor, min_neighbors

    def detect(self, gray: np.ndarray) -> list[Box]:
        """Boxes of the faces in a greyscale frame, largest first."""
        scale = min(1.0, self.detect_width / gray.shape[1])
        small = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else gray
        small = cv2.equalizeHist(small)
        min_side = max(12, int(self.min_face * scale))
        found = self.cascade.detectMultiScale(small, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
                                              minSize=(min_side, min_side))
        boxes = [Box(*(int(v / scale + 0.5) for v in face)) for face in found]
        return sorted(boxes, key=lambda box: -box.width * box.height)
