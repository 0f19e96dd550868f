import numpy as np
import pytest

from tapelab.core.data import ImageData, load_mnist, one_hot
from tapelab.core.errors import DataError


def test_local_npz_is_normalised_and_one_hot(mnist_npz):
    data = load_mnist(mnist_npz.parent)
    assert data.x_train.shape == (64, 28, 28, 1) and data.x_train.dtype == np.float32
    assert data.x_test.shape == (16, 28, 28, 1)
    assert 0.0 <= data.x_train.min() and data.x_train.max() == 1.0
    assert data.y_train.shape == (64, 10) and np.all(data.y_train.sum(axis=1) == 1)
    with np.load(mnist_npz) as raw:
        np.testing.assert_array_equal(data.y_train.argmax(axis=1), raw["y_train"])
        np.testing.assert_allclose(data.x_train[..., 0], raw["x_train"] / 255.0, rtol=1e-6)


def test_shared_layout_with_subfolder_is_found(mnist_npz, tmp_path):
    (tmp_path / "mnist").mkdir()
    mnist_npz.rename(tmp_path / "mnist" / "mnist.npz")
    assert load_mnist(tmp_path).x_train.shape[0] == 64


def test_missing_file_says_where_to_put_it(tmp_path):
    with pytest.raises(DataError, match=f"no mnist.npz or mnist/mnist.npz under {tmp_path}; put the file there"):
        load_mnist(tmp_path)


def test_missing_folder_is_named(tmp_path):
    with pytest.raises(DataError, match="data folder .*nowhere does not exist"):
        load_mnist(tmp_path / "nowhere")


def test_file_that_is_not_npz(tmp_path):
    (tmp_path / "mnist.npz").write_text("not a zip")
    with pytest.raises(DataError, match="not a readable .npz file"):
        load_mnist(tmp_path)


def test_npz_missing_keys(tmp_path):
    np.savez(tmp_path / "mnist.npz", x_train=np.zeros((2, 28, 28), np.uint8))
    with pytest.raises(DataError, match="lacks y_train, x_test, y_test"):
        load_mnist(tmp_path)


def test_wrong_image_shape(tmp_path):
    arrays = dict(x_train=np.zeros((2, 32, 32), np.uint8), y_train=np.zeros(2, np.uint8),
                  x_test=np.zeros((1, 28, 28), np.uint8), y_test=np.zeros(1, np.uint8))
    np.savez(tmp_path / "mnist.npz", **arrays)
    with pytest.raises(DataError, match=r"train images have shape \(2, 32, 32\)"):
        load_mnist(tmp_path)


def test_one_hot_rejects_labels_out_of_range():
    with pytest.raises(DataError, match="labels must lie in 0..9"):
        one_hot([0, 10], 10)


def _cifar_arrays(count, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, count)


def test_cifar10_from_official_pickled_batches(tmp_path):
    import pickle

    from tapelab.core.data import load_cifar10

    folder = tmp_path / "cifar-10-batches-py"  # the folder is named itself: pickles are read only from there
    folder.mkdir()
    written = {}
    for name, seed in [(f"data_batch_{i}", i) for i in range(1, 6)] + [("test_batch", 9)]:
        images, labels = _cifar_arrays(4, seed)
        written[name] = (images, labels)
        flat = images.transpose(0, 3, 1, 2).reshape(4, -1)  # the official channel-first rows
        with open(folder / name, "wb") as handle:
            pickle.dump({b"data": flat, b"labels": labels.tolist()}, handle)
    data = load_cifar10(folder)
    assert data.x_train.shape == (20, 32, 32, 3) and data.x_test.shape == (4, 32, 32, 3)
    np.testing.assert_allclose(data.x_train[:4], written["data_batch_1"][0] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(data.y_test.argmax(axis=1), written["test_batch"][1])
    assert data.class_names[3] == "cat"


def test_cifar10_from_class_folders(tmp_path):
    import cv2

    from tapelab.core.data import CIFAR10_CLASSES, load_cifar10

    images, _ = _cifar_arrays(20, 0)
    labels = np.random.default_rng(1).permutation(np.arange(20) % 10)  # every class has images
    for split in ("train", "test"):
        for name in CIFAR10_CLASSES:
            (tmp_path / "cifar10" / split / name).mkdir(parents=True)
        for index, (image, label) in enumerate(zip(images, labels)):
            path = tmp_path / "cifar10" / split / CIFAR10_CLASSES[label] / f"{index:03d}.png"
            cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))  # PNG: lossless, so pixels compare
    data = load_cifar10(tmp_path)
    assert data.x_train.shape == (20, 32, 32, 3)
    order = np.lexsort((np.arange(20), labels))  # files are read class by class, by name
    np.testing.assert_allclose(data.x_train, images[order] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(data.y_train.argmax(axis=1), labels[order])


def test_cifar10_missing_and_unreadable(tmp_path):
    import cv2

    from tapelab.core.data import load_cifar10

    with pytest.raises(DataError, match="expected train/CLASS/.* or pass the cifar-10-batches-py folder itself"):
        load_cifar10(tmp_path)
    for split in ("train", "test"):
        (tmp_path / split / "airplane").mkdir(parents=True)
        cv2.imwrite(str(tmp_path / split / "airplane" / "good.png"), np.zeros((32, 32, 3), np.uint8))
    (tmp_path / "train" / "airplane" / "bad.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="automobile is missing; expected one folder per class"):
        load_cifar10(tmp_path)
    for name in ("automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"):
        (tmp_path / "train" / name).mkdir()
        cv2.imwrite(str(tmp_path / "train" / name / "good.png"), np.zeros((32, 32, 3), np.uint8))
    with pytest.raises(DataError, match="cannot read image .*bad.jpg"):
        load_cifar10(tmp_path)


def test_fingerprint_names_the_data_not_the_files(tiny_digits):
    same = ImageData(tiny_digits.x_train.copy(), tiny_digits.y_train.copy(), tiny_digits.x_test.copy(),
                     tiny_digits.y_test.copy(), tiny_digits.class_names)
    assert same.fingerprint() == tiny_digits.fingerprint()
    same.x_train[0, 0, 0, 0] += 1 / 255
    assert same.fingerprint() != tiny_digits.fingerprint()
