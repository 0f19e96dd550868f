"""Command-line options shared by the commands that train a CNN."""

from pathlib import Path

from core.config import add_config_arguments
from train.classifier import CnnConfig
from train.config import TrainConfig


def add_training_options(parser, out: str, results: str) -> None:
    """--out, --results, --quiet and every CnnConfig and TrainConfig field."""
    parser.add_argument("--out", type=Path, default=Path(out), help="folder for the .h5 and .json")
    parser.add_argument("--results", type=Path, default=Path(results),
                        help="folder for the summary (.json and .md) with the measured scores")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_config_arguments(parser, CnnConfig)
    add_config_arguments(parser, TrainConfig)
