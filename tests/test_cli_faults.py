"""Bad settings and files are refused with one line (`tapelab: error: ...`, status 2) before any work."""

import json

import pytest

from tapelab.attacks.experiment import AttackConfig
from tapelab.attacks.robust_experiment import attack_pairs
from tapelab.core.errors import ConfigError
from tapelab.scripts.cli import main


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("tapelab: error: ") and "\n" not in err, err
    return err


@pytest.mark.parametrize("option, value, message", [
    ("--pgd-steps", "0", "--pgd-steps must be at least 1, got 0"),
    ("--l2-eps-ladder", "", "--l2-eps-ladder must be one or more L2 radii > 0"),
    ("--l2-eps-ladder", "1,-2", "--l2-eps-ladder must be one or more L2 radii > 0"),
    ("--l2-eps-ladder", "2,1", "smallest first"),
    ("--linf-eps", "0", "--linf-eps must be > 0"),
    ("--source-confidence", "1.5", "--source-confidence must lie in [0, 1]"),
    ("--source-classes", "", "--source-classes must name at least one class"),
])
def test_attack_refuses_settings_that_would_score_a_method_zero(option, value, message, tmp_path, capsys):
    status = main(["attack", "--data-dir", str(tmp_path / "no-data"), "--out", str(tmp_path / "out"), option, value])
    assert status == 2 and message in _one_error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_attack_config_checks_itself():
    with pytest.raises(ConfigError, match="--pgd-steps"):
        AttackConfig(pgd_steps=0)
    with pytest.raises(ConfigError, match="--l2-eps-ladder"):
        AttackConfig(l2_eps_ladder=())
    AttackConfig(source_confidence=0.0, l2_eps_ladder=(1.0,), pgd_steps=1)  # the smallest valid settings


@pytest.mark.parametrize("option, value", [("--max-frames", "-1"), ("--every", "0"), ("--smooth", "0"),
                                           ("--retries", "-1"), ("--detect-width", "0")])
def test_realtime_refuses_negative_or_zero_counts(option, value, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["realtime", "--no-window", option, value])
    assert exit_info.value.code == 2
    assert f"argument {option}: must be at least" in capsys.readouterr().err


def test_mistyped_numbers_are_named_not_lambda(capsys):
    for argv, message in ((["gradients", "--depths", "2.5"], "invalid list of whole numbers: '2.5'; separate them"),
                          (["gradients", "--epochs", "2.5"], "invalid whole number value: '2.5'"),
                          (["gradients", "--learning-rate", "fast"], "invalid number value: 'fast'"),
                          (["realtime", "--every", "2.5"], "invalid whole number value: '2.5'")):
        with pytest.raises(SystemExit):
            main(argv)
        err = capsys.readouterr().err
        assert message in err and "<lambda>" not in err and "_positive" not in err


def test_lists_still_parse_with_spaces(capsys):
    from tapelab.scripts.cli import build_parser

    args = build_parser().parse_args(["gradients", "--depths", "5, 20", "--activations", "relu, tanh"])
    assert args.depths == (5, 20) and args.activations == ("relu", "tanh")


@pytest.mark.parametrize("name", ["folder", "curves.xyz", "curves"])
def test_curves_out_must_be_a_figure_file_checked_before_reading(name, tmp_path, capsys):
    (tmp_path / "folder").mkdir()
    # The summary does not exist: the --out error must come first, before any summary is read.
    status = main(["curves", str(tmp_path / "missing.json"), "--out", str(tmp_path / name)])
    err = _one_error_line(capsys)
    assert status == 2 and "--out" in err and "missing.json" not in err
    assert sorted(path.name for path in tmp_path.iterdir()) == ["folder"]


def test_curves_out_under_a_file_is_refused(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    assert main(["curves", str(tmp_path / "a.json"), "--out", str(tmp_path / "file" / "curves.png")]) == 2
    assert "cannot write in" in _one_error_line(capsys)


@pytest.mark.parametrize("content, message", [
    ({}, 'it needs "settings"'),
    ([], 'it needs "settings"'),
    ({"settings": {"grid": {"seeds": [0]}, "train": {}}}, 'and "runs"'),
    ({"runs": {}, "settings": {"grid": {"seeds": [0], "activations": ["relu"], "depths": [5]}, "train": {}}},
     "runs relu-5-seed0 of its grid are missing"),
    ({"runs": {}, "settings": {"grid": {"seeds": [0], "activations": "relu"}, "train": {}}},
     "lists of seeds, activations and depths"),
])
def test_report_names_a_malformed_results_file_and_how_to_remake_it(content, message, tmp_path, capsys):
    (tmp_path / "results.json").write_text(json.dumps(content))
    assert main(["report", "--out", str(tmp_path)]) == 2
    err = _one_error_line(capsys)
    assert "is not a gradient-flow results file" in err and message in err and "`tapelab gradients" in err


@pytest.mark.parametrize("content", [{"pairs": []}, {"pairs": [{"method": "fgsm", "source_index": 1,
                                                                  "target_class": 2}]}, {}, [], {"pairs": {}}])
def test_attack_results_without_generator_pairs_are_refused(content, tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ConfigError, match="rerun `tapelab attack`"):
        attack_pairs(path)


def test_robust_refuses_empty_attack_results_before_training(tmp_path, capsys):
    (tmp_path / "results.json").write_text(json.dumps({"pairs": []}))
    status = main(["robust", "--data-dir", str(tmp_path / "no-data"), "--out", str(tmp_path / "models"),
                   "--results", str(tmp_path / "robust"), "--attack-results", str(tmp_path / "results.json")])
    assert status == 2 and "holds no generator pairs" in _one_error_line(capsys)
    assert not (tmp_path / "models").exists() and not (tmp_path / "robust").exists()
