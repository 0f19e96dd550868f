"""Benchmark: the generator attack on all MNIST pairs in one batch against one pair at a time.

    python scripts/bench_attack.py --data-dir ../shared/datasets --model runs/models/mnist_cnn.h5

Both runs attack the same pairs (the `tapelab attack` defaults: 5 source digits x 10 targets) in
one process; it prints both wall times and their ratio, the batched run's success rate at the
confidence, and its mean L2 against targeted L2-PGD at the smallest successful radius.
"""

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from tapelab.attacks.experiment import MNIST_ATTACK, choose_sources, run_baselines
from tapelab.attacks.generator import GeneratorConfig, generator_attack
from tapelab.core.data import load_mnist
from tapelab.core.io import ensure_writable_dir, save_json, write_atomic
from tapelab.core.models import load_model_file


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--data-dir", type=Path, help="folder with mnist.npz (default: Keras download)")
    parser.add_argument("--model", type=Path, default=Path("runs/models/mnist_cnn.h5"), help="MNIST classifier")
    parser.add_argument("--out", type=Path, default=Path("results/bench_attack"), help="where to write results")
    args = parser.parse_args(argv)
    out = ensure_writable_dir(args.out)
    data = load_mnist(args.data_dir)
    classifier = load_model_file(args.model, (28, 28, 1), 10)
    attack_config, generator_config = MNIST_ATTACK.attack, MNIST_ATTACK.generator
    indices = choose_sources(classifier, data, attack_config)
    sources = np.repeat(data.x_test[indices], 10, axis=0)
    targets = np.tile(np.arange(10), len(indices))
    real = targets != np.repeat(np.asarray(attack_config.source_classes), 10)

    generator_attack(classifier, sources[:2], targets[:2], GeneratorConfig(max_rounds=10))  # warm-up
    start = time.perf_counter()
    batched = generator_attack(classifier, sources, targets, generator_config)
    batched_seconds = time.perf_counter() - start
    start = time.perf_counter()
    alone = [generator_attack(classifier, sources[i:i + 1], targets[i:i + 1], generator_config)
             for i in range(len(sources))]
    alone_seconds = time.perf_counter() - start

    l2 = np.linalg.norm((batched.images - sources).reshape(len(sources), -1), axis=1)
    ladder = run_baselines(classifier, sources, targets, attack_config, generator_config.confidence)
    pgd_images = ladder["pgd_l2_ladder"][0]
    pgd_success = np.array([classifier(pgd_images[i:i + 1]).numpy()[0, t] >= generator_config.confidence
                            for i, t in enumerate(targets)])
    pgd_l2 = np.linalg.norm((pgd_images - sources).reshape(len(sources), -1), axis=1)
    both = real & batched.success & pgd_success
    result = {
        "command": " ".join(["python", "scripts/bench_attack.py", *sys.argv[1:]]),
        "pairs": len(sources), "non_trivial_pairs": int(real.sum()),
        "batched_seconds": batched_seconds, "one_at_a_time_seconds": alone_seconds,
        "speedup": alone_seconds / batched_seconds,
        # Batched and single convolutions round differently in the last bits, which can move a pair
        # across the confidence threshold a round earlier or later; these measure how much.
        "pairs_with_other_rounds_alone": int(sum(a.rounds[0] != r for a, r in zip(alone, batched.rounds))),
        "max_rounds_difference": int(max(abs(int(a.rounds[0]) - int(r)) for a, r in zip(alone, batched.rounds))),
        "max_pixel_difference_alone_vs_batched": float(max(np.abs(a.images[0] - image).max()
                                                          for a, image in zip(alone, batched.images))),
        "alone_success_rate": float(np.mean([a.success[0] for a, r in zip(alone, real) if r])),
        "generator_success_rate": float(batched.success[real].mean()),
        "pgd_l2_success_rate": float(pgd_success[real].mean()),
        "generator_mean_l2": float(l2[both].mean()), "pgd_l2_mean_l2": float(pgd_l2[both].mean()),
        "l2_ratio_generator_to_pgd": float(l2[both].mean() / pgd_l2[both].mean()),
        "cpu_count": os.cpu_count(),
    }
    for key, value in result.items():
        print(f"{key:32} {value:.4g}" if isinstance(value, float) else f"{key:32} {value}")
    save_json(out / "bench_attack.json", result)
    lines = ["# Generator-attack benchmark", "", f"Command: `{result['command']}`", "", "| measure | value |",
             "|---|---|"]
    lines += [f"| {key} | {value:.4g} |" if isinstance(value, float) else f"| {key} | {value} |"
              for key, value in result.items() if key != "command"]
    write_atomic(out / "bench_attack.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
