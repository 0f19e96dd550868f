"""The simple generator f(w) = x: one input neuron fixed at 1, whose weights are the image.

Training alternates two steps per round: (a) toward the source image with mean squared error and
Adam, (b) the composite C(f(w)) toward the target class, with every parameter of the classifier C
frozen. All (source, target) pairs train together: the weights of all generators are one
(pairs, pixels) tensor and each pair's loss depends on its own row only, so in exact arithmetic the
batch gives the images that training each pair alone would. In float32 it does not quite: the
classifier's batched kernels sum in another order, and a pair near its confidence threshold can stop
a round earlier or later (scripts/bench_attack.py counts such pairs and the largest pixel difference).
A pair stops (its row is frozen) once C gives the target class with the required confidence.
"""

import time
from dataclasses import dataclass, field

import keras
import numpy as np
import tensorflow as tf

from tapelab.core.errors import ConfigError


@keras.saving.register_keras_serializable(package="tapelab")
class ImageGenerator(keras.layers.Layer):
    """`pairs` one-input neurons without bias: output row p is 1 * w_p, reshaped to the image."""

    def __init__(self, pairs: int, image_shape, **kwargs):
        super().__init__(**kwargs)
        self.pairs, self.image_shape = pairs, tuple(image_shape)

    def build(self, input_shape):
        pixels = int(np.prod(self.image_shape))
        self.images = self.add_weight(shape=(self.pairs, pixels), initializer="zeros", name="images")

    def call(self, ones):
        return tf.reshape(ones * self.images, (-1, *self.image_shape))

    def get_config(self):
        return {**super().get_config(), "pairs": self.pairs, "image_shape": self.image_shape}


def build_generator(initial_images: np.ndarray) -> keras.Model:
    """A generator model whose weights start as `initial_images` (pairs, H, W, C)."""
    pairs, image_shape = initial_images.shape[0], initial_images.shape[1:]
    ones = keras.Input(shape=(1,), name="one")
    generator = keras.Model(ones, ImageGenerator(pairs, image_shape, name="image_weights")(ones), name="generator")
    generator.get_layer("image_weights").images.assign(initial_images.reshape(pairs, -1))
    return generator


def build_composite(generator: keras.Model, classifier: keras.Model) -> keras.Model:
    """C(f(w)) with the functional API; every parameter of C is frozen first (`generator_attack` sets
    `classifier.trainable` back when it is done)."""
    classifier.trainable = False
    return keras.Model(generator.input, classifier(generator.output, training=False), name="classifier_of_generator")


@dataclass
class GeneratorConfig:
    confidence: float = field(default=0.9, metadata={"help": "stop when C gives the target this confidence"})
    max_rounds: int = field(default=500, metadata={"help": "round limit per pair"})
    # (b) must outpace (a), or the two Adam steps cancel; a weak pull toward the source keeps the
    # perturbation small (measured on MNIST: equal rates reached no target in 300 rounds).
    mse_learning_rate: float = field(default=0.0005, metadata={"help": "Adam step of (a), toward the source"})
    class_learning_rate: float = field(default=0.01, metadata={"help": "Adam step of (b), toward the target"})
    rounds_per_call: int = field(default=10, metadata={"help": "rounds per compiled call (speed only)"})

    def __post_init__(self):
        if not 0 < self.confidence < 1:
            raise ConfigError(f"confidence must lie in (0, 1), got {self.confidence}")
        if self.max_rounds < 1 or self.rounds_per_call < 1:
            raise ConfigError("max_rounds and rounds_per_call must be >= 1")


@dataclass
class GeneratorResult:
    images: np.ndarray  # (pairs, H, W, C), the generators' outputs
    success: np.ndarray  # (pairs,) bool
    target_confidence: np.ndarray  # (pairs,) C's probability of the target class
    rounds: np.ndarray  # (pairs,) rounds used (0: the source already qualified)
    seconds: np.ndarray  # (pairs,) time from the start until the pair stopped
    total_seconds: float


