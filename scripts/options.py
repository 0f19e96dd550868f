"""Command-line options shared by the commands that train a CNN, and the choice of a command's preset."""

import argparse
from pathlib import Path

from tapelab.core.config import add_config_arguments
from tapelab.train.classifier import CnnConfig
from tapelab.train.config import TrainConfig
from tapelab.train.strategy import STRATEGIES

DATA_DIR_HELP = (
    "folder with local data files (for MNIST: mnist.npz or mnist/mnist.npz); "
    "without it Keras downloads and caches the data set"
)


class StrictParser(argparse.ArgumentParser):
    """An ArgumentParser that never takes an abbreviation for an option (`--datas` is not `--dataset`: argparse
    rejects it as unrecognized); the subcommand parsers it makes are StrictParsers too."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, allow_abbrev=False, **kwargs)


def add_training_options(parser, out: str, results: str) -> None:
    """--out, --results, --quiet and every CnnConfig and TrainConfig field."""
    parser.add_argument("--out", type=Path, default=Path(out), help="folder for the .h5 and .json")
    parser.add_argument("--results", type=Path, default=Path(results),
                        help="folder for the reports with the measured scores (default: %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a model or results an earlier run left in --out or --results")
    add_strategy_option(parser)
    add_config_arguments(parser, CnnConfig)
    add_config_arguments(parser, TrainConfig)


def add_strategy_option(parser) -> None:
    parser.add_argument("--strategy", choices=STRATEGIES, default="default",
                        help="default: one device; mirrored: every device of this machine; multiworker: the "
                        "machines TF_CONFIG names (docs/distributed.md)")


def training_setup(args):
    """The run's `tf.distribute.Strategy`, made before any other TensorFlow work (multi-worker setup must come
    first); under several workers, every worker but the chief writes into `<folder>.worker<i>`."""
    from tapelab.train.strategy import make_strategy, worker_path

    strategy = make_strategy(args.strategy)
    for name in ("out", "results"):
        if getattr(args, name, None) is not None:
            setattr(args, name, worker_path(getattr(args, name), strategy))
    return strategy


def preset(argv: list, command: list, presets: dict, default):
    """The spec whose values are the defaults of `command` (such as ["robust"]) when `argv` is parsed: the preset
    in `presets` (by data set) of the data set that `--dataset` names after `command` in `argv`, else `default`.

    A first pass of argparse itself reads `--dataset`: the exact option name, never an abbreviation (the full
    parser then rejects `--datas` as unrecognized), the last one given. A data set without a preset, or a
    `--dataset` without a value, gives `default`, and the full parser then says what is wrong.
    """
    if argv[:len(command)] != command:
        return default
    probe = StrictParser(add_help=False, exit_on_error=False)
    probe.add_argument("--dataset", default=default.dataset)
    try:
        dataset = probe.parse_known_args(argv[len(command):])[0].dataset
    except argparse.ArgumentError:
        return default
    return presets.get(dataset, default)
