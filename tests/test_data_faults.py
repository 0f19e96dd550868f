"""Faults in data files: each is a one-line DataError saying what to do, or a counted skip, never silently wrong."""

import csv
import pickle
from pathlib import Path

import cv2
import numpy as np
import pytest

from tapelab.core.data import CIFAR10_BATCHES, CIFAR10_CLASSES, load_cifar10, load_mnist
from tapelab.core.errors import DataError
from tapelab.core.fer import KAGGLE_FOLDERS, load_fer_split


def _one_line_error(call, *args, match, **kwargs) -> str:
    with pytest.raises(DataError, match=match) as error:
        call(*args, **kwargs)
    message = str(error.value)
    assert "\n" not in message, message
    return message


class _TouchOnLoad:
    """Unpickling this runs code: it creates `marker`, which shows whether a file was unpickled."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def _write_pickles(folder: Path, content) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name in CIFAR10_BATCHES:
        (folder / name).write_bytes(pickle.dumps(content))


def _write_cifar_folders(root: Path, empty_class: str | None = None) -> None:
    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for name in CIFAR10_CLASSES:
            (root / split / name).mkdir(parents=True)
            if name != empty_class:
                cv2.imwrite(str(root / split / name / "0.png"), rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))


# 1. Pickles are unpickled only from the folder the user names.

def test_image_folders_win_and_a_pickle_beside_them_is_never_unpickled(tmp_path):
    marker = tmp_path / "unpickled"
    _write_cifar_folders(tmp_path / "data")
    _write_pickles(tmp_path / "data", _TouchOnLoad(marker))
    data = load_cifar10(tmp_path / "data")
    assert data.x_train.shape == (10, 32, 32, 3) and not marker.exists()


@pytest.mark.parametrize("subfolder", ["cifar-10-batches-py", "cifar10", "cifar10/cifar-10-batches-py"])
def test_pickles_in_a_subfolder_are_named_not_unpickled(tmp_path, subfolder):
    marker = tmp_path / "unpickled"
    _write_pickles(tmp_path / "data" / subfolder, _TouchOnLoad(marker))
    message = _one_line_error(load_cifar10, tmp_path / "data", match="Python pickles")
    assert f"pass --data-dir {tmp_path / 'data' / subfolder}" in message
    assert not marker.exists()


def test_incomplete_batches_folder_is_named_before_anything_is_unpickled(tmp_path):
    marker = tmp_path / "unpickled"
    _write_pickles(tmp_path / "batches", _TouchOnLoad(marker))
    (tmp_path / "batches" / "test_batch").unlink()
    _one_line_error(load_cifar10, tmp_path / "batches", match="lacks test_batch; the cifar-10-batches-py folder is")
    assert not marker.exists()


@pytest.mark.parametrize("content, message", [
    (b"not a pickle", r"data_batch_1 \(a Python pickle\) is not a CIFAR-10 batch \(UnpicklingError"),
    (b"", r"data_batch_1 \(a Python pickle\) is not a CIFAR-10 batch \(EOFError"),
    (pickle.dumps({b"labels": [0]}), r"data_batch_1 \(a Python pickle\) is not a CIFAR-10 batch \(KeyError"),
    (pickle.dumps({b"data": np.full((1, 3072), 300), b"labels": [0]}),
     r"data_batch_1 \(a Python pickle\) holds int64 pixels with values 300..300"),
    (pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}),
     r"data_batch_1 \(a Python pickle\) holds 2 images for 1"),
])
def test_errors_while_reading_a_pickle_say_it_was_a_pickle(tmp_path, content, message):
    _write_pickles(tmp_path, {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0]})
    (tmp_path / "data_batch_1").write_bytes(content)
    _one_line_error(load_cifar10, tmp_path, match=message)


# 2. Pixels are scaled to [0, 1] once, and values that fit neither form are errors.

def _write_npz(path: Path, x_train, x_test=None) -> None:
    labels = np.arange(len(x_train)) % 10
    x_test = x_train if x_test is None else x_test
    np.savez(path, x_train=x_train, y_train=labels, x_test=x_test, y_test=labels)


def test_float_images_in_unit_range_are_not_divided_again(tmp_path):
    images = np.random.default_rng(0).random((4, 28, 28)).astype(np.float32)
    _write_npz(tmp_path / "mnist.npz", images)
    data = load_mnist(tmp_path)
    np.testing.assert_array_equal(data.x_train[..., 0], images)
    assert data.x_test.max() > 0.9


@pytest.mark.parametrize("images, found", [
    (np.full((2, 28, 28), 255.0, np.float32), "float32 pixels with values 255..255"),
    (np.full((2, 28, 28), -1, np.int16), "int16 pixels with values -1..-1"),
    (np.full((2, 28, 28), 300, np.int64), "int64 pixels with values 300..300"),
    (np.full((2, 28, 28), np.nan), "float64 pixels with values NaN"),
])
def test_pixels_outside_both_forms_are_named_with_file_dtype_and_range(tmp_path, images, found):
    _write_npz(tmp_path / "mnist.npz", images)
    message = _one_line_error(load_mnist, tmp_path, match=found)
    assert str(tmp_path / "mnist.npz") in message
    assert "expected integers in 0..255 (uint8) or floats in [0, 1]" in message


def test_test_split_is_checked_too(tmp_path):
    _write_npz(tmp_path / "mnist.npz", np.zeros((2, 28, 28), np.uint8), np.full((2, 28, 28), 2.0))
    _one_line_error(load_mnist, tmp_path, match=r"mnist.npz \(x_test\) holds float64 pixels with values 2..2")


# 3. Incomplete data: empty classes, and CSV rows that belong to no split.

def test_empty_cifar_class_folder_is_an_error(tmp_path):
    _write_cifar_folders(tmp_path, empty_class="cat")
    _one_line_error(load_cifar10, tmp_path, match=f"no images in {tmp_path / 'train' / 'cat'}; every class needs")


def _write_fer_folders(root: Path, empty_class: str | None = None) -> None:
    for index, name in enumerate(KAGGLE_FOLDERS):
        (root / "train" / name).mkdir(parents=True)
        if name != empty_class:
            cv2.imwrite(str(root / "train" / name / "0.png"), np.full((48, 48), 30 * index, np.uint8))


@pytest.mark.parametrize("skip_bad", [False, True])
def test_empty_emotion_folder_is_an_error_even_when_skipping_bad_files(tmp_path, skip_bad):
    _write_fer_folders(tmp_path, empty_class="disgust")
    _one_line_error(load_fer_split, tmp_path, "train", skip_bad=skip_bad,
                    match=f"no images in {tmp_path / 'train' / 'disgust'}; every class needs images")


def test_emotion_folder_left_empty_by_skipping_is_an_error(tmp_path):
    _write_fer_folders(tmp_path, empty_class="fear")
    (tmp_path / "train" / "fear" / "broken.jpg").write_bytes(b"garbage")
    _one_line_error(load_fer_split, tmp_path, "train", skip_bad=True,
                    match=f"no readable images in {tmp_path / 'train' / 'fear'}; every class needs images")


def _pixels(value=0):
    return " ".join([str(value)] * 2304)


def _write_csv(path: Path, rows) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["emotion", "pixels", "Usage"])
        writer.writerows(rows)


@pytest.mark.parametrize("bad_row, problem, counted_in_test", [
    ([2, _pixels()], "row 3: the row ends before its Usage field", True),
    ([2, _pixels(), "Validation"], "row 3: unknown Usage 'Validation'", True),
    ([2, _pixels(), "Train\x00ing"], r"row 3: a NUL byte in the Usage field", True),
    ([2, _pixels() + "\x00", "Training"], "row 3: a NUL byte in the pixels field", False),
    ([2, _pixels(), "Training", "extra"], "row 3: 1 more fields than the header's", False),
])
def test_bad_csv_row_is_named_or_counted(tmp_path, bad_row, problem, counted_in_test):
    path = tmp_path / "fer2013.csv"
    _write_csv(path, [[1, _pixels(), "Training"], bad_row, [3, _pixels(), "PublicTest"]])
    message = _one_line_error(load_fer_split, tmp_path, "train", match=problem)
    assert message.startswith(f"{path}, row 3:")
    x, _, skipped = load_fer_split(tmp_path, "train", skip_bad=True)
    assert len(x) == 1 and skipped == 1
    # A row with no readable Usage could belong to any split, so each split counts it.
    assert load_fer_split(tmp_path, "test", skip_bad=True)[2] == int(counted_in_test)


def test_byte_that_is_not_utf8_names_the_row(tmp_path):
    path = tmp_path / "fer2013.csv"
    _write_csv(path, [[1, _pixels(), "Training"], [2, _pixels(), "Training"]])
    content = path.read_bytes().splitlines(keepends=True)
    content[2] = content[2].replace(b"Training", b"Tr\xffining")
    path.write_bytes(b"".join(content))
    _one_line_error(load_fer_split, tmp_path, "train", match="row 3: a byte that is not UTF-8 text in the Usage field")
    assert load_fer_split(tmp_path, "train", skip_bad=True)[2] == 1


def test_csv_with_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "fer2013.csv"
    _write_csv(path, [[1, _pixels(), "Training"]])
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert len(load_fer_split(tmp_path, "train")[0]) == 1


# 4. Crashes that were not DataErrors.

@pytest.mark.parametrize("damage", ["empty", "truncated", "flipped", "npy"])
def test_damaged_mnist_npz_is_one_line(mnist_npz, damage):
    content = mnist_npz.read_bytes()
    if damage == "npy":
        np.save(mnist_npz.with_suffix(".npy"), np.zeros(3))
        content = mnist_npz.with_suffix(".npy").read_bytes()
    elif damage == "empty":
        content = b""
    elif damage == "truncated":
        content = content[: len(content) // 2]
    else:  # bytes inside the first compressed member
        content = content[:200] + bytes(255 - b for b in content[200:400]) + content[400:]
    mnist_npz.write_bytes(content)
    _one_line_error(load_mnist, mnist_npz.parent, match="mnist.npz is (not a readable .npz file|a single .npy array)")


OFFLINE = "URL fetch failure on https://storage.googleapis.com/x.npz: None -- [Errno -3] name resolution\nTraceback ..."


def _no_network():
    raise Exception(OFFLINE)


@pytest.mark.parametrize("loader, module, name, local_copy", [
    (load_mnist, "mnist", "MNIST", "(mnist.npz)"),
    (load_cifar10, "cifar10", "CIFAR-10", "the cifar-10-batches-py folder itself)"),
])
def test_failed_download_says_to_pass_a_local_copy(monkeypatch, loader, module, name, local_copy):
    import keras

    monkeypatch.setattr(getattr(keras.datasets, module), "load_data", _no_network)
    message = _one_line_error(loader, None, match=f"could not download {name} \\(Exception: URL fetch failure")
    assert message.endswith(local_copy) and "pass --data-dir with a local copy" in message
