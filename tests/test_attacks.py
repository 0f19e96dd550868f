from dataclasses import replace

import numpy as np
import pytest
import tensorflow as tf

from tapelab.attacks.baselines import clip_eta, fast_gradient_method, projected_gradient_descent
from tapelab.attacks.experiment import AttackConfig, method_summary, run_attack_experiment, write_attack_report
from tapelab.attacks.generator import GeneratorConfig, build_generator, generator_attack
from tapelab.core.errors import ConfigError, TapelabError
from tapelab.core.models import build_cnn, build_mlp, load_model_file
from tapelab.train.augment import random_shift
from tapelab.train.config import TrainConfig
from tapelab.train.loop import fit

FAST_GENERATOR = GeneratorConfig(confidence=0.8, max_rounds=200, mse_learning_rate=0.001, class_learning_rate=0.05)


@pytest.fixture(scope="module")
def classifier():
    """A small MLP trained on the synthetic digits (band position = class)."""
    from tests.conftest import make_digits

    x_train, y_train, _, _ = make_digits(512, 64, seed=3)
    x = x_train[..., None].astype(np.float32) / 255
    y = np.eye(10, dtype=np.float32)[y_train]
    model = build_mlp(1, "relu", units=64, seed=1)
    fit(model, x, y, x[:64], y[:64], TrainConfig(epochs=15, batch_size=32, optimizer="adam", learning_rate=0.003),
        progress=False)
    return model


@pytest.fixture
def images(tiny_digits):
    return tiny_digits.x_test[:6]


@pytest.mark.parametrize("norm", [np.inf, 2])
def test_eps_zero_returns_the_input(classifier, images, norm):
    np.testing.assert_array_equal(fast_gradient_method(classifier, images, 0.0, norm), images)
    np.testing.assert_allclose(projected_gradient_descent(classifier, images, 0.0, 0.01, 5, norm), images, atol=1e-7)


@pytest.mark.parametrize("norm, eps", [(np.inf, 0.1), (2, 1.5)])
def test_pgd_stays_in_pixel_range_and_norm_ball(classifier, images, norm, eps):
    adversarial = projected_gradient_descent(classifier, images, eps, eps / 4, 10, norm, seed=0).numpy()
    assert adversarial.min() >= 0.0 and adversarial.max() <= 1.0
    difference = (adversarial - images).reshape(len(images), -1)
    size = np.abs(difference).max(axis=1) if norm == np.inf else np.linalg.norm(difference, axis=1)
    assert np.all(size <= eps + 1e-5)
    assert np.all(size > 0.5 * eps)  # it did move


def test_clip_eta_projects_onto_the_l2_ball():
    eta = tf.constant(np.full((2, 4, 4, 1), 0.5, np.float32))
    assert np.allclose(np.linalg.norm(clip_eta(eta, 2, 1.0).numpy().reshape(2, -1), axis=1), 1.0)


def test_targeted_pgd_reaches_the_target(classifier, images):
    targets = (np.argmax(classifier(images).numpy(), axis=1) + 3) % 10
    y = tf.one_hot(targets, 10)
    adversarial = projected_gradient_descent(classifier, images, 0.5, 0.05, 40, np.inf, y=y, targeted=True)
    assert np.mean(np.argmax(classifier(adversarial).numpy(), axis=1) == targets) >= 0.8


def test_generator_reproduces_an_image_under_mse_alone(images):
    generator = build_generator(np.full_like(images[:2], 0.5))
    weights = generator.trainable_variables
    optimizer = tf.keras.optimizers.Adam(0.05)
    ones = tf.ones((2, 1))
    for _ in range(300):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(generator(ones) - images[:2]))
        optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights))
    np.testing.assert_allclose(generator(ones).numpy(), images[:2], atol=0.02)


def test_generator_attack_succeeds_and_leaves_the_classifier_untouched(classifier, images):
    before = [w.numpy().copy() for w in classifier.weights]
    targets = (np.argmax(classifier(images).numpy(), axis=1) + 5) % 10
    result = generator_attack(classifier, images, targets, FAST_GENERATOR)
    assert result.success.mean() >= 0.8
    assert result.images.min() >= 0 and result.images.max() <= 1
    assert np.all(result.rounds[result.success] >= 1)
    for a, b in zip(before, classifier.weights):
        assert np.array_equal(a, b.numpy())  # bit-identical
    assert classifier.trainable


