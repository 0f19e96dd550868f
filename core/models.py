"""Model builders. Keras defines the layers; training happens in train/loop.py."""

from pathlib import Path

import keras
import numpy as np

from tapelab.core.activations import get_activation  # importing it registers lecun_tanh for loading
from tapelab.core.errors import ConfigError, TapelabError


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


CENTRE_CROP_LAYER = "centre_crop"
MIRROR_AVERAGE_LAYER = "mirror_average"
ENSEMBLE_AVERAGE_LAYER = "ensemble_average"
PRECISIONS = ("float32", "mixed_bfloat16")


def _all_layers(model: keras.Model):
    """The layers of `model` and of the models nested in it."""
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)


def model_crop_margin(model: keras.Model) -> int:
    """Pixels a `build_cnn(crop_margin=...)` net cuts off each border itself (0 for a net without a crop),
    also when the net is wrapped (`mirror_averaged`)."""
    layers = [layer for layer in _all_layers(model) if layer.name == CENTRE_CROP_LAYER]
    return int(layers[0].cropping[0][0]) if layers else 0


def mirror_averaged(net: keras.Model) -> keras.Model:
    """One model whose output is `net`'s averaged over each image and its left-right mirror image.

    Faces and photographed objects are as likely either way round and a net trained with random flips
    errs differently on the two, so the average is more accurate than either (test-time augmentation)
    and travels inside the `.h5`, at the cost of two passes of `net` per call. The wrapper shares `net`'s
    layers and weights. The mirror is a frozen Dense layer holding the reversal permutation, applied along
    the width: plain Keras layers, so the file loads anywhere without custom code.
    """
    height, width, channels = net.input_shape[1:]
    inputs = keras.Input(shape=(height, width, channels))
    mirror = keras.layers.Dense(width, use_bias=False, trainable=False, name="mirror")
    to_columns_last, back = keras.layers.Permute((1, 3, 2)), keras.layers.Permute((1, 3, 2))
    mirrored = back(mirror(to_columns_last(inputs)))
    mirror.set_weights([np.eye(width, dtype=np.float32)[::-1]])
    outputs = keras.layers.Average(name=MIRROR_AVERAGE_LAYER)([net(inputs), net(mirrored)])
    return keras.Model(inputs, outputs, name=f"{net.name}_mirror_averaged")


def _has_layer(model: keras.Model, name: str) -> bool:
    return name in {layer.name for layer in model.layers}


def without_mirror(model: keras.Model) -> keras.Model:
    """The net inside a `mirror_averaged` wrapper, or `model` itself when it is not one: an ensemble can then
    average its members' nets and decide once whether the whole average also takes the mirror pass."""
    if not _has_layer(model, MIRROR_AVERAGE_LAYER):
        return model
    return next(layer for layer in model.layers if isinstance(layer, keras.Model))


def save_model(model: keras.Model, path) -> Path:
    """Save `model` as `.h5` through a partial file renamed over `path`, so an interrupted save never leaves a
    damaged model where a good one was."""
    path = Path(path)
    temporary = path.with_name(f".partial.{path.name}")
    model.save(temporary)
    temporary.replace(path)
    return path


def averaged_ensemble(members: list[keras.Model], name: str) -> keras.Model:
    """One model whose output is the mean of `members`' outputs (nets trained in separate runs, each
    perhaps `mirror_averaged`): networks that err differently are right more often on average, and the
    average is plain Keras layers, so the ensemble ships as one `.h5` that loads anywhere. Each member is
    renamed `member_<i>` so that the file keeps their weights apart."""
    if len(members) < 2:
        raise ConfigError(f"an ensemble needs at least two members, got {len(members)}")
    shapes = {tuple(member.input_shape[1:]) for member in members}
    outputs = {member.output_shape[-1] for member in members}
    if len(shapes) > 1 or len(outputs) > 1:
        raise ConfigError(f"ensemble members differ in input shapes {sorted(shapes)} or outputs {sorted(outputs)}")
    inputs = keras.Input(shape=shapes.pop())
    renamed = [keras.Model(member.inputs[0], member.outputs[0], name=f"member_{index}")
               for index, member in enumerate(members)]
    averaged = keras.layers.Average(name=ENSEMBLE_AVERAGE_LAYER)([member(inputs) for member in renamed])
    return keras.Model(inputs, averaged, name=name)


