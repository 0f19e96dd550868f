"""The adversarial experiment: generator-built examples for every target class, against baselines.

    tapelab attack --dataset mnist --data-dir ../shared/datasets --model runs/models/mnist_cnn.h5

One confidently, correctly classified test image per source class; for each, one generator per
target class (all pairs in one batch). Targeted FGSM and PGD (infinity norm) at the standard eps,
and targeted L2-PGD at the smallest eps of a ladder that reaches the confidence, run on the same
pairs. Per pair and per method the success, target confidence, L2 and infinity-norm distances,
rounds and time are saved; grids and tables are drawn from the saved files.
"""

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf

from tapelab.attacks.baselines import fast_gradient_method, projected_gradient_descent
from tapelab.attacks.generator import GeneratorConfig, generator_attack
from tapelab.attacks.plots import image_grid
from tapelab.core.data import ImageData
from tapelab.core.errors import ConfigError
from tapelab.core.io import ensure_writable_dir, load_json, save_json, write_atomic
from tapelab.core.models import load_model_file
from tapelab.core.shipped import model_record
from tapelab.train.classifier import load_dataset


@dataclass
class AttackConfig:
    source_classes: tuple[int, ...] = field(default=(0, 1, 2, 3, 4), metadata={"help": "one source image per class"})
    source_confidence: float = field(default=0.9, metadata={"help": "sources must be this confidently right"})
    linf_eps: float = field(default=0.3, metadata={"help": "eps of FGSM and infinity-norm PGD"})
    pgd_steps: int = field(default=40, metadata={"help": "PGD iterations"})
    l2_eps_ladder: tuple[float, ...] = field(
        default=(0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 5.0, 6.0, 8.0),
        metadata={"help": "L2-PGD radii tried, smallest first; each pair keeps the first that succeeds"},
    )
    seed: int = field(default=0, metadata={"help": "seed for choosing source images"})

    def __post_init__(self):
        """Settings that would quietly score a method 0% (no PGD step, no L2 radius) are refused here."""
        if not self.source_classes or min(self.source_classes) < 0:
            raise ConfigError(f"--source-classes must name at least one class, each >= 0, got {self.source_classes}")
        if not 0 <= self.source_confidence <= 1:
            raise ConfigError(f"--source-confidence must lie in [0, 1], got {self.source_confidence}")
        if not self.linf_eps > 0:
            raise ConfigError(f"--linf-eps must be > 0, got {self.linf_eps}")
        if self.pgd_steps < 1:
            raise ConfigError(f"--pgd-steps must be at least 1, got {self.pgd_steps}")
        ladder = self.l2_eps_ladder
        if not ladder or not all(eps > 0 for eps in ladder) or list(ladder) != sorted(set(ladder)):
            raise ConfigError(f"--l2-eps-ladder must be one or more L2 radii > 0, smallest first, such as "
                              f"0.5,1,2; got {','.join(map(str, ladder)) or 'none'}")


@dataclass(frozen=True)
class AttackSpec:
    """One adversarial experiment: the data set, which pairs and baselines, and the generator's settings. The
    named presets below are the defaults of `tapelab attack --dataset D`."""

    dataset: str
    attack: AttackConfig
    generator: GeneratorConfig


MNIST_ATTACK = AttackSpec(dataset="mnist", attack=AttackConfig(), generator=GeneratorConfig())

# CIFAR-10 needs far smaller perturbations than MNIST, so its steps are smaller too.
CIFAR10_ATTACK = AttackSpec(
    dataset="cifar10",
    attack=AttackConfig(source_classes=(3,), linf_eps=8 / 255, pgd_steps=20,
                        l2_eps_ladder=(0.05, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 1.5, 2.0)),
    generator=GeneratorConfig(class_learning_rate=0.02),
)

PRESETS = {spec.dataset: spec for spec in (MNIST_ATTACK, CIFAR10_ATTACK)}


