"""Augmentation, schedules and checkpoints of the tape loop."""

import numpy as np
import pytest
import tensorflow as tf

import tapelab.train.loop as loop
from tapelab.attacks.robust import RobustConfig, TrainingAttack
from tapelab.core.errors import ConfigError
from tapelab.core.fingerprint import array_fingerprint
from tapelab.core.models import build_mlp
from tapelab.train.augment import augment, random_flip, random_rotate_zoom, random_shift, rotate_zoom
from tapelab.train.checkpoint import load_checkpoint
from tapelab.train.config import TrainConfig, make_optimizer


def _image_batch():
    images = np.zeros((4, 8, 8, 1), np.float32)
    images[:, 3:5, 3:5] = 1.0  # a centred square, so shifts of up to 2 keep it whole
    return tf.constant(images)


@pytest.mark.parametrize("compiled", [False, True])
def test_shift_moves_content_without_losing_it(compiled):
    shift = tf.function(random_shift, jit_compile=True) if compiled else random_shift
    images = _image_batch()
    shifted = shift(images, tf.constant([1, 2]), 2).numpy()
    assert shifted.shape == images.shape
    np.testing.assert_allclose(shifted.sum(axis=(1, 2, 3)), 4.0)
    assert np.array_equal(shift(images, tf.constant([1, 2]), 0).numpy(), images.numpy())
    many = shift(tf.repeat(images, 16, axis=0), tf.constant([3, 4]), 2).numpy()
    assert len({m.tobytes() for m in many}) > 4  # images get different shifts


def test_flip_mirrors_left_right():
    images = tf.constant(np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4, 1))
    flipped = random_flip(tf.repeat(images, 8, axis=0), tf.constant([0, 1])).numpy()
    for image in flipped.reshape(8, 2, 3, 4, 1).transpose(1, 0, 2, 3, 4).reshape(16, 3, 4, 1):
        assert any(np.array_equal(image, candidate) for candidate in (images[0], images[1],
                                                                      images[0, :, ::-1], images[1, :, ::-1]))
    assert not np.array_equal(flipped, tf.repeat(images, 8, axis=0).numpy())


def test_augment_none_is_identity_and_seeded_repeats():
    images = _image_batch()
    assert augment(images, tf.constant([0, 0]), "none") is images
    first = augment(images, tf.constant([5, 6]), "flip_shift", 2).numpy()
    assert np.array_equal(first, augment(images, tf.constant([5, 6]), "flip_shift", 2).numpy())


@pytest.mark.parametrize("side", [6, 7])
def test_rotate_zoom_turns_and_magnifies_about_the_centre(side):
    images = tf.constant(np.random.default_rng(side).random((3, side, side, 2)), tf.float32)
    turned = rotate_zoom(images, tf.constant([90.0, 0.0, 0.0]), tf.constant([1.0, 1.0, 2.0])).numpy()
    np.testing.assert_allclose(turned[0], np.rot90(images[0].numpy(), 1, axes=(0, 1)), atol=1e-5)  # counter-clockwise
    np.testing.assert_allclose(turned[1], images[1], atol=1e-6)
    if side % 2:  # magnified twice: the centre stays, a pixel two columns out shows the one next to the centre
        centre = side // 2
        np.testing.assert_allclose(turned[2, centre, centre], images[2, centre, centre], atol=1e-6)
        np.testing.assert_allclose(turned[2, centre, centre + 2], images[2, centre, centre + 1], atol=1e-6)


def test_rotation_fills_freed_corners_by_reflection_not_black():
    flat = tf.fill((2, 9, 9, 1), 0.7)
    turned = rotate_zoom(flat, tf.constant([45.0, -30.0]), tf.constant([1.0, 0.8])).numpy()
    np.testing.assert_allclose(turned, 0.7, atol=1e-5)


def test_random_rotate_zoom_is_seeded_and_varies_per_image():
    images = tf.repeat(tf.constant(np.random.default_rng(0).random((1, 12, 12, 1)), tf.float32), 6, axis=0)
    first = random_rotate_zoom(images, tf.constant([3, 4]), 10.0, 0.1).numpy()
    assert np.array_equal(first, random_rotate_zoom(images, tf.constant([3, 4]), 10.0, 0.1).numpy())
    assert len({image.tobytes() for image in first}) == 6
    assert not np.array_equal(first, random_rotate_zoom(images, tf.constant([3, 5]), 10.0, 0.1).numpy())


