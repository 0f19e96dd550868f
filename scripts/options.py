"""Command-line options shared by the commands that train a CNN."""

from pathlib import Path

from core.config import add_config_arguments
from train.classifier import CnnConfig
from train.config import TrainConfig

DATA_DIR_HELP = (
    "folder with local data files (for MNIST: mnist.npz or mnist/mnist.npz); "
    "without it Keras downloads and caches the data set"
)


def add_training_options(parser, out: str, results: str) -> None:
    """--out, --results, --quiet and every CnnConfig and TrainConfig field."""
    parser.add_argument("--out", type=Path, default=Path(out), help="folder for the .h5 and .json")
    parser.add_argument("--results", type=Path, default=Path(results),
                        help="folder for the reports with the measured scores (default: %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a model or results an earlier run left in --out or --results")
    add_config_arguments(parser, CnnConfig)
    add_config_arguments(parser, TrainConfig)
