"""Data loading: images as float32 in [0, 1], labels one-hot.

With no data folder the loaders use Keras' normal download and cache (what users have).
With `data_dir` they read local files directly and never hand them to Keras' downloader,
which deletes a file whose hash it does not expect.
"""

import hashlib
import pickle
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import DataError

MNIST_KEYS = ("x_train", "y_train", "x_test", "y_test")
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}


@dataclass
class ImageData:
    """Train and test splits; x is (N, H, W, C) float32 in [0, 1], y is (N, classes) one-hot."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    class_names: tuple

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


def one_hot(labels, num_classes: int) -> np.ndarray:
    labels = np.asarray(labels).astype(np.int64).ravel()
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DataError(f"labels must lie in 0..{num_classes - 1}, found {labels.min()}..{labels.max()}")
    return np.eye(num_classes, dtype=np.float32)[labels]


def to_unit_float(images: np.ndarray) -> np.ndarray:
    """uint8 pixels (N, H, W) or (N, H, W, C) to float32 in [0, 1] with a channel axis."""
    images = np.asarray(images, dtype=np.float32) / 255.0
    return images[..., None] if images.ndim == 3 else images


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

        (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    else:
        x_train, y_train, x_test, y_test = _read_mnist_npz(find_file(data_dir, "mnist.npz", "mnist/mnist.npz"))
    return ImageData(
        to_unit_float(x_train),
        one_hot(y_train, 10),
        to_unit_float(x_test),
        one_hot(y_test, 10),
        class_names=tuple(str(digit) for digit in range(10)),
    )


def _read_mnist_npz(path: Path):
    try:
        with np.load(path) as archive:
            missing = [key for key in MNIST_KEYS if key not in archive]
            if missing:
                raise DataError(f"{path} lacks {', '.join(missing)}; expected the Keras mnist.npz keys {MNIST_KEYS}")
            arrays = [archive[key] for key in MNIST_KEYS]
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise DataError(f"{path} is not a readable .npz file ({error}); download mnist.npz again") from None
    x_train, y_train, x_test, y_test = arrays
    for name, images, labels in (("train", x_train, y_train), ("test", x_test, y_test)):
        if images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) != len(labels):
            raise DataError(
                f"{path}: {name} images have shape {images.shape} for {len(labels)} labels; expected (N, 28, 28)"
            )
    return x_train, y_train, x_test, y_test


def load_cifar10(data_dir=None) -> ImageData:
    """CIFAR-10, 50,000 train and 10,000 test 32x32 RGB images.

    `data_dir` may hold the official pickled batches (`cifar-10-batches-py/`), or per-class image
    folders `train/CLASS/*` and `test/CLASS/*`, directly or under `cifar10/`. Unpickling runs
    code, so pickles are read only from a folder the user names.
    """
    if data_dir is None:
        import keras

        (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
    else:
        x_train, y_train, x_test, y_test = _read_cifar10_local(Path(data_dir))
    return ImageData(
        to_unit_float(x_train), one_hot(y_train, 10), to_unit_float(x_test), one_hot(y_test, 10), CIFAR10_CLASSES
    )


def _read_cifar10_local(data_dir: Path):
    if not data_dir.is_dir():
        raise DataError(f"data folder {data_dir} does not exist; pass the folder that holds CIFAR-10")
    roots = [data_dir, data_dir / "cifar10"]
    for root in [*roots, *(r / "cifar-10-batches-py" for r in roots)]:
        if (root / "data_batch_1").is_file():
            return _read_cifar10_pickles(root)
        if (root / "train").is_dir() and (root / "test").is_dir():
            x_train, y_train, _ = read_image_folders(root / "train", CIFAR10_CLASSES, grayscale=False)
            x_test, y_test, _ = read_image_folders(root / "test", CIFAR10_CLASSES, grayscale=False)
            return x_train, y_train, x_test, y_test
    raise DataError(
        f"no CIFAR-10 under {data_dir}: expected cifar-10-batches-py/ (official download) or "
        "train/CLASS/*.jpg and test/CLASS/*.jpg folders, directly or under cifar10/"
    )


def _read_cifar10_pickles(root: Path):
    def batch(name):
        path = root / name
        try:
            with open(path, "rb") as handle:
                content = pickle.load(handle, encoding="bytes")
            images = np.asarray(content[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
            return images, np.asarray(content[b"labels"])
        except FileNotFoundError:
            raise DataError(f"{path} is missing; the cifar-10-batches-py folder is incomplete") from None
        except (pickle.UnpicklingError, KeyError, ValueError, EOFError, TypeError) as error:
            raise DataError(f"{path} is not a CIFAR-10 batch ({error}); download it again") from None

    parts = [batch(f"data_batch_{index}") for index in range(1, 6)]
    x_test, y_test = batch("test_batch")
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]), x_test, y_test


def read_image_folders(root: Path, class_folders, grayscale: bool, transform=None, skip_unreadable=False):
    """Images from `root/FOLDER/*` for each folder in `class_folders` (label = its position).

    `transform` is applied to each decoded image (uint8, RGB or grey). An unreadable image is an
    error naming it, or, with `skip_unreadable`, skipped and counted. Decoding runs on threads
    (OpenCV releases the GIL). Returns (images, labels, number skipped).
    """
    import cv2

    paths, labels = [], []
    for label, folder in enumerate(class_folders):
        if not (root / folder).is_dir():
            raise DataError(f"{root / folder} is missing; expected one folder per class: {', '.join(class_folders)}")
        found = sorted(p for p in (root / folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        paths += found
        labels += [label] * len(found)
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
    images = [images[index] for index in kept]
    shapes = {image.shape for image in images}
    if len(shapes) > 1:
        raise DataError(f"images under {root} differ in size ({sorted(shapes)[:3]}); resize them to one size")
    if not images:
        raise DataError(f"no readable images under {root}")
    return np.stack(images), np.asarray(labels)[kept], len(paths) - len(kept)
