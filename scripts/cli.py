"""`tapelab`: the command line. Each subcommand turns its options into an experiment's spec and calls the library.

    tapelab --help
    tapelab all --data-dir ../shared/datasets --out results

Commands with presets (classifier, attack, robust, fer train) take their defaults from the named spec of the
data set that `--dataset` names; options are never abbreviated, and unknown ones are rejected.
"""

import argparse
import shlex
import sys
from pathlib import Path

from tapelab.attacks.experiment import MNIST_ATTACK, AttackConfig, AttackSpec
from tapelab.attacks.experiment import PRESETS as ATTACK_PRESETS
from tapelab.attacks.generator import GeneratorConfig
from tapelab.core.config import add_config_arguments, config_from_args, spec_defaults, spec_from_args
from tapelab.core.errors import TapelabError
from tapelab.core.io import RunFolder, ensure_writable_dir, refuse_to_replace
from tapelab.scripts.fer_cli import add_fer_parser
from tapelab.scripts.options import (
    DATA_DIR_HELP,
    StrictParser,
    add_strategy_option,
    add_training_options,
    preset,
    training_setup,
)
from tapelab.scripts.realtime_cli import add_realtime_parser
from tapelab.scripts.robust_cli import add_robust_parser
from tapelab.train.backprop_check import BackpropCheckConfig
from tapelab.train.classifier import MNIST_CNN, ClassifierSpec
from tapelab.train.classifier import PRESETS as CLASSIFIER_PRESETS
from tapelab.train.config import TrainConfig
from tapelab.train.gradient_flow import GRADIENT_FLOW, GridConfig, GridSpec


def cmd_backprop_check(args) -> int:
    from tapelab.train.backprop_check import format_backprop_check, run_backprop_check, write_backprop_check

    result = run_backprop_check(config_from_args(BackpropCheckConfig, args))
    print(format_backprop_check(result, per_layer=not args.summary))
    if args.out:
        with RunFolder(args.out, "backprop_check.json", args.overwrite) as run:
            write_backprop_check(result, run.staging, args.command)
    return 0 if result["passed"] else 1


def cmd_gradients(args) -> int:
    from tapelab.train.gradient_flow import run_gradient_flow

    strategy = training_setup(args)
    spec = spec_from_args(GridSpec, args)
    with RunFolder(args.out, "results.json", args.overwrite) as run:  # finished models resume from run.staging
        run_gradient_flow(spec, run.staging, args.command, data_dir=args.data_dir, progress=not args.quiet,
                          strategy=strategy)
    print(f"report: {args.out / 'report.md'}")
    return 0


def cmd_report(args) -> int:
    from tapelab.core.io import load_json
    from tapelab.train.gradient_flow import load_results, run_key
    from tapelab.train.gradient_flow_report import write_report

    # Another experiment's results.json, or a cut or edited one, must not end in a traceback halfway through
    # drawing: check its shape first, then that every run of the grid it names is there.
    path = args.out / "results.json"
    found = load_json(path)
    settings = found.get("settings") if isinstance(found, dict) else None
    not_ours = (f"{path} is not a gradient-flow results file ({{}}); `tapelab gradients --out {args.out}` "
                "writes one")
    if not (isinstance(settings, dict) and isinstance(found.get("runs"), dict)
            and all(isinstance(settings.get(part), dict) for part in ("grid", "train"))):
        raise TapelabError(not_ours.format('it needs "settings" with "grid" and "train", and "runs"'))
    results = load_results(args.out)
    grid = results["settings"]["grid"]
    try:
        missing = [key for key in (run_key(activation, depth, seed) for seed in grid["seeds"]
                                   for activation in grid["activations"] for depth in grid["depths"])
                   if not isinstance(results["runs"].get(key), dict)]
    except (KeyError, TypeError):
        raise TapelabError(not_ours.format("its grid needs lists of seeds, activations and depths")) from None
    if missing:
        raise TapelabError(not_ours.format(f"runs {', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''} "
                                           "of its grid are missing"))
    print(f"report: {write_report(results, args.out)}")
    return 0


def cmd_curves(args) -> int:
    from tapelab.train.curves import check_figure_path, load_summaries, plot_classifier_curves

    out = check_figure_path(args.out)  # before any summary is read
    print(f"learning curves: {plot_classifier_curves(load_summaries(args.summaries), out)}")
    return 0


