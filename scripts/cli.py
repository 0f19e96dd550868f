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

from core.config import add_config_arguments, config_from_args
from core.errors import TapelabError
from train.backprop_check import BackpropCheckConfig
from train.gradient_flow import GridConfig
from train.loop import TrainConfig

DATA_DIR_HELP = (
    "folder with local data files (for MNIST: mnist.npz or mnist/mnist.npz); "
    "without it Keras downloads and caches the data set"
)


def cmd_backprop_check(args) -> int:
    from core.io import ensure_writable_dir, save_json, write_atomic
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
    from core.io import ensure_writable_dir
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


def cmd_all(args) -> int:
    from core.io import ensure_writable_dir, write_atomic

    out = ensure_writable_dir(args.out)
    sections = [("Backprop check", "backprop_check.md", ["backprop-check", "--summary", "--out", str(out)])]
    gradient_args = ["gradients", "--out", str(out / "gradient_flow")] + (["--quiet"] if args.quiet else [])
    if args.data_dir:
        gradient_args += ["--data-dir", str(args.data_dir)]
    sections.append(("Gradient flow on MNIST", "gradient_flow/report.md", gradient_args))
    status = 0
    for _, _, command in sections:
        print(f"== tapelab {' '.join(command)}", flush=True)
        status = max(status, main(command))
    lines = ["# tapelab results", "", f"Produced by `tapelab {' '.join(sys.argv[1:]) or 'all'}`.", ""]
    lines += [f"- [{title}]({path}): `tapelab {' '.join(command)}`" for title, path, command in sections]
    print(f"report: {write_atomic(out / 'REPORT.md', chr(10).join(lines) + chr(10))}")
    return status


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

    everything = commands.add_parser("all", help="the main job: every experiment, then REPORT.md",
                                     description="Run every experiment with its defaults and write REPORT.md.")
    everything.add_argument("--data-dir", type=Path, help=DATA_DIR_HELP)
    everything.add_argument("--out", type=Path, default=Path("results"), help="results folder")
    everything.add_argument("--quiet", action="store_true", help="no progress bars")
    everything.set_defaults(run=cmd_all)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
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
