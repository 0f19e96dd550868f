"""The training loop's settings, and the optimizer and schedule they describe."""

from dataclasses import dataclass, field

import keras

from tapelab.core.errors import ConfigError
from tapelab.train.augment import AUGMENTATIONS

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "cosine")


@dataclass
class TrainConfig:
    epochs: int = field(default=3, metadata={"help": "passes over the training set"})
    batch_size: int = field(default=32, metadata={"help": "global batch size (Keras' default is 32)"})
    learning_rate: float = field(default=0.01, metadata={"help": "optimizer step size (the peak, with a schedule)"})
    optimizer: str = field(default="sgd", metadata={"help": f"one of {', '.join(OPTIMIZERS)}"})
    momentum: float = field(default=0.0, metadata={"help": "SGD momentum (Nesterov when > 0)"})
    weight_decay: float = field(default=0.0, metadata={"help": "decoupled weight decay"})
    schedule: str = field(default="constant", metadata={"help": f"learning-rate schedule: {', '.join(SCHEDULES)}"})
    warmup_fraction: float = field(default=0.1, metadata={"help": "share of steps warming up (cosine)"})
    loss: str = field(default="categorical_crossentropy", metadata={"help": "a Keras loss function name"})
    label_smoothing: float = field(default=0.0, metadata={"help": "mix targets with the uniform distribution"})
    class_balance: float = field(default=0.0, metadata={
        "help": "weight each class's loss by (N / (classes * n_class)) ** this; 0 off, 0.5 gentle, 1 fully balanced"})
    augment: str = field(default="none", metadata={"help": f"one of {', '.join(AUGMENTATIONS)}"})
    max_shift: int = field(default=4, metadata={"help": "largest random shift in pixels (augment)"})
    max_rotation: float = field(default=0.0, metadata={"help": "largest random rotation in degrees (augment)"})
    max_zoom: float = field(default=0.0, metadata={"help": "largest random zoom: scales in [1 - this, 1 + this]"})
    keep_best: bool = field(default=False, metadata={
        "help": "end with the weights of the epoch of best test accuracy (the test split selects the model)"})
    seed: int = field(default=0, metadata={"help": "seed for shuffling, augmentation and the gradient batch"})
    evals_per_epoch: int = field(default=1, metadata={"help": "test-set evaluations per epoch (curve points)"})
    capture_gradients: bool = field(default=False, metadata={"help": "record per-layer max |gradient|"})
    gradient_batch_size: int = field(default=32, metadata={"help": "size of the fixed gradient mini-batch"})
    steps_per_call: int = field(default=200, metadata={"help": "training steps per compiled call"})
    jit_compile: bool = field(default=True, metadata={"help": "compile steps with XLA (single device only)"})
    init_from: str = field(default="", metadata={
        "help": "start from the net in this .h5 (same architecture) instead of fresh weights: a further schedule"})

    def __post_init__(self):
        positive = ("epochs", "batch_size", "evals_per_epoch", "gradient_batch_size", "steps_per_call")
        for name in positive:
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.learning_rate > 0:
            raise ConfigError(f"learning_rate must be > 0, got {self.learning_rate}")
        for name, value, allowed in (("optimizer", self.optimizer, OPTIMIZERS), ("schedule", self.schedule, SCHEDULES),
                                     ("augment", self.augment, AUGMENTATIONS)):
            if value not in allowed:
                raise ConfigError(f"unknown {name} {value!r}; choose one of {', '.join(allowed)}")
        if not 0 <= self.class_balance <= 1:
            raise ConfigError(f"class_balance must lie in [0, 1], got {self.class_balance}")
        if not 0 <= self.max_rotation <= 180 or not 0 <= self.max_zoom < 1:
            raise ConfigError(f"max_rotation must lie in [0, 180] degrees and max_zoom in [0, 1), got "
                              f"{self.max_rotation} and {self.max_zoom}")
        if not 0 <= self.label_smoothing < 1 or not 0 <= self.warmup_fraction < 1:
            raise ConfigError("label_smoothing and warmup_fraction must lie in [0, 1)")
        try:
            keras.losses.get(self.loss)
        except ValueError:
            raise ConfigError(
                f"unknown loss {self.loss!r}; use a Keras loss name such as categorical_crossentropy"
            ) from None


def make_optimizer(config: TrainConfig, total_steps: int) -> keras.optimizers.Optimizer:
    """The optimizer of `config`, its learning rate following the schedule over `total_steps`."""
    learning_rate = config.learning_rate
    if config.schedule == "cosine":
        warmup_steps = int(config.warmup_fraction * total_steps)
        learning_rate = keras.optimizers.schedules.CosineDecay(
            initial_learning_rate=0.0 if warmup_steps else config.learning_rate,
            decay_steps=max(1, total_steps - warmup_steps),
            warmup_target=config.learning_rate if warmup_steps else None,
            warmup_steps=warmup_steps,
        )
    weight_decay = config.weight_decay or None
    if config.optimizer == "adam":
        return keras.optimizers.Adam(learning_rate=learning_rate, weight_decay=weight_decay)
    return keras.optimizers.SGD(
        learning_rate=learning_rate, momentum=config.momentum, nesterov=config.momentum > 0, weight_decay=weight_decay
    )
