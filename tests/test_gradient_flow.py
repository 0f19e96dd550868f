import json

import pytest

import train.gradient_flow as gradient_flow
from core.errors import ConfigError, TapelabError
from train.config import TrainConfig
from train.gradient_flow import GridConfig, load_results, run_grid
from train.gradient_flow_report import observations, write_report

TINY_GRID = GridConfig(depths=(1, 3), activations=("tanh", "lecun"), units=8)
TINY_TRAIN = TrainConfig(epochs=1, batch_size=32, evals_per_epoch=2, steps_per_call=4)
FILES = ["config.json", "results.json", "scores.csv", "scores.md", "report.md",
         "grad_grid_trained.png", "grad_grid_untrained.png", "learning_curves.png"]


def test_grid_writes_every_file(tiny_digits, tmp_path):
    results = run_grid(tiny_digits, TINY_GRID, TINY_TRAIN, tmp_path, progress=False)
    write_report(results, tmp_path)
    for name in FILES:
        assert (tmp_path / name).stat().st_size > 0, name
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == [
        "lecun-1.json", "lecun-3.json", "tanh-1.json", "tanh-3.json"]
    run = results["runs"]["lecun-3"]
    assert len(run["layer_gradients"]) == 2 and len(run["layer_gradients"][0]) == 4
    csv_lines = (tmp_path / "scores.csv").read_text().splitlines()
    assert len(csv_lines) == 5 and csv_lines[0].startswith("model,test_accuracy,test_loss")
    assert json.loads((tmp_path / "config.json").read_text())["grid"]["depths"] == [1, 3]
    report = (tmp_path / "report.md").read_text()
    accuracy = run["records"][-1]["test_accuracy"]
    assert f"{accuracy:.4f}" in report and "![trained](grad_grid_trained.png)" in report


def test_plots_redraw_from_saved_results_alone(tiny_digits, tmp_path):
    run_grid(tiny_digits, TINY_GRID, TINY_TRAIN, tmp_path, progress=False)
    for name in ("grad_grid_trained.png", "report.md"):
        (tmp_path / name).unlink(missing_ok=True)
    write_report(load_results(tmp_path), tmp_path)
    assert (tmp_path / "grad_grid_trained.png").exists() and (tmp_path / "report.md").exists()


def test_grid_resumes_from_saved_runs(tiny_digits, tmp_path, monkeypatch):
    first = run_grid(tiny_digits, TINY_GRID, TINY_TRAIN, tmp_path, progress=False)

    def no_training(*args, **kwargs):
        raise AssertionError("a saved run was trained again")

    monkeypatch.setattr(gradient_flow, "fit", no_training)
    second = run_grid(tiny_digits, TINY_GRID, TINY_TRAIN, tmp_path, progress=False)
    assert second["runs"] == first["runs"]


def test_observations_flag_models_that_failed():
    def run(activation, accuracy, gradients):
        return {"activation": activation, "depth": 5, "train_seconds": 1.0, "layer_gradients": gradients,
                "records": [{"test_accuracy": accuracy, "test_loss": 2.3}]}

    results = {"settings": {"grid": {"depths": [5]}},
               "runs": {"sigmoid-5": run("sigmoid", 0.1135, [[1e-9, 1e-2], [1e-8, 1e-2]]),
                        "tanh-5": run("tanh", 0.95, [[0.1, 0.2], [0.3, 0.1]])}}
    text = "\n".join(observations(results))
    assert "Failed to learn (test accuracy below 20%; chance is 10%): sigmoid-5 (11.3%)" in text
    assert "sigmoid-5: first/last layer max-gradient ratio 1e-07 untrained, 1e-06 trained" in text
    assert "best is tanh at 95.00%" in text


def test_bad_grid_settings():
    with pytest.raises(ConfigError, match="every depth must be >= 1"):
        GridConfig(depths=(5, 0))
    with pytest.raises(ConfigError, match="unknown activation 'elu'"):
        GridConfig(activations=("elu",))


def test_unwritable_output_folder_fails_before_training(tiny_digits, tmp_path):
    blocker = tmp_path / "results"
    blocker.write_text("a file where the folder should be")
    with pytest.raises(TapelabError, match="cannot write to output folder .*; choose another with --out"):
        run_grid(tiny_digits, TINY_GRID, TINY_TRAIN, blocker / "gradient_flow", progress=False)
    assert blocker.read_text() == "a file where the folder should be"