def generator_attack(classifier: keras.Model, sources: np.ndarray, targets, config: GeneratorConfig):
    """Train one generator per (source image, target class) pair, all pairs in one batch."""
    sources = np.asarray(sources, np.float32)
    targets = np.asarray(targets)
    num_classes = classifier.output_shape[-1]
    if targets.min() < 0 or targets.max() >= num_classes:
        raise ConfigError(f"target classes must lie in 0..{num_classes - 1}, got {targets.min()}..{targets.max()}")
    was_trainable = classifier.trainable
    try:
        return _train_generators(classifier, sources, targets, config)
    finally:  # the caller's classifier is frozen only while the attack runs, whatever happens in it
        classifier.trainable = was_trainable


def _train_generators(classifier, sources, targets, config: GeneratorConfig) -> "GeneratorResult":
    num_classes = classifier.output_shape[-1]
    generator = build_generator(sources)
    composite = build_composite(generator, classifier)
    weights = generator.get_layer("image_weights").images
    ones = tf.ones((len(sources), 1))
    flat_sources = tf.constant(sources.reshape(len(sources), -1))
    target_one_hot = tf.one_hot(targets, num_classes)
    mse_optimizer = keras.optimizers.Adam(config.mse_learning_rate)
    class_optimizer = keras.optimizers.Adam(config.class_learning_rate)
    for optimizer in (mse_optimizer, class_optimizer):
        optimizer.build([weights])
    frozen_before = [variable.numpy().copy() for variable in classifier.weights]

    def masked_step(optimizer, loss_fn, active):
        with tf.GradientTape() as tape:
            loss = loss_fn()
        before = tf.identity(weights)
        optimizer.apply_gradients([(tape.gradient(loss, weights), weights)])
        updated = tf.clip_by_value(weights, 0.0, 1.0)  # keep the image in the valid pixel range
        weights.assign(tf.where(active[:, None], updated, before))

    def target_confidence():
        return tf.reduce_sum(composite(ones, training=False) * target_one_hot, axis=-1)

    @tf.function(autograph=False)
    def run_rounds(active, rounds, num_rounds):
        def one_round(index, active, rounds):
            # Sums over pairs (not means), so each pair's gradient is what it would be alone.
            masked_step(mse_optimizer, lambda: tf.reduce_sum(tf.reduce_mean(tf.square(weights - flat_sources), 1)),
                        active)
            masked_step(class_optimizer, lambda: tf.reduce_sum(
                keras.losses.categorical_crossentropy(target_one_hot, composite(ones, training=False))), active)
            rounds += tf.cast(active, rounds.dtype)
            return index + 1, tf.logical_and(active, target_confidence() < config.confidence), rounds

        _, active, rounds = tf.while_loop(lambda index, *_: index < num_rounds, one_round, (0, active, rounds))
        return active, rounds

    start = time.perf_counter()
    active = (target_confidence() < config.confidence).numpy()
    rounds = tf.zeros(len(sources), tf.int32)
    seconds = np.zeros(len(sources))
    done_rounds = 0
    while active.any() and done_rounds < config.max_rounds:
        num_rounds = min(config.rounds_per_call, config.max_rounds - done_rounds)
        still_active, rounds = run_rounds(tf.constant(active), rounds, tf.constant(num_rounds))
        still_active = still_active.numpy()
        done_rounds += num_rounds
        seconds[active & ~still_active] = time.perf_counter() - start  # to the end of the call it finished in
        active = still_active
    seconds[active] = time.perf_counter() - start
    confidence = target_confidence().numpy()
    if any(not np.array_equal(a, b.numpy()) for a, b in zip(frozen_before, classifier.weights)):
        raise RuntimeError("the classifier's weights changed during the generator attack")
    return GeneratorResult(generator(ones).numpy(), confidence >= config.confidence, confidence,
                           rounds.numpy(), seconds, time.perf_counter() - start)
