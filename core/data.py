"""Data loading: images as float32 in [0, 1], labels one-hot.

With no data folder the loaders use Keras' normal download and cache (what users have).
With `data_dir` they read local files directly and never hand them to Keras' downloader,
which deletes a file whose hash it does not expect.
"""

import hashlib
import pickle
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tapelab.core.errors import DataError

MNIST_KEYS = ("x_train", "y_train", "x_test", "y_test")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
CIFAR10_BATCHES = (*(f"data_batch_{index}" for index in range(1, 6)), "test_batch")


@dataclass
class ImageData:
    """Train and held-out splits; x is (N, H, W, C) float32 in [0, 1], y is (N, classes) one-hot. `held_out`
    names what x_test holds: the test split, or a validation split carved from training data (FER2013), so
    logs and reports call the scores training keeps its epoch on by their name."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple
    held_out: str = "test"

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def fingerprint(self) -> str:
        """SHA-256 of every array and the class names: two runs on the same data share it, whatever the files."""
        digest = hashlib.sha256()
        for array in (self.x_train, self.y_train, self.x_test, self.y_test):
            array = np.ascontiguousarray(array)
            digest.update(f"{array.dtype}{array.shape}".encode())
            digest.update(array.data)
        digest.update(repr(tuple(self.class_names)).encode())
        return digest.hexdigest()


# The adversarial lab's data sets, as prose names them.
DATASET_TITLES = {"mnist": "MNIST", "cifar10": "CIFAR-10"}


def dataset_title(name: str) -> str:
    """A data set's name as prose writes it (the key itself for one without a title)."""
    return DATASET_TITLES.get(name, name)


def one_hot(labels, num_classes: int) -> np.ndarray:
    labels = np.asarray(labels).astype(np.int64).ravel()
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"labels must lie in 0..{num_classes - 1}, found {labels.min()}..{labels.max()}")
    return np.eye(num_classes, dtype=np.float32)[labels]


def to_unit_float(images: np.ndarray, source: str = "images") -> np.ndarray:
    """Pixels (N, H, W) or (N, H, W, C) to float32 in [0, 1] with a channel axis.

    Integers in 0..255 (uint8 as stored) are divided by 255; floats already in [0, 1] are kept, so data
    saved as floats is not scaled twice. Anything else (floats up to 255, negative values, integers above
    255, NaN) is a DataError naming `source`, the dtype and the range found.
    """
    images = np.asarray(images)
    integer = np.issubdtype(images.dtype, np.integer)
    if not (integer or np.issubdtype(images.dtype, np.floating)):
        raise DataError(f"{source} holds {images.dtype} values; expected integer pixels in 0..255 or floats in [0, 1]")
    if images.size:
        low, high = images.min(), images.max()  # NaN anywhere makes both NaN
        if np.isnan(low) or low < 0 or high > (255 if integer else 1):
            found = "NaN" if np.isnan(low) else f"{low:g}..{high:g}"
            raise DataError(f"{source} holds {images.dtype} pixels with values {found}; expected integers in 0..255 "
                            "(uint8) or floats in [0, 1]; convert the images to one of these")
    images = images.astype(np.float32) / 255.0 if integer else images.astype(np.float32)
    return images[..., None] if images.ndim == 3 else images


def _short(error: BaseException) -> str:
    """An exception as one short line for a message: its type and the first line of its text."""
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0][:160]}" if lines else type(error).__name__