def member_nets(model: keras.Model) -> list[keras.Model]:
    """The nets that `model` averages, each `without_mirror`: an `averaged_ensemble`'s members, or the model's one
    net. An ensemble can then grow by a net trained later without the earlier runs' files: the shipped `.h5`
    holds their nets."""
    if not _has_layer(model, ENSEMBLE_AVERAGE_LAYER):
        return [without_mirror(model)]
    return [without_mirror(layer) for layer in model.layers if isinstance(layer, keras.Model)]


def starting_weights(path, model: keras.Model) -> list[np.ndarray]:
    """The weights of the one net saved at `path` (mirror wrapper or not), for `model` to start from: a further
    training schedule on a trained net (a warm restart) instead of a fresh start. The net must have `model`'s
    weight shapes; an ensemble is refused, as it holds several nets."""
    nets = member_nets(load_model_file(path))
    if len(nets) > 1:
        raise ConfigError(f"{path} averages {len(nets)} nets; start from the .h5 of one training run")
    weights = nets[0].get_weights()
    shapes = [tuple(weight.shape) for weight in weights]
    if shapes != [tuple(weight.shape) for weight in model.get_weights()]:
        raise ConfigError(f"the net in {path} is not of this run's architecture ({len(shapes)} weight arrays of "
                          "other shapes); give the same net settings it was trained with")
    return weights


def build_cnn(
    input_shape: tuple,
    num_classes: int = 10,
    widths: tuple = (32, 64),
    convs_per_stage: int | tuple = 2,
    dense_units: int = 128,
    dropout_rate: float = 0.25,
    mean=None,
    std=None,
    seed: int = 0,
    name: str = "cnn",
    kernel_size: int = 3,
    batch_norm: bool = True,
    downsample: str = "pool",
    crop_margin: int = 0,
    precision: str = "float32",
) -> keras.Model:
    """A VGG-style CNN: per stage `convs_per_stage` x (conv, batch norm, ReLU), then 2x2 max pooling.

    `convs_per_stage` is one count for every stage or one count per stage: on CPUs the first,
    full-resolution stage costs most, so a single convolution there buys a deeper rest for less.
    `downsample="stride"` halves the resolution with the stage's first convolution (stride 2) instead
    of pooling after it: the small, cheap nets that adversarial training on MNIST uses (Wong et al. 2020).
    `crop_margin` > 0 cuts that many pixels off every border before the first convolution: trained on
    inputs shifted by up to the margin, the net sees random crops (the shift's zero fill is cut away)
    and at inference the centre crop, while its input stays the full image.

    `precision="mixed_bfloat16"` computes the layers after the standardisation in bfloat16 while the
    weights and the softmax output stay float32: on a CPU with AVX512-BF16 the FER preset's training step
    took 0.72x the float32 one (results/bench_fer_training). Its weights load into the float32 build of
    the same net unchanged.

    The model takes pixels in [0, 1] and standardises them itself with the per-channel `mean` and
    `std` of the training set, so attacks work in pixel space and the `.h5` file is self-contained.
    With `dense_units` 0 the head is global average pooling; otherwise flatten and a hidden layer.
    """
    counts = _per_stage(convs_per_stage, len(widths))
    if not widths or min(widths) < 1 or min(counts) < 1:
        raise ConfigError(f"widths must be positive and convs_per_stage >= 1, got {widths}, {convs_per_stage}")
    if crop_margin < 0 or 2 * crop_margin >= min(input_shape[:2]):
        raise ConfigError(f"crop_margin must be >= 0 and leave pixels of the {tuple(input_shape[:2])} input, "
                          f"got {crop_margin}")
    if downsample not in ("pool", "stride"):
        raise ConfigError(f"downsample must be pool or stride, got {downsample!r}")
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    compute = {"dtype": precision}
    initializer_seeds = iter(range(seed * 1000, seed * 1000 + 1000))
    inputs = keras.Input(shape=input_shape)
    x = inputs
    if mean is not None:
        x = keras.layers.Normalization(mean=list(mean), variance=[s**2 for s in std], name="standardise")(x)
    if crop_margin:
        x = keras.layers.Cropping2D(crop_margin, name=CENTRE_CROP_LAYER)(x)
    for stage, (width, count) in enumerate(zip(widths, counts)):
        for conv in range(count):
            strides = 2 if downsample == "stride" and conv == 0 else 1
            x = keras.layers.Conv2D(
                width, kernel_size, strides=strides, padding="same", use_bias=not batch_norm,
                name=f"conv{stage + 1}_{conv + 1}",
                kernel_initializer=keras.initializers.HeNormal(seed=next(initializer_seeds)), **compute,
            )(x)
            if batch_norm:
                x = keras.layers.BatchNormalization(name=f"bn{stage + 1}_{conv + 1}", **compute)(x)
            x = keras.layers.ReLU(**compute)(x)
        if downsample == "pool":
            x = keras.layers.MaxPooling2D(name=f"pool{stage + 1}", **compute)(x)
    if dense_units:
        x = keras.layers.Flatten(**compute)(x)
        x = keras.layers.Dropout(dropout_rate, seed=next(initializer_seeds), **compute)(x)
        x = keras.layers.Dense(
            dense_units, activation="relu",
            kernel_initializer=keras.initializers.HeNormal(seed=next(initializer_seeds)), name="hidden", **compute,
        )(x)
    else:
        x = keras.layers.GlobalAveragePooling2D(**compute)(x)
    x = keras.layers.Dropout(dropout_rate, seed=next(initializer_seeds), **compute)(x)
    outputs = keras.layers.Dense(
        num_classes, activation="softmax", name="output",
        kernel_initializer=keras.initializers.GlorotUniform(seed=next(initializer_seeds)),
    )(x)
    return keras.Model(inputs, outputs, name=name)