def cmd_all(args) -> int:
    from tapelab.scripts.lab_report import write_lab_report
    from tapelab.scripts.main_job import plan_stages, run_stages

    out = ensure_writable_dir(args.out)
    if not args.index_only:
        stages = plan_stages(args.data_dir, out, args.retrain, args.models, args.quiet)
        record = run_stages(stages, run_command_line, args.command, out / "main_job.json")
    print(f"report: {write_lab_report(out)}")
    return 0 if args.index_only else record["status"]


def cmd_ship(args) -> int:
    from tapelab.core.shipped import MODELS_DIR, ship_model

    for model in args.models:
        print(f"shipped: {ship_model(model, args.to or MODELS_DIR)}")
    return 0


def cmd_classifier(args) -> int:
    from tapelab.train.classifier import run_classifier

    strategy = training_setup(args)
    spec = spec_from_args(ClassifierSpec, args)
    name = f"{spec.dataset}_cnn"
    refuse_to_replace(args.out / f"{name}.h5", args.overwrite)
    with RunFolder(args.results, f"{name}.json", args.overwrite) as run:
        summary = run_classifier(spec, run.staging, args.command, models_dir=args.out, data_dir=args.data_dir,
                                 progress=not args.quiet, strategy=strategy)
    print(f"{args.out / summary['model']}: test accuracy {summary['test_accuracy']:.4f} "
          f"after {summary['train_seconds']:.0f} s of training")
    return 0


def cmd_attack(args) -> int:
    from tapelab.attacks.experiment import run_attack
    from tapelab.core.shipped import shipped_model

    spec = spec_from_args(AttackSpec, args)
    out = args.out or Path("runs") / f"attack_{spec.dataset}"
    model_path = args.model or shipped_model(f"{spec.dataset}_cnn")
    with RunFolder(out, "results.json", args.overwrite) as run:
        run_attack(spec, run.staging, args.command, model_path=model_path, data_dir=args.data_dir)
    print(f"report: {out / 'report.md'}")
    return 0


