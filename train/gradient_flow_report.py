"""Tables, observations and the Markdown report of the gradient-flow experiment.

Everything here is computed from results.json, so the text always matches the data.
"""

from pathlib import Path

from core.io import write_atomic
from train.gradient_flow_plots import plot_gradient_grid, plot_learning_curves

# A 10-class model below this test accuracy has learned little beyond guessing (10%).
FAILED_ACCURACY = 0.2


def score_rows(results: dict) -> list[dict]:
    """One row per model: scores, gradient ratios and time."""
    rows = []
    for name, run in results["runs"].items():
        final = run["records"][-1]
        rows.append({
            "model": name,
            "activation": run["activation"],
            "depth": run["depth"],
            "test_accuracy": final["test_accuracy"],
            "test_loss": final["test_loss"],
            "first_to_last_untrained": _first_to_last(run["layer_gradients"][0]),
            "first_to_last_trained": _first_to_last(run["layer_gradients"][-1]),
            "train_seconds": run["train_seconds"],
        })
    return rows


def _first_to_last(gradients) -> float:
    """Max gradient of the first hidden layer over that of the output layer."""
    return gradients[0] / gradients[-1] if gradients[-1] > 0 else float("inf")


COLUMNS = (
    ("model", "model", "{}"),
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
    """Findings stated from the measured numbers."""
    rows = score_rows(results)
    notes = []
    failed = [row for row in rows if row["test_accuracy"] < FAILED_ACCURACY]
    if failed:
        listed = ", ".join(f"{row['model']} ({row['test_accuracy']:.1%})" for row in failed)
        notes.append(f"Failed to learn (test accuracy below {FAILED_ACCURACY:.0%}; chance is 10%): {listed}.")
    else:
        notes.append(f"Every model learned (all test accuracies at or above {FAILED_ACCURACY:.0%}).")
    depths = results["settings"]["grid"]["depths"]
    by_name = {row["model"]: row for row in rows}
    for depth in depths:
        at_depth = [row for row in rows if row["depth"] == depth]
        best = max(at_depth, key=lambda row: row["test_accuracy"])
        notes.append(f"{depth} hidden layers: best is {best['activation']} at {best['test_accuracy']:.2%}.")
        lecun, tanh = by_name.get(f"lecun-{depth}"), by_name.get(f"tanh-{depth}")
        if lecun and tanh:
            difference = lecun["test_accuracy"] - tanh["test_accuracy"]
            notes.append(
                f"{depth} hidden layers: LeCun {lecun['test_accuracy']:.2%} vs tanh {tanh['test_accuracy']:.2%} "
                f"({difference * 100:+.2f} points)."
            )
    for row in sorted(rows, key=lambda row: (row["activation"], row["depth"])):
        notes.append(
            f"{row['model']}: first/last layer max-gradient ratio {row['first_to_last_untrained']:.3g} untrained, "
            f"{row['first_to_last_trained']:.3g} trained"
            + (" (the first layer's gradient has vanished)" if row["first_to_last_trained"] < 1e-3 else "")
            + "."
        )
    return notes


def write_report(results: dict, out_dir) -> Path:
    """Write scores.csv, scores.md, the three plots and report.md into `out_dir`."""
    out_dir = Path(out_dir)
    rows = score_rows(results)
    write_atomic(out_dir / "scores.csv", scores_csv(rows))
    write_atomic(out_dir / "scores.md", scores_markdown(rows))
    plot_gradient_grid(results, out_dir / "grad_grid_trained.png", trained=True)
    plot_gradient_grid(results, out_dir / "grad_grid_untrained.png", trained=False)
    plot_learning_curves(results, out_dir / "learning_curves.png")
    settings = results["settings"]
    total_seconds = sum(row["train_seconds"] for row in rows)
    text = [
        "# Gradient flow in deep MLPs on MNIST",
        "",
        f"Produced by `{results.get('command') or 'tapelab gradients'}`; settings in `config.json`, raw numbers in "
        "`results.json` (per model in `runs/`). Redraw with `tapelab report --out <this folder>`.",
        "",
        f"{len(rows)} models, {settings['grid']['units']} units per hidden layer, softmax output, "
        f"{settings['train']['optimizer']} lr {settings['train']['learning_rate']}, batch "
        f"{settings['train']['batch_size']}, {settings['train']['epochs']} epoch(s); total training time "
        f"{total_seconds:.0f} s.",
        "",
        "## Scores",
        "",
        scores_markdown(rows),
        "## Observations",
        "",
        *[f"- {note}" for note in observations(results)],
        "",
        "## Per-layer max gradient, trained",
        "",
        "![trained](grad_grid_trained.png)",
        "",
        "## Per-layer max gradient, untrained",
        "",
        "![untrained](grad_grid_untrained.png)",
        "",
        "## Learning curves, LeCun vs tanh",
        "",
        "![curves](learning_curves.png)",
        "",
    ]
    return write_atomic(out_dir / "report.md", "\n".join(text))
