import subprocess
import sys

import pytest

from scripts.cli import build_parser, main

SUBCOMMANDS = ["backprop-check", "gradients", "report", "all"]


def test_every_subcommand_has_help(capsys):
    for name in SUBCOMMANDS:
        with pytest.raises(SystemExit) as exit_info:
            main([name, "--help"])
        assert exit_info.value.code == 0
        text = capsys.readouterr().out
        assert f"usage: tapelab {name}" in text and "--out" in text


def test_top_level_help_lists_subcommands():
    help_text = build_parser().format_help()
    for name in SUBCOMMANDS:
        assert name in help_text


def test_console_script_is_installed():
    result = subprocess.run([sys.executable, "-m", "scripts.cli", "--help"], capture_output=True, text=True)
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
