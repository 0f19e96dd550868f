"""Benchmark: what a FER2013 training step costs on this CPU for the preset net and for larger ones.

    python scripts/bench_fer_training.py

The 90-minute budget decides how big the emotion net may be, so this times the tape loop's training
step (batch of the preset, random 48x48 faces, augmentation included) for the preset and for wider,
narrower, deeper and differently cropped variants, and in float32 (the preset computes in mixed bfloat16),
side by side in one run, and prints each one's time over the preset's and what the preset's epochs over the
28,709 training faces would take at that speed.
Absolute times drift between the machines sessions get (one step of the half-width net took 288 ms on one,
in this script's results at commit aeea288, and 86 ms on another, at commit ffe48fd); the ratios, measured
side by side, are the figures to plan with.
"""

import argparse
import dataclasses
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from tapelab.core.fer import EMOTIONS, FACE_SIZE
from tapelab.core.io import ensure_writable_dir, save_json, write_atomic
from tapelab.core.models import build_cnn
from tapelab.train.classifier import FER2013_CNN
from tapelab.train.loop import Trainer

TRAINING_FACES = 28_709
VARIANTS = {
    "preset": {},
    "preset in float32": {"precision": "float32"},
    "half the widths (16..128)": {"widths": (16, 32, 64, 128)},
    "half the widths, float32": {"widths": (16, 32, 64, 128), "precision": "float32"},
    "no crop (48x48)": {"crop_margin": 0},
    "3 convs in stages 3-4": {"convs_per_stage": (1, 2, 3, 3)},
    "widths x1.5 (48..384), dense 512": {"widths": (48, 96, 192, 384), "dense_units": 512},
}


def seconds_per_step(cnn, train_config, steps: int) -> tuple[float, int]:
    """Mean training-step time of a fresh net over `steps` steps, after a first pass that compiles."""
    rng = np.random.default_rng(0)
    batch = train_config.batch_size
    faces = rng.random((steps * batch, FACE_SIZE, FACE_SIZE, 1), dtype=np.float32)
    labels = np.eye(len(EMOTIONS), dtype=np.float32)[rng.integers(0, len(EMOTIONS), len(faces))]
    model = build_cnn(faces.shape[1:], len(EMOTIONS), **cnn.net_settings())
    config = dataclasses.replace(train_config, epochs=1, max_shift=cnn.crop_margin or train_config.max_shift)
    trainer = Trainer(model, config)
    warm_up = train_config.steps_per_call * batch  # one compiled call traces the step
    trainer.fit(faces[:warm_up], labels[:warm_up], faces[:batch], labels[:batch], progress=False)
    history = trainer.fit(faces, labels, faces[:batch], labels[:batch], progress=False)
    return history.train_seconds / steps, model.count_params()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--steps", type=int, default=60, help="timed training steps per net")
    parser.add_argument("--out", type=Path, default=Path("results/bench_fer_training"), help="where to write results")
    args = parser.parse_args(argv)
    out = ensure_writable_dir(args.out)
    cnn, train_config = FER2013_CNN.cnn, FER2013_CNN.train
    steps_per_epoch = math.ceil(TRAINING_FACES / train_config.batch_size)
    epochs = train_config.epochs
    result = {"command": " ".join(["python", "scripts/bench_fer_training.py", *sys.argv[1:]]),
              "cpu_count": os.cpu_count(), "batch_size": train_config.batch_size, "steps": args.steps, "nets": []}
    for name, change in VARIANTS.items():
        variant = dataclasses.replace(cnn, **change)
        seconds, parameters = seconds_per_step(variant, train_config, args.steps)
        result["nets"].append({"net": name, "cnn": dataclasses.asdict(variant), "parameters": parameters,
                               "ms_per_step": seconds * 1000,
                               "seconds_for_preset_epochs": seconds * steps_per_epoch * epochs})
    for row in result["nets"]:
        row["over_preset"] = row["ms_per_step"] / result["nets"][0]["ms_per_step"]
        print(f"{row['net']}: {row['ms_per_step']:.0f} ms a step ({row['over_preset']:.2f}x the preset), "
              f"{row['parameters']:,} parameters, {epochs} epochs in about "
              f"{row['seconds_for_preset_epochs'] / 60:.0f} min")
    save_json(out / "bench_fer_training.json", result)
    lines = ["# FER2013 training-step cost on this CPU", "", f"Command: `{result['command']}` "
             f"({result['cpu_count']} CPU cores, batch {result['batch_size']}, {args.steps} timed steps per net).", "",
             f"| net | parameters | ms a step | over the preset | {epochs} epochs at this speed (min) |",
             "|---|---|---|---|---|"]
    lines += [f"| {row['net']} | {row['parameters']:,} | {row['ms_per_step']:.0f} | {row['over_preset']:.2f} | "
              f"{row['seconds_for_preset_epochs'] / 60:.0f} |" for row in result["nets"]]
    write_atomic(out / "bench_fer_training.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
