"""`tapelab`: the command line. Each subcommand parses its options and calls the library.

    tapelab --help
    tapelab all --data-dir ../shared/datasets --out results
"""

import argparse
import os
import sys
from pathlib import Path

# TensorFlow's C++ start-up chatter hides our own output; errors still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from attacks.experiment import AttackConfig
from attacks.generator import GeneratorConfig
from core.config import add_config_arguments, config_from_args
from core.errors import TapelabError
from core.io import ensure_writable_dir
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
        out = ensure_writable_dir(args.out)
        save_json(out / "backprop_check.json", result)
        command = " ".join(["tapelab", *sys.argv[1:]])
        title = "# Backprop check: hand-written gradients against tf.GradientTape (float64)"
        header = f"{title}\n\nProduced by `{command}`.\n\n"
        write_atomic(out / "backprop_check.md", header + format_backprop_check(result))
    return 0 if result["passed"] else 1


def cmd_gradients(args) -> int:
    from core.data import load_mnist
    from train.gradient_flow import run_grid
    from train.gradient_flow_report import write_report

    grid, train_config = config_from_args(GridConfig, args), config_from_args(TrainConfig, args)
    out = ensure_writable_dir(args.out)
    results = run_grid(load_mnist(args.data_dir), grid, train_config, out, progress=not args.quiet)
    print(f"report: {write_report(results, out)}")
    return 0


def cmd_report(args) -> int:
    from train.gradient_flow import load_results
    from train.gradient_flow_report import write_report

    print(f"report: {write_report(load_results(args.out), args.out)}")
    return 0


def cmd_curves(args) -> int:
    from train.curves import load_summaries, plot_classifier_curves

    print(f"learning curves: {plot_classifier_curves(load_summaries(args.summaries), args.out)}")
    return 0


def cmd_all(args) -> int:
    from core.io import write_atomic

    out = ensure_writable_dir(args.out)
    data_args = ["--data-dir", str(args.data_dir)] if args.data_dir else []
    quiet = ["--quiet"] if args.quiet else []
    sections = [
        ("Backprop check", "backprop_check.md", ["backprop-check", "--summary", "--out", str(out)]),
        ("Gradient flow on MNIST", "gradient_flow/report.md",
         ["gradients", "--out", str(out / "gradient_flow"), *quiet, *data_args]),
    ]
    for dataset in ("mnist", "cifar10"):
        model = args.models / f"{dataset}_cnn.h5"
        if args.retrain or not model.exists():
            sections.append((f"CNN classifier, {dataset}", f"classifiers/{dataset}_cnn.md",
                             ["classifier", "--dataset", dataset, "--out", str(args.models),
                              "--results", str(out / "classifiers"), *quiet, *data_args]))
        sections.append((f"Adversarial examples, {dataset}", f"attack_{dataset}/report.md",
                         ["attack", "--dataset", dataset, "--model", str(model),
                          "--out", str(out / f"attack_{dataset}"), *data_args]))
        sections.append((f"Adversarial robustness, {dataset}", f"robust_{dataset}/report.md",
                         ["robust", "--dataset", dataset, "--out", str(args.models), "--results",
                          str(out / f"robust_{dataset}"), "--attack-results", str(out / f"attack_{dataset}" /
                                                                                  "results.json"),
                          *(["--retrain"] if args.retrain else []), *quiet, *data_args]))
    from train.fer import SHIPPED_MODEL

    if not SHIPPED_MODEL.exists():
        print(f"note: no emotion model at {SHIPPED_MODEL}; train one with `tapelab fer train` to evaluate it here")
    elif args.data_dir:  # FER2013 has no download: evaluate the shipped model only where the data is
        sections.append(("FER2013 emotion classifier (shipped model), PublicTest", "fer/eval_test.md",
                         ["fer", "eval", "--data", str(args.data_dir), "--out", str(out / "fer")]))
        sections.append(("FER2013 emotion classifier, PublicTest, ten-crop averaging", "fer/eval_test_tta.md",
                         ["fer", "eval", "--data", str(args.data_dir), "--out", str(out / "fer"), "--tta"]))
    status = 0
    for _, _, command in [] if args.index_only else sections:
        print(f"== tapelab {' '.join(command)}", flush=True)
        status = max(status, main(command))
    lines = ["# tapelab results", "", f"Produced by `tapelab {' '.join(sys.argv[1:]) or 'all'}`.", ""]
    lines += [f"- [{title}]({path}): `tapelab {' '.join(command)}`" for title, path, command in sections
              if (out / path).exists()]
    lines += ["", "Classifiers used by the attacks: [classifiers/](classifiers/) (each `.md` names its command)."]
    print(f"report: {write_atomic(out / 'REPORT.md', chr(10).join(lines) + chr(10))}")
    return status


def cmd_classifier(args) -> int:
    from train.classifier import load_dataset, train_classifier, write_classifier_summary

    cnn, train_config = config_from_args(CnnConfig, args), config_from_args(TrainConfig, args)
    ensure_writable_dir(args.out)
    data = load_dataset(args.dataset, args.data_dir)
    summary = train_classifier(args.dataset, data, cnn, train_config, args.out, progress=not args.quiet)
    write_classifier_summary(summary, ensure_writable_dir(args.results))
    print(f"{args.out / summary['model']}: test accuracy {summary['test_accuracy']:.4f} "
          f"after {summary['train_seconds']:.0f} s of training")
    return 0


