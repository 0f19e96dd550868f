"""Backprop for an MLP written by hand from the general equations, and its check against autodiff.

For hidden layers l = 1..L with z_l = a_{l-1} W_l + b_l, a_l = f(z_l), a_0 = x, a softmax
output p = softmax(z_{L+1}) and the mean categorical crossentropy over N samples:

    delta_{L+1} = (p - y) / N
    delta_l     = (delta_{l+1} W_{l+1}^T) * f'(z_l)
    dW_l = a_{l-1}^T delta_l,   db_l = sum over the batch of delta_l

docs/backprop.md derives these and what each f' range implies for depth.
"""

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from tapelab.core.activations import get_activation
from tapelab.core.models import build_mlp, dense_layers


def backprop_gradients(kernels, biases, activation: str, x, y):
    """Gradients [(dW_1, db_1), ..., (dW_{L+1}, db_{L+1})] of the mean crossentropy.

    kernels[i] has shape (fan_in, fan_out); x is (N, features), y is (N, classes) one-hot.
    """
    derivative = get_activation(activation).derivative
    forward = get_activation(activation).apply
    inputs, pre_activations = [x], []
    for kernel, bias in zip(kernels[:-1], biases[:-1]):
        z = inputs[-1] @ kernel + bias
        pre_activations.append(z)
        inputs.append(forward(z))
    probabilities = tf.nn.softmax(inputs[-1] @ kernels[-1] + biases[-1])
    delta = (probabilities - y) / tf.cast(tf.shape(x)[0], x.dtype)
    gradients = []
    for layer in reversed(range(len(kernels))):
        gradients.append((tf.transpose(inputs[layer]) @ delta, tf.reduce_sum(delta, axis=0)))
        if layer > 0:
            delta = (delta @ tf.transpose(kernels[layer])) * derivative(pre_activations[layer - 1])
    return gradients[::-1]


@dataclass
class LayerError:
    layer: int
    max_abs_error: float
    max_rel_error: float
    max_abs_gradient: float


def check_against_tape(depth: int, activation: str, batch_size: int = 64, seed: int = 0) -> list[LayerError]:
    """Compare hand-written backprop with `tf.GradientTape` on a random float64 MLP.

    The relative error of a layer is its max absolute difference divided by the layer's
    max |gradient|, so layers whose gradients vanish are judged on their own scale.
    """
    import keras

    model = build_mlp(depth, activation, input_shape=(784,), seed=seed, dtype="float64")
    rng = np.random.default_rng(seed)
    x = tf.constant(rng.random((batch_size, 784)), tf.float64)
    y = tf.constant(np.eye(10)[rng.integers(0, 10, batch_size)], tf.float64)
    with tf.GradientTape() as tape:
        loss = keras.losses.categorical_crossentropy(y, model(x, training=True))
        loss = tf.reduce_mean(loss)
    layers = dense_layers(model)
    tape_grads = tape.gradient(loss, [weight for layer in layers for weight in (layer.kernel, layer.bias)])
    hand_grads = backprop_gradients(
        [layer.kernel for layer in layers], [layer.bias for layer in layers], activation, x, y
    )
    errors = []
    for index, (hand_kernel, hand_bias) in enumerate(hand_grads):
        tape_kernel, tape_bias = tape_grads[2 * index], tape_grads[2 * index + 1]
        difference = max(_max_abs(hand_kernel - tape_kernel), _max_abs(hand_bias - tape_bias))
        scale = max(_max_abs(tape_kernel), _max_abs(tape_bias))
        relative = difference / scale if scale > 0 else difference
        errors.append(LayerError(index + 1, difference, relative, scale))
    return errors


def _max_abs(tensor) -> float:
    return float(tf.reduce_max(tf.abs(tensor)))


def sample_derivative_range(activation: str, limit: float = 15.0, points: int = 300_001):
    """Observed (min, max) of f' on an even float64 grid over [-limit, limit], which includes 0."""
    x = tf.constant(np.linspace(-limit, limit, points), tf.float64)
    values = get_activation(activation).derivative(x)
    return float(tf.reduce_min(values)), float(tf.reduce_max(values))
