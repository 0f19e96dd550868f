"""The custom training loop every experiment uses: `tf.GradientTape`, no `model.fit`.

Speed comes from running many steps inside one compiled call (`steps_per_call`, XLA on a
single device) over data held in memory, so Python runs once per call, not once per step.
Under a `tf.distribute.Strategy` each replica takes its share of every global batch and the
loss is divided by the global batch size, so the summed replica gradients equal the
single-device gradient.
"""

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from tapelab.core.errors import ConfigError, TapelabError
from tapelab.core.fingerprint import array_fingerprint
from tapelab.core.gradients import make_gradient_probe
from tapelab.core.models import dense_layers, starting_weights
from tapelab.train.augment import augment
from tapelab.train.checkpoint import BEST_WEIGHTS, load_checkpoint, save_checkpoint
from tapelab.train.config import TrainConfig, make_optimizer


class NonFiniteLossError(TapelabError):
    """The loss became NaN or infinite; training stops instead of writing garbage."""


@dataclass
class History:
    """What a run measured. `records` are learning-curve points; `layer_gradients[0]` is
    the untrained net, then one entry per epoch (when gradients are captured). `gradient_trace`
    holds the same per-layer max |gradient| at the untrained point (epoch 0) and at every
    learning-curve point, as {"epoch": float, "max_abs": [one value per layer, input to output]}."""

    records: list = field(default_factory=list)
    layer_gradients: list = field(default_factory=list)
    gradient_trace: list = field(default_factory=list)
    layer_names: list = field(default_factory=list)
    train_seconds: float = 0.0  # wall time of the run less eval_seconds
    eval_seconds: float = 0.0  # spent evaluating the test set for the learning curve
    best_epoch: int = 0  # 1-based epoch of best test accuracy

    @property
    def final(self) -> dict:
        return self.records[-1]


def _replica_share(*tensors):
    """This replica's contiguous share of a global batch (all of it on one device)."""
    context = tf.distribute.get_replica_context()
    size = tf.shape(tensors[0])[0]
    replicas, replica = context.num_replicas_in_sync, context.replica_id_in_sync_group
    start, end = (replica * size) // replicas, ((replica + 1) * size) // replicas
    return [tensor[start:end] for tensor in tensors]


