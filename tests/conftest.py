"""Shared fixtures: small synthetic data made on the spot, never the real data sets."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest
import tensorflow as tf

# Two logical CPUs, so MirroredStrategy has two replicas; must happen before TF starts.
_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from tapelab.core.data import ImageData, one_hot  # noqa: E402
from tapelab.core.models import build_cnn  # noqa: E402


def make_digits(num_train=256, num_test=64, seed=0):
    """MNIST-shaped uint8 digits: class k lights up a k-dependent band, plus noise."""
    rng = np.random.default_rng(seed)

    def split(count):
        labels = rng.integers(0, 10, count)
        images = rng.integers(0, 60, (count, 28, 28)).astype(np.uint8)
        for image, label in zip(images, labels):
            image[2 * label + 4 : 2 * label + 7, 4:24] = 255
        return images, labels.astype(np.uint8)

    return (*split(num_train), *split(num_test))


@pytest.fixture
def tiny_digits() -> ImageData:
    x_train, y_train, x_test, y_test = make_digits()
    return ImageData(
        x_train[..., None].astype(np.float32) / 255, one_hot(y_train, 10),
        x_test[..., None].astype(np.float32) / 255, one_hot(y_test, 10),
        class_names=tuple("0123456789"),
    )


@pytest.fixture
def mnist_npz(tmp_path):
    """A small file with the Keras mnist.npz keys."""
    x_train, y_train, x_test, y_test = make_digits(64, 16)
    path = tmp_path / "mnist.npz"
    np.savez_compressed(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


@pytest.fixture
def emotion_model(tmp_path):
    """An untrained emotion CNN of the shipped model's input and output, and its `.h5` file."""
    model = build_cnn((48, 48, 1), 7, widths=(4, 8), convs_per_stage=1, dense_units=0, mean=[0.5], std=[0.25])
    path = tmp_path / "emotion.h5"
    model.save(path)
    return model, path