def test_augment_rotates_only_when_asked():
    images = tf.constant(np.random.default_rng(1).random((8, 12, 12, 1)), tf.float32)
    seed = tf.constant([5, 6])
    plain = augment(images, seed, "flip_shift", 2).numpy()
    assert np.array_equal(plain, augment(images, seed, "flip_shift", 2, 0.0, 0.0).numpy())  # same shifts and flips
    rotated = augment(images, seed, "flip_shift", 2, 15.0, 0.1).numpy()
    assert not np.allclose(rotated, plain)
    assert np.array_equal(rotated, augment(images, seed, "flip_shift", 2, 15.0, 0.1).numpy())


@pytest.mark.parametrize("field, value", [("max_rotation", -5.0), ("max_rotation", 200.0), ("max_zoom", 1.0)])
def test_rotation_and_zoom_limits_are_checked(field, value):
    with pytest.raises(ConfigError, match="max_rotation must lie in \\[0, 180\\] degrees and max_zoom in \\[0, 1\\)"):
        TrainConfig(**{field: value})


def test_cosine_schedule_warms_up_then_decays():
    config = TrainConfig(learning_rate=0.2, schedule="cosine", warmup_fraction=0.1, optimizer="sgd", momentum=0.9)
    schedule = make_optimizer(config, total_steps=100)._learning_rate  # Keras keeps the schedule object here
    rates = [float(schedule(step)) for step in (0, 10, 55, 100)]
    assert rates[0] == pytest.approx(0.0) and rates[1] == pytest.approx(0.2)
    assert rates[2] == pytest.approx(0.1, rel=0.05) and rates[3] == pytest.approx(0.0, abs=1e-6)


