"""Plots of the gradient-flow experiment, drawn from results.json alone (no retraining).

    tapelab report --out results/gradient_flow
"""

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from core.io import save_figure

# Log axes cannot show an exact zero (a dead ReLU layer); such points are drawn here.
ZERO_FLOOR = 1e-40
STYLE = {
    "relu": {"color": "tab:blue"},
    "tanh": {"color": "tab:orange", "linewidth": 2.2},
    "sigmoid": {"color": "tab:green"},
    "lecun": {"color": "tab:red", "linewidth": 2.2},
}


def _depths_and_activations(results):
    grid = results["settings"]["grid"]
    return grid["depths"], grid["activations"]


def plot_gradient_grid(results: dict, path, trained: bool = True):
    """Layer (x) against max |gradient| (y, log), one subplot per depth, one line per activation."""
    depths, activations = _depths_and_activations(results)
    figure, axes = plt.subplots(1, len(depths), figsize=(5 * len(depths), 4), squeeze=False)
    for axis, depth in zip(axes[0], depths):
        for activation in activations:
            run = results["runs"][f"{activation}-{depth}"]
            gradients = np.asarray(run["layer_gradients"][-1 if trained else 0])
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
    figure.suptitle(f"Per-layer max gradient, {state}; exact zeros drawn at {ZERO_FLOOR:g}")
    return save_figure(figure, path)


def plot_learning_curves(results: dict, path, activations=("lecun", "tanh")):
    """Loss (top) and accuracy (bottom) against epochs, train solid and test dashed, per depth."""
    depths, available = _depths_and_activations(results)
    activations = [name for name in activations if name in available]
    figure, axes = plt.subplots(2, len(depths), figsize=(5 * len(depths), 7), squeeze=False, sharex=True)
    for column, depth in enumerate(depths):
        for activation in activations:
            records = results["runs"][f"{activation}-{depth}"]["records"]
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
    figure.suptitle(f"Learning curves, {' vs '.join(activations)} (train: mean over the steps since the last point)")
    return save_figure(figure, path)
