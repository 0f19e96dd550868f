import json
import re
import shutil

import numpy as np
import pytest

import tapelab.train.gradient_flow as gradient_flow
from tapelab.core.errors import ConfigError, TapelabError
from tapelab.core.gradients import zero_derivative_fractions
from tapelab.core.models import build_mlp
from tapelab.train.config import TrainConfig
from tapelab.train.gradient_flow import GridConfig, load_results, run_grid
from tapelab.train.gradient_flow_report import findings, observations, write_report
from tapelab.train.gradient_lab_report import backprop_section, gradient_flow_section

TINY_GRID = GridConfig(depths=(1, 3), activations=("tanh", "lecun"), units=8, seeds=(0, 1), dead_unit_images=32)
TINY_TRAIN = TrainConfig(epochs=1, batch_size=32, evals_per_epoch=2, steps_per_call=4)
FILES = ["config.json", "results.json", "scores.csv", "scores.md", "report.md", "grad_grid_trained.png",
         "grad_grid_untrained.png", "learning_curves.png", "grad_heatmaps.png"]
COMMAND = "tapelab gradients --depths 1,3"


@pytest.fixture(scope="module")
def grid_dir(tmp_path_factory):
    """The tiny grid trained once (two seeds) and its report written, shared by the tests below."""
    from tapelab.core.data import ImageData, one_hot
    from tests.conftest import make_digits

    x_train, y_train, x_test, y_test = make_digits()
    data = ImageData(x_train[..., None].astype(np.float32) / 255, one_hot(y_train, 10),
                     x_test[..., None].astype(np.float32) / 255, one_hot(y_test, 10), class_names=tuple("0123456789"))
    out = tmp_path_factory.mktemp("grid")
    write_report(run_grid(data, TINY_GRID, TINY_TRAIN, out, command=COMMAND, progress=False), out)
    return data, out


def test_grid_writes_every_file(grid_dir):
    _, out = grid_dir
    for name in FILES:
        assert (out / name).stat().st_size > 0, name
    assert (out / "grad_heatmaps.png").read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in (out / "runs").iterdir()) == [
        f"{a}-{d}-seed{s}.json" for a in ("lecun", "tanh") for d in (1, 3) for s in (0, 1)]
    results = load_results(out)
    run = results["runs"]["lecun-3-seed0"]
    assert len(run["layer_gradients"]) == 2 and len(run["layer_gradients"][0]) == 4
    csv_lines = (out / "scores.csv").read_text().splitlines()
    assert len(csv_lines) == 9 and csv_lines[0].startswith("model,seed,test_accuracy,test_loss")
    config = json.loads((out / "config.json").read_text())
    assert config["grid"]["depths"] == [1, 3] and config["command"] == results["command"] == COMMAND
    report = (out / "report.md").read_text()
    accuracy = run["records"][-1]["test_accuracy"]
    assert f"{accuracy:.4f}" in report and "![heatmaps](grad_heatmaps.png)" in report and COMMAND in report


def test_gradient_trace_has_a_point_per_curve_point_plus_the_untrained_net(grid_dir):
    results = load_results(grid_dir[1])
    for run in results["runs"].values():
        trace = run["gradient_trace"]
        assert len(trace) == TINY_TRAIN.evals_per_epoch * TINY_TRAIN.epochs + 1
        assert [point["epoch"] for point in trace] == [0.0] + [record["epoch"] for record in run["records"]]
        assert all(len(point["max_abs"]) == run["depth"] + 1 for point in trace)
        assert trace[0]["max_abs"] == run["layer_gradients"][0] and trace[-1]["max_abs"] == run["layer_gradients"][-1]
        assert len(run["zero_derivative_units"]) == run["depth"] and sum(run["predicted_classes"]) == 64


def test_two_seeds_give_different_runs_and_results_hold_both(grid_dir):
    results = load_results(grid_dir[1])
    assert results["settings"]["grid"]["seeds"] == [0, 1] and len(results["runs"]) == 8
    first, second = results["runs"]["tanh-3-seed0"], results["runs"]["tanh-3-seed1"]
    assert (first["seed"], second["seed"]) == (0, 1)
    assert first["layer_gradients"][0] != second["layer_gradients"][0]  # different initial weights
    assert first["records"] != second["records"]


