"""Data augmentation inside the compiled train step: per-image random rotations and zooms, shifts
and flips.

Stateless random ops with an explicit seed, so runs repeat exactly. Shifts and flips also compile
with XLA; rotations and zooms use TensorFlow's image-transform kernel, which XLA does not compile.
"""

import math

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


def rotate_zoom(images, degrees, scales):
    """Rotate image i by `degrees[i]` (counter-clockwise as displayed, rows running down) and magnify
    it by `scales[i]` about its centre. Bilinear sampling; the corners that come free are filled by
    reflecting the image, so no black wedges teach the net a border that real faces lack."""
    height, width = tf.cast(tf.shape(images)[1], tf.float32), tf.cast(tf.shape(images)[2], tf.float32)
    centre_x, centre_y = (width - 1) / 2, (height - 1) / 2
    radians = tf.cast(degrees, tf.float32) * (math.pi / 180)
    cos, sin = tf.cos(radians) / scales, tf.sin(radians) / scales
    zeros = tf.zeros_like(cos)
    # Output pixel p samples the input at centre + rotation(angle) / scale * (p - centre), in (x, y) with y down.
    transforms = tf.stack([cos, -sin, centre_x - cos * centre_x + sin * centre_y,
                           sin, cos, centre_y - sin * centre_x - cos * centre_y, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=tf.shape(images)[1:3], fill_value=0.0,
        interpolation="BILINEAR", fill_mode="REFLECT")


def random_rotate_zoom(images, seed, max_degrees: float, max_zoom: float):
    """Rotate each image by a uniform angle in [-max_degrees, max_degrees] and magnify it by a
    uniform factor in [1 - max_zoom, 1 + max_zoom]: faces in the wild are tilted and framed loosely."""
    angle_seed, zoom_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    batch = tf.shape(images)[:1]
    degrees = tf.random.stateless_uniform(batch, angle_seed, -max_degrees, max_degrees)
    scales = tf.random.stateless_uniform(batch, zoom_seed, 1 - max_zoom, 1 + max_zoom)
    return rotate_zoom(images, degrees, scales)


def augment(images, seed, kind: str, max_shift: int = 4, max_rotation: float = 0.0, max_zoom: float = 0.0):
    """Apply augmentation `kind` (one of AUGMENTATIONS) to a batch with a (2,) int32 seed; a
    `max_rotation` (degrees) or `max_zoom` above 0 adds a random rotation and zoom before the shift."""
    if kind == "none":
        return images
    shift_seed, flip_seed = tf.unstack(tf.random.experimental.stateless_split(seed, 2))
    if max_rotation or max_zoom:
        images = random_rotate_zoom(images, tf.random.experimental.stateless_fold_in(seed, 1), max_rotation, max_zoom)
    images = random_shift(images, shift_seed, max_shift)
    return random_flip(images, flip_seed) if kind == "flip_shift" else images
