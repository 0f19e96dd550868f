"""Model builders. Keras defines the layers; training happens in train/loop.py."""

import keras

from core.activations import get_activation
from core.errors import ConfigError


def build_mlp(
    depth: int,
    activation: str,
    units: int = 32,
    input_shape: tuple = (28, 28, 1),
    num_classes: int = 10,
    seed: int = 0,
    dtype: str = "float32",
) -> keras.Sequential:
    """A fully connected net: `depth` hidden Dense layers of `units`, then a softmax layer.

    Weights use Keras' default Glorot-uniform initialisation, seeded so that every run and
    every strategy starts from the same net.
    """
    if not isinstance(depth, int) or depth < 1:
        raise ConfigError(f"depth must be a whole number >= 1, got {depth!r}")
    if units < 1:
        raise ConfigError(f"units must be >= 1, got {units!r}")
    forward = get_activation(activation).forward
    initializer_seed = iter(range(seed * 1000, seed * 1000 + depth + 1))
    layers = [keras.Input(shape=input_shape, dtype=dtype), keras.layers.Flatten(dtype=dtype)]
    for index in range(depth):
        layers.append(
            keras.layers.Dense(
                units,
                activation=forward,
                kernel_initializer=keras.initializers.GlorotUniform(seed=next(initializer_seed)),
                name=f"hidden_{index + 1}",
                dtype=dtype,
            )
        )
    layers.append(
        keras.layers.Dense(
            num_classes,
            activation="softmax",
            kernel_initializer=keras.initializers.GlorotUniform(seed=next(initializer_seed)),
            name="output",
            dtype=dtype,
        )
    )
    return keras.Sequential(layers, name=f"mlp_{activation}_{depth}")


def dense_layers(model: keras.Model) -> list:
    """The layers that own weights, in order from input to output."""
    return [layer for layer in model.layers if layer.trainable_weights]
