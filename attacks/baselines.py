"""Standard attacks as plain functions on the tape, in the style of cleverhans' tf2 attacks.

`model_fn` maps images in [clip_min, clip_max] to class probabilities. With `targeted=True`,
`y` is the one-hot target and the attack descends the crossentropy toward it; otherwise `y` is
the true label (the model's prediction when left out) and the attack ascends it.

- FGSM: Goodfellow, Shlens, Szegedy, "Explaining and Harnessing Adversarial Examples", 2015,
  https://arxiv.org/abs/1412.6572
- PGD: Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks", 2018,
  https://arxiv.org/abs/1706.06083
"""

import numpy as np
import tensorflow as tf

from tapelab.core.errors import ConfigError

NORMS = (np.inf, 2)


def _check(eps, norm):
    if norm not in NORMS:
        raise ConfigError(f"norm must be np.inf or 2, got {norm}")
    if isinstance(eps, int | float) and eps < 0:  # a tensor eps is checked by whoever builds it
        raise ConfigError(f"eps must be >= 0, got {eps}")


def _per_image_l2(tensor):
    return tf.sqrt(tf.reduce_sum(tf.square(tensor), axis=tuple(range(1, tensor.shape.rank)), keepdims=True))


def optimize_linear(gradient, eps, norm):
    """The step of size `eps` in `norm` that most increases a linear function with this gradient."""
    if norm == np.inf:
        return eps * tf.sign(gradient)
    return eps * gradient / tf.maximum(_per_image_l2(gradient), 1e-12)


def clip_eta(eta, norm, eps):
    """Project the perturbation `eta` onto the `norm` ball of radius `eps`."""
    if norm == np.inf:
        return tf.clip_by_value(eta, -eps, eps)
    return eta * tf.minimum(1.0, eps / tf.maximum(_per_image_l2(eta), 1e-12))


def _loss_gradient(model_fn, x, y, targeted):
    with tf.GradientTape() as tape:
        tape.watch(x)
        loss = tf.reduce_sum(tf.keras.losses.categorical_crossentropy(y, model_fn(x)))
        loss = -loss if targeted else loss
    # A model without a gradient path (e.g. one that rounds its input) gives zeros, not None: the
    # attack then shows the masking instead of crashing.
    return tape.gradient(loss, x, unconnected_gradients=tf.UnconnectedGradients.ZERO)


def _labels(model_fn, x, y):
    if y is not None:
        return tf.convert_to_tensor(y, x.dtype)
    probabilities = model_fn(x)
    return tf.one_hot(tf.argmax(probabilities, axis=-1), probabilities.shape[-1], dtype=x.dtype)


def fast_gradient_method(model_fn, x, eps, norm=np.inf, *, y=None, targeted=False, clip_min=0.0, clip_max=1.0):
    """One step of size `eps` along the loss gradient (FGSM for the infinity norm)."""
    _check(eps, norm)
    x = tf.convert_to_tensor(x)
    gradient = _loss_gradient(model_fn, x, _labels(model_fn, x, y), targeted)
    return tf.clip_by_value(x + optimize_linear(gradient, eps, norm), clip_min, clip_max)


def projected_gradient_descent(
    model_fn, x, eps, eps_iter, nb_iter, norm=np.inf, *, y=None, targeted=False, clip_min=0.0, clip_max=1.0,
    rand_init=True, seed=None,
):
    """`nb_iter` gradient steps of size `eps_iter`, each projected back onto the `eps` ball and the
    pixel range; with `rand_init`, start from a uniform point of the ball (infinity norm) or
    cube of side `eps` scaled into it (L2)."""
    _check(eps, norm)
    x = tf.convert_to_tensor(x)
    y = _labels(model_fn, x, y)
    eta = tf.zeros_like(x)
    if rand_init:
        eta = clip_eta(tf.random.uniform(tf.shape(x), -eps, eps, dtype=x.dtype, seed=seed), norm, eps)
    adversarial = tf.clip_by_value(x + eta, clip_min, clip_max)
    for _ in range(nb_iter):
        step = optimize_linear(_loss_gradient(model_fn, adversarial, y, targeted), eps_iter, norm)
        eta = clip_eta(adversarial + step - x, norm, eps)
        adversarial = tf.clip_by_value(x + eta, clip_min, clip_max)
    return adversarial
