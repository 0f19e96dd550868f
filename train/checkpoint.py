"""Per-epoch checkpoints of the tape loop: weights, optimizer state, history and RNG state.

A run restarted with the same settings and the same data continues from the last finished epoch and
ends with the same weights as an uninterrupted run. A checkpoint of other settings or other data, or
of a run that already finished, is never resumed: training starts from the beginning.
"""

import dataclasses
import os
import sys
from pathlib import Path

import numpy as np

from tapelab.core.io import load_json, save_json

STATE = "state.json"
WEIGHTS = "model.weights.h5"
BEST_WEIGHTS = "best.weights.h5"
OPTIMIZER = "optimizer.npz"


def _save_weights(model, path: Path) -> None:
    # Keras picks the format from the suffix, so the temporary file keeps it.
    temporary = path.with_name(f".partial.{path.name}")
    model.save_weights(temporary)
    os.replace(temporary, path)


def _fingerprint(trainer, data: str) -> dict:
    """What besides the config makes a run: the architecture, the training perturbation (by repr; a
    perturbation without a stable repr, such as a lambda, never matches, so it starts afresh) and the data."""
    return {"weight_shapes": [list(weight.shape) for weight in trainer.model.weights],
            "perturb": None if trainer.perturb is None else repr(trainer.perturb), "data": data}


def save_checkpoint(directory, trainer, history, rng, epochs_done: int, data: str, save_best: bool = False) -> None:
    """Save after an epoch (`data`: the `data_fingerprint`); with `save_best`, these weights are also the best so
    far. The checkpoint of the last epoch is marked finished, so that no later run resumes it."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    _save_weights(trainer.model, directory / WEIGHTS)
    if save_best:
        _save_weights(trainer.model, directory / BEST_WEIGHTS)
    with open(directory / f".partial.{OPTIMIZER}", "wb") as handle:
        np.savez(handle, *[variable.numpy() for variable in trainer.optimizer.variables])
    os.replace(directory / f".partial.{OPTIMIZER}", directory / OPTIMIZER)
    save_json(directory / STATE, {
        "config": dataclasses.asdict(trainer.config),
        "fingerprint": _fingerprint(trainer, data),
        "epochs_done": epochs_done,
        "finished": epochs_done >= trainer.config.epochs,
        "history": dataclasses.asdict(history),
        "rng": rng.bit_generator.state,
    })


def load_checkpoint(directory, trainer, history, rng, data: str) -> int:
    """Restore an unfinished checkpoint of the same settings and data (`data_fingerprint`) into `trainer`,
    `history` and `rng`; return the number of finished epochs (0 when there is nothing to resume, with a
    note when a checkpoint was there but not resumed)."""
    directory = Path(directory)
    if not (directory / STATE).exists():
        return 0
    state = load_json(directory / STATE)
    # Settings added since the checkpoint was written count as their defaults.
    saved_config = {**dataclasses.asdict(type(trainer.config)()), **state["config"]}
    if saved_config != dataclasses.asdict(trainer.config) or state.get("fingerprint") != _fingerprint(trainer, data):
        print(f"note: the checkpoint in {directory} is of other settings or other data; training from the start",
              file=sys.stderr)
        return 0
    if state.get("finished"):
        print(f"note: the checkpoint in {directory} is of a finished run; training again from the start",
              file=sys.stderr)
        return 0
    trainer.model.load_weights(directory / WEIGHTS)
    with np.load(directory / OPTIMIZER) as saved:
        for variable, key in zip(trainer.optimizer.variables, sorted(saved.files, key=lambda k: int(k.split("_")[1]))):
            variable.assign(saved[key])
    for key, value in state["history"].items():
        setattr(history, key, value)
    rng.bit_generator.state = state["rng"]
    return state["epochs_done"]
