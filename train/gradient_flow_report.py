"""Findings, tables, observations and the Markdown report of the gradient-flow experiment.

    tapelab report --out results/gradient_flow

Everything here is computed from results.json, so the text always matches the data. `findings`
turns the runs into the numbers every report cites; the text only formats them.
"""

import math
from pathlib import Path

import numpy as np

from tapelab.core.io import write_atomic
from tapelab.train.gradient_flow import seed_runs
from tapelab.train.gradient_flow_plots import (
    plot_gradient_grid,
    plot_gradient_heatmaps,
    plot_learning_curves,
)

# A 10-class model below this test accuracy has learned little beyond guessing (10%).
FAILED_ACCURACY = 0.2
# A first-layer gradient below this share of the output layer's (but not 0) has vanished.
VANISHED_RATIO = 1e-3
# The early learning-curve point compared between LeCun and tanh.
EARLY_EPOCH = 0.25


def _first_to_last(gradients) -> float:
    """Max gradient of the first hidden layer over that of the output layer."""
    return gradients[0] / gradients[-1] if gradients[-1] > 0 else float("inf")


def decay_per_layer(gradients) -> float | None:
    """Geometric-mean factor by which max |gradient| changes per layer going backward through the
    hidden layers, from the last hidden layer to the first (None with one hidden layer)."""
    hidden = gradients[:-1]
    if len(hidden) < 2:
        return None
    if hidden[0] == 0.0 or hidden[-1] == 0.0:
        return 0.0 if hidden[0] == 0.0 else math.inf
    return (hidden[0] / hidden[-1]) ** (1 / (len(hidden) - 1))


def gradient_state(gradients) -> str:
    """"exactly zero", "vanishing" or "flowing": the first hidden layer's trained gradient, in words."""
    if gradients[0] == 0.0:
        return "exactly zero"
    return "vanishing" if _first_to_last(gradients) < VANISHED_RATIO else "flowing"


def spread(values) -> dict:
    """Mean, standard deviation over seeds (n - 1 in the denominator; 0 for one seed), min and max."""
    values = np.asarray(values, dtype=float)
    std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return {"mean": float(values.mean()), "std": std, "min": float(values.min()), "max": float(values.max())}


def _geometric_mean(values):
    values = [value for value in values if value is not None]
    if not values:
        return None
    if any(value == 0.0 for value in values):
        return 0.0
    return float(np.exp(np.mean(np.log(values))))


def _record_near(records, epoch):
    return min(records, key=lambda record: abs(record["epoch"] - epoch))


def model_findings(runs: list[dict]) -> dict:
    """The numbers of one model over its seeds (`runs` in seed order)."""
    trained, untrained = [run["layer_gradients"][-1] for run in runs], [run["layer_gradients"][0] for run in runs]
    early = [_record_near(run["records"], EARLY_EPOCH) for run in runs]
    counts = [run["predicted_classes"] for run in runs]
    return {
        "activation": runs[0]["activation"], "depth": runs[0]["depth"], "seeds": [run["seed"] for run in runs],
        "accuracy": {**spread([run["records"][-1]["test_accuracy"] for run in runs]),
                     "per_seed": [run["records"][-1]["test_accuracy"] for run in runs]},
        "early_epoch": early[0]["epoch"],
        "early_accuracy": spread([record["test_accuracy"] for record in early]),
        "first_to_last_untrained": [_first_to_last(g) for g in untrained],
        "first_to_last_trained": [_first_to_last(g) for g in trained],
        "decay_untrained": _geometric_mean([decay_per_layer(g) for g in untrained]),
        "decay_trained": _geometric_mean([decay_per_layer(g) for g in trained]),
        "decay_trained_per_seed": [decay_per_layer(g) for g in trained],
        "first_layer_gradient": [g[0] for g in trained],
        "gradient_state": [gradient_state(g) for g in trained],
        "deepest_zero_gradient_layer": [max((i + 1 for i, v in enumerate(g) if v == 0.0), default=None)
                                        for g in trained],
        "dead_layers": [sum(share == 1.0 for share in run["zero_derivative_units"]) for run in runs],
        "dead_layer_numbers": [[index + 1 for index, share in enumerate(run["zero_derivative_units"]) if share == 1.0]
                               for run in runs],
        "zero_derivative_share": [float(np.mean(run["zero_derivative_units"])) for run in runs],
        "dead_layers_untrained": [sum(share == 1.0 for share in run["zero_derivative_units_untrained"])
                                  for run in runs],
        "top_class": [int(np.argmax(c)) for c in counts],
        "top_class_count": [int(max(c)) for c in counts],
        "test_images": int(sum(counts[0])),
        "trace": trace_findings(runs[0]["gradient_trace"]),
    }