def _per_stage(convs_per_stage, num_stages: int) -> tuple:
    counts = (convs_per_stage,) if isinstance(convs_per_stage, int) else tuple(convs_per_stage)
    if len(counts) == 1:
        return counts * num_stages
    if len(counts) != num_stages:
        raise ConfigError(f"convs_per_stage needs one count or one per stage ({num_stages}), got {convs_per_stage}; "
                          "pass --convs-per-stage with a matching list")
    return counts


def load_model_file(path, input_shape: tuple | None = None, num_classes: int | None = None) -> keras.Model:
    """Load a `.h5` model and check it takes `input_shape` and gives `num_classes` outputs."""
    path = Path(path)
    if not path.is_file():
        raise TapelabError(f"model file {path} not found; train one first or pass --model")
    try:
        model = keras.models.load_model(path, compile=False)
    except Exception as error:  # h5py and Keras raise many types; say which failed and keep the cause
        raise TapelabError(f"cannot load model {path}: {_load_failure(error)}") from error
    found_shape = tuple(model.input_shape[1:])
    if input_shape is not None and found_shape != tuple(input_shape):
        raise TapelabError(f"model {path} takes inputs of shape {found_shape}, but this needs {tuple(input_shape)}")
    if num_classes is not None and model.output_shape[-1] != num_classes:
        raise TapelabError(f"model {path} has {model.output_shape[-1]} outputs, but this needs {num_classes}")
    return model


def _load_failure(error: Exception) -> str:
    """What went wrong loading a model, in one line: what failed, the library's own words, what to do."""
    detail = " ".join(str(error).split())[:160]
    if isinstance(error, OSError) and "signature" in detail:
        what = "it is not an HDF5 file (damaged, cut off, or another format)"
    elif "Unknown" in detail or "Could not locate" in detail:
        what = "it uses a layer or function this version of tapelab does not know"
    else:
        what = "Keras could not rebuild the model from it"
    return f"{what} ({type(error).__name__}: {detail}); train it again or pass another --model"
