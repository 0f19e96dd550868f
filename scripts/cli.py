"""`tapelab`: the command line. Each subcommand parses its options and calls the library.

    tapelab --help
    tapelab all --data-dir ../shared/datasets --out results
"""

import argparse
import os
import shlex
import sys
from pathlib import Path

# TensorFlow's C++ start-up chatter hides our own output; errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from attacks.experiment import AttackConfig
from attacks.generator import GeneratorConfig
from core.config import add_config_arguments, config_from_args
from core.errors import TapelabError
from core.io import RunFolder, ensure_writable_dir, refuse_to_replace
from scripts.fer_cli import add_fer_parser
from scripts.options import DATA_DIR_HELP, add_training_options
from scripts.realtime_cli import add_realtime_parser
from scripts.robust_cli import add_robust_parser
from train.backprop_check import BackpropCheckConfig
from train.classifier import CnnConfig
from train.config import TrainConfig
from train.gradient_flow import GridConfig


def cmd_backprop_check(args) -> int:
    from core.io import save_json, write_atomic
    from train.backprop_check import format_backprop_check, run_backprop_check

    result = run_backprop_check(config_from_args(BackpropCheckConfig, args))
    print(format_backprop_check(result, per_layer=not args.summary))
    if args.out:
        with RunFolder(args.out, "backprop_check.json", args.overwrite) as run:
            save_json(run.staging / "backprop_check.json", {**result, "command": args.command})
            title = "# Backprop check: hand-written gradients against tf.GradientTape (float64)"
            header = f"{title}\n\nProduced by `{args.command}`.\n\n"
            write_atomic(run.staging / "backprop_check.md", header + format_backprop_check(result))
    return 0 if result["passed"] else 1


def cmd_gradients(args) -> int:
    from core.data import load_mnist
    from train.gradient_flow import run_grid
    from train.gradient_flow_report import write_report

    grid, train_config = config_from_args(GridConfig, args), config_from_args(TrainConfig, args)
    with RunFolder(args.out, "results.json", args.overwrite) as run:  # finished models resume from run.staging
        results = run_grid(load_mnist(args.data_dir), grid, train_config, run.staging, command=args.command,
                           progress=not args.quiet)
        write_report(results, run.staging)
    print(f"report: {args.out / 'report.md'}")
    return 0


def cmd_report(args) -> int:
    from core.io import load_json
    from train.gradient_flow import load_results, run_key
    from train.gradient_flow_report import write_report

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
    from train.curves import check_figure_path, load_summaries, plot_classifier_curves

    out = check_figure_path(args.out)  # before any summary is read
    print(f"learning curves: {plot_classifier_curves(load_summaries(args.summaries), out)}")
    return 0


def cmd_all(args) -> int:
    from scripts.lab_report import write_lab_report
    from scripts.main_job import plan_stages, run_stages

    out = ensure_writable_dir(args.out)
    if not args.index_only:
        stages = plan_stages(args.data_dir, out, args.retrain, args.models, args.quiet)
        record = run_stages(stages, main, args.command, out / "main_job.json")
    print(f"report: {write_lab_report(out)}")
    return 0 if args.index_only else record["status"]


def cmd_ship(args) -> int:
    from core.shipped import MODELS_DIR, ship_model

    for model in args.models:
        print(f"shipped: {ship_model(model, args.to or MODELS_DIR)}")
    return 0


def cmd_classifier(args) -> int:
    from train.classifier import load_dataset, train_classifier, write_classifier_summary

    cnn, train_config = config_from_args(CnnConfig, args), config_from_args(TrainConfig, args)
    name = f"{args.dataset}_cnn"
    refuse_to_replace(args.out / f"{name}.h5", args.overwrite)
    with RunFolder(args.results, f"{name}.json", args.overwrite) as run:
        data = load_dataset(args.dataset, args.data_dir)
        summary = train_classifier(args.dataset, data, cnn, train_config, ensure_writable_dir(args.out),
                                   progress=not args.quiet, command=args.command)
        write_classifier_summary(summary, run.staging)
    print(f"{args.out / summary['model']}: test accuracy {summary['test_accuracy']:.4f} "
          f"after {summary['train_seconds']:.0f} s of training")
    return 0


def cmd_attack(args) -> int:
    from attacks.experiment import run_attack_experiment, write_attack_report
    from core.models import load_model_file
    from core.shipped import model_record, shipped_model
    from train.classifier import load_dataset

    attack, generator = config_from_args(AttackConfig, args), config_from_args(GeneratorConfig, args)
    out = args.out or Path("runs") / f"attack_{args.dataset}"
    model_path = args.model or shipped_model(f"{args.dataset}_cnn")
    with RunFolder(out, "results.json", args.overwrite) as run:
        data = load_dataset(args.dataset, args.data_dir)
        classifier = load_model_file(model_path, data.x_test.shape[1:], data.num_classes)
        run_attack_experiment(classifier, data, args.dataset, attack, generator, run.staging, command=args.command,
                              classifier_record=model_record(model_path))
        write_attack_report(run.staging)
    print(f"report: {out / 'report.md'}")
    return 0


def _presets():
    from attacks.experiment import PRESETS as ATTACK_PRESETS
    from attacks.robust_experiment import PRESETS as ROBUST_PRESETS
    from train.classifier import PRESETS as CLASSIFIER_PRESETS

    return {"classifier": CLASSIFIER_PRESETS, "attack": ATTACK_PRESETS, "robust": ROBUST_PRESETS}


def _apply_preset(parser: argparse.ArgumentParser, argv) -> None:
    """Make the chosen data set's preset the defaults, so `--help` and parsing both show them."""
    import dataclasses

    argv = sys.argv[1:] if argv is None else list(argv)
    presets = _presets()
    if argv[:2] == ["fer", "train"]:
        target, configs = parser.subparsers["fer"].fer_actions["train"], presets["classifier"]["fer2013"]
    elif argv and argv[0] in presets:
        dataset = _option_value(argv, "--dataset") or "mnist"
        if dataset not in presets[argv[0]]:
            return  # argparse reports the bad choice
        target, configs = parser.subparsers[argv[0]], presets[argv[0]][dataset]
    else:
        return
    target.set_defaults(**{key: value for config in configs for key, value in dataclasses.asdict(config).items()})


def _option_value(argv, option):
    for index, arg in enumerate(argv):
        if arg == option and index + 1 < len(argv):
            return argv[index + 1]
        if arg.startswith(option + "="):
            return arg.split("=", 1)[1]
    return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tapelab", description="See what model.fit hides.")
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
    gradients.add_argument("--quiet", action="store_true", help="no progress bars")
    add_config_arguments(gradients, GridConfig)
    add_config_arguments(gradients, TrainConfig)
    # 8 curve points (and gradient-trace points) per epoch: 24 over 3 epochs plus the untrained net, one at 0.25.
    gradients.set_defaults(run=cmd_gradients, evals_per_epoch=8)

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
    classifier.set_defaults(run=cmd_classifier)

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
    attack.set_defaults(run=cmd_attack)

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
    add_robust_parser(commands)
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
    parser.subparsers = commands.choices
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    _apply_preset(parser, argv)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.command = shlex.join(["tapelab", *argv])  # recorded beside each result as the command that made it
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


if __name__ == "__main__":
    sys.exit(main())