def test_plots_redraw_from_saved_results_alone(grid_dir, tmp_path):
    shutil.copy(grid_dir[1] / "results.json", tmp_path / "results.json")
    write_report(load_results(tmp_path), tmp_path)
    assert (tmp_path / "grad_heatmaps.png").exists() and (tmp_path / "report.md").exists()


def test_grid_resumes_from_saved_runs(grid_dir, tmp_path, monkeypatch):
    data, out = grid_dir
    shutil.copytree(out / "runs", tmp_path / "runs")

    def no_training(*args, **kwargs):
        raise AssertionError("a saved run was trained again")

    monkeypatch.setattr(gradient_flow, "fit", no_training)
    second = run_grid(data, TINY_GRID, TINY_TRAIN, tmp_path, command=COMMAND, progress=False)
    assert second["runs"] == load_results(out)["runs"]


def test_zero_derivative_units_count_dead_relu_units_and_none_for_tanh():
    x = np.random.default_rng(0).random((50, 28, 28, 1)).astype(np.float32)
    relu = build_mlp(2, "relu", units=6)
    relu.get_layer("hidden_1").bias.assign(np.full(6, -1e3, np.float32))  # z < 0 for every image: all dead
    assert zero_derivative_fractions(relu, "relu", x)[0] == 1.0
    assert zero_derivative_fractions(build_mlp(2, "tanh", units=6), "tanh", x) == [0.0, 0.0]


def _run(activation, depth, seed, accuracy, trained, untrained=None, early=None, predicted=None):
    """A hand-made run with the fields the findings read; `trained` and `untrained` are per-layer gradients."""
    untrained = untrained or trained
    zero_units = [1.0 if value == 0.0 else 0.0 for value in trained[:-1]]
    records = [{"epoch": 0.25, "test_accuracy": early if early is not None else accuracy / 2, "test_loss": 2.0,
                "train_loss": 2.0, "train_accuracy": 0.1},
               {"epoch": 1.0, "test_accuracy": accuracy, "test_loss": 1.0, "train_loss": 1.0, "train_accuracy": 0.5}]
    return {"activation": activation, "depth": depth, "seed": seed, "records": records, "train_seconds": 1.0,
            "layer_gradients": [untrained, trained], "zero_derivative_units": zero_units,
            "zero_derivative_units_untrained": [0.0] * depth,
            "gradient_trace": [{"epoch": 0.0, "max_abs": untrained}, {"epoch": 0.25, "max_abs": untrained},
                               {"epoch": 1.0, "max_abs": trained}],
            "predicted_classes": predicted or [10, 20, 10, 10, 10, 10, 10, 10, 5, 5]}


def _results(runs):
    depths = sorted({run["depth"] for run in runs})
    activations = list(dict.fromkeys(run["activation"] for run in runs))
    seeds = sorted({run["seed"] for run in runs})
    return {"settings": {"grid": {"depths": depths, "activations": activations, "seeds": seeds, "units": 4},
                         "train": {"epochs": 1}},
            "runs": {f"{r['activation']}-{r['depth']}-seed{r['seed']}": r for r in runs}}


def _hand_made(relu_first_layer: float):
    flowing = [0.3, 0.2, 0.3, 0.1]
    relu = [relu_first_layer, 0.0 if relu_first_layer == 0.0 else 1e-6, 0.2, 0.1]
    sigmoid = [1e-6, 1e-4, 1e-2, 1e-1]
    everything_to_one = [0, 100, 0, 0, 0, 0, 0, 0, 0, 0]
    return _results([
        *[_run("lecun", 3, s, a, flowing, early=e) for s, a, e in ((0, 0.90, 0.5), (1, 0.92, 0.6), (2, 0.91, 0.55))],
        *[_run("tanh", 3, s, a, flowing, early=0.4) for s, a in ((0, 0.80), (1, 0.82), (2, 0.81))],
        *[_run("relu", 3, s, 0.2, relu) for s in (0, 1, 2)],
        *[_run("sigmoid", 3, s, 0.1135, sigmoid, predicted=everything_to_one) for s in (0, 1, 2)],
    ])


def test_seed_spread_rule_calls_overlapping_ranges_not_larger():
    results = _hand_made(0.0)
    assert findings(results)["lecun_vs_tanh"][3]["larger_than_spread"]  # [0.90, 0.92] against [0.80, 0.82]
    results["runs"]["tanh-3-seed2"]["records"][-1]["test_accuracy"] = 0.905  # now the ranges overlap
    comparison = findings(results)["lecun_vs_tanh"][3]
    assert not comparison["larger_than_spread"]
    assert comparison["difference"] == pytest.approx(0.91 - (0.80 + 0.82 + 0.905) / 3)
    assert "within the seed spread" in gradient_flow_section(results, "gradient_flow")


