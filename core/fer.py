"""FER2013 facial expressions: labels, the one preprocessing function, and both data forms.

The product's label order, everywhere: anger, disgust, fear, happiness, sadness, surprise,
neutral (the original challenge's emotion codes 0-6).
"""

import csv
from pathlib import Path

import cv2
import numpy as np

from tapelab.core.data import IMAGE_SUFFIXES, ImageData, one_hot, read_image_folders
from tapelab.core.errors import DataError

EMOTIONS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
# Folder names of the popular Kaggle copy, in the order of EMOTIONS.
KAGGLE_FOLDERS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FACE_SIZE = 48
# Split names users give, and their names in each form.
SPLITS = {"train": ("train", "Training"), "test": ("test", "PublicTest"), "private": ("private", "PrivateTest")}
USAGES = tuple(usage for _, usage in SPLITS.values())


def preprocess_face(face: np.ndarray) -> np.ndarray:
    """Any face crop (grey or BGR, uint8) to the classifier's input: 48x48x1 float32 in [0, 1].

    Training, `fer predict` and the realtime program all call this one function.
    """
    if face.ndim == 3:
        face = cv2.cvtColor(face, cv2.COLOR_BGR2GRAY)
    if face.shape != (FACE_SIZE, FACE_SIZE):
        shrinking = face.shape[0] > FACE_SIZE
        face = cv2.resize(face, (FACE_SIZE, FACE_SIZE), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)
    return (face.astype(np.float32) / 255.0)[..., None]


def load_fer_split(data_dir, split: str, skip_bad: bool = False):
    """(x, y one-hot, skipped count) of one split ("train", "test" = PublicTest, "private").

    `data_dir` holds the Kaggle folders (`train/EMOTION/*.jpg`, ...) or `fer2013.csv`, directly
    or under `fer2013/`. Malformed rows or images are errors naming the file (and row), or with
    `skip_bad` are skipped and counted. An emotion folder with no images is an error either way.
    """
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"data folder {data_dir} does not exist; pass the folder that holds FER2013")
    folder_name, usage = SPLITS[split]
    for root in (data_dir, data_dir / "fer2013"):
        if (root / "fer2013.csv").is_file():
            x, labels, skipped = _read_fer_csv(root / "fer2013.csv", usage, skip_bad)
            return x, one_hot(labels, len(EMOTIONS)), skipped
        if (root / folder_name).is_dir():
            x, labels, skipped = read_image_folders(root / folder_name, KAGGLE_FOLDERS, grayscale=True,
                                                    transform=preprocess_face, skip_unreadable=skip_bad)
            return x, one_hot(labels, len(EMOTIONS)), skipped
    raise DataError(
        f"no FER2013 {split} split under {data_dir}: expected fer2013.csv or {folder_name}/EMOTION/*.jpg "
        f"(folders {', '.join(KAGGLE_FOLDERS)}), directly or under fer2013/"
    )


def split_class_counts(data_dir, split: str) -> list[int]:
    """Faces per emotion (product order) in one split: image files counted without decoding them, or CSV
    rows read; an error as `load_fer_split`'s when the split is not there."""
    for root in (Path(data_dir), Path(data_dir) / "fer2013"):
        folder = root / SPLITS[split][0]
        if not (root / "fer2013.csv").is_file() and folder.is_dir():
            return [sum(1 for path in (folder / name).glob("*") if path.suffix.lower() in IMAGE_SUFFIXES)
                    if (folder / name).is_dir() else 0 for name in KAGGLE_FOLDERS]
    return [int(count) for count in load_fer_split(data_dir, split)[1].sum(axis=0)]


def load_fer2013(data_dir, skip_bad: bool = False) -> ImageData:
    """Training split for training, PublicTest for choosing models."""
    x_train, y_train, skipped_train = load_fer_split(data_dir, "train", skip_bad)
    x_test, y_test, skipped_test = load_fer_split(data_dir, "test", skip_bad)
    if skipped_train or skipped_test:
        print(f"skipped {skipped_train} bad training and {skipped_test} bad test items")
    return ImageData(x_train, y_train, x_test, y_test, EMOTIONS)


def _read_fer_csv(path: Path, usage: str, skip_bad: bool):
    """Faces, labels and the skipped count of the rows whose Usage is `usage`.

    A bad row (a field missing or extra, a NUL byte or a byte that is not UTF-8, an unknown Usage, a
    bad label or pixels) is an error naming file and row, or with `skip_bad` skipped and counted. A row
    whose Usage is missing or unreadable belongs to no split, so every split that is read counts it.
    """
    faces, labels, skipped = [], [], 0
    # surrogateescape keeps a non-UTF-8 byte inside its row, so that row is named (or skipped) instead of
    # the whole read failing; utf-8-sig accepts the byte-order mark some editors write.
    with open(path, newline="", encoding="utf-8-sig", errors="surrogateescape") as handle:
        reader = csv.DictReader(handle)
        missing = {"emotion", "pixels", "Usage"} - set(reader.fieldnames or ())
        if missing:
            raise DataError(f"{path} lacks the columns {', '.join(sorted(missing))}; expected emotion,pixels,Usage")
        row_number = 1  # row 1 is the header
        try:
            for row_number, row in enumerate(reader, start=2):
                try:
                    if _row_usage(row) != usage:
                        continue
                    face, label = _parse_row(row)
                except (ValueError, OverflowError) as problem:
                    if not skip_bad:
                        raise DataError(f"{path}, row {row_number}: {problem}; fix the row or skip bad rows") from None
                    skipped += 1
                    continue
                faces.append(preprocess_face(face))
                labels.append(label)
        except csv.Error as error:  # e.g. an unclosed quote that swallows the rest of the file
            raise DataError(f"{path}, after row {row_number}: {error}; fix the file") from None
    if not faces:
        raise DataError(f"{path} has no usable rows with Usage {usage} ({skipped} bad rows skipped); "
                        "check the file or pass another split")
    return np.stack(faces), np.asarray(labels), skipped


def _field(row: dict, name: str) -> str:
    """One field of a CSV row, as text that can be trusted; ValueError saying what is wrong otherwise."""
    value = row[name]
    if value is None:
        raise ValueError(f"the row ends before its {name} field")
    if "\x00" in value:
        raise ValueError(f"a NUL byte in the {name} field")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a byte that was not UTF-8, kept by surrogateescape
        raise ValueError(f"a byte that is not UTF-8 text in the {name} field") from None
    return value


def _row_usage(row: dict) -> str:
    usage = _field(row, "Usage")
    if usage not in USAGES:
        raise ValueError(f"unknown Usage {usage[:40]!r} (expected {', '.join(USAGES)})")
    return usage


def _parse_row(row):
    if None in row:  # csv.DictReader files fields beyond the header under the key None
        raise ValueError(f"{len(row[None])} more fields than the header's")
    label = int(_field(row, "emotion"))
    if not 0 <= label < len(EMOTIONS):
        raise ValueError(f"unknown emotion label {label} (expected 0-6)")
    pixels = np.array(_field(row, "pixels").split(), dtype=np.int64)
    if pixels.size != FACE_SIZE * FACE_SIZE:
        raise ValueError(f"{pixels.size} pixels instead of {FACE_SIZE * FACE_SIZE}")
    if pixels.min() < 0 or pixels.max() > 255:
        raise ValueError("pixel values outside 0-255")
    return pixels.reshape(FACE_SIZE, FACE_SIZE).astype(np.uint8), label
