"""Benchmark: the generator attack against tapelab's L2-PGD radius ladder, and batched against one pair at a time.

    python scripts/bench_attack.py --data-dir ../shared/datasets

Per data set (MNIST, CIFAR-10), on the pairs `tapelab attack --dataset D` picks and the shipped CNN it
attacks, in one process: the generator on all pairs in one batch, L2-PGD at the smallest radius of the
preset's ladder that reaches the confidence, and the generator on one pair at a time. It prints and saves
their wall times (each including the building of its own graph) and ratios, success rates at the
confidence, and mean L2 over the non-trivial pairs both methods reach.
"""

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from tapelab.attacks.experiment import PRESETS, choose_sources, distances, run_baselines
from tapelab.attacks.generator import GeneratorConfig, generator_attack
from tapelab.core.io import ensure_writable_dir, save_json, write_atomic
from tapelab.core.models import load_model_file
from tapelab.core.shipped import shipped_model
from tapelab.train.classifier import load_dataset


def bench_dataset(dataset: str, data_dir, seed: int = 0) -> dict:
    spec = PRESETS[dataset]
    spec = replace(spec, attack=replace(spec.attack, seed=seed))
    data = load_dataset(dataset, data_dir)
    classifier = load_model_file(shipped_model(f"{dataset}_cnn"), data.x_test.shape[1:], data.num_classes)
    indices = choose_sources(classifier, data, spec.attack)
    k = data.num_classes
    sources = np.repeat(data.x_test[indices], k, axis=0)
    targets = np.tile(np.arange(k), len(indices))
    real = targets != np.repeat(np.asarray(spec.attack.source_classes), k)
    confidence = spec.generator.confidence

    generator_attack(classifier, sources[:2], targets[:2], GeneratorConfig(max_rounds=10))  # warm-up
    start = time.perf_counter()
    batched = generator_attack(classifier, sources, targets, spec.generator)
    batched_seconds = time.perf_counter() - start
    pgd_images, ladder_seconds = run_baselines(classifier, sources, targets, spec.attack, confidence)["pgd_l2_ladder"]
    start = time.perf_counter()
    alone = [generator_attack(classifier, sources[i:i + 1], targets[i:i + 1], spec.generator)
             for i in range(len(sources))]
    alone_seconds = time.perf_counter() - start

    pgd_success = classifier(pgd_images).numpy()[np.arange(len(targets)), targets] >= confidence
    l2, pgd_l2 = distances(batched.images, sources)[0], distances(pgd_images, sources)[0]
    both = real & batched.success & pgd_success
    return {
        "pairs": len(sources), "non_trivial_pairs": int(real.sum()), "source_indices": indices.tolist(),
        "generator_success_rate": float(batched.success[real].mean()),
        "pgd_l2_success_rate": float(pgd_success[real].mean()),
        "generator_mean_l2": float(l2[both].mean()), "pgd_l2_mean_l2": float(pgd_l2[both].mean()),
        "generator_mean_l2_at_first_success": float(batched.first_success_l2[both].mean()),
        "l2_ratio_generator_to_pgd": float(l2[both].mean() / pgd_l2[both].mean()),
        "generator_seconds": batched_seconds, "pgd_l2_ladder_seconds": ladder_seconds,
        "time_ratio_generator_to_pgd": batched_seconds / ladder_seconds,
        "generator_max_rounds": int(batched.rounds.max()),
        "one_at_a_time_seconds": alone_seconds, "batch_speedup": alone_seconds / batched_seconds,
        # Batched and single convolutions round differently in the last bits, which can move a pair
        # across the confidence threshold a round earlier or later; these measure how much.
        "pairs_with_other_rounds_alone": int(sum(a.rounds[0] != r for a, r in zip(alone, batched.rounds))),
        "max_l2_difference_alone_vs_batched": float(max(abs(distances(a.images, sources[i:i + 1])[0][0] - l2[i])
                                                        for i, a in enumerate(alone))),
        "alone_success_rate": float(np.mean([a.success[0] for a, r in zip(alone, real) if r])),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    parser.add_argument("--data-dir", type=Path, help="folder with mnist.npz and cifar10/ (default: Keras download)")
    parser.add_argument("--datasets", default="mnist,cifar10", help="comma-separated: mnist, cifar10")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed for choosing source images (0: the pairs of `tapelab attack`, which the "
                        "generator's settings were chosen on; others: pairs no setting was chosen on)")
    parser.add_argument("--out", type=Path, default=Path("results/bench_attack"), help="where to write results")
    args = parser.parse_args(argv)
    datasets = args.datasets.split(",")
    unknown = [name for name in datasets if name not in PRESETS]
    if unknown:
        parser.error(f"unknown data set {unknown[0]!r}; choose from {', '.join(PRESETS)}")
    out = ensure_writable_dir(args.out)
    result = {"command": " ".join(["python", "scripts/bench_attack.py", *sys.argv[1:]]), "cpu_count": os.cpu_count(),
              "seed": args.seed, "datasets": {}}
    for dataset in datasets:
        result["datasets"][dataset] = figures = bench_dataset(dataset, args.data_dir, args.seed)
        for key, value in figures.items():
            if key != "source_indices":
                print(f"{dataset:8} {key:38} {value:.4g}" if isinstance(value, float) else
                      f"{dataset:8} {key:38} {value}", flush=True)
    save_json(out / "bench_attack.json", result)
    keys = [key for key in result["datasets"][datasets[0]] if key != "source_indices"]
    pairs = "the pairs of `tapelab attack`" if args.seed == 0 else f"source images chosen with seed {args.seed}"
    lines = ["# Generator attack against the L2-PGD ladder", "", f"Command: `{result['command']}` "
             f"({result['cpu_count']} CPU cores, one process, the shipped CNNs, {pairs}).", "",
             "| measure | " + " | ".join(datasets) + " |", "|---|" + "---|" * len(datasets)]
    for key in keys:
        values = [result["datasets"][name][key] for name in datasets]
        lines.append(f"| {key} | " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in values) + " |")
    write_atomic(out / "bench_attack.md", "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
