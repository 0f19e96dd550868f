import numpy as np
import pytest
import tensorflow as tf

from tapelab.core.activations import ACTIVATIONS
from tapelab.core.backprop import backprop_gradients, check_against_tape
from tapelab.train.backprop_check import BackpropCheckConfig, format_backprop_check, run_backprop_check


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_hand_backprop_equals_tape_in_float64(name):
    errors = check_against_tape(depth=4, activation=name, batch_size=16, seed=1)
    assert [error.layer for error in errors] == [1, 2, 3, 4, 5]
    assert max(error.max_rel_error for error in errors) < 1e-10
    assert all(error.max_abs_gradient > 0 for error in errors)


def _small_net(rng):
    kernels = [tf.constant(rng.normal(size=shape)) for shape in ((6, 5), (5, 4), (4, 3))]
    biases = [tf.constant(rng.normal(size=shape[1])) for shape in ((6, 5), (5, 4), (4, 3))]
    x = tf.constant(rng.normal(size=(7, 6)))
    y = tf.constant(np.eye(3)[rng.integers(0, 3, 7)])
    return kernels, biases, x, y


def test_backprop_is_the_same_eagerly_and_compiled():
    kernels, biases, x, y = _small_net(np.random.default_rng(0))
    eager = backprop_gradients(kernels, biases, "tanh", x, y)
    compiled = tf.function(lambda: backprop_gradients(kernels, biases, "tanh", x, y))()
    for (dw_e, db_e), (dw_c, db_c) in zip(eager, compiled):
        np.testing.assert_allclose(dw_e, dw_c, rtol=1e-12)
        np.testing.assert_allclose(db_e, db_c, rtol=1e-12)


def test_backprop_shapes_follow_the_weights():
    kernels, biases, x, y = _small_net(np.random.default_rng(1))
    gradients = backprop_gradients(kernels, biases, "relu", x, y)
    assert [tuple(dw.shape) for dw, _ in gradients] == [(6, 5), (5, 4), (4, 3)]
    assert [tuple(db.shape) for _, db in gradients] == [(5,), (4,), (3,)]


def test_the_check_fails_on_a_wrong_derivative(monkeypatch):
    """The check can fail: with sigmoid's derivative off by 10%, the checker itself reports failure."""
    from tapelab.core import activations

    right = activations.ACTIVATIONS["sigmoid"]
    wrong = activations.Activation("sigmoid", "sigmoid", lambda z: 1.1 * right.derivative(z), 0.0, 0.25, False)
    monkeypatch.setitem(activations.ACTIVATIONS, "sigmoid", wrong)
    result = run_backprop_check(BackpropCheckConfig(depths=(2,), activations=("sigmoid",), batch_size=8))
    assert not result["passed"]
    errors = [layer["max_rel_error"] for layer in result["checks"][0]["layers"]]
    assert errors[-1] < 1e-10 < 0.05 < errors[0]  # the output layer needs no f'; the first layer carries two
    assert "FAIL: some relative error is at or above 1e-10" in format_backprop_check(result)


def test_check_report_lists_every_layer_and_range():
    result = run_backprop_check(BackpropCheckConfig(depths=(2,), activations=("relu", "lecun"), batch_size=8))
    assert result["passed"]
    text = format_backprop_check(result, per_layer=True)
    assert text.count("| relu | 2 |") == 3 and text.count("| lecun | 2 |") == 3
    assert "(0.01, 1.15393]" in text and "{0, 1}" in text
