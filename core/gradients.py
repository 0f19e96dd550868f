"""Per-layer gradient statistics taken straight from `tf.GradientTape`, and the share of units
whose activation derivative is exactly zero (what cuts the backward path)."""

import keras
import tensorflow as tf

from tapelab.core.activations import get_activation
from tapelab.core.models import dense_layers


def layer_max_abs(gradients, model: keras.Model) -> tf.Tensor:
    """Max |gradient| of each weight-owning layer (kernel and bias together), input to output.

    `gradients` are in the order of `model.trainable_variables`.
    """
    by_variable = {id(variable): gradient for variable, gradient in zip(model.trainable_variables, gradients)}
    per_layer = []
    for layer in dense_layers(model):
        layer_maxima = [tf.reduce_max(tf.abs(by_variable[id(weight)])) for weight in layer.trainable_weights]
        per_layer.append(tf.reduce_max(tf.stack(layer_maxima)))
    return tf.stack(per_layer)


def make_gradient_probe(model: keras.Model, loss_fn):
    """A compiled function (x, y) -> per-layer max |gradient| of the loss, weights unchanged."""

    @tf.function(autograph=False)
    def probe(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=False))
        return layer_max_abs(tape.gradient(loss, model.trainable_variables), model)

    return probe


def zero_derivative_fractions(model: keras.Model, activation: str, x) -> list[float]:
    """Per hidden layer, the share of its units whose activation derivative is exactly 0 on every row of `x`.

    The pre-activations z = a W + b are recomputed layer by layer and fed to the hand-written
    derivative of `core.activations`, so this counts what backprop multiplies by: a ReLU unit with
    z <= 0 on every image is dead (no gradient passes it for these images), and a float32
    sigmoid whose output rounds to exactly 0 or 1 has f' = 0 too. The softmax layer is not counted.
    """
    derivative, forward = get_activation(activation).derivative, get_activation(activation).apply
    layers = dense_layers(model)
    inputs = tf.reshape(tf.convert_to_tensor(x, layers[0].kernel.dtype), (len(x), -1))
    fractions = []
    for layer in layers[:-1]:
        z = inputs @ layer.kernel + layer.bias
        always_zero = tf.reduce_all(tf.equal(derivative(z), 0.0), axis=0)
        fractions.append(float(tf.reduce_mean(tf.cast(always_zero, tf.float64))))
        inputs = forward(z)
    return fractions