class Trainer:
    """Holds the compiled train and test steps of one model; `fit` runs the epochs.

    `perturb(model, x, y, progress) -> x'`, when given, replaces each (augmented) training batch before
    the gradient step: with an attack this is adversarial training, in the same loop. `progress` is the
    share of the training steps done (a scalar tensor in [0, 1]), for attacks that ramp up.
    """

    def __init__(self, model: keras.Model, config: TrainConfig, strategy: tf.distribute.Strategy | None = None,
                 perturb=None):
        self.model, self.config, self.perturb = model, config, perturb
        self.strategy = strategy or tf.distribute.get_strategy()
        if not self.strategy.extended.variable_created_in_scope(model.trainable_variables[0].value):
            raise ConfigError("build the model inside strategy.scope() of the strategy given to the loop")
        self.loss_fn = keras.losses.get(config.loss)
        self.optimizer = None  # built by the first fit, when the number of steps is known
        with self.strategy.scope():
            self.class_weights = tf.Variable(tf.ones(model.output_shape[-1]), trainable=False, name="class_weights")
            self.total_steps = tf.Variable(1.0, trainable=False, name="total_steps")
        jit = config.jit_compile and self.strategy.num_replicas_in_sync == 1
        self._run_train_steps = tf.function(self._train_steps, jit_compile=jit, autograph=False)
        self._run_test_batch = tf.function(self._test_batch, jit_compile=jit, autograph=False)

    def _train_step(self, x, y, seed, global_size):
        x, y = _replica_share(x, y)
        config = self.config
        x = augment(x, seed, config.augment, config.max_shift, config.max_rotation, config.max_zoom)
        if self.perturb is not None:
            progress = tf.minimum(1.0, tf.cast(self.optimizer.iterations, tf.float32) / self.total_steps)
            x = tf.stop_gradient(self.perturb(self.model, x, y, progress))
        smoothing = config.label_smoothing
        target = y * (1.0 - smoothing) + smoothing / tf.cast(tf.shape(y)[-1], y.dtype)
        with tf.GradientTape() as tape:
            probabilities = self.model(x, training=True)
            per_example = self.loss_fn(target, probabilities) * tf.gather(self.class_weights, tf.argmax(y, -1))
            loss = tf.reduce_sum(per_example) / global_size
        gradients = tape.gradient(loss, self.model.trainable_variables)
        self.optimizer.apply_gradients(zip(gradients, self.model.trainable_variables))
        return tf.stack([tf.reduce_sum(per_example), _correct(y, probabilities)])

    def _train_steps(self, x_all, y_all, batch_indices, num_steps, call_seed):
        """Run one step for each of the first `num_steps` rows of `batch_indices` (the rest is
        padding that keeps one compiled shape); return summed loss and correct count."""
        global_size = tf.cast(tf.shape(batch_indices)[1], x_all.dtype)

        def one_step(row, totals):
            x = tf.gather(x_all, batch_indices[row])
            y = tf.gather(y_all, batch_indices[row])
            seed = tf.stack([call_seed, row])
            per_replica = self.strategy.run(self._train_step, args=(x, y, seed, global_size))
            return row + 1, totals + self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

        start = (tf.constant(0, num_steps.dtype), tf.zeros(2, x_all.dtype))
        _, totals = tf.while_loop(lambda row, _: row < num_steps, one_step, start)
        return totals

    def _test_batch(self, x, y):
        def replica_step(x, y):
            x, y = _replica_share(x, y)
            probabilities = self.model(x, training=False)
            return tf.stack([tf.reduce_sum(self.loss_fn(y, probabilities)), _correct(y, probabilities)])

        per_replica = self.strategy.run(replica_step, args=(x, y))
        return self.strategy.reduce(tf.distribute.ReduceOp.SUM, per_replica, axis=None)

    def evaluate(self, x, y, batch_size: int = 1000) -> tuple[float, float]:
        """Mean loss and accuracy over (x, y)."""
        totals = np.zeros(2)
        for start in range(0, len(x), batch_size):
            totals += self._run_test_batch(x[start : start + batch_size], y[start : start + batch_size]).numpy()
        return totals[0] / len(x), totals[1] / len(x)

    def _build_optimizer(self, total_steps: int):
        if self.optimizer is None:
            with self.strategy.scope():
                self.optimizer = make_optimizer(self.config, total_steps)
                self.optimizer.build(self.model.trainable_variables)

    def fit(self, x_train, y_train, x_test, y_test, name="model", progress=True, checkpoint_dir=None,
            held_out="test") -> History:
        """Train for `config.epochs`; with `checkpoint_dir`, save after every epoch and resume
        from a checkpoint of the same settings left there by an interrupted run. `held_out` names the split
        x_test holds, for the log."""
        config = self.config
        x_train, y_train = tf.constant(x_train), tf.constant(y_train)
        steps_per_epoch = math.ceil(int(x_train.shape[0]) / config.batch_size)
        total_steps = config.epochs * steps_per_epoch
        self._build_optimizer(total_steps)
        self.total_steps.assign(total_steps)
        self.class_weights.assign(_class_weights(y_train.numpy(), config.class_balance))
        history = History(layer_names=[layer.name for layer in dense_layers(self.model)])
        rng = np.random.default_rng(config.seed)
        probe_x, probe_y = _fixed_batch(x_train, y_train, config.gradient_batch_size, rng)
        capture = self._gradient_capture(probe_x, probe_y) if config.capture_gradients else None
        data = array_fingerprint(x_train.numpy(), y_train.numpy(), x_test, y_test) if checkpoint_dir else ""
        first_epoch = load_checkpoint(checkpoint_dir, self, history, rng, data) if checkpoint_dir else 0
        best_weights = self._saved_best_weights(checkpoint_dir) if first_epoch and config.keep_best else None
        if first_epoch == 0 and config.init_from:
            self.model.set_weights(starting_weights(config.init_from, self.model))
        if capture and first_epoch == 0:
            history.layer_gradients.append(capture())
            history.gradient_trace.append({"epoch": 0.0, "max_abs": history.layer_gradients[0]})
        start_time = time.perf_counter() - history.train_seconds - history.eval_seconds
        for epoch in range(first_epoch, config.epochs):
            batches = _epoch_batches(rng.permutation(int(x_train.shape[0])), config.batch_size)
            self._train_epoch(x_train, y_train, x_test, y_test, batches, epoch, name, progress, history, capture)
            if capture:  # the epoch's last trace point is the net after the epoch
                history.layer_gradients.append(history.gradient_trace[-1]["max_abs"])
            history.train_seconds = time.perf_counter() - start_time - history.eval_seconds
            improved = history.final["test_accuracy"] > max(
                (r["test_accuracy"] for r in history.records[:-1] if r["epoch"] == int(r["epoch"])), default=-1.0)
            if improved:
                history.best_epoch = epoch + 1
                best_weights = self.model.get_weights() if config.keep_best else None
            tqdm.write(f"{name} epoch {epoch + 1}/{config.epochs}: " + _describe(history.final, held_out)
                       + (" (best so far)" if improved else ""))
            if checkpoint_dir:
                save_checkpoint(checkpoint_dir, self, history, rng, epoch + 1, data,
                                save_best=improved and config.keep_best)
        if config.keep_best and best_weights is not None:
            self.model.set_weights(best_weights)
        return history

    def _train_epoch(self, x_train, y_train, x_test, y_test, batches, epoch, name, progress, history,
                     capture=None) -> None:
        """One pass over `batches`; a learning-curve record (and its evaluation time) added to `history`
        after each of `evals_per_epoch` segments, and with `capture` (() -> per-layer max |gradient| on
        the fixed batch) a gradient-trace point at the same epoch fraction."""
        config, steps_per_epoch = self.config, len(batches)
        segment_ends = np.linspace(0, steps_per_epoch, config.evals_per_epoch + 1).round().astype(int)[1:]
        bar = tqdm(total=steps_per_epoch, desc=f"{name} epoch {epoch + 1}/{config.epochs}", unit="step",
                   leave=False, disable=not progress)
        step = 0
        with bar:
            for segment_end in segment_ends:
                totals, seen = np.zeros(2), 0
                while step < segment_end:
                    chunk, num_steps = _next_chunk(batches, step, segment_end, config.steps_per_call)
                    call_seed = tf.constant(epoch * steps_per_epoch + step + config.seed * 1_000_003, tf.int32)
                    totals += self._run_train_steps(
                        x_train, y_train, chunk, tf.constant(num_steps, tf.int32), call_seed
                    ).numpy()
                    seen += sum(len(batch) for batch in batches[step : step + num_steps])
                    step += num_steps
                    if not np.isfinite(totals[0]):
                        raise NonFiniteLossError(
                            f"{name}: loss became {totals[0]} in epoch {epoch + 1} by step {step}; "
                            "lower the learning rate or check the data for NaNs"
                        )
                    bar.update(num_steps)
                    bar.set_postfix(loss=f"{totals[0] / seen:.4f}", acc=f"{totals[1] / seen:.4f}")
                eval_start = time.perf_counter()
                test_loss, test_accuracy = self.evaluate(x_test, y_test)
                history.eval_seconds += time.perf_counter() - eval_start
                history.records.append({"epoch": epoch + step / steps_per_epoch, "train_loss": totals[0] / seen,
                                        "train_accuracy": totals[1] / seen, "test_loss": test_loss,
                                        "test_accuracy": test_accuracy})
                if capture:
                    history.gradient_trace.append({"epoch": epoch + step / steps_per_epoch, "max_abs": capture()})

    def _gradient_capture(self, probe_x, probe_y):
        """() -> per-layer max |gradient| (a list, input to output) on the fixed batch, weights unchanged."""
        probe = make_gradient_probe(self.model, _mean_loss(self.loss_fn))
        return lambda: probe(probe_x, probe_y).numpy().tolist()

    def _saved_best_weights(self, checkpoint_dir):
        """The best epoch's weights from a checkpoint, leaving the model's own weights as they are."""
        path = Path(checkpoint_dir) / BEST_WEIGHTS
        if not path.exists():
            return None
        current = self.model.get_weights()
        self.model.load_weights(path)
        best = self.model.get_weights()
        self.model.set_weights(current)
        return best


