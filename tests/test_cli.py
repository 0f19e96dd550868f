import argparse
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tapelab.attacks.experiment import CIFAR10_ATTACK, MNIST_ATTACK, AttackSpec
from tapelab.attacks.experiment import PRESETS as ATTACK_PRESETS
from tapelab.attacks.robust_experiment import CIFAR10_ROBUST, MNIST_ROBUST, RobustSpec
from tapelab.attacks.robust_experiment import PRESETS as ROBUST_PRESETS
from tapelab.core.config import spec_from_args
from tapelab.scripts.cli import build_parser, main, parse_args, run_command_line
from tapelab.train.classifier import CIFAR10_CNN, FER2013_CNN, MNIST_CNN, ClassifierSpec
from tapelab.train.classifier import PRESETS as CLASSIFIER_PRESETS
from tapelab.train.curves import load_summaries
from tapelab.train.gradient_flow import GRADIENT_FLOW, GridSpec

SUBCOMMANDS = ["backprop-check", "gradients", "report", "classifier", "attack", "robust", "realtime", "curves", "all"]
FER_ACTIONS = ["train", "eval", "predict"]


def test_every_subcommand_has_help(capsys):
    for name in SUBCOMMANDS:
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        assert f"usage: tapelab {name}" in text and "--out" in text


def test_every_fer_action_has_help(capsys):
    for action in FER_ACTIONS:
        with pytest.raises(SystemExit) as exit_info:
            main(["fer", action, "--help"])
        assert exit_info.value.code == 0
        assert f"usage: tapelab fer {action}" in capsys.readouterr().out


def test_top_level_help_lists_subcommands():
    help_text = build_parser().format_help()
    for name in SUBCOMMANDS:
        assert name in help_text


def test_console_script_is_installed():
    """The `tapelab` command itself (what `pip install` put beside this Python), not `python -m`."""
    script = Path(sys.executable).parent / "tapelab"
    result = subprocess.run([str(script), "--help"], capture_output=True, text=True, cwd=Path(sys.executable).parent)
    assert result.returncode == 0 and "backprop-check" in result.stdout


def test_backprop_check_command_writes_files(tmp_path, capsys):
    status = main(["backprop-check", "--depths", "2", "--activations", "tanh,relu", "--batch-size", "8",
                   "--out", str(tmp_path)])
    assert status == 0
    out = capsys.readouterr().out
    assert "| tanh | 2 | 3 |" in out and "PASS" in out
    assert (tmp_path / "backprop_check.json").exists() and (tmp_path / "backprop_check.md").exists()


@pytest.mark.parametrize("argv, message", [
    (["gradients", "--depths", "5,0"], "every depth must be >= 1"),
    (["gradients", "--activations", "swish"], "unknown activation 'swish'"),
    (["gradients", "--data-dir", "/nonexistent/data"], "data folder /nonexistent/data does not exist"),
    (["report", "--out", "/nonexistent/results"], "results.json not found; run the experiment"),
])
def test_bad_input_gives_one_error_line(argv, message, capsys, tmp_path):
    if argv[0] == "gradients":
        argv = [*argv, "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tapelab: error: ") and message in err and "\n" not in err


def test_mistyped_option_is_rejected(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["gradients", "--depths", "five"])
    assert exit_info.value.code == 2
    assert "invalid" in capsys.readouterr().err


def test_classifier_then_attack_end_to_end(mnist_npz, tmp_path, capsys):
    data = ["--data-dir", str(mnist_npz.parent)]
    assert main(["classifier", "--dataset", "mnist", *data, "--out", str(tmp_path / "models"),
                 "--results", str(tmp_path / "results"), "--epochs", "1", "--quiet"]) == 0
    assert (tmp_path / "models" / "mnist_cnn.h5").exists()
    summary = (tmp_path / "results" / "mnist_cnn.md").read_text()
    assert "Produced by `tapelab" in summary and "Test accuracy" in summary
    status = main(["attack", "--dataset", "mnist", *data, "--model", str(tmp_path / "models" / "mnist_cnn.h5"),
                   "--out", str(tmp_path / "attack"), "--source-classes", "1", "--source-confidence", "0",
                   "--max-rounds", "3", "--pgd-steps", "2", "--l2-eps-ladder", "1"])
    assert status == 0
    assert (tmp_path / "attack" / "grid_adversarial.png").exists()
    assert "| generator | 9 |" in (tmp_path / "attack" / "report.md").read_text()
    status = main(["robust", "--dataset", "mnist", *data, "--out", str(tmp_path / "models"),
                   "--standard-model", str(tmp_path / "models" / "mnist_cnn.h5"),
                   "--results", str(tmp_path / "robust"), "--attack-results", str(tmp_path / "attack" / "results.json"),
                   "--epochs", "1", "--quiet", "--examples", "16", "--pgd-steps", "2", "--restarts", "2",
                   "--sweep", "0.3", "--max-rounds", "3"])
    results = json.loads((tmp_path / "robust" / "results.json").read_text())
    assert set(results["models"]) == {"standard", "robust"}
    assert status == (0 if all(m["passed"] for m in results["models"].values()) else 1)
    assert results["models"]["robust"]["generator"]["pairs"] == 9
    report = (tmp_path / "robust" / "report.md").read_text()
    assert "| standard |" in report and "| robust |" in report and "PGD never weaker than FGSM" in report
    assert (tmp_path / "models" / "mnist_robust.h5").exists() and (tmp_path / "robust" / "grid_robust.png").exists()


