"""Plots of the gradient-flow experiment, drawn from results.json alone (no retraining).

    tapelab report --out results/gradient_flow

Figures are plain `matplotlib.figure.Figure` objects (no pyplot), so importing this module or
drawing a plot never switches the backend of a notebook that imports it. Every plot shows the
first seed's runs and says so in its title.
"""

import matplotlib.colors
import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator

from tapelab.core.io import save_figure
from tapelab.train.gradient_flow import first_seed_run

# Log axes cannot show an exact zero (a dead ReLU layer); such points are drawn here.
ZERO_FLOOR = 1e-40
# Exact zeros in the heatmaps: masked out of the colour scale and painted this colour instead.
ZERO_COLOUR = "red"
STYLE = {
    "relu": {"color": "tab:blue"},
    "tanh": {"color": "tab:orange", "linewidth": 2.2},
    "sigmoid": {"color": "tab:green"},
    "lecun": {"color": "tab:red", "linewidth": 2.2},
}


def _grid(results):
    grid = results["settings"]["grid"]
    return grid["depths"], grid["activations"], grid["seeds"][0]


def plot_gradient_grid(results: dict, path, trained: bool = True):
    """Layer (x) against max |gradient| (y, log), one subplot per depth, one line per activation."""
    depths, activations, seed = _grid(results)
    figure = Figure(figsize=(5 * len(depths), 4))
    axes = figure.subplots(1, len(depths), squeeze=False)
    for axis, depth in zip(axes[0], depths):
        for activation in activations:
            gradients = np.asarray(first_seed_run(results, activation, depth)["layer_gradients"][-1 if trained else 0])
            layers = np.arange(1, len(gradients) + 1)
            axis.plot(layers, np.maximum(gradients, ZERO_FLOOR), marker=".", label=activation,
                      **STYLE.get(activation, {}))
        axis.set_yscale("log")
        axis.set_title(f"{depth} hidden layers")
        axis.set_xlabel("layer (1 = first hidden, last = softmax output)")
        axis.grid(True, which="major", alpha=0.3)
    axes[0][0].set_ylabel("max |dLoss/dW| on a fixed mini-batch")
    axes[0][-1].legend()
    epochs = results["settings"]["train"]["epochs"]
    state = f"after {epochs} epoch(s) of training" if trained else "untrained (initial weights)"
    figure.suptitle(f"Per-layer max gradient, {state}, seed {seed}; exact zeros drawn at {ZERO_FLOOR:g}")
    return save_figure(figure, path)


def plot_learning_curves(results: dict, path, activations=("lecun", "tanh")):
    """Loss (top) and accuracy (bottom) against epochs, train solid and test dashed, per depth."""
    depths, available, seed = _grid(results)
    activations = [name for name in activations if name in available]
    figure = Figure(figsize=(5 * len(depths), 7))
    axes = figure.subplots(2, len(depths), squeeze=False, sharex=True)
    for column, depth in enumerate(depths):
        for activation in activations:
            records = first_seed_run(results, activation, depth)["records"]
            epochs = [record["epoch"] for record in records]
            color = STYLE.get(activation, {}).get("color")
            for row, metric in enumerate(("loss", "accuracy")):
                axes[row][column].plot(epochs, [r[f"train_{metric}"] for r in records], color=color,
                                       marker=".", label=f"{activation} train")
                axes[row][column].plot(epochs, [r[f"test_{metric}"] for r in records], color=color,
                                       linestyle="--", marker="x", label=f"{activation} test")
        axes[0][column].set_title(f"{depth} hidden layers")
        axes[1][column].set_xlabel("epoch")
        for row in range(2):
            axes[row][column].grid(True, alpha=0.3)
    axes[0][0].set_ylabel("crossentropy loss")
    axes[1][0].set_ylabel("accuracy")
    axes[1][-1].legend()
    figure.suptitle(f"Learning curves, {' vs '.join(activations)}, seed {seed} "
                    "(train: mean over the steps since the last point)")
    return save_figure(figure, path)


def _trace_matrix(run):
    """(epochs, layers x points array of log10 max |gradient| with exact zeros masked)."""
    trace = run["gradient_trace"]
    epochs = np.array([point["epoch"] for point in trace])
    values = np.array([point["max_abs"] for point in trace]).T  # (layers, points), layer 1 first
    with np.errstate(divide="ignore"):
        return epochs, np.ma.masked_where(values == 0.0, np.log10(np.where(values > 0, values, 1.0)))


def _edges(centres):
    """Cell edges around sorted centres: midpoints, and half a gap beyond each end."""
    centres = np.asarray(centres, dtype=float)
    if len(centres) == 1:
        return np.array([centres[0] - 0.5, centres[0] + 0.5])
    middle = (centres[1:] + centres[:-1]) / 2
    return np.concatenate([[2 * centres[0] - middle[0]], middle, [2 * centres[-1] - middle[-1]]])


def plot_gradient_heatmaps(results: dict, path):
    """One heatmap per model (rows activations, columns depths): layer (y, input at the bottom)
    against epoch (x), colour log10 max |gradient| on one shared scale, exact zeros in ZERO_COLOUR."""
    depths, activations, seed = _grid(results)
    matrices = {(a, d): _trace_matrix(first_seed_run(results, a, d)) for a in activations for d in depths}
    # One colour scale for all; a grid whose every value is exactly 0 still gets a (meaningless) scale.
    finite = np.concatenate([matrix.compressed() for _, matrix in matrices.values()])
    finite = finite if finite.size else np.array([-1.0, 0.0])
    norm = matplotlib.colors.Normalize(vmin=finite.min(), vmax=finite.max())
    colour_map = matplotlib.colormaps["viridis"].with_extremes(bad=ZERO_COLOUR)
    figure = Figure(figsize=(4 * len(depths) + 1.5, 3 * len(activations)), layout="constrained")
    axes = figure.subplots(len(activations), len(depths), squeeze=False)
    mesh = None
    for row, activation in enumerate(activations):
        for column, depth in enumerate(depths):
            epochs, matrix = matrices[(activation, depth)]
            axis = axes[row][column]
            mesh = axis.pcolormesh(_edges(epochs), np.arange(matrix.shape[0] + 1) + 0.5, matrix, cmap=colour_map,
                                   norm=norm, shading="flat")
            axis.set_title(f"{activation}, {depth} hidden layers", fontsize=10)
            axis.yaxis.set_major_locator(MaxNLocator(integer=True))
            if column == 0:
                axis.set_ylabel("layer (1 = first hidden, bottom;\ntop = softmax output)")
            if row == len(activations) - 1:
                axis.set_xlabel("epoch (0 = untrained)")
    colorbar = figure.colorbar(mesh, ax=axes, shrink=0.8)
    colorbar.set_label("log10 max |dLoss/dW| on the fixed mini-batch")
    figure.legend(handles=[Patch(color=ZERO_COLOUR, label="exactly 0 (no gradient reaches the layer)")],
                  loc="outside lower center")
    figure.suptitle(f"Per-layer max gradient during training, seed {seed}")
    return save_figure(figure, path)
