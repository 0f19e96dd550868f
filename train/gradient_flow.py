"""The gradient-flow experiment: MLPs of several depths and activations on MNIST.

    tapelab gradients --data-dir ../shared/datasets --out results/gradient_flow

Every model is trained with the tape loop while the per-layer max |gradient| on one fixed
mini-batch is captured before training and after each epoch. Each finished model is saved
at once under `runs/`, so an interrupted grid resumes where it stopped; tables, plots and
the report are then drawn from the saved JSON alone.
"""

import dataclasses
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

import tensorflow as tf
from tqdm.auto import tqdm

from core.activations import get_activation
from core.data import ImageData
from core.errors import ConfigError
from core.io import ensure_writable_dir, load_json, save_json
from core.models import build_mlp
from train.config import TrainConfig
from train.loop import fit


@dataclass
class GridConfig:
    depths: tuple[int, ...] = field(default=(5, 20, 40), metadata={"help": "hidden-layer counts"})
    activations: tuple[str, ...] = field(
        default=("relu", "tanh", "sigmoid", "lecun"), metadata={"help": "activations to compare"}
    )
    units: int = field(default=32, metadata={"help": "units per hidden layer"})

    def __post_init__(self):
        if not self.depths or not self.activations:
            raise ConfigError("give at least one depth and one activation")
        for depth in self.depths:
            if depth < 1:
                raise ConfigError(f"every depth must be >= 1, got {depth}")
        for name in self.activations:
            get_activation(name)


def run_name(activation: str, depth: int) -> str:
    return f"{activation}-{depth}"


def run_grid(
    data: ImageData,
    grid: GridConfig,
    train_config: TrainConfig,
    out_dir,
    strategy: tf.distribute.Strategy | None = None,
    progress: bool = True,
) -> dict:
    """Train every (activation, depth) model, save each run, then write results.json."""
    out_dir = ensure_writable_dir(out_dir)
    train_config = dataclasses.replace(train_config, capture_gradients=True)
    settings = _json_round_trip({"grid": dataclasses.asdict(grid), "train": dataclasses.asdict(train_config)})
    command = " ".join(["tapelab", *sys.argv[1:]])
    save_json(out_dir / "config.json", {**settings, "command": command})
    strategy = strategy or tf.distribute.get_strategy()
    runs = {}
    pairs = [(activation, depth) for activation in grid.activations for depth in grid.depths]
    for activation, depth in tqdm(pairs, desc="gradient grid", unit="model", disable=not progress):
        name = run_name(activation, depth)
        run_file = out_dir / "runs" / f"{name}.json"
        if run_file.exists() and load_json(run_file).get("settings") == settings:
            runs[name] = load_json(run_file)
            continue
        with strategy.scope():
            model = build_mlp(depth, activation, units=grid.units, seed=train_config.seed)
        history = fit(
            model, data.x_train, data.y_train, data.x_test, data.y_test, train_config,
            strategy=strategy, name=name, progress=progress,
        )
        runs[name] = {
            "activation": activation,
            "depth": depth,
            "settings": settings,
            "records": _plain(history.records),
            "layer_names": history.layer_names,
            "layer_gradients": history.layer_gradients,
            "train_seconds": history.train_seconds,
        }
        save_json(run_file, runs[name])
        tqdm.write(
            f"{name:>12}: test accuracy {history.final['test_accuracy']:.4f}, "
            f"loss {history.final['test_loss']:.4f}, {history.train_seconds:.1f} s"
        )
    results = {"settings": settings, "command": command, "runs": runs}
    save_json(out_dir / "results.json", results)
    return results


def load_results(out_dir) -> dict:
    return load_json(Path(out_dir) / "results.json")


def _plain(records):
    return [{key: float(value) for key, value in record.items()} for record in records]


def _json_round_trip(obj):
    """`obj` as it reads back from JSON (tuples become lists), for comparing settings."""
    return json.loads(json.dumps(obj))
