"""FER2013 facial expressions: labels, the one preprocessing function, both data forms, and the splits.

The product's label order, everywhere: anger, disgust, fear, happiness, sadness, surprise,
neutral (the original challenge's emotion codes 0-6).

Every choice (epochs, recipes, ensembles) is made on a validation split carved from Training:
stratified by class, a fixed seed, 10% (`carve_validation`); nets train on the rest ("train"), and
PublicTest ("test") is the test set, scored once at the end. The carved faces are recorded by
`tapelab fer split` (results/fer/validation_split.json) so the split can be checked file by file.
"""

import csv
from pathlib import Path

import cv2
import numpy as np

from tapelab.core.data import IMAGE_SUFFIXES, ImageData, class_image_paths, one_hot, read_image_folders
from tapelab.core.errors import DataError

EMOTIONS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
# Folder names of the popular Kaggle copy, in the order of EMOTIONS.
KAGGLE_FOLDERS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
FACE_SIZE = 48
# Split names users give, and the data they are read from in each form (folder, CSV Usage): "train" and
# "validation" are the two parts of Training.
SPLITS = {"train": ("train", "Training"), "validation": ("train", "Training"), "test": ("test", "PublicTest"),
          "private": ("private", "PrivateTest")}
USAGES = ("Training", "PublicTest", "PrivateTest")
VALIDATION_FRACTION = 0.1
VALIDATION_SEED = 2013


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


def validation_counts(class_counts) -> np.ndarray:
    """Faces per class carved for validation from Training faces counted `class_counts`: the fraction,
    rounded, and at least one of every class with two or more (so each class is validated and trained on)."""
    counts = np.asarray(class_counts, dtype=np.int64)
    return np.where(counts >= 2, np.maximum(np.rint(counts * VALIDATION_FRACTION).astype(np.int64), 1), 0)


def carve_validation(labels: np.ndarray) -> np.ndarray:
    """Sorted positions of the validation faces among Training's `labels` (class indices in load order):
    per class `validation_counts` of them, drawn with the fixed seed, so the same data gives the same split."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(VALIDATION_SEED)
    wanted = validation_counts(np.bincount(labels, minlength=len(EMOTIONS)))
    chosen = [rng.permutation(np.flatnonzero(labels == label))[:count] for label, count in enumerate(wanted)]
    return np.sort(np.concatenate(chosen))


def load_fer_split(data_dir, split: str, skip_bad: bool = False):
    """(x, y one-hot, skipped count) of one split ("train" and "validation": the two parts of Training;
    "test" = PublicTest; "private" = PrivateTest).

    `data_dir` holds the Kaggle folders (`train/EMOTION/*.jpg`, ...) or `fer2013.csv`, directly
    or under `fer2013/`. Malformed rows or images are errors naming the file (and row), or with
    `skip_bad` are skipped and counted. An emotion folder with no images is an error either way.
    """
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"data folder {data_dir} does not exist; pass the folder that holds FER2013")
    x, labels, skipped = _read_fer(data_dir, split, skip_bad)
    if SPLITS[split][1] == "Training":
        carved = carve_validation(labels)
        kept = carved if split == "validation" else np.setdiff1d(np.arange(len(labels)), carved)
        x, labels = x[kept], labels[kept]
    return x, one_hot(labels, len(EMOTIONS)), skipped


def _split_source(data_dir: Path, split: str) -> tuple[str, Path] | None:
    """Where a split is read from, ("csv", the file) or ("folder", the split's folder), looked for in
    `data_dir` and then in `data_dir/fer2013`, the CSV first; None when neither is there."""
    for root in (data_dir, data_dir / "fer2013"):
        if (root / "fer2013.csv").is_file():
            return "csv", root / "fer2013.csv"
        if (root / SPLITS[split][0]).is_dir():
            return "folder", root / SPLITS[split][0]
    return None


def _read_fer(data_dir: Path, split: str, skip_bad: bool):
    """Faces, labels and skipped count of the whole data the split is read from, in load order."""
    source = _split_source(data_dir, split)
    if source and source[0] == "csv":
        return _read_fer_csv(source[1], SPLITS[split][1], skip_bad)
    if source:
        return read_image_folders(source[1], KAGGLE_FOLDERS, grayscale=True, transform=preprocess_face,
                                  skip_unreadable=skip_bad)
    folder_name = SPLITS[split][0]
    raise DataError(
        f"no FER2013 {split} split under {data_dir}: expected fer2013.csv or {folder_name}/EMOTION/*.jpg "
        f"(folders {', '.join(KAGGLE_FOLDERS)}), directly or under fer2013/"
    )


def split_class_counts(data_dir, split: str) -> list[int]:
    """Faces per emotion (product order) in one split: image files counted without decoding them, or CSV
    rows read; an error as `load_fer_split`'s when the split is not there."""
    source = _split_source(Path(data_dir), split)
    if not source or source[0] == "csv":
        return [int(count) for count in load_fer_split(data_dir, split)[1].sum(axis=0)]
    folder = source[1]
    counts = np.array([sum(1 for path in (folder / name).glob("*") if path.suffix.lower() in IMAGE_SUFFIXES)
                       if (folder / name).is_dir() else 0 for name in KAGGLE_FOLDERS])
    if SPLITS[split][1] == "Training":
        carved = validation_counts(counts)
        counts = carved if split == "validation" else counts - carved
    return counts.tolist()


def validation_record(data_dir) -> dict:
    """The carved validation split, for the record: seed, fraction, faces per class, and each face's
    position in Training's load order and, for the folder form, its file (`train/FOLDER/NAME`)."""
    source = _split_source(Path(data_dir), "validation")
    if source and source[0] == "folder":  # the labels are the folders': no image needs decoding
        paths, labels = class_image_paths(source[1], KAGGLE_FOLDERS)
        labels = np.asarray(labels)
    else:
        paths, (_, labels, _) = None, _read_fer(Path(data_dir), "validation", skip_bad=False)
    carved = carve_validation(labels)
    record = {"seed": VALIDATION_SEED, "fraction": VALIDATION_FRACTION,
              "per_class": dict(zip(EMOTIONS, np.bincount(labels[carved], minlength=len(EMOTIONS)).tolist())),
              "positions": carved.tolist()}
    if paths:
        record["files"] = [paths[index].relative_to(source[1].parent).as_posix() for index in carved]
    return record


def load_fer2013(data_dir, skip_bad: bool = False) -> ImageData:
    """Training less the validation faces for training, the validation faces for every choice (best
    epoch, recipe, ensemble); PublicTest is left for the final test."""
    x_train, y_train, skipped = load_fer_split(data_dir, "train", skip_bad)
    x_val, y_val, _ = load_fer_split(data_dir, "validation", skip_bad)
    if skipped:
        print(f"skipped {skipped} bad Training items")
    return ImageData(x_train, y_train, x_val, y_val, EMOTIONS, held_out="validation")


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