def _l2(result, sources):
    return np.linalg.norm((result.images - sources).reshape(len(sources), -1), axis=1)


def test_after_success_the_change_shrinks_and_the_target_holds(classifier, images):
    """The minimal phase: every pair that reached the target still gives it with the confidence, in the image
    returned; its L2 is at most that of its first success, and smaller for most pairs; with patience 0 the
    attack stops at the first success, as the plain generator does."""
    targets = (np.argmax(classifier(images).numpy(), axis=1) + 5) % 10
    plain = generator_attack(classifier, images, targets, replace(FAST_GENERATOR, shrink_patience=0))
    minimal = generator_attack(classifier, images, targets, FAST_GENERATOR)
    assert plain.success.all() and minimal.success.all()
    np.testing.assert_array_equal(minimal.success_rounds, plain.success_rounds)  # the same search up to success
    np.testing.assert_allclose(_l2(plain, images), plain.first_success_l2, rtol=1e-5)
    for result in (plain, minimal):  # each returned image, classified alone, holds the target
        confidence = classifier(result.images).numpy()[np.arange(len(images)), targets]
        assert np.all(confidence >= FAST_GENERATOR.confidence)
        np.testing.assert_allclose(result.target_confidence, confidence, rtol=1e-5)
    final = _l2(minimal, images)
    assert np.all(final <= minimal.first_success_l2 + 1e-6)
    assert np.mean(final < 0.9 * minimal.first_success_l2) >= 0.5
    assert np.all(minimal.rounds >= minimal.success_rounds + FAST_GENERATOR.shrink_patience)


def test_the_change_never_grows_with_more_rounds(classifier, images):
    """The same pairs with a growing round budget: each pair's L2 after success can only fall."""
    targets = (np.argmax(classifier(images).numpy(), axis=1) + 3) % 10
    budgets = (60, 90, 140, 200)
    results = [generator_attack(classifier, images, targets, replace(FAST_GENERATOR, max_rounds=budget))
               for budget in budgets]
    l2 = np.array([_l2(result, images) for result in results])
    succeeded = results[0].success
    assert succeeded.any()
    assert np.all(np.diff(l2[:, succeeded], axis=0) <= 1e-6)
    assert all(result.success[succeeded].all() for result in results)


@pytest.mark.parametrize("setting, message", [
    (dict(shrink_patience=-1), "shrink_patience must be >= 0"),
    (dict(shrink_source_gain=0.9), "shrink_source_gain >= 1"),
    (dict(shrink_back_off=0), "shrink_back_off in"),
    (dict(shrink_class_decay=1.5), "shrink_class_decay must lie in"),
    (dict(shrink_tolerance=1), "shrink_tolerance must lie in"),
])
def test_bad_shrink_settings_are_refused(setting, message):
    with pytest.raises(ConfigError, match=message):
        GeneratorConfig(**setting)


def test_batched_pairs_equal_pairs_alone(classifier, images):
    targets = np.array([1, 7, 4])
    batched = generator_attack(classifier, images[:3], targets, FAST_GENERATOR)
    for index in range(3):
        alone = generator_attack(classifier, images[index:index + 1], targets[index:index + 1], FAST_GENERATOR)
        assert alone.rounds[0] == batched.rounds[index]
        np.testing.assert_allclose(alone.images[0], batched.images[index], atol=1e-5)


def test_target_out_of_range_is_rejected(classifier, images):
    with pytest.raises(ConfigError, match="target classes must lie in 0..9"):
        generator_attack(classifier, images[:1], [10], FAST_GENERATOR)