def trace_findings(trace: list[dict]) -> dict:
    """What the heatmap of one run shows: the first epoch with an exactly-zero layer (None if never),
    how many layers are exactly zero at the last point, and the first layer's smallest and largest value."""
    zero_epochs = [point["epoch"] for point in trace if 0.0 in point["max_abs"]]
    first_layer = [point["max_abs"][0] for point in trace]
    return {"points": len(trace), "first_zero_epoch": zero_epochs[0] if zero_epochs else None,
            "zero_layers_at_end": sum(value == 0.0 for value in trace[-1]["max_abs"]),
            "first_layer_min": min(first_layer), "first_layer_max": max(first_layer)}


def _compare(lecun: dict, tanh: dict) -> dict:
    """LeCun minus tanh: larger than the seed spread only when the [min, max] ranges do not overlap."""
    a, b = lecun["accuracy"], tanh["accuracy"]
    return {
        "difference": a["mean"] - b["mean"],
        "larger_than_spread": a["min"] > b["max"] or b["min"] > a["max"],
        "lecun_range": [a["min"], a["max"]], "tanh_range": [b["min"], b["max"]],
        "early_epoch": lecun["early_epoch"],
        "lecun_early": lecun["early_accuracy"]["mean"], "tanh_early": tanh["early_accuracy"]["mean"],
        "lecun_final": a["mean"], "tanh_final": b["mean"],
    }


def findings(results: dict) -> dict:
    """Every number the reports cite, from results.json: per model (`models`, keyed like "relu-40"),
    LeCun against tanh per depth (`lecun_vs_tanh`, keyed by depth) and the grid's settings."""
    grid = results["settings"]["grid"]
    models = {f"{a}-{d}": model_findings(seed_runs(results, a, d)) for a in grid["activations"] for d in grid["depths"]}
    comparisons = {depth: _compare(models[f"lecun-{depth}"], models[f"tanh-{depth}"]) for depth in grid["depths"]
                   if f"lecun-{depth}" in models and f"tanh-{depth}" in models}
    return {"seeds": grid["seeds"], "depths": grid["depths"], "activations": grid["activations"],
            "epochs": results["settings"]["train"]["epochs"], "models": models, "lecun_vs_tanh": comparisons}


def pct(value: float) -> str:
    return f"{value:.2%}"


def points(value: float) -> str:
    """A difference of accuracies in percentage points."""
    return f"{value * 100:+.2f} points"


def spread_markdown(found: dict) -> str:
    """The seed-spread table: test accuracy mean ± std, min-max, per model."""
    lines = [f"| model | test accuracy, mean ± std over seeds {found['seeds']} | min - max |", "|---|---|---|"]
    for name, model in found["models"].items():
        acc = model["accuracy"]
        lines.append(f"| {name} | {pct(acc['mean'])} ± {acc['std'] * 100:.2f} | "
                     f"{pct(acc['min'])} - {pct(acc['max'])} |")
    return "\n".join(lines) + "\n"


def score_rows(results: dict) -> list[dict]:
    """One row per run (every seed): scores, gradient ratios and time."""
    rows = []
    for run in results["runs"].values():
        rows.append({
            "model": f"{run['activation']}-{run['depth']}",
            "seed": run["seed"],
            "activation": run["activation"],
            "depth": run["depth"],
            "test_accuracy": run["records"][-1]["test_accuracy"],
            "test_loss": run["records"][-1]["test_loss"],
            "first_to_last_untrained": _first_to_last(run["layer_gradients"][0]),
            "first_to_last_trained": _first_to_last(run["layer_gradients"][-1]),
            "train_seconds": run["train_seconds"],
        })
    return sorted(rows, key=lambda row: (row["seed"], row["activation"], row["depth"]))


COLUMNS = (
    ("model", "model", "{}"),
    ("seed", "seed", "{}"),
    ("test_accuracy", "test accuracy", "{:.4f}"),
    ("test_loss", "test loss", "{:.4f}"),
    ("first_to_last_untrained", "first/last layer max grad, untrained", "{:.3g}"),
    ("first_to_last_trained", "first/last layer max grad, trained", "{:.3g}"),
    ("train_seconds", "train time (s)", "{:.1f}"),
)


def scores_csv(rows) -> str:
    lines = [",".join(key for key, _, _ in COLUMNS)]
    lines += [",".join(str(row[key]) for key, _, _ in COLUMNS) for row in rows]
    return "\n".join(lines) + "\n"