def test_interrupted_training_resumes_to_the_same_weights(tiny_digits, tmp_path, monkeypatch):
    d = tiny_digits
    config = TrainConfig(epochs=3, batch_size=32, optimizer="sgd", momentum=0.9, learning_rate=0.05,
                         schedule="cosine", augment="shift", max_shift=2, steps_per_call=3)
    uninterrupted = build_mlp(2, "tanh", seed=1)
    expected = loop.fit(uninterrupted, d.x_train, d.y_train, d.x_test, d.y_test, config, progress=False)

    real_save = loop.save_checkpoint

    def save_then_stop(directory, trainer, history, rng, epochs_done, data, save_best=False):
        real_save(directory, trainer, history, rng, epochs_done, data, save_best)
        if epochs_done == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(loop, "save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        loop.fit(build_mlp(2, "tanh", seed=1), d.x_train, d.y_train, d.x_test, d.y_test, config, progress=False,
                 checkpoint_dir=tmp_path)
    monkeypatch.setattr(loop, "save_checkpoint", real_save)
    resumed_model = build_mlp(2, "tanh", seed=7)  # different start: the checkpoint must overwrite it
    resumed = loop.fit(resumed_model, d.x_train, d.y_train, d.x_test, d.y_test, config, progress=False,
                       checkpoint_dir=tmp_path)
    assert len(resumed.records) == 3
    for a, b in zip(uninterrupted.get_weights(), resumed_model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose([r["test_loss"] for r in expected.records],
                               [r["test_loss"] for r in resumed.records], rtol=1e-5)


def test_checkpoint_of_another_net_attack_or_data_or_of_a_finished_run_is_not_resumed(tiny_digits, tmp_path,
                                                                                      monkeypatch):
    d = tiny_digits
    config = TrainConfig(epochs=2, batch_size=32, steps_per_call=4)
    fgsm = TrainingAttack(RobustConfig(attack="fgsm_rs", eps=0.1))
    real_save = loop.save_checkpoint

    def save_then_stop(*args, **kwargs):
        real_save(*args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(loop, "save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):  # one of two epochs done
        loop.fit(build_mlp(1, "tanh"), d.x_train, d.y_train, d.x_test, d.y_test, config, progress=False,
                 checkpoint_dir=tmp_path, perturb=fgsm)
    monkeypatch.setattr(loop, "save_checkpoint", real_save)
    same_data = array_fingerprint(d.x_train, d.y_train, d.x_test, d.y_test)

    def resumable(model, perturb, data=same_data):
        trainer = loop.Trainer(model, config, perturb=perturb)
        trainer._build_optimizer(1)
        return load_checkpoint(tmp_path, trainer, loop.History(layer_names=[]), np.random.default_rng(0), data)

    assert resumable(build_mlp(1, "tanh"), TrainingAttack(RobustConfig(attack="fgsm_rs", eps=0.1))) == 1
    assert resumable(build_mlp(1, "tanh"), TrainingAttack(RobustConfig(attack="pgd", eps=0.1))) == 0
    assert resumable(build_mlp(1, "tanh"), None) == 0
    assert resumable(build_mlp(2, "tanh"), fgsm) == 0
    assert resumable(build_mlp(1, "tanh"), fgsm, data=array_fingerprint(d.x_train[1:], d.y_train[1:])) == 0
    loop.fit(build_mlp(1, "tanh"), d.x_train, d.y_train, d.x_test, d.y_test, config, progress=False,
             checkpoint_dir=tmp_path, perturb=fgsm)  # resumes and finishes
    assert resumable(build_mlp(1, "tanh"), fgsm) == 0  # a finished run is never resumed


def test_keep_best_ends_with_the_best_epoch(tiny_digits):
    d = tiny_digits
    config = TrainConfig(epochs=4, batch_size=32, optimizer="sgd", learning_rate=0.5, keep_best=True)
    model = build_mlp(2, "sigmoid", seed=3)
    history = loop.fit(model, d.x_train, d.y_train, d.x_test, d.y_test, config, progress=False)
    accuracies = [record["test_accuracy"] for record in history.records]
    assert history.best_epoch == int(np.argmax(accuracies)) + 1
    final_accuracy = loop.Trainer(model, config).evaluate(d.x_test, d.y_test)[1]
    assert final_accuracy == pytest.approx(max(accuracies))


def test_evaluation_time_is_kept_apart_from_training_time(tiny_digits, monkeypatch):
    """Each test-set evaluation takes 100 s on a fake clock that stands still otherwise."""
    d = tiny_digits
    clock = [0.0]
    real_evaluate = loop.Trainer.evaluate

    def slow_evaluate(self, x, y, batch_size=1000):
        clock[0] += 100.0
        return real_evaluate(self, x, y, batch_size)

    monkeypatch.setattr(loop.time, "perf_counter", lambda: clock[0])
    monkeypatch.setattr(loop.Trainer, "evaluate", slow_evaluate)
    config = TrainConfig(epochs=2, batch_size=32, evals_per_epoch=2)
    history = loop.fit(build_mlp(1, "tanh"), d.x_train, d.y_train, d.x_test, d.y_test, config, progress=False)
    assert len(history.records) == 4
    assert history.eval_seconds == pytest.approx(400.0)
    assert history.train_seconds == pytest.approx(0.0)


def test_mixed_bfloat16_trains_and_saves_the_float32_net(tiny_digits, tmp_path):
    """The net computes in bfloat16 while training (weights float32), learns, and the saved file is the
    float32 build with the trained weights, scored as saved."""
    from tapelab.core.models import build_cnn, load_model_file
    from tapelab.train.classifier import CnnConfig, train_classifier

    mixed = build_cnn((28, 28, 1), 10, widths=(4,), dense_units=8, precision="mixed_bfloat16")
    conv = mixed.get_layer("conv1_1")
    assert conv.compute_dtype == "bfloat16" and conv.kernel.dtype == "float32"
    assert mixed.output.dtype == "float32"
    with pytest.raises(ConfigError, match="unknown precision 'float16'"):
        build_cnn((28, 28, 1), 10, precision="float16")
    cnn = CnnConfig(widths=(8,), dense_units=16, precision="mixed_bfloat16")
    config = TrainConfig(epochs=3, batch_size=32, optimizer="adam", learning_rate=3e-3, jit_compile=False)
    summary = train_classifier("digits", tiny_digits, cnn, config, tmp_path, progress=False)
    losses = [record["train_loss"] for record in summary["records"]]
    assert losses[-1] < 0.8 * losses[0]
    saved = load_model_file(tmp_path / "digits_cnn.h5", (28, 28, 1), 10)
    assert {layer.compute_dtype for layer in saved.layers} == {"float32"}
    accuracy = np.mean(saved(tiny_digits.x_test).numpy().argmax(1) == tiny_digits.y_test.argmax(1))
    assert summary["test_accuracy"] == pytest.approx(accuracy) and accuracy > 0.5