def test_attack_with_a_missing_model_is_one_line(mnist_npz, tmp_path, capsys):
    status = main(["attack", "--dataset", "mnist", "--data-dir", str(mnist_npz.parent),
                   "--model", str(tmp_path / "none.h5"), "--out", str(tmp_path / "out")])
    assert status == 2
    assert capsys.readouterr().err.strip() == (
        f"tapelab: error: model file {tmp_path / 'none.h5'} not found; train one first or pass --model")


def test_unknown_dataset_is_rejected(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["attack", "--dataset", "svhn"])
    assert exit_info.value.code == 2 and "invalid choice: 'svhn'" in capsys.readouterr().err


def test_all_index_only_writes_the_report_from_what_is_there_and_runs_nothing(tmp_path, capsys):
    assert main(["all", "--out", str(tmp_path), "--index-only"]) == 0
    report = (tmp_path / "REPORT.md").read_text()
    for heading in ("## 1. Backpropagation by hand", "## 2. Gradient flow", "## 3. Adversarial examples",
                    "## 4. Adversarially robust models", "## 5. Emotion recognition"):
        assert heading in report
    assert report.count("not run yet") == 5 and "`tapelab gradients` makes it" in report
    assert sorted(p.name for p in tmp_path.iterdir()) == ["REPORT.md"]
    assert "stage 1/" not in capsys.readouterr().out