def scores_markdown(rows) -> str:
    lines = ["| " + " | ".join(title for _, title, _ in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(fmt.format(row[key]) for key, _, fmt in COLUMNS) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def observations(results: dict) -> list[str]:
    """Findings stated from the measured numbers (accuracies are means over the seeds)."""
    found = findings(results)
    models = found["models"]
    failed = [(name, m["accuracy"]["mean"]) for name, m in models.items() if m["accuracy"]["mean"] < FAILED_ACCURACY]
    notes = [f"Failed to learn (mean test accuracy below {FAILED_ACCURACY:.0%}; chance is 10%): "
             + ", ".join(f"{name} ({accuracy:.1%})" for name, accuracy in failed) + "." if failed else
             f"Every model learned (all mean test accuracies at or above {FAILED_ACCURACY:.0%})."]
    for depth in found["depths"]:
        best = max((m for m in models.values() if m["depth"] == depth), key=lambda m: m["accuracy"]["mean"])
        notes.append(f"{depth} hidden layers: best is {best['activation']} at {pct(best['accuracy']['mean'])}.")
        if depth in found["lecun_vs_tanh"]:
            c = found["lecun_vs_tanh"][depth]
            notes.append(f"{depth} hidden layers: LeCun {pct(c['lecun_final'])} vs tanh {pct(c['tanh_final'])} "
                         f"({points(c['difference'])}; "
                         + ("larger than the seed spread)." if c["larger_than_spread"] else "within the seed spread)."))
    for name, m in sorted(models.items(), key=lambda item: (item[1]["activation"], item[1]["depth"])):
        states = sorted(set(m["gradient_state"]))
        note = {"exactly zero": " (the first layer's gradient is exactly zero (dead units))",
                "vanishing": " (the first layer's gradient has vanished: tiny but not zero)"}
        notes.append(f"{name}: first/last layer max-gradient ratio {m['first_to_last_untrained'][0]:.3g} untrained, "
                     f"{m['first_to_last_trained'][0]:.3g} trained (seed {m['seeds'][0]})"
                     + "".join(note.get(state, "") for state in states) + ".")
    return notes


def write_report(results: dict, out_dir) -> Path:
    """Write scores.csv, scores.md, the four plots and report.md into `out_dir`."""
    out_dir = Path(out_dir)
    rows = score_rows(results)
    write_atomic(out_dir / "scores.csv", scores_csv(rows))
    write_atomic(out_dir / "scores.md", scores_markdown(rows))
    plot_gradient_grid(results, out_dir / "grad_grid_trained.png", trained=True)
    plot_gradient_grid(results, out_dir / "grad_grid_untrained.png", trained=False)
    plot_learning_curves(results, out_dir / "learning_curves.png")
    plot_gradient_heatmaps(results, out_dir / "grad_heatmaps.png")
    settings, found = results["settings"], findings(results)
    seed = found["seeds"][0]
    text = [
        "# Gradient flow in deep MLPs on MNIST",
        "",
        f"Produced by `{results.get('command') or 'tapelab gradients'}`; settings in `config.json`, raw numbers in "
        "`results.json` (per run in `runs/`). Redraw with `tapelab report --out <this folder>`.",
        "",
        f"{len(found['models'])} models, each trained once per seed {found['seeds']}, "
        f"{settings['grid']['units']} units per hidden layer, softmax output, {settings['train']['optimizer']} lr "
        f"{settings['train']['learning_rate']}, batch {settings['train']['batch_size']}, {found['epochs']} epoch(s); "
        f"training time {sum(row['train_seconds'] for row in rows):.0f} s summed over all runs (the training steps "
        "only: test-set evaluations and gradient probes are not counted, so the grid's wall time, which "
        "scripts/bench_training.py measures for one seed, is longer).",
        "",
        "## Test accuracy over seeds",
        "",
        "A difference between two models counts as larger than the seed spread only when their [min, max] "
        "ranges over the seeds do not overlap.",
        "",
        spread_markdown(found),
        "## Scores per run",
        "",
        scores_markdown(rows),
        "## Observations",
        "",
        *[f"- {note}" for note in observations(results)],
        "",
        f"## Per-layer max gradient, trained (seed {seed})",
        "",
        "![trained](grad_grid_trained.png)",
        "",
        f"## Per-layer max gradient, untrained (seed {seed})",
        "",
        "![untrained](grad_grid_untrained.png)",
        "",
        f"## Per-layer max gradient during training (seed {seed}; exact zeros in red)",
        "",
        "![heatmaps](grad_heatmaps.png)",
        "",
        f"## Learning curves, LeCun vs tanh (seed {seed})",
        "",
        "![curves](learning_curves.png)",
        "",
    ]
    return write_atomic(out_dir / "report.md", "\n".join(text))