def choose_sources(classifier, data: ImageData, config: AttackConfig) -> np.ndarray:
    """Test-set indices: per source class one image the classifier gets right with enough confidence."""
    rng = np.random.default_rng(config.seed)
    labels = data.y_test.argmax(axis=1)
    chosen = []
    for source_class in config.source_classes:
        if not 0 <= source_class < data.num_classes:
            raise ConfigError(f"source class {source_class} is out of range 0..{data.num_classes - 1}")
        candidates = np.flatnonzero(labels == source_class)
        candidates = rng.permutation(candidates)[:500]
        probabilities = classifier(data.x_test[candidates], training=False).numpy()
        good = candidates[probabilities[:, source_class] >= config.source_confidence]
        if not len(good):
            raise ConfigError(f"no test image of class {source_class} is classified with confidence >= "
                              f"{config.source_confidence}; lower --source-confidence or train the model longer")
        chosen.append(good[0])
    return np.asarray(chosen)


def distances(adversarial, sources):
    """Per pair: L2 and L-infinity distance."""
    difference = (adversarial - sources).reshape(len(sources), -1)
    return np.sqrt((difference**2).sum(axis=1)), np.abs(difference).max(axis=1)


def _target_confidence(classifier, images, targets):
    probabilities = classifier(images, training=False).numpy()
    return probabilities[np.arange(len(images)), targets], probabilities.argmax(axis=1)


def run_baselines(classifier, sources, targets, config: AttackConfig, confidence: float) -> dict:
    """FGSM, infinity-norm PGD and ladder L2-PGD, all targeted, on every pair at once."""
    num_classes = classifier.output_shape[-1]
    y = tf.one_hot(targets, num_classes)
    x = tf.constant(sources)
    steps = config.pgd_steps
    results = {}
    start = time.perf_counter()
    fgsm = fast_gradient_method(classifier, x, config.linf_eps, np.inf, y=y, targeted=True).numpy()
    results["fgsm"] = (fgsm, time.perf_counter() - start)
    pgd = tf.function(lambda x, eps, norm_is_inf: projected_gradient_descent(
        classifier, x, eps, 2.5 * eps / steps, steps, np.inf if norm_is_inf else 2, y=y, targeted=True,
        rand_init=False))
    start = time.perf_counter()
    results["pgd_linf"] = (pgd(x, tf.constant(config.linf_eps), True).numpy(), time.perf_counter() - start)
    start = time.perf_counter()
    ladder = np.array(sources)  # pairs that never succeed keep their largest-eps attempt
    settled = np.zeros(len(sources), bool)
    for eps in config.l2_eps_ladder:
        attempt = pgd(x, tf.constant(eps, tf.float32), False).numpy()
        reached = (_target_confidence(classifier, attempt, targets)[0] >= confidence) & ~settled
        ladder[reached | ~settled] = attempt[reached | ~settled]
        settled |= reached
        if settled.all():
            break
    results["pgd_l2_ladder"] = (ladder, time.perf_counter() - start)
    return results


