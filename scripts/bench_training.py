"""Benchmark: our tape loop (gradient capture on) against Keras `model.fit`, side by side.

    python scripts/bench_training.py --data-dir ../shared/datasets --out results/bench_training

Both train the same 20-layer MLP (same initial weights) on the same data with the same batch size
and evaluate the test set once per epoch; the first epoch of each is a warm-up, so tracing and
compilation are not counted. Then the full 12-model gradient grid (3 epochs each) is timed.
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras

from tapelab.core.data import load_mnist
from tapelab.core.io import ensure_writable_dir, save_json, write_atomic
from tapelab.core.models import build_mlp
from tapelab.train.config import TrainConfig
from tapelab.train.gradient_flow import GridConfig, run_grid
from tapelab.train.loop import Trainer


def time_tape_loop(data, depth, batch_size, epochs):
    model = build_mlp(depth, "tanh", seed=0)
    trainer = Trainer(model, TrainConfig(epochs=1, batch_size=batch_size, capture_gradients=True))
    trainer.fit(data.x_train, data.y_train, data.x_test, data.y_test, progress=False)  # warm-up
    start = time.perf_counter()
    for _ in range(epochs):
        trainer.fit(data.x_train, data.y_train, data.x_test, data.y_test, progress=False)
    return len(data.x_train) * epochs / (time.perf_counter() - start)


def time_keras_fit(data, depth, batch_size, epochs):
    model = build_mlp(depth, "tanh", seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="categorical_crossentropy", metrics=["accuracy"])
    fit_args = dict(batch_size=batch_size, validation_data=(data.x_test, data.y_test), verbose=0)
    model.fit(data.x_train, data.y_train, epochs=1, **fit_args)  # warm-up
    start = time.perf_counter()
    model.fit(data.x_train, data.y_train, epochs=epochs, **fit_args)
    return len(data.x_train) * epochs / (time.perf_counter() - start)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, help="folder with mnist.npz (default: Keras download)")
    parser.add_argument("--out", type=Path, default=Path("results/bench_training"), help="where to write results")
    parser.add_argument("--depth", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs after the warm-up")
    parser.add_argument("--skip-grid", action="store_true", help="do not time the 12-model grid")
    args = parser.parse_args(argv)
    out = ensure_writable_dir(args.out)
    data = load_mnist(args.data_dir)
    ours = time_tape_loop(data, args.depth, args.batch_size, args.epochs)
    theirs = time_keras_fit(data, args.depth, args.batch_size, args.epochs)
    result = {
        "command": " ".join(["python", "scripts/bench_training.py", *sys.argv[1:]]),
        "depth": args.depth, "batch_size": args.batch_size, "timed_epochs": args.epochs,
        "tape_loop_images_per_s": ours, "keras_fit_images_per_s": theirs, "ratio": ours / theirs,
        "cpu_count": os.cpu_count(),
    }
    print(f"tape loop with gradient capture: {ours:,.0f} images/s")
    print(f"keras model.fit:                 {theirs:,.0f} images/s")
    print(f"ratio (ours / fit):              {ours / theirs:.2f}")
    if not args.skip_grid:
        with tempfile.TemporaryDirectory() as grid_dir:
            start = time.perf_counter()
            # One seed of the grid with the settings `tapelab gradients` uses (8 curve points and gradient
            # probes an epoch), timed from start to end: training, evaluations, probes and saving.
            run_grid(data, GridConfig(seeds=(0,)),
                     TrainConfig(epochs=3, batch_size=args.batch_size, evals_per_epoch=8), grid_dir, progress=False)
            result["grid_12_models_one_seed_wall_seconds"] = time.perf_counter() - start
        print(f"12-model grid, one seed:         {result['grid_12_models_one_seed_wall_seconds']:.0f} s wall time")
    save_json(out / "bench_training.json", result)
    lines = ["# Training-loop benchmark", "", f"Command: `{result['command']}`", "", "| measure | value |", "|---|---|"]
    lines += [f"| {key} | {value:.4g} |" if isinstance(value, float) else f"| {key} | {value} |"
              for key, value in result.items() if key != "command"]
    write_atomic(out / "bench_training.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