def _describe(record, held_out: str) -> str:
    return (f"train loss {record['train_loss']:.4f} acc {record['train_accuracy']:.4f}, "
            f"{held_out} loss {record['test_loss']:.4f} acc {record['test_accuracy']:.4f}")


def _class_weights(y_one_hot, power):
    """(N / (classes * n_class)) ** power, so rare classes weigh more; classes absent get 1."""
    counts = y_one_hot.sum(axis=0)
    weights = np.where(counts > 0, len(y_one_hot) / (len(counts) * np.maximum(counts, 1)), 1.0) ** power
    return weights.astype(np.float32)


def _correct(y, probabilities):
    matches = tf.equal(tf.argmax(y, axis=-1), tf.argmax(probabilities, axis=-1))
    return tf.reduce_sum(tf.cast(matches, probabilities.dtype))


def _mean_loss(loss_fn):
    return lambda y, probabilities: tf.reduce_mean(loss_fn(y, probabilities))


def _fixed_batch(x, y, size, rng):
    indices = np.sort(rng.choice(int(x.shape[0]), size=min(size, int(x.shape[0])), replace=False))
    return tf.gather(x, indices), tf.gather(y, indices)


def _epoch_batches(permutation, batch_size):
    """Full batches as a list of index arrays, plus the last short batch if there is one."""
    full = len(permutation) // batch_size * batch_size
    batches = list(permutation[:full].reshape(-1, batch_size))
    if full < len(permutation):
        batches.append(permutation[full:])
    return batches


def _next_chunk(batches, start, segment_end, steps_per_call):
    """Batches from `start` (at most `steps_per_call`, not past `segment_end`) as a
    (steps_per_call, batch) index array padded with zeros, and the number of real rows.

    A short last batch goes alone, as a (1, short) array."""
    if len(batches[start]) != len(batches[0]):
        return batches[start][None, :], 1
    full_batches = len(batches) if len(batches[-1]) == len(batches[0]) else len(batches) - 1
    end = min(segment_end, start + steps_per_call, full_batches)
    chunk = np.zeros((steps_per_call, len(batches[0])), dtype=batches[0].dtype)
    chunk[: end - start] = batches[start:end]
    return chunk, int(end - start)


def fit(model, x_train, y_train, x_test, y_test, config: TrainConfig, strategy=None, name="model", progress=True,
        checkpoint_dir=None, perturb=None):
    """Train `model` with the tape loop; see `Trainer`."""
    trainer = Trainer(model, config, strategy, perturb)
    return trainer.fit(x_train, y_train, x_test, y_test, name=name, progress=progress, checkpoint_dir=checkpoint_dir)