def test_experiment_writes_grids_and_tables(classifier, tiny_digits, tmp_path):
    config = AttackConfig(source_classes=(2, 5), source_confidence=0.5, pgd_steps=5, l2_eps_ladder=(1.0, 3.0))
    results = run_attack_experiment(classifier, tiny_digits, "synthetic", config, FAST_GENERATOR, tmp_path)
    write_attack_report(tmp_path)
    for name in ("results.json", "images.npz", "pairs.csv", "methods.csv", "report.md",
                 "grid_adversarial.png", "grid_perturbation.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert len(results["pairs"]) == 4 * 2 * 10  # methods x sources x targets
    summary = {row["method"]: row for row in method_summary(results)}
    assert set(summary) == {"generator", "fgsm", "pgd_linf", "pgd_l2_ladder"}
    assert summary["generator"]["pairs"] == 18 and summary["pgd_linf"]["mean_linf"] <= 0.3 + 1e-6
    report = (tmp_path / "report.md").read_text()
    assert f"shrink_patience {FAST_GENERATOR.shrink_patience}," in report and "confidence 0.8," in report
    generator = [p for p in results["pairs"] if p["method"] == "generator" and p["success"] and not p["trivial"]]
    first = np.mean([p["first_success_l2"] for p in generator])
    assert f"Mean L2 when the pairs first held the target: {first:.3f}" in report
    assert all(p["first_success_l2"] is None for p in results["pairs"] if p["method"] != "generator")


def test_model_file_errors(tmp_path):
    with pytest.raises(TapelabError, match="not found; train one first"):
        load_model_file(tmp_path / "missing.h5")
    (tmp_path / "broken.h5").write_bytes(b"not an h5 file")
    with pytest.raises(TapelabError, match=r"broken.h5: it is not an HDF5 file .*\(OSError: .*signature") as info:
        load_model_file(tmp_path / "broken.h5")
    assert isinstance(info.value.__cause__, OSError)  # the cause is kept
    build_cnn((8, 8, 1), 10, widths=(4,), dense_units=0).save(tmp_path / "small.h5")
    with pytest.raises(TapelabError, match=r"takes inputs of shape \(8, 8, 1\), but this needs \(28, 28, 1\)"):
        load_model_file(tmp_path / "small.h5", (28, 28, 1), 10)


def test_cnn_downsamples_by_pooling_or_by_stride():
    """The stride-2 form (no pooling, no batch norm) gives the same feature-map sizes with fewer layers."""
    pooled = build_cnn((28, 28, 1), 10, widths=(4, 8), convs_per_stage=1, dense_units=0)
    strided = build_cnn((28, 28, 1), 10, widths=(4, 8), convs_per_stage=1, dense_units=0, kernel_size=4,
                        batch_norm=False, downsample="stride")
    assert pooled.get_layer("conv2_1").output.shape[1:3] == (14, 14)
    assert strided.get_layer("conv2_1").output.shape[1:3] == (7, 7)
    assert strided.get_layer("conv1_1").kernel.shape == (4, 4, 1, 4)
    kinds = {type(layer).__name__ for layer in strided.layers}
    assert "BatchNormalization" not in kinds and "MaxPooling2D" not in kinds
    assert strided(np.zeros((2, 28, 28, 1), np.float32)).shape == (2, 10)
    with pytest.raises(ConfigError, match="downsample must be pool or stride"):
        build_cnn((28, 28, 1), 10, downsample="average")


def test_crop_margin_makes_shifts_random_crops():
    """With shifts of at most the margin, the net sees whole windows of the image and never the zero
    fill; the pixels inside the margin do not reach the output."""
    margin, side = 2, 12
    model = build_cnn((side, side, 1), 3, widths=(4,), convs_per_stage=1, dense_units=8, crop_margin=margin)
    assert model.get_layer("conv1_1").input.shape[1:3] == (side - 2 * margin, side - 2 * margin)
    images = np.random.default_rng(0).random((16, side, side, 1), dtype=np.float32) + 0.5  # no zeros
    shifted = random_shift(tf.constant(images), tf.constant([5, 6]), margin).numpy()
    inner = side - 2 * margin
    for original, moved in zip(images, shifted):
        crop = moved[margin:-margin, margin:-margin]
        windows = [original[dy:dy + inner, dx:dx + inner] for dy in range(2 * margin + 1)
                   for dx in range(2 * margin + 1)]
        assert any(np.array_equal(crop, window) for window in windows)
    border_changed = images.copy()
    border_changed[:, :margin] = 0.0
    border_changed[:, :, -margin:] = 0.0
    np.testing.assert_array_equal(model(images).numpy(), model(border_changed).numpy())
    with pytest.raises(ConfigError, match="crop_margin must be >= 0 and leave pixels"):
        build_cnn((side, side, 1), 3, crop_margin=side // 2)


def test_a_failing_attack_leaves_the_classifier_trainable(classifier):
    """The attack freezes the caller's classifier only while it runs, also when it fails."""
    classifier.trainable = True
    with pytest.raises(Exception):  # noqa: B017 - any failure inside the attack, here a wrong image shape
        generator_attack(classifier, np.zeros((1, 9, 9, 1), np.float32), [1], FAST_GENERATOR)
    assert classifier.trainable
