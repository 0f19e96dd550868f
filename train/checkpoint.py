"""Per-epoch checkpoints of the tape loop: weights, optimizer state, history and RNG state.

A run restarted with the same settings continues from the last finished epoch and ends
with the same weights as an uninterrupted run.
"""

import dataclasses
import os
from pathlib import Path

import numpy as np

from core.io import load_json, save_json

STATE = "state.json"
WEIGHTS = "model.weights.h5"
BEST_WEIGHTS = "best.weights.h5"
OPTIMIZER = "optimizer.npz"


def _save_weights(model, path: Path) -> None:
    # Keras picks the format from the suffix, so the temporary file keeps it.
    temporary = path.with_name(f".partial.{path.name}")
    model.save_weights(temporary)
    os.replace(temporary, path)


def _fingerprint(trainer) -> dict:
    """What besides the config makes a run: the architecture and the training perturbation (by repr;
    a perturbation without a stable repr, such as a lambda, never matches, so it starts afresh)."""
    return {"weight_shapes": [list(weight.shape) for weight in trainer.model.weights],
            "perturb": None if trainer.perturb is None else repr(trainer.perturb)}


def save_checkpoint(directory, trainer, history, rng, epochs_done: int, save_best: bool = False) -> None:
    """Save after an epoch; with `save_best`, these weights are also the best so far."""
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
        "fingerprint": _fingerprint(trainer),
        "epochs_done": epochs_done,
        "history": dataclasses.asdict(history),
        "rng": rng.bit_generator.state,
    })


def load_checkpoint(directory, trainer, history, rng) -> int:
    """Restore a checkpoint of the same settings into `trainer`, `history` and `rng`;
    return the number of finished epochs (0 when there is nothing to resume)."""
    directory = Path(directory)
    if not (directory / STATE).exists():
        return 0
    state = load_json(directory / STATE)
    # Settings added since the checkpoint was written count as their defaults.
    saved_config = {**dataclasses.asdict(type(trainer.config)()), **state["config"]}
    if saved_config != dataclasses.asdict(trainer.config) or state.get("fingerprint") != _fingerprint(trainer):
        return 0
    trainer.model.load_weights(directory / WEIGHTS)
    with np.load(directory / OPTIMIZER) as saved:
        for variable, key in zip(trainer.optimizer.variables, sorted(saved.files, key=lambda k: int(k.split("_")[1]))):
            variable.assign(saved[key])
    for key, value in state["history"].items():
        setattr(history, key, value)
    rng.bit_generator.state = state["rng"]
    return state["epochs_done"]