def find_file(data_dir, *candidates: str) -> Path:
    """The first of `candidates` (relative paths) that exists under `data_dir`."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        raise DataError(f"data folder {data_dir} does not exist; pass the folder that holds {candidates[0]}")
    for candidate in candidates:
        if (data_dir / candidate).is_file():
            return data_dir / candidate
    raise DataError(f"no {' or '.join(candidates)} under {data_dir}; put the file there or fix --data-dir")


def load_mnist(data_dir=None) -> ImageData:
    """MNIST, 60,000 train and 10,000 test 28x28 digits.

    `data_dir` may hold `mnist.npz` or `mnist/mnist.npz` (the Keras cache file's keys).
    """
    if data_dir is None:
        import keras

        source = "Keras' MNIST download"
        try:
            (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
        except Exception as error:  # Keras' downloader raises a bare Exception when there is no network
            raise DataError(f"could not download MNIST ({_short(error)}); pass --data-dir with a local copy "
                            "(mnist.npz)") from None
    else:
        path = find_file(data_dir, "mnist.npz", "mnist/mnist.npz")
        source = str(path)
        x_train, y_train, x_test, y_test = _read_mnist_npz(path)
    return ImageData(
        to_unit_float(x_train, f"{source} (x_train)"),
        one_hot(y_train, 10),
        to_unit_float(x_test, f"{source} (x_test)"),
        one_hot(y_test, 10),
        class_names=tuple(str(digit) for digit in range(10)),
    )


def _read_mnist_npz(path: Path):
    try:
        archive = np.load(path)
        if not isinstance(archive, np.lib.npyio.NpzFile):
            raise DataError(f"{path} is a single .npy array, not an .npz archive; download mnist.npz again")
        with archive:
            missing = [key for key in MNIST_KEYS if key not in archive]
            if missing:
                raise DataError(f"{path} lacks {', '.join(missing)}; expected the Keras mnist.npz keys {MNIST_KEYS}")
            arrays = [archive[key] for key in MNIST_KEYS]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        # An empty file makes np.load raise EOFError; a cut-off or damaged one BadZipFile or zlib.error.
        raise DataError(f"{path} is not a readable .npz file ({_short(error)}); download mnist.npz again") from None
    x_train, y_train, x_test, y_test = arrays
    for name, images, labels in (("train", x_train, y_train), ("test", x_test, y_test)):
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise DataError(f"{path}: {name} images have shape {images.shape}; expected (N, 28, 28)")
        if len(images) != len(labels):
            raise DataError(f"{path}: {len(images)} {name} images but {len(labels)} {name} labels; the counts "
                            "must match; download mnist.npz again")
    return x_train, y_train, x_test, y_test


def load_cifar10(data_dir=None) -> ImageData:
    """CIFAR-10, 50,000 train and 10,000 test 32x32 RGB images.

    `data_dir` may hold per-class image folders `train/CLASS/*` and `test/CLASS/*`, directly or
    under `cifar10/` (preferred whenever present), or be itself the official batches folder
    (`cifar-10-batches-py/`). Unpickling can run code, so pickles are read only from the folder
    the user names, never from one found by searching.
    """
    if data_dir is None:
        import keras

        try:
            (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
        except Exception as error:  # Keras' downloader raises a bare Exception when there is no network
            raise DataError(f"could not download CIFAR-10 ({_short(error)}); pass --data-dir with a local copy "
                            "(train/ and test/ image folders, or the cifar-10-batches-py folder itself)") from None
        source = "Keras' CIFAR-10 download"
    else:
        x_train, y_train, x_test, y_test, source = _read_cifar10_local(Path(data_dir))
    return ImageData(to_unit_float(x_train, f"{source} (train)"), one_hot(y_train, 10),
                     to_unit_float(x_test, f"{source} (test)"), one_hot(y_test, 10), CIFAR10_CLASSES)


def _read_cifar10_local(data_dir: Path):
    """(x_train, y_train, x_test, y_test, where they came from) from image folders or the named batches folder."""
    if not data_dir.is_dir():
        raise DataError(f"data folder {data_dir} does not exist; pass the folder that holds CIFAR-10")
    for root in (data_dir, data_dir / "cifar10"):
        if (root / "train").is_dir() and (root / "test").is_dir():
            x_train, y_train, _ = read_image_folders(root / "train", CIFAR10_CLASSES, grayscale=False)
            x_test, y_test, _ = read_image_folders(root / "test", CIFAR10_CLASSES, grayscale=False)
            return x_train, y_train, x_test, y_test, str(root)
    if any((data_dir / name).exists() for name in CIFAR10_BATCHES):
        return (*_read_cifar10_pickles(data_dir), str(data_dir))
    batches = "cifar-10-batches-py"
    for folder in (data_dir / batches, data_dir / "cifar10", data_dir / "cifar10" / batches):
        if any((folder / name).exists() for name in CIFAR10_BATCHES):
            raise DataError(f"the CIFAR-10 batches (Python pickles) are in {folder}; unpickling can run code, so "
                            f"tapelab reads only a batches folder you name: pass --data-dir {folder}")
    raise DataError(
        f"no CIFAR-10 under {data_dir}: expected train/CLASS/*.jpg and test/CLASS/*.jpg folders (directly or under "
        "cifar10/), or pass the cifar-10-batches-py folder itself as --data-dir"
    )


def _read_cifar10_pickles(root: Path):
    """The official batches in `root`, which the user named; every file is checked to be there first."""
    missing = [name for name in CIFAR10_BATCHES if not (root / name).is_file()]
    if missing:
        raise DataError(f"{root} lacks {', '.join(missing)}; the cifar-10-batches-py folder is incomplete, "
                        "download it again")

    def batch(name):
        path = root / name
        try:
            with open(path, "rb") as handle:
                content = pickle.load(handle, encoding="bytes")
            images = np.asarray(content[b"data"])
            labels = np.asarray(content[b"labels"])
            images = images.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        except OSError as error:
            raise DataError(f"cannot read {path} (a Python pickle): {_short(error)}; check the file") from None
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, KeyError, TypeError,
                ValueError, OverflowError) as error:  # what a damaged or foreign pickle raises while loading
            raise DataError(f"{path} (a Python pickle) is not a CIFAR-10 batch ({_short(error)}); download it "
                            "again") from None
        if len(images) != len(labels) or not np.issubdtype(labels.dtype, np.integer):
            raise DataError(f"{path} (a Python pickle) holds {len(images)} images for {len(labels)} "
                            f"{labels.dtype} labels; download it again")
        return to_unit_float(images, f"{path} (a Python pickle)"), labels

    parts = [batch(name) for name in CIFAR10_BATCHES]
    x_train = np.concatenate([images for images, _ in parts[:5]])
    y_train = np.concatenate([labels for _, labels in parts[:5]])
    return x_train, y_train, *parts[5]


def class_image_paths(root: Path, class_folders) -> tuple[list[Path], list[int]]:
    """The image files under `root/FOLDER/` for each folder, sorted by name, and their labels (the folder's
    position): the order every reader of class folders loads them in."""
    paths, labels = [], []
    for label, folder in enumerate(class_folders):
        if not (root / folder).is_dir():
            raise DataError(f"{root / folder} is missing; expected one folder per class: {', '.join(class_folders)}")
        found = sorted(p for p in (root / folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not found:
            raise DataError(f"no images in {root / folder}; every class needs images "
                            f"({', '.join(sorted(IMAGE_SUFFIXES))})")
        paths += found
        labels += [label] * len(found)
    return paths, labels


def read_image_folders(root: Path, class_folders, grayscale: bool, transform=None, skip_unreadable=False):
    """Images from `root/FOLDER/*` for each folder in `class_folders` (label = its position).

    `transform` is applied to each decoded image (uint8, RGB or grey). An unreadable image is an
    error naming it, or, with `skip_unreadable`, skipped and counted. A class with no images (or,
    after skipping, none readable) is always an error: training without it would be silently wrong.
    Decoding runs on threads (OpenCV releases the GIL). Returns (images, labels, number skipped).
    """
    import cv2

    paths, labels = class_image_paths(root, class_folders)
    flag = cv2.IMREAD_GRAYSCALE if grayscale else cv2.IMREAD_COLOR

    def read(path):
        image = cv2.imread(str(path), flag)
        if image is None:
            if skip_unreadable:
                return None
            raise DataError(f"cannot read image {path}; delete or replace it, or skip bad files")
        image = image if grayscale else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        return transform(image) if transform else image

    with ThreadPoolExecutor(max_workers=4) as pool:
        images = list(pool.map(read, paths))
    kept = [index for index, image in enumerate(images) if image is not None]
    labels = np.asarray(labels, dtype=np.int64)[kept]
    emptied = [folder for label, folder in enumerate(class_folders) if not np.any(labels == label)]
    if emptied:
        raise DataError(f"no readable images in {root / emptied[0]}; every class needs images")
    images = [images[index] for index in kept]
    shapes = {image.shape for image in images}
    if len(shapes) > 1:
        raise DataError(f"images under {root} differ in size ({sorted(shapes)[:3]}); resize them to one size")
    return np.stack(images), labels, len(paths) - len(kept)
