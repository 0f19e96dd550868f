"""Activations with their hand-written derivatives, each forward pass next to its derivative.

The derivative ranges in the docstrings are what docs/backprop.md uses to reason about
vanishing gradients; `tapelab backprop-check` samples each derivative and prints the
observed range beside the documented one.
"""

from collections.abc import Callable
from dataclasses import dataclass

import keras
import tensorflow as tf

from tapelab.core.errors import ConfigError

LECUN_SCALE = 1.7159
LECUN_SLOPE = 2.0 / 3.0
LECUN_LEAK = 0.01


@keras.saving.register_keras_serializable(package="tapelab")
def lecun_tanh(x):
    """LeCun's scaled tanh, f(x) = 1.7159 tanh(2x/3) + 0.01 x.

    Registered with Keras so a model using it saves to and loads from `.h5` by name.
    """
    return LECUN_SCALE * tf.tanh(LECUN_SLOPE * x) + LECUN_LEAK * x


def relu_derivative(x):
    """f'(x) = 1 if x > 0 else 0 (0 at x = 0, as TensorFlow's ReLU gradient). Range {0, 1}."""
    return tf.cast(x > 0, x.dtype)


def tanh_derivative(x):
    """f'(x) = 1 - tanh(x)^2. Range (0, 1], the maximum 1 at x = 0."""
    return 1.0 - tf.square(tf.tanh(x))


def sigmoid_derivative(x):
    """f'(x) = s(x) (1 - s(x)) with s the sigmoid. Range (0, 1/4], the maximum at x = 0."""
    s = tf.sigmoid(x)
    return s * (1.0 - s)


def lecun_tanh_derivative(x):
    """f'(x) = 1.7159 (2/3) (1 - tanh(2x/3)^2) + 0.01. Range (0.01, 1.7159*2/3 + 0.01]."""
    return LECUN_SCALE * LECUN_SLOPE * (1.0 - tf.square(tf.tanh(LECUN_SLOPE * x))) + LECUN_LEAK


@dataclass(frozen=True)
class Activation:
    """An activation's forward pass (as Keras takes it), derivative and derivative range.

    The range is (low, high) with flags saying whether each end is attained; ReLU's
    derivative takes only the two values {0, 1}, marked by `discrete`.
    """

    name: str
    forward: Callable | str
    derivative: Callable
    low: float
    high: float
    low_attained: bool
    high_attained: bool = True
    discrete: bool = False

    def range_text(self) -> str:
        if self.discrete:
            return f"{{{self.low:g}, {self.high:g}}}"
        left = "[" if self.low_attained else "("
        right = "]" if self.high_attained else ")"
        return f"{left}{self.low:g}, {self.high:.6g}{right}"

    def apply(self, x):
        """The forward pass as a tensor function (Keras' built-ins are looked up by name)."""
        return keras.activations.get(self.forward)(x)


ACTIVATIONS = {
    "relu": Activation("relu", "relu", relu_derivative, 0.0, 1.0, True, discrete=True),
    "tanh": Activation("tanh", "tanh", tanh_derivative, 0.0, 1.0, False),
    "sigmoid": Activation("sigmoid", "sigmoid", sigmoid_derivative, 0.0, 0.25, False),
    "lecun": Activation(
        "lecun", lecun_tanh, lecun_tanh_derivative, LECUN_LEAK, LECUN_SCALE * LECUN_SLOPE + LECUN_LEAK, False
    ),
}


def get_activation(name: str) -> Activation:
    """Look an activation up by name, with an error that lists the valid names."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        raise ConfigError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}") from None
