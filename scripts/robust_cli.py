"""`tapelab robust`: train an adversarially robust CNN and validate it against the standard one."""

import sys
from pathlib import Path

from attacks.generator import GeneratorConfig
from attacks.robust import RobustConfig, ValidationConfig
from core.config import add_config_arguments, config_from_args
from core.io import RunFolder, ensure_writable_dir
from scripts.options import DATA_DIR_HELP, add_training_options
from train.classifier import CnnConfig
from train.config import TrainConfig


def cmd_robust(args) -> int:
    from attacks.robust import TrainingAttack
    from attacks.robust_experiment import attack_pairs, run_robust_experiment, write_robust_report
    from core.io import load_json
    from core.models import load_model_file
    from core.shipped import shipped_model
    from train.classifier import load_dataset, train_classifier, write_classifier_summary

    cnn, train_config = config_from_args(CnnConfig, args), config_from_args(TrainConfig, args)
    robust, validation = config_from_args(RobustConfig, args), config_from_args(ValidationConfig, args)
    generator = config_from_args(GeneratorConfig, args)
    dataset = args.dataset
    out = Path(str(args.results).replace("<dataset>", dataset))
    attack_results = args.attack_results or Path("runs") / f"attack_{dataset}" / "results.json"
    attack_pairs(attack_results)  # fail before training, not after
    robust_path = args.out / f"{dataset}_robust.h5"
    with RunFolder(out, "results.json", args.overwrite) as run:
        data = load_dataset(dataset, args.data_dir)
        shape, classes = data.x_test.shape[1:], data.num_classes
        standard = load_model_file(args.standard_model or shipped_model(f"{dataset}_cnn"), shape, classes)
        if args.retrain or not robust_path.exists():
            summary = train_classifier(dataset, data, cnn, train_config, ensure_writable_dir(args.out),
                                       progress=not args.quiet, model_name=f"{dataset}_robust",
                                       perturb=TrainingAttack(robust), command=args.command)
            write_classifier_summary(summary, run.staging)
        training = load_json(robust_path.with_suffix(".json"))
        models = {"standard": standard, "robust": load_model_file(robust_path, shape, classes)}
        results = run_robust_experiment(models, data, dataset, validation, generator, attack_results, run.staging,
                                        robust, training, progress=not args.quiet, command=args.command)
        write_robust_report(run.staging)
    print(f"report: {out / 'report.md'}")
    failed = [name for name, model in results["models"].items() if not model["passed"]]
    if failed:
        print(f"tapelab robust: gradient-masking checks failed for {', '.join(failed)}; see the report",
              file=sys.stderr)
    return 1 if failed else 0


def add_robust_parser(commands) -> None:
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
    robust.set_defaults(run=cmd_robust)