def test_curves_draws_runs_side_by_side_and_refuses_files_without_a_curve(tmp_path, capsys):
    def summary(accuracies):
        records = [{"epoch": float(epoch), "train_loss": 2.0 / epoch, "test_loss": 2.1 / epoch,
                    "train_accuracy": accuracy + 0.1, "test_accuracy": accuracy}
                   for epoch, accuracy in enumerate(accuracies, start=1)]
        return {"records": records, "best_epoch": 2, "test_accuracy": max(accuracies)}

    (tmp_path / "a.json").write_text(json.dumps(summary([0.3, 0.5, 0.4])))
    (tmp_path / "b.json").write_text(json.dumps(summary([0.2, 0.6])))
    out = tmp_path / "plots" / "curves.png"
    assert main(["curves", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--out", str(out)]) == 0
    assert out.read_bytes().startswith(b"\x89PNG") and f"learning curves: {out}" in capsys.readouterr().out
    for seed in (0, 1):  # ensemble members: one folder per run, the same file name in each
        (tmp_path / f"seed{seed}").mkdir()
        (tmp_path / f"seed{seed}" / "model.json").write_text(json.dumps(summary([0.2 + seed / 10, 0.5])))
    members = load_summaries([tmp_path / "a.json", *(tmp_path / f"seed{seed}" / "model.json" for seed in (0, 1))])
    assert list(members) == ["a", "seed0/model", "seed1/model"]
    assert members["seed1/model"]["records"][0]["test_accuracy"] == pytest.approx(0.3)
    (tmp_path / "report.json").write_text(json.dumps({"accuracy": 0.5}))
    assert main(["curves", str(tmp_path / "report.json"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tapelab: error: ") and "has no learning curve ('records')" in err and "\n" not in err


def test_curve_legend_names_the_saved_models_score_and_the_net_alone():
    """A mirror-averaged model's curve is the net alone's, so the legend gives both scores."""
    from tapelab.train.curves import _kept_accuracy

    assert _kept_accuracy({"test_accuracy": 0.6941}) == "69.41%"
    assert _kept_accuracy({"test_accuracy": 0.6941, "net_test_accuracy": 0.6857}) == "69.41%; net alone 68.57%"


def test_the_starred_epoch_is_the_one_saved():
    """Without keep_best the saved weights are the last epoch's, whatever epoch scored best."""
    from tapelab.train.curves import kept_epoch

    assert kept_epoch({"best_epoch": 8, "train": {"epochs": 9, "keep_best": False}}) == 9
    assert kept_epoch({"best_epoch": 8, "train": {"epochs": 9, "keep_best": True}}) == 8


def test_abbreviated_or_unknown_options_are_rejected(capsys):
    """`--datas` once matched `--dataset` in argparse but not in the preset lookup: CIFAR-10 with MNIST's preset."""
    for argv in (["classifier", "--datas", "cifar10"], ["robust", "--dataset", "mnist", "--epoch", "1"],
                 ["fer", "train", "--data-dir", "x", "--dataset", "mnist"], ["gradients", "--depth", "5"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        assert f"unrecognized arguments: {argv[-2]} {argv[-1]}" in capsys.readouterr().err


def test_no_parser_takes_abbreviations():
    def parsers(parser):
        yield parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for child in action.choices.values():
                    yield from parsers(child)

    found = list(parsers(build_parser()))
    assert len(found) > 10 and not any(parser.allow_abbrev for parser in found)


def test_every_preset_is_a_named_spec():
    assert CLASSIFIER_PRESETS == {"mnist": MNIST_CNN, "cifar10": CIFAR10_CNN, "fer2013": FER2013_CNN}
    assert ATTACK_PRESETS == {"mnist": MNIST_ATTACK, "cifar10": CIFAR10_ATTACK}
    assert ROBUST_PRESETS == {"mnist": MNIST_ROBUST, "cifar10": CIFAR10_ROBUST}
    for presets, spec_class in ((CLASSIFIER_PRESETS, ClassifierSpec), (ATTACK_PRESETS, AttackSpec),
                                (ROBUST_PRESETS, RobustSpec)):
        for dataset, spec in presets.items():
            assert isinstance(spec, spec_class) and spec.dataset == dataset


@pytest.mark.parametrize("command, presets, spec_class", [
    (["classifier"], CLASSIFIER_PRESETS, ClassifierSpec), (["attack"], ATTACK_PRESETS, AttackSpec),
    (["robust"], ROBUST_PRESETS, RobustSpec)])
def test_the_parsers_defaults_are_the_preset_of_the_chosen_data_set(command, presets, spec_class):
    assert spec_from_args(spec_class, parse_args(command)) == presets["mnist"]
    for dataset_option in (["--dataset", "cifar10"], ["--dataset=cifar10"],
                           ["--dataset", "mnist", "--dataset", "cifar10"]):
        assert spec_from_args(spec_class, parse_args([*command, *dataset_option])) == presets["cifar10"]


def test_options_override_the_preset_and_fer_train_has_its_own():
    spec = spec_from_args(ClassifierSpec, parse_args(["classifier", "--epochs", "2", "--dataset", "cifar10"]))
    assert spec == dataclasses.replace(CIFAR10_CNN, train=dataclasses.replace(CIFAR10_CNN.train, epochs=2))
    assert spec_from_args(ClassifierSpec, parse_args(["fer", "train", "--data-dir", "x"])) == FER2013_CNN
    assert spec_from_args(GridSpec, parse_args(["gradients"])) == GRADIENT_FLOW


def test_cifar10_help_shows_the_cifar10_preset(capsys):
    with pytest.raises(SystemExit):
        main(["classifier", "--dataset", "cifar10", "--help"])
    assert f"(default: {CIFAR10_CNN.train.learning_rate})" in capsys.readouterr().out.replace("\n", " ")


def test_all_runs_each_stage_through_the_parser_not_main(tmp_path, monkeypatch, capsys):
    """Each stage's argv becomes its options by the same parser, its command is run in this process, and the
    results record the stage's own command line."""
    import tapelab.scripts.cli
    import tapelab.scripts.main_job

    def no_recursion(argv=None):
        raise AssertionError("tapelab all called main() again")

    argv = ["backprop-check", "--depths", "2", "--activations", "tanh", "--batch-size", "4", "--summary",
            "--out", str(tmp_path), "--overwrite"]
    monkeypatch.setattr(tapelab.scripts.cli, "main", no_recursion)
    monkeypatch.setattr(tapelab.scripts.main_job, "plan_stages",
                        lambda *args: [tapelab.scripts.main_job.Stage("backprop check", argv)])
    assert run_command_line(["all", "--out", str(tmp_path), "--quiet"]) == 0
    assert f"stage 1/1: backprop check, 0 s so far\n  tapelab {' '.join(argv)}" in capsys.readouterr().out
    job = json.loads((tmp_path / "main_job.json").read_text())
    assert job["command"] == f"tapelab all --out {tmp_path} --quiet"
    assert [(stage["command"], stage["status"]) for stage in job["stages"]] == [("tapelab " + " ".join(argv), 0)]
    assert json.loads((tmp_path / "backprop_check.json").read_text())["command"] == "tapelab " + " ".join(argv)


def test_no_module_outside_scripts_reads_the_process_arguments():
    """Library code is given the command line to record; only the entry points in scripts/ read sys.argv."""
    root = Path(__file__).resolve().parents[1]
    folders = [folder for folder in root.iterdir() if folder.is_dir() and (folder / "__init__.py").is_file()
               and folder.name not in ("scripts", "tests")]
    library = [path for folder in folders for path in folder.rglob("*.py")]
    assert len(library) > 20
    assert [str(path) for path in library if "sys.argv" in path.read_text()] == []
