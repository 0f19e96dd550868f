"""The simple generator f(w) = x: one input neuron fixed at 1, whose weights are the image.

Training alternates two Adam steps per round: (a) toward the source image with mean squared error,
(b) the composite C(f(w)) toward the target class, with every parameter of the classifier C frozen.
Until a pair first reaches the target with the required confidence it searches; from then on it
shrinks its change: every image that holds the target is kept if its L2 change is the smallest so
far, step (b) is taken only in rounds that lost the target, and each pair's step (a) grows in rounds
that hold and shrinks in rounds that lost, so the image walks along the confidence boundary toward
the source. A pair stops when its smallest change has not shrunk for `shrink_patience` rounds, and
returns that image. All (source, target) pairs train together: the weights of all generators are
one (pairs, pixels) tensor and each pair's loss depends on its own row only, so in exact arithmetic
the batch gives the images that training each pair alone would. In float32 it does not quite: the
classifier's batched kernels sum in another order, and a pair near its confidence threshold can
take another path (scripts/bench_attack.py counts such pairs and the largest L2 difference).
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
    confidence: float = field(default=0.9, metadata={"help": "the target must get this confidence"})
    max_rounds: int = field(default=500, metadata={"help": "round limit per pair"})
    # Adam's epsilon sets its geometry: with the default 1e-7 each pixel moves by about the learning rate
    # whatever its gradient (the sign of the gradient: L-inf steps, which spread the change over every
    # pixel); with an epsilon above the gradients' size the step is proportional to the gradient (L2
    # steps), and (a) then scales the whole change toward the source. While these settings were chosen (on
    # the preset pairs), L2 steps ended below the L2-PGD ladder's mean L2 and sign steps above it; the
    # measured figures are in results/bench_attack. (b) outpaces (a) until the first success, or the two
    # steps cancel.
    mse_learning_rate: float = field(default=0.02, metadata={"help": "Adam step of (a), toward the source"})
    class_learning_rate: float = field(default=0.1, metadata={"help": "Adam step of (b), toward the target"})
    mse_epsilon: float = field(default=1e-3, metadata={
        "help": "Adam epsilon of (a); above the gradients' size a step follows the gradient (L2), not its sign"})
    class_epsilon: float = field(default=1e-2, metadata={
        "help": "Adam epsilon of (b); above the gradients' size a step follows the gradient (L2), not its sign"})
    shrink_patience: int = field(default=40, metadata={
        "help": "after a pair first holds the target, rounds without a smaller change before it stops "
                "(0: stop at the first success)"})
    shrink_tolerance: float = field(default=0.001, metadata={
        "help": "a change counts as smaller (and resets the patience) when its L2 is this fraction below the "
                "smallest so far; any smaller change is kept"})
    shrink_source_gain: float = field(default=1.2, metadata={
        "help": "each round a pair holds the target, its step toward the source grows by this factor"})
    shrink_class_decay: float = field(default=0.9, metadata={
        "help": "each round a pair holds the target, its step (b) toward the target shrinks by this factor, so "
                "that the next pull back over the threshold overshoots less"})
    shrink_back_off: float = field(default=0.8, metadata={
        "help": "each round a successful pair has lost the target, its step toward the source shrinks by "
                "this factor, and (b), grown back by it up to its full size, pulls the pair back"})
    rounds_per_call: int = field(default=10, metadata={"help": "rounds per compiled call (speed only)"})

    def __post_init__(self):
        if not 0 < self.confidence < 1:
            raise ConfigError(f"confidence must lie in (0, 1), got {self.confidence}")
        if self.max_rounds < 1 or self.rounds_per_call < 1:
            raise ConfigError("max_rounds and rounds_per_call must be >= 1")
        if self.shrink_patience < 0 or self.shrink_source_gain < 1 or not 0 < self.shrink_back_off <= 1:
            raise ConfigError("shrink_patience must be >= 0, shrink_source_gain >= 1 and shrink_back_off in (0, 1]")
        if not 0 < self.shrink_class_decay <= 1:
            raise ConfigError(f"shrink_class_decay must lie in (0, 1], got {self.shrink_class_decay}")
        if not 0 <= self.shrink_tolerance < 1:
            raise ConfigError(f"shrink_tolerance must lie in [0, 1), got {self.shrink_tolerance}")


@dataclass
class GeneratorResult:
    images: np.ndarray  # (pairs, H, W, C): per pair the smallest change that held the target, else the last image
    success: np.ndarray  # (pairs,) bool
    target_confidence: np.ndarray  # (pairs,) C's probability of the target class
    rounds: np.ndarray  # (pairs,) rounds used (0: the source already qualified)
    success_rounds: np.ndarray  # (pairs,) the round that first held the target (-1: never, 0: the source did)
    first_success_l2: np.ndarray  # (pairs,) L2 change of that first image (inf: never)
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
    num_classes, pairs = classifier.output_shape[-1], len(sources)
    generator = build_generator(sources)
    composite = build_composite(generator, classifier)
    weights = generator.get_layer("image_weights").images
    ones = tf.ones((pairs, 1))
    flat_sources = tf.constant(sources.reshape(pairs, -1))
    target_one_hot = tf.one_hot(targets, num_classes)
    mse_optimizer = keras.optimizers.Adam(config.mse_learning_rate, epsilon=config.mse_epsilon)
    class_optimizer = keras.optimizers.Adam(config.class_learning_rate, epsilon=config.class_epsilon)
    for optimizer in (mse_optimizer, class_optimizer):
        optimizer.build([weights])
    frozen_before = [variable.numpy().copy() for variable in classifier.weights]

    def target_confidence():
        return tf.reduce_sum(composite(ones, training=False) * target_one_hot, axis=-1)

    held_at_start = target_confidence() >= config.confidence
    # Per pair: the smallest change that held the target so far, its L2, when it first held, the L2 then, the
    # rounds since the smallest change last shrank, and the scales of its steps (a) and (b).
    best = tf.Variable(flat_sources)
    best_l2 = tf.Variable(tf.where(held_at_start, 0.0, np.inf))
    success_round = tf.Variable(tf.where(held_at_start, 0, -1))
    first_l2 = tf.Variable(best_l2)
    stall = tf.Variable(tf.zeros(pairs, tf.int32))
    source_scale = tf.Variable(tf.ones(pairs))
    class_scale = tf.Variable(tf.ones(pairs))

    def scaled_step(optimizer, gradient, scale):
        """One Adam step, taken by each pair in proportion to its `scale` (0: not at all)."""
        before = tf.identity(weights)
        optimizer.apply_gradients([(gradient, weights)])
        weights.assign(tf.clip_by_value(before + scale[:, None] * (weights - before), 0.0, 1.0))

    @tf.function(autograph=False)
    def run_rounds(active, rounds, num_rounds):
        def one_round(index, active, rounds):
            # Sums over pairs (not means), so each pair's gradient is what it would be alone.
            with tf.GradientTape() as tape:
                mse = tf.reduce_sum(tf.reduce_mean(tf.square(weights - flat_sources), 1))
            scaled_step(mse_optimizer, tape.gradient(mse, weights), tf.where(active, source_scale, 0.0))
            with tf.GradientTape() as tape:
                probabilities = composite(ones, training=False)
                crossentropy = tf.reduce_sum(keras.losses.categorical_crossentropy(target_one_hot, probabilities))
            holds = active & (tf.reduce_sum(probabilities * target_one_hot, -1) >= config.confidence)
            l2 = tf.norm(weights - flat_sources, axis=1)
            smaller = holds & (l2 < best_l2)
            succeeded = active & (success_round >= 0)
            shrank = holds & (l2 < (1 - config.shrink_tolerance) * best_l2)
            best.assign(tf.where(smaller[:, None], weights, best))
            best_l2.assign(tf.where(smaller, l2, best_l2))
            first = holds & (success_round < 0)
            first_l2.assign(tf.where(first, l2, first_l2))
            success_round.assign(tf.where(first, rounds + 1, success_round))
            stall.assign(tf.where(shrank, 0, tf.where(succeeded, stall + 1, stall)))
            # Holding: pull harder toward the source; lost after a success: pull less, and (b) brings it back.
            source_scale.assign(tf.where(holds, source_scale * config.shrink_source_gain,
                                         tf.where(succeeded, source_scale * config.shrink_back_off, source_scale)))
            class_scale.assign(tf.where(holds, class_scale * config.shrink_class_decay,
                                        tf.where(succeeded, tf.minimum(class_scale / config.shrink_back_off, 1.0),
                                                 class_scale)))
            scaled_step(class_optimizer, tape.gradient(crossentropy, weights),
                        tf.where(active & ~holds, class_scale, 0.0))
            rounds += tf.cast(active, rounds.dtype)
            still = active & ((success_round < 0) | (stall < config.shrink_patience))
            return index + 1, still, rounds

        _, active, rounds = tf.while_loop(lambda index, *_: index < num_rounds, one_round, (0, active, rounds))
        return active, rounds

    start = time.perf_counter()
    active = (~held_at_start).numpy()
    rounds = tf.zeros(pairs, tf.int32)
    seconds = np.zeros(pairs)
    done_rounds = 0
    while active.any() and done_rounds < config.max_rounds:
        num_rounds = min(config.rounds_per_call, config.max_rounds - done_rounds)
        still_active, rounds = run_rounds(tf.constant(active), rounds, tf.constant(num_rounds))
        still_active = still_active.numpy()
        done_rounds += num_rounds
        seconds[active & ~still_active] = time.perf_counter() - start  # to the end of the call it finished in
        active = still_active
    seconds[active] = time.perf_counter() - start
    held = (success_round >= 0).numpy()
    weights.assign(tf.where(held[:, None], best, weights))  # the smallest change that held, where one did
    confidence = target_confidence().numpy()
    if any(not np.array_equal(a, b.numpy()) for a, b in zip(frozen_before, classifier.weights)):
        raise RuntimeError("the classifier's weights changed during the generator attack")
    return GeneratorResult(generator(ones).numpy(), confidence >= config.confidence, confidence, rounds.numpy(),
                           success_round.numpy(), first_l2.numpy(), seconds, time.perf_counter() - start)
