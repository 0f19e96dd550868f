"""Runs never reuse another run's checkpoint, never overwrite results unasked, and replace their files
together or not at all."""

import errno
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import make_digits

from tapelab.core.errors import TapelabError
from tapelab.core.io import RunFolder
from tapelab.scripts.cli import build_parser, main


def _mnist_folder(path, seed):
    path.mkdir()
    x_train, y_train, x_test, y_test = make_digits(64, 16, seed=seed)
    np.savez_compressed(path / "mnist.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return path


def _train(data_dir, out, results, *extra):
    return main(["classifier", "--dataset", "mnist", "--data-dir", str(data_dir), "--out", str(out),
                 "--results", str(results), "--epochs", "2", "--quiet", "--widths", "4", "--dense-units", "8",
                 *extra])


def test_a_finished_checkpoint_is_never_reused_for_other_data(tmp_path, capsys):
    first, second = _mnist_folder(tmp_path / "d1", 0), _mnist_folder(tmp_path / "d2", 1)
    assert _train(first, tmp_path / "m", tmp_path / "r1") == 0
    one = json.loads((tmp_path / "r1" / "mnist_cnn.json").read_text())
    assert _train(second, tmp_path / "m", tmp_path / "r2", "--overwrite") == 0
    two = json.loads((tmp_path / "r2" / "mnist_cnn.json").read_text())
    assert "other settings or other data; training from the start" in capsys.readouterr().err
    assert one["data_fingerprint"] != two["data_fingerprint"]
    assert len(two["records"]) == 2 and two["train_seconds"] != one["train_seconds"]


def test_a_retrain_on_the_same_data_trains_again(tmp_path, capsys):
    data = _mnist_folder(tmp_path / "d", 0)
    assert _train(data, tmp_path / "m", tmp_path / "r1") == 0
    capsys.readouterr()
    assert _train(data, tmp_path / "m", tmp_path / "r1") == 2  # the model is there: not replaced unasked
    err = capsys.readouterr().err.strip()
    assert err.startswith("tapelab: error: ") and "pass --overwrite" in err and "\n" not in err
    first = json.loads((tmp_path / "r1" / "mnist_cnn.json").read_text())
    assert _train(data, tmp_path / "m", tmp_path / "r1", "--overwrite") == 0
    assert "finished run; training again from the start" in capsys.readouterr().err
    again = json.loads((tmp_path / "r1" / "mnist_cnn.json").read_text())
    assert len(again["records"]) == 2 and again["train_seconds"] != first["train_seconds"]


def test_training_and_experiments_write_into_run_folders_by_default():
    parser = build_parser()
    assert parser.parse_args(["fer", "train", "--data-dir", "x"]).out.parts[0] == "runs"
    assert parser.parse_args(["fer", "train", "--data-dir", "x"]).results.parts[0] == "runs"
    assert parser.parse_args(["gradients"]).out.parts[0] == "runs"
    assert parser.parse_args(["classifier"]).results.parts[0] == "runs"
    assert parser.parse_args(["robust"]).results.parts[0] == "runs"


def test_a_folder_with_results_is_replaced_only_when_asked_and_then_whole(tmp_path):
    out = tmp_path / "out"
    with RunFolder(out, "results.json") as run:
        for name in ("results.json", "a.csv", "per_model/x.json"):
            (run.staging / name).parent.mkdir(parents=True, exist_ok=True)
            (run.staging / name).write_text("old")
    with pytest.raises(TapelabError, match="already holds the results of an earlier run .*--overwrite"):
        RunFolder(out, "results.json")
    (out / "notes.md").write_text("the user's own")
    with RunFolder(out, "results.json", overwrite=True) as run:
        (run.staging / "results.json").write_text("new")
        (run.staging / "b.csv").write_text("new")
    assert (out / "results.json").read_text() == "new" and (out / "b.csv").exists()
    assert not (out / "a.csv").exists() and not (out / "per_model" / "x.json").exists()  # the old run's files
    assert (out / "notes.md").exists()  # not the run's: kept
    assert not any(path.name.startswith(".partial") for path in out.iterdir())


def test_a_failing_run_leaves_the_old_results_and_keeps_what_it_saved_for_resuming(tmp_path):
    out = tmp_path / "out"
    with RunFolder(out, "results.json") as run:
        (run.staging / "results.json").write_text("old")
    with pytest.raises(OSError):
        with RunFolder(out, "results.json", overwrite=True) as run:
            (run.staging / "model-1.json").write_text("finished part")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert (out / "results.json").read_text() == "old" and not (out / "model-1.json").exists()
    assert (run.staging / "model-1.json").read_text() == "finished part"


def test_a_full_disk_is_one_line_and_loses_nothing(tmp_path, monkeypatch, capsys):
    import tapelab.core.io
    import tapelab.train.backprop_check

    out = tmp_path / "out"
    assert main(["backprop-check", "--depths", "2", "--activations", "relu", "--out", str(out)]) == 0
    before = (out / "backprop_check.json").read_text()
    real = tapelab.core.io.write_atomic

    def full_disk(path, data):
        if path.name.endswith(".md"):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data)

    monkeypatch.setattr(tapelab.core.io, "write_atomic", full_disk)
    monkeypatch.setattr(tapelab.train.backprop_check, "write_atomic", full_disk)  # the report's writer
    assert main(["backprop-check", "--depths", "3", "--activations", "relu", "--out", str(out), "--overwrite"]) == 2
    err = capsys.readouterr().err.strip()
    assert "No space left on device" in err and "left as they were" in err and "\n" not in err
    assert (out / "backprop_check.json").read_text() == before


def test_an_early_error_leaves_no_empty_output_folder(tmp_path, capsys):
    out = tmp_path / "never"
    status = main(["attack", "--dataset", "mnist", "--data-dir", str(tmp_path / "missing"),
                   "--model", str(tmp_path / "none.h5"), "--out", str(out)])
    assert status == 2 and not out.exists()


def test_training_takes_tensorflows_own_strategies(tmp_path, capsys):
    import subprocess
    import sys

    data = _mnist_folder(tmp_path / "d", 0)
    # Its own process: a MirroredStrategy's collectives must not meet those of strategies other tests made.
    result = subprocess.run([str(Path(sys.executable).parent / "tapelab"), "classifier", "--dataset", "mnist",
                             "--data-dir", str(data), "--out", str(tmp_path / "m"), "--results", str(tmp_path / "r"),
                             "--epochs", "2", "--quiet", "--widths", "4", "--dense-units", "8",
                             "--strategy", "mirrored"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert len(json.loads((tmp_path / "r" / "mnist_cnn.json").read_text())["records"]) == 2
    with pytest.raises(SystemExit) as exit_info:
        _train(data, tmp_path / "m", tmp_path / "r", "--strategy", "horovod")
    assert exit_info.value.code == 2 and "invalid choice: 'horovod'" in capsys.readouterr().err
