"""Standard model against adversarially trained model, side by side, on MNIST or CIFAR-10.

    tapelab robust --dataset mnist --data-dir ../shared/datasets

Trains the robust model with the tape loop (the training attack plugged in), then validates both
models with the same attacks: clean, FGSM and PGD (with restarts) accuracy at the data set's eps,
the gradient-masking checks, and the generator attack on the pairs of the adversarial experiment
(`results/attack_<dataset>/results.json`). Tables and grids are drawn from the saved results.
"""

import dataclasses
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from tapelab.attacks.experiment import CIFAR10_ATTACK, MNIST_ATTACK, distances, load_saved
from tapelab.attacks.generator import GeneratorConfig, generator_attack
from tapelab.attacks.plots import image_grid
from tapelab.attacks.robust import SIGN_TEST_Z, RobustConfig, TrainingAttack, ValidationConfig, validate
from tapelab.core.data import ImageData
from tapelab.core.errors import ConfigError
from tapelab.core.io import ensure_writable_dir, load_json, save_json, write_atomic
from tapelab.core.models import load_model_file
from tapelab.core.shipped import shipped_model
from tapelab.train.classifier import (
    CIFAR10_CNN,
    MNIST_CNN,
    CnnConfig,
    load_dataset,
    train_classifier,
    write_classifier_summary,
)
from tapelab.train.config import TrainConfig


@dataclass(frozen=True)
class RobustSpec:
    """One robustness experiment: the data set, the robust model's net and training (with its training attack),
    how both models are validated, and the generator's settings. The named presets below are the defaults of
    `tapelab robust --dataset D`."""

    dataset: str
    cnn: CnnConfig
    train: TrainConfig
    robust: RobustConfig
    validation: ValidationConfig
    generator: GeneratorConfig


# MNIST: 10-step PGD training, eps ramped up over the first 30%, on the small stride-2 net of Wong et al.
# (2020) with their peak learning rate; that net is cheap enough for 10 attack steps per batch. Measured
# before it (results/robust_mnist/trials): FGSM-RS on the standard net 38.4% under PGD-40; FGSM-RS on the
# small net overfitted catastrophically; N-FGSM kept clean accuracy at 87% after 4 epochs; PGD without
# the ramp sat at one class. The rest of the schedule is the standard model's (MNIST_CNN).
# Validation at the radius: eps 0.3 with 40-step PGD.
# The generator against both models takes Adam's usual sign-like steps (epsilon 1e-7) at the rates it was
# first measured with, not the attack presets' L2 steps: a robust model's input gradients are small, and
# steps proportional to them barely move the image (MNIST: the preset reached 2.2% of the targets against the
# robust model, sign steps 86.7%). The minimal phase is the presets'.
SIGN_STEPS = {"mse_epsilon": 1e-7, "class_epsilon": 1e-7}

MNIST_ROBUST = RobustSpec(
    dataset="mnist",
    cnn=CnnConfig(widths=(16, 32), convs_per_stage=(1,), dense_units=100, dropout_rate=0.0, kernel_size=4,
                  batch_norm=False, downsample="stride"),
    train=dataclasses.replace(MNIST_CNN.train, epochs=10, batch_size=100, learning_rate=5e-3, augment="none",
                              warmup_fraction=0.4),
    robust=RobustConfig(attack="pgd", eps=0.3, pgd_train_steps=10, eps_ramp=0.3),
    validation=ValidationConfig(pgd_steps=40, restarts=3, sweep=(0.1, 0.2, 0.3, 0.4), large_eps=0.6),
    generator=dataclasses.replace(MNIST_ATTACK.generator, mse_learning_rate=0.0005, class_learning_rate=0.01,
                                  **SIGN_STEPS),
)

# CIFAR-10: FGSM with a random start, 12 epochs: about the 90 minutes of training the issue allows on this
# CPU (8 epochs took 3205 s; adversarial training accuracy was still rising). The standard net, with the
# schedule the standard model had when this was measured (batch 128, lr 0.1).
# Validation at the radius: eps 8/255 with 20-step PGD.
CIFAR10_ROBUST = RobustSpec(
    dataset="cifar10",
    cnn=CIFAR10_CNN.cnn,
    train=dataclasses.replace(CIFAR10_CNN.train, epochs=12, batch_size=128, learning_rate=0.1),
    robust=RobustConfig(attack="fgsm_rs", eps=8 / 255),
    validation=ValidationConfig(pgd_steps=20, restarts=3, sweep=(2 / 255, 4 / 255, 8 / 255, 16 / 255),
                                large_eps=64 / 255),
    generator=dataclasses.replace(CIFAR10_ATTACK.generator, mse_learning_rate=0.0001, class_learning_rate=0.002,
                                  **SIGN_STEPS),
)

