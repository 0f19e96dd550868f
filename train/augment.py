"""Data augmentation inside the compiled train step: per-image random flips and shifts.

Stateless random ops with an explicit seed, so runs repeat exactly and XLA can compile them.
"""

import tensorflow as tf

AUGMENTATIONS = ("none", "shift", "flip_shift")


def random_shift(images, seed, max_shift: int):
    """Move each image by up to `max_shift` pixels in x and y, filling with zeros (pad and crop)."""
    batch, height, width = tf.shape(images)[0], tf.shape(images)[1], tf.shape(images)[2]
    padded = tf.pad(images, [[0, 0], [max_shift, max_shift], [max_shift, max_shift], [0, 0]])
    offsets = tf.random.stateless_uniform((batch, 2), seed, 0, 2 * max_shift + 1, dtype=tf.int32)
    rows = offsets[:, :1] + tf.range(height)[None, :]
    columns = offsets[:, 1:] + tf.range(width)[None, :]
    shifted = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(shifted, columns, axis=2, batch_dims=1)


def random_flip(images, seed):
    """Mirror each image left-right with probability 1/2."""
    flip = tf.random.stateless_uniform((tf.shape(images)[0], 1, 1, 1), seed) < 0.5
    return tf.where(flip, tf.reverse(images, axis=[2]), images)


def augment(images, seed, kind: str, max_shift: int = 4):
    """Apply augmentation `kind` (one of AUGMENTATIONS) to a batch with a (2,) int32 seed."""
    if kind == "none":
        return images
    shift_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    images = random_shift(images, shift_seed, max_shift)
    return random_flip(images, flip_seed) if kind == "flip_shift" else images
