"""`tapelab robust`: train an adversarially robust CNN and validate it against the standard one."""

import sys
from pathlib import Path

from tapelab.attacks.generator import GeneratorConfig
from tapelab.attacks.robust import RobustConfig, ValidationConfig
from tapelab.attacks.robust_experiment import MNIST_ROBUST, PRESETS, RobustSpec
from tapelab.core.config import add_config_arguments, spec_defaults, spec_from_args
from tapelab.core.io import RunFolder
from tapelab.scripts.options import DATA_DIR_HELP, add_training_options, preset, training_setup


def cmd_robust(args) -> int:
    from tapelab.attacks.robust_experiment import run_robust

    strategy = training_setup(args)
    spec = spec_from_args(RobustSpec, args)
    out = Path(str(args.results).replace("<dataset>", spec.dataset))
    attack_results = args.attack_results or Path("runs") / f"attack_{spec.dataset}" / "results.json"
    with RunFolder(out, "results.json", args.overwrite) as run:
        results = run_robust(spec, run.staging, args.command, models_dir=args.out, attack_results=attack_results,
                             standard_model=args.standard_model, retrain=args.retrain, data_dir=args.data_dir,
                             progress=not args.quiet, strategy=strategy)
    print(f"report: {out / 'report.md'}")
    failed = [name for name, model in results["models"].items() if not model["passed"]]
    if failed:
        print(f"tapelab robust: gradient-masking checks failed for {', '.join(failed)}; see the report",
              file=sys.stderr)
    return 1 if failed else 0


def add_robust_parser(commands, argv: list) -> None:
    """Add `robust`, its defaults the preset of the data set that `argv` names (`scripts.options.preset`)."""
    robust = commands.add_parser(
        "robust", help="adversarially trained CNN against the standard one",
        description="Train the data set's CNN with an attack on every batch (PGD, FGSM with a random start, or "
        "N-FGSM), then validate it and the standard model side by side: clean, FGSM and PGD accuracy, checks against "
        "gradient masking, and the generator attack on the adversarial experiment's pairs. The robust model is "
        "trained once and reused (--retrain trains it again); an interrupted training resumes. Defaults are the "
        "data set's preset.")
    robust.add_argument("--dataset", choices=["mnist", "cifar10"], default="mnist", help="which data set")
    robust.add_argument("--data-dir", type=Path, help=DATA_DIR_HELP)
    robust.add_argument("--standard-model", type=Path,
                        help="standard .h5 (default: the shipped models/<dataset>_cnn.h5)")
    robust.add_argument("--attack-results", type=Path,
                        help="results.json of `tapelab attack`, whose pairs are attacked "
                        "(default: runs/attack_<dataset>/results.json)")
    robust.add_argument("--retrain", action="store_true", help="train the robust model even if it exists")
    add_training_options(robust, out="runs/models", results="runs/robust_<dataset>")
    add_config_arguments(robust, RobustConfig)
    add_config_arguments(robust, ValidationConfig)
    add_config_arguments(robust, GeneratorConfig)
    robust.set_defaults(run=cmd_robust, **spec_defaults(preset(argv, ["robust"], PRESETS, MNIST_ROBUST)))