def build_parser(argv=()) -> argparse.ArgumentParser:
    """The parser of every command. The defaults of a command with presets are the preset of the data set that
    `argv`, the command line to be parsed, names (`scripts.options.preset`), so `--help` shows them too."""
    argv = list(argv)
    parser = StrictParser(prog="tapelab", description="See what model.fit hides.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    check = commands.add_parser("backprop-check", help="hand-written backprop against tf.GradientTape (float64)",
                                description="Compare hand-written MLP backprop with tf.GradientTape in float64 "
                                "and sample each activation derivative's range. Exits 1 if a check fails.")
    add_config_arguments(check, BackpropCheckConfig)
    check.add_argument("--summary", action="store_true", help="one line per model instead of per layer")
    check.add_argument("--out", type=Path, help="also write backprop_check.json and .md into this folder")
    check.add_argument("--overwrite", action="store_true", help="replace the check's files already in --out")
    check.set_defaults(run=cmd_backprop_check)

    gradients = commands.add_parser("gradients", help="the depth x activation gradient-flow grid on MNIST",
                                    description="Train MLPs for every depth and activation with the tape loop, "
                                    "capture per-layer max gradients, write tables, plots and a report.")
    gradients.add_argument("--data-dir", type=Path, help=DATA_DIR_HELP)
    gradients.add_argument("--out", type=Path, default=Path("runs/gradient_flow"), help="results folder")
    gradients.add_argument("--overwrite", action="store_true", help="replace the results of an earlier run in --out")
    add_strategy_option(gradients)
    gradients.add_argument("--quiet", action="store_true", help="no progress bars")
    add_config_arguments(gradients, GridConfig)
    add_config_arguments(gradients, TrainConfig)
    gradients.set_defaults(run=cmd_gradients, **spec_defaults(GRADIENT_FLOW))

    report = commands.add_parser("report", help="redraw the gradient-flow tables, plots and report",
                                 description="Redraw tables, plots and report.md from a saved results.json.")
    report.add_argument("--out", type=Path, default=Path("results/gradient_flow"), help="folder with results.json")
    report.set_defaults(run=cmd_report)

    classifier = commands.add_parser("classifier", help="train the CNN classifier of a data set, save it as .h5",
                                     description="Train the data set's CNN with the tape loop and save "
                                     "<dataset>_cnn.h5 and <dataset>_cnn.json. Defaults are the data set's preset.")
    classifier.add_argument("--dataset", choices=["mnist", "cifar10"], default="mnist", help="which data set")
    classifier.add_argument("--data-dir", type=Path, help=DATA_DIR_HELP)
    add_training_options(classifier, out="runs/models", results="runs/classifiers")
    classifier.set_defaults(run=cmd_classifier, **spec_defaults(preset(argv, ["classifier"], CLASSIFIER_PRESETS,
                                                                       MNIST_CNN)))

    attack = commands.add_parser("attack", help="generator-built adversarial examples against baselines",
                                 description="Build adversarial examples for every target class with the simple "
                                 "generator f(w)=x, compare with targeted FGSM and PGD on the same pairs, and write "
                                 "grids, tables and a report. Defaults are the data set's preset.")
    attack.add_argument("--dataset", choices=["mnist", "cifar10"], default="mnist", help="which data set")
    attack.add_argument("--data-dir", type=Path, help=DATA_DIR_HELP)
    attack.add_argument("--model", type=Path, help="classifier .h5 (default: the shipped models/<dataset>_cnn.h5)")
    attack.add_argument("--out", type=Path, help="results folder (default: runs/attack_<dataset>)")
    attack.add_argument("--overwrite", action="store_true", help="replace the results of an earlier run in --out")
    add_config_arguments(attack, AttackConfig)
    add_config_arguments(attack, GeneratorConfig)
    attack.set_defaults(run=cmd_attack, **spec_defaults(preset(argv, ["attack"], ATTACK_PRESETS, MNIST_ATTACK)))

    curves = commands.add_parser("curves", help="plot the learning curves of trained classifiers side by side",
                                 description="Draw loss and accuracy against epochs from the summaries (.json) "
                                 "that `tapelab classifier`, `tapelab fer train` and `tapelab robust` write.")
    curves.add_argument("summaries", type=Path, nargs="+", help="training summaries (.json), one curve each")
    curves.add_argument("--out", type=Path, default=Path("learning_curves.png"), help="PNG to write")
    curves.set_defaults(run=cmd_curves)

    ship = commands.add_parser("ship", help="make trained models the shipped ones (models/)",
                               description="Copy each trained .h5 and its JSON (which must name the command, the "
                               "training time and the data fingerprint) into the shipped models folder, replacing "
                               "the model of the same name there. Training never does this by itself.")
    ship.add_argument("models", type=Path, nargs="+", help="trained .h5 files (their .json beside them)")
    ship.add_argument("--to", type=Path, help="folder to ship into (default: the package's models/)")
    ship.set_defaults(run=cmd_ship)

    add_fer_parser(commands)
    add_robust_parser(commands, argv)
    add_realtime_parser(commands)

    everything = commands.add_parser(
        "all", help="the main job: every experiment, then REPORT.md",
        description="Run every experiment with its defaults, on the shipped models (models/), and write REPORT.md, "
        "the lab report. With --retrain every classifier and robust model is trained first.")
    everything.add_argument("--data-dir", type=Path, help=DATA_DIR_HELP)
    everything.add_argument("--out", type=Path, default=Path("results"), help="results folder")
    everything.add_argument("--retrain", action="store_true",
                            help="train every model from scratch (into --models) instead of using the shipped ones")
    everything.add_argument("--models", type=Path, default=Path("runs/models"),
                            help="with --retrain: where the trained models go (default: runs/models)")
    everything.add_argument("--quiet", action="store_true", help="no progress bars")
    everything.add_argument("--index-only", action="store_true",
                            help="run nothing; rewrite REPORT.md from the results already in --out")
    everything.set_defaults(run=cmd_all)
    return parser


def parse_args(argv) -> argparse.Namespace:
    """The options of the command line `argv` (without the program name); `command` is it as typed."""
    argv = list(argv)
    args = build_parser(argv).parse_args(argv)
    args.command = shlex.join(["tapelab", *argv])  # recorded beside each result as the command that made it
    return args


def run_command_line(argv) -> int:
    """Parse `argv` and run its command in this process; its exit status. `tapelab all` runs its stages so."""
    args = parse_args(argv)
    try:
        return args.run(args)
    except TapelabError as error:
        print(f"tapelab: error: {error}", file=sys.stderr)
        return 2
    except OSError as error:  # a full disk, a read-only folder: what was there before is left as it was
        where = f" ({error.filename})" if error.filename else ""
        print(f"tapelab: error: {error.strerror or error}{where}; results already there were left as they were; "
              "free space or choose another output folder and run again", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tapelab: interrupted; finished runs are saved and a rerun resumes from them", file=sys.stderr)
        return 130


def main(argv=None) -> int:
    """The `tapelab` command: `argv` or the process's own arguments."""
    return run_command_line(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