def run_attack_experiment(classifier, data: ImageData, dataset: str, config: AttackConfig,
                          generator_config: GeneratorConfig, out_dir, command: str = "",
                          classifier_record: dict | None = None) -> dict:
    """Attack every (source, target) pair with the generator and the baselines; save everything, with `command`
    (the command line that ran it) and `classifier_record` (what is known of the classifier: `model_record`)."""
    out_dir = ensure_writable_dir(out_dir)
    source_indices = choose_sources(classifier, data, config)
    num_classes = data.num_classes
    sources = np.repeat(data.x_test[source_indices], num_classes, axis=0)
    targets = np.tile(np.arange(num_classes), len(source_indices))
    source_labels = np.repeat(np.asarray(config.source_classes), num_classes)
    generated = generator_attack(classifier, sources, targets, generator_config)
    methods = {"generator": (generated.images, generated.total_seconds)}
    methods.update(run_baselines(classifier, sources, targets, config, generator_config.confidence))
    pairs = []
    for method, (images, seconds) in methods.items():
        confidence, predicted = _target_confidence(classifier, images, targets)
        l2, linf = distances(images, sources)
        for index in range(len(sources)):
            pairs.append({
                "method": method, "source_index": int(source_indices[index // num_classes]),
                "source_class": int(source_labels[index]), "target_class": int(targets[index]),
                "trivial": bool(targets[index] == source_labels[index]),
                "success": bool(confidence[index] >= generator_config.confidence),
                "target_confidence": float(confidence[index]), "predicted_class": int(predicted[index]),
                "l2": float(l2[index]), "linf": float(linf[index]),
                "rounds": int(generated.rounds[index]) if method == "generator" else None,
                # The generator's L2 when it first held the target, before the minimal phase shrank it.
                "first_success_l2": (float(generated.first_success_l2[index]) if method == "generator"
                                     and generated.success_rounds[index] >= 0 else None),
                "seconds": float(generated.seconds[index]) if method == "generator" else seconds / len(sources),
            })
    results = {
        "command": command,
        "dataset": dataset, "class_names": list(data.class_names), "classifier": classifier_record or {},
        "attack": asdict(config), "generator": asdict(generator_config),
        "batch_seconds": {method: seconds for method, (_, seconds) in methods.items()},
        "pairs": pairs,
    }
    save_json(out_dir / "results.json", results)
    np.savez_compressed(out_dir / "images.npz", sources=sources,
                        **{method: images for method, (images, _) in methods.items()})
    return results


def run_attack(spec: AttackSpec, out_dir, command: str = "", *, model_path, data_dir=None) -> dict:
    """Load the spec's data set and the classifier at `model_path`, attack it (`run_attack_experiment`) and
    write the report into `out_dir`; the results."""
    data = load_dataset(spec.dataset, data_dir)
    classifier = load_model_file(model_path, data.x_test.shape[1:], data.num_classes)
    results = run_attack_experiment(classifier, data, spec.dataset, spec.attack, spec.generator, out_dir,
                                    command=command, classifier_record=model_record(model_path))
    write_attack_report(out_dir)
    return results


def method_summary(results: dict) -> list[dict]:
    """Per method over the non-trivial pairs (target differs from the source class)."""
    rows = []
    order = sorted(results["batch_seconds"], key=lambda method: (method != "generator", method))
    for method in order:
        seconds = results["batch_seconds"][method]
        pairs = [p for p in results["pairs"] if p["method"] == method and not p["trivial"]]
        won = [p for p in pairs if p["success"]]
        l2 = np.array([p["l2"] for p in won]) if won else np.array([np.nan])
        linf = np.array([p["linf"] for p in won]) if won else np.array([np.nan])
        rows.append({"method": method, "pairs": len(pairs), "success_rate": len(won) / len(pairs),
                     "mean_l2": float(l2.mean()), "median_l2": float(np.median(l2)),
                     "mean_linf": float(linf.mean()), "median_linf": float(np.median(linf)),
                     "batch_seconds": seconds})
    return rows


def load_saved(out_dir) -> tuple[dict, dict]:
    """An experiment's `results.json` and the arrays of its `images.npz`."""
    with np.load(Path(out_dir) / "images.npz") as arrays:
        images = {key: arrays[key] for key in arrays.files}
    return load_json(Path(out_dir) / "results.json"), images


def write_attack_report(out_dir) -> Path:
    """Tables (CSV, Markdown), grids and report.md, from results.json and images.npz alone."""
    out_dir = Path(out_dir)
    results, images = load_saved(out_dir)
    names, k = results["class_names"], len(results["class_names"])
    pairs = [p for p in results["pairs"] if p["method"] == "generator"]
    rows = len(pairs) // k
    shape = images["sources"].shape[1:]
    adversarial = images["generator"].reshape(rows, k, *shape)
    originals = images["sources"].reshape(rows, k, *shape)[:, :1]
    titles = [[f"source: {names[pairs[r * k]['source_class']]}"] + [
        f"{names[p['predicted_class']]} {p['target_confidence']:.2f}" if p["success"] else
        f"x {names[p['predicted_class']]} {p['target_confidence']:.2f}"
        for p in pairs[r * k:(r + 1) * k]] for r in range(rows)]
    image_grid(np.concatenate([originals, adversarial], axis=1), titles, out_dir / "grid_adversarial.png",
               "Generator attack: source, then one column per target class (title: predicted class, "
               "target confidence; x = not reached)")
    perturbation = np.concatenate([np.zeros_like(originals), adversarial - originals], axis=1)
    image_grid(perturbation, titles, out_dir / "grid_perturbation.png", "Perturbation (adversarial - source)",
               diverging=True)
    summary = method_summary(results)
    columns = list(summary[0])
    write_atomic(out_dir / "methods.csv", "\n".join([",".join(columns)] + [
        ",".join(str(row[c]) for c in columns) for row in summary]) + "\n")
    pair_columns = [c for c in results["pairs"][0] if c != "method"]
    write_atomic(out_dir / "pairs.csv", "\n".join(["method," + ",".join(pair_columns)] + [
        p["method"] + "," + ",".join(str(p[c]) for c in pair_columns) for p in results["pairs"]]) + "\n")
    table = ["| method | pairs | success | mean L2 | median L2 | mean Linf | median Linf | time (s) |",
             "|---|---|---|---|---|---|---|---|"]
    table += [f"| {r['method']} | {r['pairs']} | {r['success_rate']:.1%} | {r['mean_l2']:.3f} | "
              f"{r['median_l2']:.3f} | {r['mean_linf']:.3f} | {r['median_linf']:.3f} | {r['batch_seconds']:.1f} |"
              for r in summary]
    generator_pairs = [p for p in pairs if not p["trivial"]]
    text = [f"# Adversarial examples on {results['dataset']}", "",
            f"Produced by `{results['command']}`. Raw numbers: `results.json`, `pairs.csv`, `methods.csv`.", "",
            f"Success means the classifier gives the target class with confidence >= "
            f"{results['generator']['confidence']}; distances are over successful, non-trivial pairs "
            "(target differs from the source class). FGSM and infinity-norm PGD use eps "
            f"{results['attack']['linf_eps']:.4g}; L2-PGD keeps per pair the smallest radius of "
            f"{results['attack']['l2_eps_ladder']} that succeeds.", "",
            "Generator settings (`attacks/generator.py: GeneratorConfig`; after the first success the minimal "
            "phase shrinks the change until it has not shrunk for `shrink_patience` rounds): "
            + ", ".join(f"{key} {value}" for key, value in results["generator"].items()) + ".", "",
            *table, "",
            f"Generator rounds over non-trivial pairs: mean {np.mean([p['rounds'] for p in generator_pairs]):.1f}, "
            f"max {max(p['rounds'] for p in generator_pairs)}.{_first_success_note(generator_pairs)}", "",
            "![adversarial](grid_adversarial.png)", "", "![perturbation](grid_perturbation.png)", ""]
    return write_atomic(out_dir / "report.md", "\n".join(text))



def mean_first_success_l2(pairs: list[dict]) -> float | None:
    """Mean L2 of the successful generator `pairs` when they first held the target, before the minimal phase
    shrank it (None when no pair recorded one)."""
    recorded = [p["first_success_l2"] for p in pairs if p["success"] and p.get("first_success_l2") is not None]
    return float(np.mean(recorded)) if recorded else None


def _first_success_note(pairs: list[dict]) -> str:
    """How much the minimal phase shrank the change, over the pairs whose first success was recorded."""
    first = mean_first_success_l2(pairs)
    if first is None:
        return ""
    final = np.mean([p["l2"] for p in pairs if p["success"] and p.get("first_success_l2") is not None])
    return (f" Mean L2 when the pairs first held the target: {first:.3f}; after the minimal phase: {final:.3f} "
            f"({final / first:.0%}).")
