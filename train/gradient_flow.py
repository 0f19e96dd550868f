"""The gradient-flow experiment: MLPs of several depths and activations on MNIST.

    tapelab gradients --data-dir ../shared/datasets --out results/gradient_flow

Every model is trained once per seed with the tape loop while the per-layer max |gradient| on
one fixed mini-batch is captured before training and at every learning-curve point. After
training each run also records, on fixed test images, the share of units whose activation
derivative is exactly zero and how often each class is predicted. Each finished run is saved
at once as `runs/<activation>-<depth>-seed<k>.json`, so an interrupted grid resumes where it
stopped; tables, plots and the report are then drawn from the saved JSON alone.
"""

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf
from tqdm.auto import tqdm

from tapelab.core.activations import get_activation
from tapelab.core.data import ImageData, load_mnist
from tapelab.core.errors import ConfigError, TapelabError
from tapelab.core.gradients import zero_derivative_fractions
from tapelab.core.io import ensure_writable_dir, load_json, save_json
from tapelab.core.models import build_mlp
from tapelab.train.config import TrainConfig
from tapelab.train.loop import fit


@dataclass
class GridConfig:
    depths: tuple[int, ...] = field(default=(5, 20, 40), metadata={"help": "hidden-layer counts"})
    activations: tuple[str, ...] = field(
        default=("relu", "tanh", "sigmoid", "lecun"), metadata={"help": "activations to compare"}
    )
    units: int = field(default=32, metadata={"help": "units per hidden layer"})
    # Three seeds per model: one run cannot tell a real difference between two activations from
    # the spread that the initial weights and the batch order alone cause.
    seeds: tuple[int, ...] = field(default=(0, 1, 2), metadata={
        "help": "each seed trains every model once (initial weights, batch order, gradient batch)"})
    # The dead-unit count looks at fixed test images: the first this many of the test set.
    dead_unit_images: int = field(default=1000, metadata={
        "help": "test images on which a unit's derivative must be exactly 0 to count as dead"})

    def __post_init__(self):
        if not self.depths or not self.activations or not self.seeds:
            raise ConfigError("give at least one depth, one activation and one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds must differ, got {self.seeds}")
        if self.dead_unit_images < 1:
            raise ConfigError(f"dead_unit_images must be >= 1, got {self.dead_unit_images}")
        for depth in self.depths:
            if depth < 1:
                raise ConfigError(f"every depth must be >= 1, got {depth}")
        for name in self.activations:
            get_activation(name)


@dataclass(frozen=True)
class GridSpec:
    """The gradient-flow experiment: which MLPs, and how each is trained."""

    grid: GridConfig
    train: TrainConfig


# The training loop's defaults (3 epochs of SGD at lr 0.01, batch 32), with 8 curve points (and gradient-trace
# points) per epoch: 24 over 3 epochs plus the untrained net, one at 0.25.
GRADIENT_FLOW = GridSpec(grid=GridConfig(), train=TrainConfig(evals_per_epoch=8))


def run_name(activation: str, depth: int) -> str:
    return f"{activation}-{depth}"


def run_key(activation: str, depth: int, seed: int) -> str:
    """The key of one trained run in results.json's "runs" and its file name under runs/."""
    return f"{run_name(activation, depth)}-seed{seed}"


def seed_runs(results: dict, activation: str, depth: int) -> list[dict]:
    """The runs of one model, one per seed, in the order of the settings' seeds."""
    return [results["runs"][run_key(activation, depth, seed)] for seed in results["settings"]["grid"]["seeds"]]


def first_seed_run(results: dict, activation: str, depth: int) -> dict:
    """The run of the first seed, the one the per-model plots draw."""
    return seed_runs(results, activation, depth)[0]