PRESETS = {spec.dataset: spec for spec in (MNIST_ROBUST, CIFAR10_ROBUST)}


def attack_pairs(attack_results_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(source test indices, target classes) of the generator pairs of the adversarial experiment."""
    if not Path(attack_results_path).is_file():
        raise ConfigError(f"{attack_results_path} not found; run `tapelab attack` for this data set first")
    results = load_json(attack_results_path)
    pairs = results.get("pairs") if isinstance(results, dict) else None
    if not isinstance(pairs, list) or not all(isinstance(p, dict) for p in pairs):
        raise ConfigError(f"{attack_results_path} is not the results.json of `tapelab attack` (no list of "
                          "'pairs'); rerun `tapelab attack` for this data set")
    pairs = [p for p in pairs if p.get("method") == "generator"]
    if not pairs or not all(isinstance(p.get(key), int) for p in pairs for key in ("source_index", "target_class")):
        raise ConfigError(f"{attack_results_path} holds no generator pairs (each with a source_index and a "
                          "target_class); rerun `tapelab attack` for this data set")
    return np.array([p["source_index"] for p in pairs]), np.array([p["target_class"] for p in pairs])


def class_direction_alignment(adversarial, sources, source_labels, targets, x_train, y_train) -> np.ndarray:
    """Per pair: cosine between the change (adversarial - source) and the difference of the mean training
    images of the target and the source class. Near 0 for noise-like changes; clearly positive when the
    change draws the target class's typical shape over the source (as against a robust model)."""
    labels = y_train.argmax(axis=1)
    means = np.stack([x_train[labels == c].mean(axis=0) for c in range(y_train.shape[1])])
    change = (adversarial - sources).reshape(len(sources), -1)
    direction = (means[targets] - means[source_labels]).reshape(len(sources), -1)
    norms = np.linalg.norm(change, axis=1) * np.linalg.norm(direction, axis=1)
    return (change * direction).sum(axis=1) / np.maximum(norms, 1e-12)


def generator_scores(classifier, data: ImageData, indices, targets, config: GeneratorConfig):
    """Success rate, median L2 and mean class-direction alignment over the successful non-trivial pairs,
    and the generated images."""
    sources = data.x_test[indices]
    result = generator_attack(classifier, sources, targets, config)
    source_labels = data.y_test[indices].argmax(axis=1)
    non_trivial = targets != source_labels
    l2, _ = distances(result.images, sources)
    won = result.success & non_trivial
    alignment = class_direction_alignment(result.images, sources, source_labels, targets, data.x_train, data.y_train)
    return {"success_rate": float(won.sum() / non_trivial.sum()),
            "median_l2": float(np.median(l2[won])) if won.any() else float("nan"),
            "mean_alignment": float(alignment[won].mean()) if won.any() else float("nan"),
            "pairs": int(non_trivial.sum())}, result


def run_robust_experiment(models: dict, data: ImageData, dataset: str, validation: ValidationConfig,
                          generator_config: GeneratorConfig, attack_results_path, out_dir,
                          robust_config: RobustConfig, training: dict, progress: bool = True,
                          command: str = "") -> dict:
    """Validate each of `models` ({"standard": model, "robust": model}); save results and images."""
    out_dir = ensure_writable_dir(out_dir)
    indices, targets = attack_pairs(attack_results_path)
    results = {"command": command, "dataset": dataset,
               "class_names": list(data.class_names), "validation": asdict(validation),
               "robust_training": asdict(robust_config),
               "generator": asdict(generator_config), "training": training, "models": {}}
    images = {"sources": data.x_test[indices], "targets": targets}
    for name, model in models.items():
        def model_fn(x, model=model):
            return model(x, training=False)

        checks = validate(model_fn, data.x_test, data.y_test, robust_config.eps, validation, progress)
        generated, result = generator_scores(model, data, indices, targets, generator_config)
        results["models"][name] = {**checks, "generator": generated,
                                   "generator_confidence": result.target_confidence.tolist()}
        images[name] = result.images
        print(f"{name}: " + ", ".join(f"{k} {v:.4f}" for k, v in checks["scores"].items())
              + f", generator success {generated['success_rate']:.1%}, median L2 {generated['median_l2']:.3f}; "
              + ("checks passed" if checks["passed"] else "CHECKS FAILED: " + ", ".join(
                  k for k, check in checks["checks"].items() if not check["passed"])), flush=True)
    save_json(out_dir / "results.json", results)
    np.savez_compressed(out_dir / "images.npz", **images)
    return results


def run_robust(spec: RobustSpec, out_dir, command: str = "", *, models_dir, attack_results, standard_model=None,
               retrain: bool = False, data_dir=None, progress: bool = True, strategy=None) -> dict:
    """Train the robust model into `models_dir` (unless it is there and not `retrain`; its training summary
    goes into `out_dir`), validate it and the standard model (`standard_model`, by default the shipped one) side
    by side on the generator pairs of `attack_results` (the results.json of `tapelab attack`, checked before
    anything else) and write the report into `out_dir`; the results."""
    attack_pairs(attack_results)
    standard_model = standard_model or shipped_model(f"{spec.dataset}_cnn")
    robust_path = Path(models_dir) / f"{spec.dataset}_robust.h5"
    data = load_dataset(spec.dataset, data_dir)
    shape, classes = data.x_test.shape[1:], data.num_classes
    standard = load_model_file(standard_model, shape, classes)
    if retrain or not robust_path.exists():
        summary = train_classifier(spec.dataset, data, spec.cnn, spec.train, models_dir, progress=progress,
                                   model_name=robust_path.stem, perturb=TrainingAttack(spec.robust), command=command,
                                   strategy=strategy)
        write_classifier_summary(summary, out_dir)
    training = load_json(robust_path.with_suffix(".json"))
    models = {"standard": standard, "robust": load_model_file(robust_path, shape, classes)}
    results = run_robust_experiment(models, data, spec.dataset, spec.validation, spec.generator, attack_results,
                                    out_dir, spec.robust, training, progress=progress, command=command)
    write_robust_report(out_dir)
    return results


def _verdict(check: dict) -> str:
    if check["passed"]:
        return f"pass ({check['excess']} <= {check['allowance']:.1f})"
    return f"**FAIL** ({check['excess']} > {check['allowance']:.1f})"


def write_robust_report(out_dir) -> Path:
    """Table, checks and grids (report.md) from results.json and images.npz alone."""
    out_dir = Path(out_dir)
    results, images = load_saved(out_dir)
    names, k = results["class_names"], len(results["class_names"])
    validation = results["validation"]
    eps = results["robust_training"]["eps"]
    table = ["| model | clean | FGSM | PGD-{steps} x{restarts} restarts | generator success | generator median L2 |"
             .format(steps=validation["pgd_steps"], restarts=validation["restarts"]), "|---|---|---|---|---|---|"]
    for name, model in results["models"].items():
        s, g = model["scores"], model["generator"]
        table.append(f"| {name} | {s['clean']:.2%} | {s['fgsm']:.2%} | {s['pgd']:.2%} | {g['success_rate']:.1%} "
                     f"| {g['median_l2']:.3f} |")
    checks = ["| check | " + " | ".join(results["models"]) + " |", "|---|" + "---|" * len(results["models"])]
    first = next(iter(results["models"].values()))
    for check in first["checks"]:
        checks.append(f"| {check} | " + " | ".join(_verdict(m["checks"][check]) for m in results["models"].values())
                      + " |")
    sweep = ["| eps | " + " | ".join(results["models"]) + " |", "|---|" + "---|" * len(results["models"])]
    for radius in first["eps_sweep"]:
        sweep.append(f"| {float(radius):.4g} | " + " | ".join(f"{m['eps_sweep'][radius]:.2%}"
                                                               for m in results["models"].values()) + " |")
    rows = len(images["sources"]) // k
    shape = images["sources"].shape[1:]
    grids = []
    for name, model in results["models"].items():
        confidence = np.asarray(model["generator_confidence"]).reshape(rows, k)
        cells = np.concatenate([images["sources"].reshape(rows, k, *shape)[:, :1],
                                images[name].reshape(rows, k, *shape)], axis=1)
        titles = [["source"] + [f"{names[t]} {c:.2f}" for t, c in enumerate(confidence[r])] for r in range(rows)]
        path = image_grid(cells, titles, out_dir / f"grid_{name}.png",
                          f"Generator attack against the {name} model (title: target class, its confidence)")
        grids += [f"![{name}]({Path(path).name})", ""]
    text = [f"# Adversarial robustness on {results['dataset']}", "", f"Produced by `{results['command']}`.", "",
            f"L-infinity eps {eps:.4g} on {first['examples']} test images drawn at random (seed 0); the generator "
            f"attack (confidence {results['generator']['confidence']}) on the pairs of the adversarial experiment. "
            f"Training attack: {results['robust_training']}; "
            f"training time {results['training'].get('train_seconds', 0):.0f} s.",
            "", *table, "", "## Checks against false robustness (gradient masking)", "",
            "Each cell: the excess in examples (for instance, how many more survive the stronger attack than the "
            "weaker one) and the allowance it is held to: a paired sign test over the examples on which the two "
            f"attacks disagree, {SIGN_TEST_Z:g} standard deviations (`attacks.robust.masking_checks`); at the "
            "large eps, 5% of the examples.", "", *checks, "",
            "PGD accuracy as eps grows (one start):", "", *sweep, "", "## Generator-built examples", "", *grids]
    return write_atomic(out_dir / "report.md", "\n".join(text))
