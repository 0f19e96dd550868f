"""Adversarial training and its validation: the tape loop with an attack on every batch, robust
accuracy under FGSM and PGD with restarts, and checks that the robustness is not gradient masking.

- PGD training: Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks", 2018,
  https://arxiv.org/abs/1706.06083
- FGSM with a random start: Wong, Rice, Kolter, "Fast is better than free: Revisiting adversarial
  training", 2020, https://arxiv.org/abs/2001.03994 (one attack step, about twice the cost of plain training)
- N-FGSM: de Jorge et al., "Make Some Noise: Reliable and Efficient Single-Step Adversarial Training",
  2022, https://arxiv.org/abs/2202.01181 (the same cost, without FGSM-RS's catastrophic overfitting)
"""

import itertools
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from tapelab.attacks.baselines import fast_gradient_method, projected_gradient_descent
from tapelab.core.errors import ConfigError

TRAINING_ATTACKS = ("pgd", "fgsm_rs", "nfgsm")


@dataclass
class RobustConfig:
    attack: str = field(default="fgsm_rs", metadata={"help": "attack on each training batch: pgd, fgsm_rs or nfgsm"})
    eps: float = field(default=0.3, metadata={"help": "L-infinity radius to withstand (training and validation)"})
    pgd_train_steps: int = field(default=7, metadata={"help": "steps of the pgd training attack"})
    step_size: float = field(default=0.0, metadata={
        "help": "training attack step; 0: 2.5 eps/steps for pgd (Madry), 1.25 eps for fgsm_rs (Wong et al.), "
                "eps for nfgsm (de Jorge et al.)"})
    random_start: bool = field(default=True, metadata={
        "help": "start pgd and fgsm_rs at a random point of the ball (nfgsm always adds noise of 2 eps)"})
    eps_ramp: float = field(default=0.0, metadata={
        "help": "share of training over which eps grows linearly from 0 (PGD training at a large eps can "
                "otherwise stall at one class)"})

    def __post_init__(self):
        if self.attack not in TRAINING_ATTACKS:
            raise ConfigError(f"unknown training attack {self.attack!r}; choose one of {', '.join(TRAINING_ATTACKS)}")
        if self.eps < 0 or self.pgd_train_steps < 1 or self.step_size < 0 or not 0 <= self.eps_ramp <= 1:
            raise ConfigError(f"need eps >= 0, pgd_train_steps >= 1, step_size >= 0 and eps_ramp in [0, 1], got "
                              f"{self.eps}, {self.pgd_train_steps}, {self.step_size}, {self.eps_ramp}")

    @property
    def steps(self) -> int:
        return self.pgd_train_steps if self.attack == "pgd" else 1

    @property
    def attack_step_size(self) -> float:
        if self.step_size:
            return self.step_size
        return {"pgd": 2.5 * self.eps / self.steps, "fgsm_rs": 1.25 * self.eps, "nfgsm": self.eps}[self.attack]


@dataclass(frozen=True)
class TrainingAttack:
    """`perturb(model, x, y, progress)` for `Trainer`: (a random start in the eps ball, then) the attack's
    steps against the model as it trains (training mode, as in the papers), with eps and the step scaled
    down while `progress` < `eps_ramp`. Its repr names every setting, so a checkpoint made with another
    attack is not resumed."""

    config: RobustConfig

    def __call__(self, model, x, y, progress=1.0):
        config = self.config
        scale = tf.minimum(1.0, progress / config.eps_ramp) if config.eps_ramp else 1.0
        eps, step = scale * config.eps, scale * config.attack_step_size

        def model_fn(images):
            return model(images, training=True)

        if config.attack == "nfgsm":
            # Noise of twice the radius, and no projection back onto the eps ball after the step.
            noisy = tf.clip_by_value(x + tf.random.uniform(tf.shape(x), -2 * eps, 2 * eps), 0.0, 1.0)
            return fast_gradient_method(model_fn, noisy, step, y=y)
        return projected_gradient_descent(model_fn, x, eps, step, config.steps, y=y, rand_init=config.random_start)


def _batched_correct(model_fn, x, y, attack, batch_size) -> np.ndarray:
    """Per example: still classified correctly after `attack(model_fn, x, y)` (run as one graph)."""
    compiled = tf.function(lambda xb, yb: attack(model_fn, xb, yb))
    correct = []
    for start in range(0, len(x), batch_size):
        xb, yb = tf.constant(x[start : start + batch_size]), tf.constant(y[start : start + batch_size])
        adversarial = compiled(xb, yb)
        correct.append(np.argmax(model_fn(adversarial).numpy(), -1) == np.argmax(yb.numpy(), -1))
    return np.concatenate(correct)


def pgd_correct(model_fn, x, y, eps, steps, restarts=1, batch_size=500) -> np.ndarray:
    """Per example: survives L-infinity PGD (step 2.5 eps/steps) from every one of `restarts` random starts."""
    def attack(model_fn, xb, yb):
        return projected_gradient_descent(model_fn, xb, eps, 2.5 * eps / steps, steps, y=yb, rand_init=True)

    survived = np.ones(len(x), bool)
    for _ in range(restarts):  # each call draws new random starts
        survived &= _batched_correct(model_fn, x, y, attack, batch_size)
    return survived


def pgd_accuracy(model_fn, x, y, eps, steps, restarts=1, batch_size=500) -> float:
    return float(pgd_correct(model_fn, x, y, eps, steps, restarts, batch_size).mean())


def fgsm_correct(model_fn, x, y, eps, batch_size=500) -> np.ndarray:
    return _batched_correct(model_fn, x, y, lambda m, xb, yb: fast_gradient_method(m, xb, eps, y=yb), batch_size)