def run_grid(
    data: ImageData,
    grid: GridConfig,
    train_config: TrainConfig,
    out_dir,
    command: str = "",
    strategy: tf.distribute.Strategy | None = None,
    progress: bool = True,
) -> dict:
    """Train every (activation, depth) model once per seed, save each run, then write results.json.

    `command` is the command line that started the grid, recorded in config.json and results.json.
    The seed sets both the initial weights (build_mlp) and `TrainConfig.seed`; the train settings
    recorded leave their own `seed` out for that reason.
    """
    out_dir = ensure_writable_dir(out_dir)
    train_config = dataclasses.replace(train_config, capture_gradients=True)
    settings = _json_round_trip({"grid": dataclasses.asdict(grid), "train": dataclasses.asdict(train_config)})
    del settings["train"]["seed"]
    save_json(out_dir / "config.json", {**settings, "command": command})
    # A saved run is reused when everything but the seed list matches, so adding a seed trains only it.
    run_settings = {**settings, "grid": {k: v for k, v in settings["grid"].items() if k != "seeds"}}
    strategy = strategy or tf.distribute.get_strategy()
    runs = {}
    jobs = [(a, d, s) for s in grid.seeds for a in grid.activations for d in grid.depths]
    for activation, depth, seed in tqdm(jobs, desc="gradient grid", unit="run", disable=not progress):
        key = run_key(activation, depth, seed)
        run_file = out_dir / "runs" / f"{key}.json"
        if run_file.exists() and load_json(run_file).get("settings") == run_settings:
            runs[key] = load_json(run_file)
            continue
        runs[key] = train_run(data, activation, depth, seed, grid, dataclasses.replace(train_config, seed=seed),
                              strategy, progress)
        runs[key]["settings"] = run_settings
        save_json(run_file, runs[key])
        tqdm.write(f"{key:>18}: test accuracy {runs[key]['records'][-1]['test_accuracy']:.4f}, "
                   f"{runs[key]['train_seconds']:.1f} s")
    results = {"settings": settings, "command": command, "runs": runs}
    save_json(out_dir / "results.json", results)
    return results


def run_gradient_flow(spec: GridSpec, out_dir, command: str = "", *, data_dir=None, progress: bool = True,
                      strategy=None) -> dict:
    """Load MNIST, train the grid into `out_dir` (`run_grid`: finished runs there are reused) and write its tables,
    plots and report there; the results."""
    from tapelab.train.gradient_flow_report import write_report  # it imports this module

    results = run_grid(load_mnist(data_dir), spec.grid, spec.train, out_dir, command=command, strategy=strategy,
                       progress=progress)
    write_report(results, out_dir)
    return results


def train_run(data: ImageData, activation: str, depth: int, seed: int, grid: GridConfig,
              train_config: TrainConfig, strategy: tf.distribute.Strategy, progress: bool = True) -> dict:
    """Train one model and return what it measured, as plain JSON values."""
    with strategy.scope():
        model = build_mlp(depth, activation, units=grid.units, seed=seed)
    untrained = unit_evidence(model, activation, data, grid.dead_unit_images)
    history = fit(
        model, data.x_train, data.y_train, data.x_test, data.y_test, train_config,
        strategy=strategy, name=run_key(activation, depth, seed), progress=progress,
    )
    trained = unit_evidence(model, activation, data, grid.dead_unit_images)
    return {
        "activation": activation,
        "depth": depth,
        "seed": seed,
        "records": _plain(history.records),
        "layer_names": history.layer_names,
        "layer_gradients": history.layer_gradients,
        "gradient_trace": history.gradient_trace,
        "zero_derivative_units": trained["zero_derivative_units"],
        "zero_derivative_units_untrained": untrained["zero_derivative_units"],
        "predicted_classes": trained["predicted_classes"],
        "predicted_classes_untrained": untrained["predicted_classes"],
        "train_seconds": history.train_seconds,
    }


def unit_evidence(model, activation: str, data: ImageData, images: int) -> dict:
    """Per hidden layer the share of units with f' exactly 0 on the first `images` test images,
    and the count of each predicted class over the whole test set."""
    predicted = np.concatenate([
        np.argmax(model(data.x_test[start : start + 1000], training=False), axis=-1)
        for start in range(0, len(data.x_test), 1000)
    ])
    return {
        "zero_derivative_units": zero_derivative_fractions(model, activation, data.x_test[:images]),
        "predicted_classes": np.bincount(predicted, minlength=data.y_test.shape[-1]).tolist(),
    }


def load_results(out_dir) -> dict:
    results = load_json(Path(out_dir) / "results.json")
    if "seeds" not in results.get("settings", {}).get("grid", {}):
        raise TapelabError(f"{Path(out_dir) / 'results.json'} was written before runs had seeds; "
                           "rerun `tapelab gradients` to redo the grid")
    return results


def _plain(records):
    return [{key: float(value) for key, value in record.items()} for record in records]


def _json_round_trip(obj):
    """`obj` as it reads back from JSON (tuples become lists), for comparing settings."""
    return json.loads(json.dumps(obj))
