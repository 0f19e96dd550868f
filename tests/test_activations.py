import numpy as np
import pytest
import tensorflow as tf

from tapelab.core.activations import ACTIVATIONS, get_activation
from tapelab.core.backprop import sample_derivative_range
from tapelab.core.errors import ConfigError
from tapelab.core.models import build_mlp

POINTS = np.array([-40.0, -5.0, -1.0, -1e-3, 0.0, 1e-3, 1.0, 5.0, 40.0])


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_derivative_matches_autodiff(name):
    activation = get_activation(name)
    x = tf.constant(POINTS[POINTS != 0])  # ReLU has no derivative at 0; checked below
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = activation.apply(x)
    np.testing.assert_allclose(activation.derivative(x).numpy(), tape.gradient(y, x).numpy(), rtol=1e-12, atol=1e-300)


def test_known_derivative_values():
    x = tf.constant([0.0, 1.0, -2.0], tf.float64)
    np.testing.assert_allclose(get_activation("relu").derivative(x), [0.0, 1.0, 0.0])
    np.testing.assert_allclose(get_activation("tanh").derivative(x), 1 - np.tanh([0.0, 1.0, -2.0]) ** 2)
    np.testing.assert_allclose(get_activation("sigmoid").derivative(x)[0], 0.25)
    np.testing.assert_allclose(get_activation("lecun").derivative(x)[0], 1.7159 * 2 / 3 + 0.01)
    np.testing.assert_allclose(get_activation("lecun").apply(tf.constant(1.0, tf.float64)),
                               1.7159 * np.tanh(2 / 3) + 0.01)


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_sampled_derivative_lies_in_documented_range(name):
    activation = get_activation(name)
    low, high = sample_derivative_range(name, limit=15.0, points=10_001)
    assert high == pytest.approx(activation.high)
    if activation.low_attained:
        assert low == pytest.approx(activation.low)
    else:
        assert low > activation.low
    assert low <= high <= activation.high


def test_unknown_activation_is_a_clear_error():
    with pytest.raises(ConfigError, match="unknown activation 'swish'.*relu, tanh, sigmoid, lecun"):
        get_activation("swish")


def test_lecun_model_round_trips_through_h5(tmp_path):
    import keras

    model = build_mlp(3, "lecun", seed=4)
    x = np.random.default_rng(0).random((5, 28, 28, 1)).astype(np.float32)
    path = tmp_path / "lecun.h5"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.get_layer("hidden_1").activation.__name__ == "lecun_tanh"
    np.testing.assert_array_equal(loaded(x).numpy(), model(x).numpy())