def cmd_attack(args) -> int:
    from attacks.experiment import run_attack_experiment, write_attack_report
    from core.models import load_model_file
    from train.classifier import load_dataset

    attack, generator = config_from_args(AttackConfig, args), config_from_args(GeneratorConfig, args)
    out = ensure_writable_dir(args.out or Path("results") / f"attack_{args.dataset}")
    data = load_dataset(args.dataset, args.data_dir)
    model_path = args.model or Path("runs/models") / f"{args.dataset}_cnn.h5"
    classifier = load_model_file(model_path, data.x_test.shape[1:], data.num_classes)
    run_attack_experiment(classifier, data, args.dataset, attack, generator, out)
    print(f"report: {write_attack_report(out)}")
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
    check.set_defaults(run=cmd_backprop_check)

    gradients = commands.add_parser("gradients", help="the depth x activation gradient-flow grid on MNIST",
                                    description="Train MLPs for every depth and activation with the tape loop, "
                                    "capture per-layer max gradients, write tables, plots and a report.")
    gradients.add_argument("--data-dir", type=Path, help=DATA_DIR_HELP)
    gradients.add_argument("--out", type=Path, default=Path("results/gradient_flow"), help="results folder")
    gradients.add_argument("--quiet", action="store_true", help="no progress bars")
    add_config_arguments(gradients, GridConfig)
    add_config_arguments(gradients, TrainConfig)
    gradients.set_defaults(run=cmd_gradients, evals_per_epoch=4)

    report = commands.add_parser("report", help="redraw the gradient-flow tables, plots and report",
                                 description="Redraw tables, plots and report.md from a saved results.json.")
    report.add_argument("--out", type=Path, default=Path("results/gradient_flow"), help="folder with results.json")
    report.set_defaults(run=cmd_report)

    classifier = commands.add_parser("classifier", help="train the CNN classifier of a data set, save it as .h5",
                                     description="Train the data set's CNN with the tape loop and save "
                                     "<dataset>_cnn.h5 and <dataset>_cnn.json. Defaults are the data set's preset.")
    classifier.add_argument("--dataset", choices=["mnist", "cifar10"], default="mnist", help="which data set")
    classifier.add_argument("--data-dir", type=Path, help=DATA_DIR_HELP)
    add_training_options(classifier, out="runs/models", results="results/classifiers")
    classifier.set_defaults(run=cmd_classifier)

    attack = commands.add_parser("attack", help="generator-built adversarial examples against baselines",
                                 description="Build adversarial examples for every target class with the simple "
                                 "generator f(w)=x, compare with targeted FGSM and PGD on the same pairs, and write "
                                 "grids, tables and a report. Defaults are the data set's preset.")
    attack.add_argument("--dataset", choices=["mnist", "cifar10"], default="mnist", help="which data set")
    attack.add_argument("--data-dir", type=Path, help=DATA_DIR_HELP)
    attack.add_argument("--model", type=Path, help="classifier .h5 (default: runs/models/<dataset>_cnn.h5)")
    attack.add_argument("--out", type=Path, help="results folder (default: results/attack_<dataset>)")
    add_config_arguments(attack, AttackConfig)
    add_config_arguments(attack, GeneratorConfig)
    attack.set_defaults(run=cmd_attack)

    curves = commands.add_parser("curves", help="plot the learning curves of trained classifiers side by side",
                                 description="Draw loss and accuracy against epochs from the summaries (.json) "
                                 "that `tapelab classifier`, `tapelab fer train` and `tapelab robust` write.")
    curves.add_argument("summaries", type=Path, nargs="+", help="training summaries (.json), one curve each")
    curves.add_argument("--out", type=Path, default=Path("learning_curves.png"), help="PNG to write")
    curves.set_defaults(run=cmd_curves)

    add_fer_parser(commands)
    add_robust_parser(commands)
    add_realtime_parser(commands)

    everything = commands.add_parser("all", help="the main job: every experiment, then REPORT.md",
                                     description="Run every experiment with its defaults and write REPORT.md.")
    everything.add_argument("--data-dir", type=Path, help=DATA_DIR_HELP)
    everything.add_argument("--out", type=Path, default=Path("results"), help="results folder")
    everything.add_argument("--models", type=Path, default=Path("runs/models"),
                            help="where trained classifiers are kept and reused (default: runs/models)")
    everything.add_argument("--retrain", action="store_true", help="train the classifiers even if they exist")
    everything.add_argument("--quiet", action="store_true", help="no progress bars")
    everything.add_argument("--index-only", action="store_true",
                            help="run nothing; rewrite REPORT.md from the section reports already in --out")
    everything.set_defaults(run=cmd_all)
    parser.subparsers = commands.choices
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    _apply_preset(parser, argv)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except TapelabError as error:
        print(f"tapelab: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tapelab: interrupted; finished runs are saved and a rerun resumes from them", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
