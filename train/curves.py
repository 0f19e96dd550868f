"""Learning curves of classifier runs, drawn from the summaries `train_classifier` saved (no retraining):
one run shows where it starts to overfit, several side by side show which recipe wins and when.

    tapelab curves results/fer/fer2013_emotion.json results/fer/trials/*.json --out curves.png
"""

import tempfile
from pathlib import Path

from matplotlib.figure import Figure

from tapelab.core.errors import TapelabError
from tapelab.core.io import load_json, save_figure

METRICS = (("loss", "crossentropy loss"), ("accuracy", "accuracy"))
FIGURE_FORMATS = (".png", ".pdf", ".svg")


def check_figure_path(path) -> Path:
    """Before any work: `path` names a .png, .pdf or .svg file that can be written. Its folder is made only
    when the figure is saved; here the nearest folder that exists must take a file."""
    path = Path(path)
    if path.is_dir():
        raise TapelabError(f"--out {path} is a folder; give a file name such as {path / 'learning_curves.png'}")
    if path.suffix.lower() not in FIGURE_FORMATS:
        raise TapelabError(f"--out {path}: the figure must end in {', '.join(FIGURE_FORMATS)}")
    folder = next(parent for parent in path.parents if parent.exists())
    try:
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as error:
        raise TapelabError(f"--out {path}: cannot write in {folder} ({error.strerror}); choose another file") from None
    return path


def load_summaries(paths) -> dict[str, dict]:
    """Summaries by file stem, or folder and stem where runs share a file name (each run's own folder, as
    ensemble members have), so no run hides another; a file without a learning curve is refused with what to
    pass instead."""
    paths = list(map(Path, paths))
    stems = [path.stem for path in paths]
    summaries = {}
    for path in paths:
        summary = load_json(path)
        if not isinstance(summary, dict) or not summary.get("records"):
            raise TapelabError(f"{path} has no learning curve ('records'); pass a .json that `tapelab classifier`, "
                               "`tapelab fer train` or `tapelab robust` wrote")
        summaries[path.stem if stems.count(path.stem) == 1 else f"{path.parent.name}/{path.stem}"] = summary
    return summaries


def plot_classifier_curves(summaries: dict[str, dict], path) -> Path:
    """Loss and accuracy against epochs: held-out split (test or validation) solid, train dashed, one colour per
    run, the kept epoch starred."""
    figure = Figure(figsize=(13, 4.8))
    axes = figure.subplots(1, 2)
    for index, (label, summary) in enumerate(summaries.items()):
        records = summary["records"]
        epochs = [record["epoch"] for record in records]
        color = f"C{index % 10}"
        best = next((r for r in records if r["epoch"] == kept_epoch(summary)), None)
        for axis, (metric, _) in zip(axes, METRICS):
            axis.plot(epochs, [r[f"test_{metric}"] for r in records], color=color,
                      label=f"{label} ({_kept_accuracy(summary)})")
            axis.plot(epochs, [r[f"train_{metric}"] for r in records], color=color, linestyle="--", alpha=0.6)
            if best is not None:
                axis.plot(best["epoch"], best[f"test_{metric}"], marker="*", markersize=12, color=color)
    for axis, (_, name) in zip(axes, METRICS):
        axis.set_xlabel("epoch")
        axis.set_ylabel(name)
        axis.grid(True, alpha=0.3)
    held_out = " or ".join(sorted({summary.get("held_out", "test") for summary in summaries.values()}))
    axes[1].legend(fontsize=8, title=f"run (kept {held_out} accuracy)", title_fontsize=8)
    figure.suptitle(f"Learning curves: {held_out} solid, train dashed (mean over the epoch's steps, augmented), "
                    "star = kept epoch")
    return save_figure(figure, path)


def kept_epoch(summary: dict) -> int:
    """The epoch whose weights were saved: the best one with keep_best, else the last."""
    if summary.get("train", {}).get("keep_best"):
        return summary["best_epoch"]
    return summary["train"]["epochs"] if "train" in summary else summary.get("best_epoch")


def _kept_accuracy(summary: dict) -> str:
    """The saved model's test accuracy, and the net's alone when the saved model averages it over mirror
    images (the curve shows the net alone)."""
    if "net_test_accuracy" in summary:
        return f"{summary['test_accuracy']:.2%}; net alone {summary['net_test_accuracy']:.2%}"
    return f"{summary['test_accuracy']:.2%}"
