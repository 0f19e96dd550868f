import numpy as np
import pytest
import tensorflow as tf

from tapelab.attacks.robust import RobustConfig, TrainingAttack
from tapelab.core.errors import ConfigError
from tapelab.core.models import build_mlp
from tapelab.train.config import TrainConfig
from tapelab.train.loop import NonFiniteLossError, fit

FAST = dict(batch_size=16, learning_rate=0.1, steps_per_call=5)
# The loop's tests run plain and with a training attack plugged in (no random start: deterministic).
ATTACKS = {"plain": None, "pgd": TrainingAttack(RobustConfig(attack="pgd", eps=0.05, pgd_train_steps=2,
                                                                   random_start=False))}


@pytest.fixture(params=list(ATTACKS))
def perturb(request):
    return ATTACKS[request.param]


def test_loss_goes_down_on_a_tiny_problem(tiny_digits, perturb):
    d = tiny_digits
    history = fit(build_mlp(2, "tanh"), d.x_train, d.y_train, d.x_test, d.y_test,
                  TrainConfig(epochs=5, **FAST), progress=False, perturb=perturb)
    losses = [record["train_loss"] for record in history.records]
    assert len(losses) == 5
    assert losses[-1] < 0.5 * losses[0]
    assert history.final["test_accuracy"] > 0.5


@pytest.mark.parametrize("jit_compile", [True, False])
def test_gradient_capture_gives_one_finite_value_per_layer(tiny_digits, jit_compile):
    d = tiny_digits
    config = TrainConfig(epochs=2, capture_gradients=True, evals_per_epoch=3, jit_compile=jit_compile, **FAST)
    history = fit(build_mlp(4, "sigmoid"), d.x_train, d.y_train, d.x_test, d.y_test, config, progress=False)
    assert history.layer_names == ["hidden_1", "hidden_2", "hidden_3", "hidden_4", "output"]
    assert len(history.layer_gradients) == 3  # untrained, then after each epoch
    gradients = np.array(history.layer_gradients)
    assert gradients.shape == (3, 5) and np.all(np.isfinite(gradients)) and np.all(gradients > 0)
    # 256 examples / 16 = 16 steps per epoch, evaluated after steps 5, 11 and 16
    assert [round(record["epoch"], 3) for record in history.records] == [0.312, 0.688, 1.0, 1.312, 1.688, 2.0]


def test_captured_gradient_is_the_tape_gradient(tiny_digits):
    d = tiny_digits
    model = build_mlp(2, "relu", seed=3)
    config = TrainConfig(epochs=1, capture_gradients=True, gradient_batch_size=8, seed=5, **FAST)
    rng = np.random.default_rng(5)
    indices = np.sort(rng.choice(len(d.x_train), size=8, replace=False))
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.keras.losses.categorical_crossentropy(d.y_train[indices], model(d.x_train[indices])))
    gradients = [np.abs(g).max() for g in tape.gradient(loss, model.trainable_variables)]
    expected = [max(kernel, bias) for kernel, bias in zip(gradients[::2], gradients[1::2])]
    history = fit(model, d.x_train, d.y_train, d.x_test, d.y_test, config, progress=False)
    np.testing.assert_allclose(history.layer_gradients[0], expected, rtol=1e-5)


def test_short_last_batch_is_trained(tiny_digits, perturb):
    d = tiny_digits
    model = build_mlp(1, "tanh")
    before = [w.numpy().copy() for w in model.trainable_variables]
    history = fit(model, d.x_train[:21], d.y_train[:21], d.x_test, d.y_test,
                  TrainConfig(epochs=1, **FAST), progress=False, perturb=perturb)
    assert history.final["epoch"] == 1.0
    assert any(not np.array_equal(b, w.numpy()) for b, w in zip(before, model.trainable_variables))


def test_non_finite_loss_stops_with_a_clear_error(tiny_digits):
    d = tiny_digits
    x = d.x_train.copy()
    x[3, 0, 0, 0] = np.nan
    with pytest.raises(NonFiniteLossError, match="loss became nan in epoch 1.*lower the learning rate"):
        fit(build_mlp(2, "tanh"), x, d.y_train, d.x_test, d.y_test, TrainConfig(epochs=1, **FAST), progress=False)


def test_mirrored_strategy_gives_the_single_device_result(tiny_digits, perturb):
    d = tiny_digits
    config = TrainConfig(epochs=2, capture_gradients=True, **FAST)
    single = build_mlp(3, "lecun", seed=2)
    single_history = fit(single, d.x_train, d.y_train, d.x_test, d.y_test, config, progress=False, perturb=perturb)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    with strategy.scope():
        mirrored = build_mlp(3, "lecun", seed=2)
    mirrored_history = fit(mirrored, d.x_train, d.y_train, d.x_test, d.y_test, config, strategy=strategy,
                           progress=False, perturb=perturb)
    # PGD steps along the sign of the input gradient: where that gradient is about 0, the replicas' other
    # summation order can flip a pixel's sign, which moves first-layer weights by up to a few 1e-5.
    weight_atol = 1e-5 if perturb is None else 1e-4
    for a, b in zip(single.trainable_variables, mirrored.trainable_variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-4, atol=weight_atol)
    for key in ("train_loss", "test_loss", "test_accuracy"):
        np.testing.assert_allclose([r[key] for r in single_history.records],
                                   [r[key] for r in mirrored_history.records], rtol=1e-4)
    np.testing.assert_allclose(single_history.layer_gradients, mirrored_history.layer_gradients, rtol=1e-3)


def test_model_outside_the_strategy_scope_is_rejected(tiny_digits):
    d = tiny_digits
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with pytest.raises(ConfigError, match="strategy.scope"):
        fit(build_mlp(1, "tanh"), d.x_train, d.y_train, d.x_test, d.y_test, TrainConfig(), strategy=strategy)


@pytest.mark.parametrize("bad", [dict(batch_size=0), dict(epochs=0), dict(learning_rate=-1.0),
                                 dict(optimizer="rmsprop"), dict(loss="not_a_loss")])
def test_bad_settings_are_rejected(bad):
    with pytest.raises(ConfigError):
        TrainConfig(**bad)


def test_depth_zero_is_rejected():
    with pytest.raises(ConfigError, match="depth must be a whole number >= 1"):
        build_mlp(0, "relu")