def noise_correct(model_fn, x, y, eps, batch_size=500) -> np.ndarray:
    """Per example: survives random +-eps noise on every pixel (a corner of the ball), which needs no gradient."""
    def attack(_, xb, yb):
        noise = eps * tf.sign(tf.random.uniform(tf.shape(xb), -1.0, 1.0))
        return tf.clip_by_value(xb + noise, 0.0, 1.0)
    return _batched_correct(model_fn, x, y, attack, batch_size)


def clean_correct(model_fn, x, y, batch_size=500) -> np.ndarray:
    return _batched_correct(model_fn, x, y, lambda m, xb, yb: xb, batch_size)


@dataclass
class ValidationConfig:
    pgd_steps: int = field(default=40, metadata={"help": "PGD steps of the validation attack"})
    restarts: int = field(default=3, metadata={"help": "PGD random restarts (an example must survive all)"})
    examples: int = field(default=1000, metadata={
        "help": "test images attacked, drawn at random with seed 0 (folder-read test sets are sorted by class)"})
    sweep: tuple[float, ...] = field(default=(0.1, 0.2, 0.3, 0.4),
                                     metadata={"help": "eps values of the accuracy-vs-eps check"})
    large_eps: float = field(default=0.6, metadata={"help": "at this eps accuracy must be about 0"})


def validate(model_fn, x, y, eps: float, config: ValidationConfig, progress: bool = True) -> dict:
    """Clean, FGSM and PGD accuracy, and the checks against false robustness (gradient masking):
    no attack raises accuracy above clean; accuracy falls as eps grows and is about 0 at a large eps;
    more steps and restarts never raise it; PGD is never weaker than FGSM, nor than random noise."""
    sample = np.random.default_rng(0).permutation(len(x))[: config.examples]
    x, y = x[sample], y[sample]
    radii = sorted({*config.sweep, eps, config.large_eps})
    bar = tqdm(total=5 + len(radii), desc="attacks run", unit="attack", leave=False, disable=not progress)

    def measured(correct: np.ndarray) -> np.ndarray:
        bar.update()
        return correct

    survived = {
        "clean": measured(clean_correct(model_fn, x, y)),
        "fgsm": measured(fgsm_correct(model_fn, x, y, eps)),
        "pgd": measured(pgd_correct(model_fn, x, y, eps, config.pgd_steps, config.restarts)),
        "random_noise": measured(noise_correct(model_fn, x, y, eps)),
    }
    pgd_short = measured(pgd_correct(model_fn, x, y, eps, max(1, config.pgd_steps // 4), 1))
    sweep = {radius: measured(pgd_correct(model_fn, x, y, radius, config.pgd_steps, 1)) for radius in radii}
    bar.close()
    checks = masking_checks(survived, sweep, pgd_short, eps, config.large_eps)
    return {"scores": {name: float(correct.mean()) for name, correct in survived.items()},
            "pgd_one_start": float(sweep[eps].mean()), "pgd_short": float(pgd_short.mean()),
            "eps_sweep": {str(radius): float(correct.mean()) for radius, correct in sweep.items()},
            "checks": checks, "passed": all(check["passed"] for check in checks.values()),
            "examples": len(x), "eps": eps}


# Allowed excess, in standard deviations of the sign test: one false alarm in about 740 comparisons of
# equally strong attacks (one-sided), while masking, which spares hundreds of examples, still stands out.
SIGN_TEST_Z = 3.0


def _check(excess: int, allowance: float) -> dict:
    return {"passed": bool(excess <= allowance), "excess": int(excess), "allowance": round(float(allowance), 2)}


def _never_above(weaker: np.ndarray, stronger: np.ndarray) -> dict:
    """Does the `stronger` attack leave more survivors than the `weaker` one, beyond chance? A paired
    sign test: attacks with random starts disagree on some examples (the discordant ones); equally strong
    attacks split those evenly, so `stronger`'s excess of survivors may reach SIGN_TEST_Z standard
    deviations, SIGN_TEST_Z * sqrt(discordant), before it counts."""
    only_stronger = int(np.sum(stronger & ~weaker))
    only_weaker = int(np.sum(weaker & ~stronger))
    return _check(only_stronger - only_weaker, SIGN_TEST_Z * np.sqrt(only_stronger + only_weaker))


def _worst(checks) -> dict:
    return max(checks, key=lambda check: check["excess"] - check["allowance"])


def masking_checks(survived: dict, sweep: dict, pgd_short: np.ndarray, eps: float, large_eps: float) -> dict:
    """Each check's verdict, with its excess (in examples) and the allowance it was held to. `survived`
    maps clean, fgsm, pgd and random_noise to per-example correctness; `sweep` maps eps to one-start PGD
    correctness and holds `eps` and `large_eps`; `pgd_short` is PGD with a quarter of the steps."""
    curve = [sweep[radius] for radius in sorted(sweep)]
    pgd = survived["pgd"]
    return {
        "attacks never raise accuracy above clean": _worst(
            [_never_above(survived["clean"], survived[name]) for name in ("fgsm", "pgd", "random_noise")]),
        "accuracy falls as eps grows": _worst([_never_above(a, b) for a, b in itertools.pairwise(curve)]),
        f"about 0 at eps {large_eps}": _check(int(sweep[large_eps].sum()), 0.05 * len(pgd)),
        "more PGD steps never raise accuracy": _never_above(pgd_short, sweep[eps]),
        "restarts never raise accuracy": _never_above(sweep[eps], pgd),
        "PGD never weaker than FGSM": _never_above(survived["fgsm"], pgd),
        "PGD never weaker than random noise": _never_above(survived["random_noise"], pgd),
    }
