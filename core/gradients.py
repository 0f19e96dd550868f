"""Per-layer gradient statistics taken straight from `tf.GradientTape`."""

import keras
import tensorflow as tf

from core.models import dense_layers


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
