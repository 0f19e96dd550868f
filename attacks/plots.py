"""Image grids for adversarial examples, drawn from saved arrays."""

import numpy as np
from matplotlib.figure import Figure

from tapelab.core.io import save_figure


def image_grid(images: np.ndarray, titles, path, title: str = "", diverging: bool = False):
    """`images` (rows, cols, H, W, C) in one figure with a title over each cell.

    With `diverging`, images are signed differences drawn red-blue on one symmetric scale.
    """
    rows, cols = images.shape[:2]
    figure = Figure(figsize=(1.3 * cols, 1.5 * rows))
    axes = figure.subplots(rows, cols, squeeze=False)
    limit = float(np.abs(images).max()) or 1.0
    for row in range(rows):
        for col in range(cols):
            axis = axes[row][col]
            image = images[row, col]
            if diverging:
                shown = axis.imshow(image.mean(axis=-1), cmap="seismic", vmin=-limit, vmax=limit)
            elif image.shape[-1] == 1:
                axis.imshow(image[..., 0], cmap="gray", vmin=0, vmax=1)
            else:
                axis.imshow(np.clip(image, 0, 1))
            axis.set_title(titles[row][col], fontsize=7)
            axis.set_xticks([])
            axis.set_yticks([])
    if diverging:
        figure.colorbar(shown, ax=axes, shrink=0.6, label="adversarial - original (channel mean)")
    figure.suptitle(title, fontsize=10, y=1.0 + 0.3 / rows)  # above the cell titles, also for one row
    return save_figure(figure, path)
