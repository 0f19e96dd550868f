"""Data loading: images as float32 in [0, 1], labels one-hot.

With no data folder the loaders use Keras' normal download and cache (what users have).
With `data_dir` they read local files directly and never hand them to Keras' downloader,
which deletes a file whose hash it does not expect.
"""

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.errors import DataError

MNIST_KEYS = ("x_train", "y_train", "x_test", "y_test")


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