def test_section_numbers_come_from_the_findings():
    results = _hand_made(0.0)
    found, text = findings(results), gradient_flow_section(results, "gradient_flow")
    table_row = re.search(r"\| lecun-3 \| ([\d.]+)% ± ([\d.]+) \| ([\d.]+)% - ([\d.]+)% \|", text)
    accuracy = found["models"]["lecun-3"]["accuracy"]
    parsed = [float(value) / 100 for value in table_row.groups()]
    assert parsed == pytest.approx([accuracy["mean"], accuracy["std"], accuracy["min"], accuracy["max"]], abs=5e-5)
    difference = float(re.search(r"3 layers, LeCun minus tanh: ([+-][\d.]+) points, larger", text).group(1))
    assert difference / 100 == pytest.approx(found["lecun_vs_tanh"][3]["difference"], abs=5e-5)
    early = re.search(r"LeCun ([\d.]+)% vs tanh ([\d.]+)% at epoch 0.25", text).groups()
    assert [float(v) / 100 for v in early] == pytest.approx([0.55, 0.4])
    sigmoid = found["models"]["sigmoid-3"]
    ratio = float(re.search(r"first layer's max gradient is ([\de.+-]+) of the output layer's", text).group(1))
    assert ratio == pytest.approx(sigmoid["first_to_last_untrained"][0], rel=1e-2)
    assert "predicts digit 1 for all 100 test images in every seed" in text
    assert f"multiplied by {sigmoid['decay_trained']:.3g} per layer" in text


def test_section_says_exactly_zero_or_vanishing_from_the_data():
    dead = gradient_flow_section(_hand_made(0.0), "gradient_flow")
    assert "exactly zero (dead units) in every seed" in dead
    assert "every unit of hidden layer(s) 1, 2 is dead, so no error passes through them" in dead
    tiny = gradient_flow_section(_hand_made(1e-9), "gradient_flow")
    assert "vanishing (tiny but not zero) in every seed" in tiny and "exactly zero (dead" not in tiny
    relu_note = next(note for note in observations(_hand_made(0.0)) if note.startswith("relu-3:"))
    assert "exactly zero (dead units)" in relu_note and "vanished" not in relu_note


def test_backprop_section_cites_the_sampled_ranges():
    check = {"passed": True, "tolerance": 1e-10,
             "checks": [{"activation": "sigmoid", "depth": 5, "max_rel_error": 3e-15, "layers": []}],
             "derivative_ranges": [
                 {"activation": "sigmoid", "observed_min": 3.1e-07, "observed_max": 0.25, "documented": "(0, 0.25]"},
                 {"activation": "lecun", "observed_min": 0.01, "observed_max": 1.1539333,
                  "documented": "(0.01, 1.15393]"}]}
    text = backprop_section(check, "backprop_check.md")
    assert "δ_l = (W_{l+1}^T δ_{l+1}) ⊙ f'(z_l)" in text and "](backprop_check.md)" in text
    assert "0.25^5 = 0.000977 at depth 5" in text and "1.15393 (sampled maximum 1.15393) > 1" in text
    assert "largest relative error is 3.00e-15" in text


def test_bad_grid_settings():
    with pytest.raises(ConfigError, match="every depth must be >= 1"):
        GridConfig(depths=(5, 0))
    with pytest.raises(ConfigError, match="unknown activation 'elu'"):
        GridConfig(activations=("elu",))
    with pytest.raises(ConfigError, match="seeds must differ"):
        GridConfig(seeds=(1, 1))


def test_unwritable_output_folder_fails_before_training(tiny_digits, tmp_path):
    blocker = tmp_path / "results"
    blocker.write_text("a file where the folder should be")
    with pytest.raises(TapelabError, match="cannot write to output folder .*; choose another with --out"):
        run_grid(tiny_digits, TINY_GRID, TINY_TRAIN, blocker / "gradient_flow", command=COMMAND, progress=False)
    assert blocker.read_text() == "a file where the folder should be"


def test_results_written_before_seeds_are_refused(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps({"settings": {"grid": {"depths": [5]}}, "runs": {}}))
    with pytest.raises(TapelabError, match="written before runs had seeds"):
        load_results(tmp_path)
