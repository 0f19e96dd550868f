"""Videos with known face boxes, for measuring the realtime program: face photos moving over a background.

`face_tiles` cuts a square around the face of each photo; `make_scenes` lays out scenes of zero to four faces
(60 to 300 pixels tall, moving and breathing in size, some drifting partly off the frame edge);
`render` draws one frame and gives the true face boxes. Everything is drawn from a seeded generator, so a
benchmark is the same video every time.
"""

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from tapelab.core.errors import DataError
from tapelab.core.faces import Box, FaceDetector

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
TILE_MARGIN = 2.0  # a tile is this many face sides wide: the face with its hair, shoulders and background


def face_tiles(folder: Path) -> list[np.ndarray]:
    """From each photo, a square of TILE_MARGIN face sides centred on its largest face (found by the cascade
    on the photo at high resolution): the face is the tile's middle square of half its side."""
    paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []
    detector = FaceDetector(detect_width=800, min_face=40)
    tiles = []
    for photo in (cv2.imread(str(p)) for p in paths):
        boxes = detector.detect(cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY)) if photo is not None else []
        if boxes:
            box = boxes[0]
            side = int(box.width * TILE_MARGIN)
            x0, y0 = box.x + box.width // 2 - side // 2, box.y + box.height // 2 - side // 2
            padded = cv2.copyMakeBorder(photo, side, side, side, side, cv2.BORDER_REPLICATE)
            tiles.append(padded[y0 + side : y0 + 2 * side, x0 + side : x0 + 2 * side])
    if not tiles:
        raise DataError(f"no photos with a findable face (jpg, png) in {folder}; pass --faces with such a folder")
    return tiles


@dataclass(frozen=True)
class Mover:
    """One face in a scene: its tile, centre and side (pixels) at the scene's start, and how they change."""

    tile: int
    x: float
    y: float
    side: float
    velocity: tuple[float, float]  # pixels per frame
    breathe: float  # relative change of size over a slow sine

    def box(self, t: int) -> tuple[float, float, float]:
        side = self.side * (1 + self.breathe * math.sin(2 * math.pi * t / 50 + self.tile))
        return self.x + self.velocity[0] * t, self.y + self.velocity[1] * t, side


@dataclass(frozen=True)
class Scene:
    frames: int
    movers: tuple[Mover, ...]


def make_scenes(rng: np.random.Generator, tiles: int, count: int, size=(640, 480), frames=(30, 60),
                sides=(60, 300), off_edge: float = 0.25) -> list[Scene]:
    """`count` scenes of 0-4 faces. Faces get cells of a grid (one to four cells) so they never overlap; their
    side is drawn from `sides` as far as the cell allows. One scene in four lets one face drift so that up to
    `off_edge` of its box leaves the frame by the scene's end."""
    width, height = size
    scenes = []
    for _ in range(count):
        faces = int(rng.choice([0, 1, 1, 2, 2, 3, 4]))
        length = int(rng.integers(*frames, endpoint=True))
        columns, rows = {0: (1, 1), 1: (1, 1), 2: (2, 1), 3: (2, 2), 4: (2, 2)}[faces]
        cells = rng.permutation(columns * rows)[:faces]
        photos = rng.choice(tiles, size=faces, replace=faces > tiles)  # different people when there are enough
        movers = []
        for cell, photo in zip(cells, photos):
            cell_w, cell_h = width / columns, height / rows
            largest = min(sides[1], 0.55 * min(cell_w, cell_h))
            side = float(np.exp(rng.uniform(np.log(sides[0]), np.log(max(sides[0], largest)))))
            room_x, room_y = max(0.0, cell_w / 2 - side), max(0.0, cell_h / 2 - side)
            x = cell_w * (cell % columns + 0.5) + rng.uniform(-room_x, room_x) / 2
            y = cell_h * (cell // columns + 0.5) + rng.uniform(-room_y, room_y) / 2
            vx, vy = rng.uniform(-1, 1, 2) * min(3.0, max(room_x, room_y, 20) / length)
            movers.append(Mover(int(photo), x, y, side, (vx, vy), float(rng.uniform(0, 0.12))))
        if movers and rng.random() < 0.25:  # a face drifts out over the nearest vertical edge
            mover = min(movers, key=lambda m: min(m.x, width - m.x))
            edge_x = 0 if mover.x < width / 2 else width
            target = edge_x + (0.5 - off_edge) * mover.side * (1 if edge_x == 0 else -1)
            movers[movers.index(mover)] = Mover(mover.tile, mover.x, mover.y, mover.side,
                                                ((target - mover.x) / length, 0.0), 0.0)
        scenes.append(Scene(length, tuple(movers)))
    return scenes


def background(rng: np.random.Generator, size=(640, 480)) -> np.ndarray:
    """A smooth, blotchy colour background (no faces in it)."""
    width, height = size
    small = rng.integers(30, 200, (6, 8, 3)).astype(np.uint8)
    return cv2.GaussianBlur(cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC), (0, 0), 15)


def paste(frame: np.ndarray, tile: np.ndarray, center_x: float, center_y: float, side: float,
          margin: float = TILE_MARGIN) -> Box:
    """Paste `tile` so that its face (the middle square, 1/`margin` of its side) has `side` pixels, centred at
    the given point; clipped to the frame. Returns the face's true box, which may reach outside the frame."""
    tile_side = max(2, round(side * margin))
    scaled = cv2.resize(tile, (tile_side, tile_side), interpolation=cv2.INTER_AREA)
    left, top = round(center_x - tile_side / 2), round(center_y - tile_side / 2)
    x0, x1 = max(left, 0), min(left + tile_side, frame.shape[1])
    y0, y1 = max(top, 0), min(top + tile_side, frame.shape[0])
    if x1 > x0 and y1 > y0:
        frame[y0:y1, x0:x1] = scaled[y0 - top : y1 - top, x0 - left : x1 - left]
    face = round(side)
    return Box(round(center_x - face / 2), round(center_y - face / 2), face, face)


def render(scenes: list[Scene], tiles: list[np.ndarray], seed: int = 0, size=(640, 480)):
    """Yield (frame, true boxes) for every frame of the scenes; each scene has its own background."""
    rng = np.random.default_rng(seed)
    for scene in scenes:
        ground = background(rng, size)
        for t in range(scene.frames):
            frame = ground.copy()
            boxes = [paste(frame, tiles[m.tile % len(tiles)], *m.box(t)) for m in scene.movers]
            yield frame, boxes


def write_video(path: Path, frames, fps: float = 30.0) -> list[list[Box]]:
    """Write (frame, boxes) pairs as an MJPG .avi; the boxes of every frame, in order."""
    writer, truth = None, []
    for frame, boxes in frames:
        if writer is None:
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, frame.shape[1::-1])
        writer.write(frame)
        truth.append(boxes)
    if writer is not None:
        writer.release()
    return truth
