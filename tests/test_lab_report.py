"""The main job's stages and the lab report composed from saved results: every cited figure must be the
one in the JSON it comes from."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from tapelab.attacks.lab_sections import attack_findings, robust_findings
from tapelab.attacks.robust_experiment import class_direction_alignment
from tapelab.core.errors import TapelabError
from tapelab.core.shipped import LAB_MODELS, MODELS_DIR, model_record, shipped_model
from tapelab.scripts.lab_report import GLANCE_END, GLANCE_START, glance_table, write_lab_report
from tapelab.scripts.main_job import FER_MISSING, Stage, format_duration, has_fer2013, plan_stages, run_stages
from tapelab.train.fer import classification_metrics, write_evaluation
from tapelab.train.fer_report import emotion_findings, emotion_section


def test_shipped_lab_models_are_there_with_their_training_record():
    total = 0
    for name in LAB_MODELS:
        record = model_record(shipped_model(name))
        assert 0.5 < record["test_accuracy"] <= 1
        assert record["command"].startswith("tapelab ") and record["train_seconds"] > 0
        assert re.fullmatch(r"[0-9a-f]{64}", record["data_fingerprint"])
        total += shipped_model(name).stat().st_size
    assert total < 10 * 2**20


def test_missing_shipped_model_says_how_to_get_it():
    with pytest.raises(TapelabError, match="git checkout -- models/.*tapelab all --retrain"):
        shipped_model("no_such_model")


def test_without_data_the_fer_stages_are_skipped_with_how_to_get_the_data(tmp_path):
    stages = plan_stages(None, tmp_path, retrain=False, models=tmp_path / "models", quiet=True)
    fer = [stage for stage in stages if stage.argv[0] == "fer"]
    assert len(fer) == 3 and all(stage.skipped == FER_MISSING for stage in fer)
    assert "no automatic download" in FER_MISSING and "--data-dir" in FER_MISSING
    attacks = [stage.argv for stage in stages if stage.argv[0] == "attack"]
    assert [argv[argv.index("--model") + 1] for argv in attacks] == [
        str(MODELS_DIR / "mnist_cnn.h5"), str(MODELS_DIR / "cifar10_cnn.h5")]
    assert not any(stage.argv[0] == "classifier" or "--retrain" in stage.argv for stage in stages)


def test_retrain_trains_every_model_into_the_models_folder(tmp_path):
    (tmp_path / "fer2013" / "train").mkdir(parents=True)
    (tmp_path / "fer2013" / "test").mkdir()
    assert has_fer2013(tmp_path) and not has_fer2013(tmp_path / "fer2013" / "train")
    stages = plan_stages(tmp_path, tmp_path / "out", retrain=True, models=tmp_path / "models", quiet=False)
    commands = [stage.argv[0] for stage in stages]
    assert commands == ["backprop-check", "gradients", "classifier", "attack", "classifier", "attack", "robust",
                        "robust", "fer", "fer", "fer"]
    robust = [stage.argv for stage in stages if stage.argv[0] == "robust"]
    assert all("--retrain" in argv and argv[argv.index("--out") + 1] == str(tmp_path / "models") for argv in robust)
    assert not any(stage.skipped for stage in stages)


def test_stages_print_where_the_job_is_and_save_their_times(tmp_path, capsys):
    seen = []
    stages = [Stage("first", ["a"]), Stage("second", ["b"], skipped="skipped: no data"), Stage("third", ["c"])]
    record = run_stages(stages, lambda argv: seen.append(argv) or (1 if argv == ["c"] else 0), "tapelab all",
                        tmp_path / "job.json")
    out = capsys.readouterr().out
    assert seen == [["a"], ["c"]]
    assert "stage 1/3: first, 0 s so far" in out and "stage 3/3: third, " in out and "skipped: no data" in out
    saved = json.loads((tmp_path / "job.json").read_text())
    assert saved == record and saved["status"] == 1 and [s["status"] for s in saved["stages"]] == [0, 0, 1]
    assert format_duration(130.4) == "2 min 10 s" and format_duration(9.6) == "10 s"


def test_alignment_is_one_along_the_class_difference_and_zero_across_it():
    x_train = np.zeros((4, 2, 2, 1), np.float32)
    x_train[2:, 0, 0] = 1.0  # class 1 differs from class 0 in one pixel
    y_train = np.eye(2, dtype=np.float32)[[0, 0, 1, 1]]
    sources = np.zeros((2, 2, 2, 1), np.float32)
    adversarial = sources.copy()
    adversarial[0, 0, 0] = 0.3  # along the difference
    adversarial[1, 1, 1] = 0.3  # across it
    alignment = class_direction_alignment(adversarial, sources, np.array([0, 0]), np.array([1, 1]), x_train, y_train)
    np.testing.assert_allclose(alignment, [1.0, 0.0], atol=1e-6)


def _attack_results(dataset, l2s, success):
    pairs = []
    for index, (l2, won) in enumerate(zip(l2s, success)):
        for method in ("generator", "fgsm", "pgd_linf", "pgd_l2_ladder"):
            pairs.append({"method": method, "source_index": 0, "source_class": 0, "target_class": index + 1,
                          "trivial": False, "success": won if method == "generator" else True,
                          "target_confidence": 0.95, "predicted_class": index + 1, "l2": l2, "linf": l2 / 10,
                          "rounds": 7 * (index + 1), "seconds": 0.1,
                          "first_success_l2": 2 * l2 if method == "generator" and won else None})
    return {"dataset": dataset, "class_names": [str(c) for c in range(10)], "command": f"tapelab attack {dataset}",
            "classifier": {"test_accuracy": 0.987}, "attack": {},
            "generator": {"confidence": 0.85, "shrink_patience": 30, "max_rounds": 400},
            "batch_seconds": {"generator": 2.0, "fgsm": 0.5, "pgd_linf": 4.0, "pgd_l2_ladder": 8.0}, "pairs": pairs}


def _robust_results(dataset):
    def model(clean, pgd, success, l2, alignment):
        return {"examples": 100, "eps": 0.3, "passed": True,
                "scores": {"clean": clean, "fgsm": pgd + 0.05, "pgd": pgd, "random_noise": clean},
                "checks": {"PGD never weaker than FGSM": {"passed": True, "excess": -3, "allowance": 2.0}},
                "eps_sweep": {"0.3": pgd}, "generator": {"success_rate": success, "median_l2": l2, "pairs": 9,
                                                          "mean_alignment": alignment}}
    return {"dataset": dataset, "command": "tapelab robust", "class_names": [str(c) for c in range(10)],
            "validation": {"pgd_steps": 40, "restarts": 3}, "generator": {"confidence": 0.9},
            "robust_training": {"attack": "pgd", "eps": 0.3, "pgd_train_steps": 10},
            "training": {"train": {"epochs": 10}, "train_seconds": 600.0},
            "models": {"standard": model(0.991, 0.0, 1.0, 2.5, 0.05), "robust": model(0.984, 0.912, 0.8, 5.5, 0.31)}}


def test_lab_report_cites_the_numbers_of_the_saved_results(tmp_path):
    attack = _attack_results("mnist", [1.5, 4.25, 2.0], [True, True, False])
    (tmp_path / "attack_mnist").mkdir()
    (tmp_path / "attack_mnist" / "results.json").write_text(json.dumps(attack))
    sources = np.zeros((3, 28, 28, 1), np.float32)
    sources[:, :14] = 0.5
    np.savez(tmp_path / "attack_mnist" / "images.npz", sources=sources)
    (tmp_path / "robust_mnist").mkdir()
    (tmp_path / "robust_mnist" / "results.json").write_text(json.dumps(_robust_results("mnist")))
    truth = np.array([0, 0, 1, 1, 1, 3, 3, 3, 3, 6])
    predicted = np.array([0, 4, 1, 1, 2, 3, 3, 3, 6, 6])
    evaluation = {**classification_metrics(truth, predicted), "split": "test", "skipped": 0, "views": 1,
                  "train_class_counts": [40, 4, 30, 80, 35, 25, 45]}
    write_evaluation(evaluation, tmp_path / "fer", "tapelab fer eval --data D")
    report = write_lab_report(tmp_path).read_text()

    findings = attack_findings(attack, {"sources": sources})
    generator = findings["methods"]["generator"]
    assert generator["success_rate"] == pytest.approx(2 / 3) and generator["mean_l2"] == pytest.approx(2.875)
    assert "| MNIST | 98.7% | generator f(w)=x | 66.7% | 2.875 | 0.287 | 2.0 |" in report
    assert "Why does CIFAR-10 need" not in report  # only asked when both data sets are there
    assert "0 to 2 (L2 4.250, 14 rounds), 0 to 1 (L2 1.500, 7 rounds)" in report
    assert "Pairs not reached: 0 to 3." in report
    assert "with confidence 0.85; then" in report and "has not shrunk for 30 rounds (at most 400" in report
    assert "cut the mean L2 from 5.750, where the pairs first held the target, to 2.875 (50% of it)" in report
    robust = robust_findings(_robust_results("mnist"))
    assert robust["scores"]["robust"]["pgd"] == 0.912
    assert "the standard model keeps 0.0% under PGD-40 with 3 restarts, the robust model 91.2%" in report
    assert "98.4% against 99.1% (0.7 points)" in report and "cosine 0.31 against the robust model" in report
    assert "strokes of the target digit" in report  # 0.31 > 2 x 0.05
    emotions = emotion_findings(json.loads((tmp_path / "fer" / "eval_test.json").read_text()), None, None, None)
    assert emotions["accuracy"] == pytest.approx(0.7)
    assert "classifies 70.00% of the 10 PublicTest faces" in report
    assert "4 disgust faces against 80 happiness faces (20 times as many)" in report
    assert "| disgust | 4 |" in report
    assert "not run yet; `tapelab gradients` makes it" in report and "`tapelab backprop-check" in report


@pytest.mark.parametrize("dataset, linf, verdict", [
    ("cifar10", 6 / 255, "That is within the 8/255 budget"),
    ("cifar10", 9 / 255, "That is 1.12 times the 8/255 budget commonly taken as imperceptible, just above it"),
    ("cifar10", 24 / 255, "That is 3.0 times the 8/255 budget commonly taken as imperceptible: the changes are "
                          "visible."),
    ("mnist", 24 / 255, "the changes are visible, as grey smudges"),
])
def test_perceptibility_is_judged_from_the_measured_change(dataset, linf, verdict):
    from tapelab.attacks.lab_sections import _perceptibility

    findings = {"dataset": dataset, "pixels": 100, "generator_rms_per_pixel": 0.01, "mean_first_success_l2": None,
                "methods": {"generator": {"mean_l2": 0.1, "mean_linf": linf}}}
    assert verdict in _perceptibility(findings)


def test_emotion_section_says_which_faces_the_model_was_chosen_on():
    truth, predicted = np.array([0, 1, 3, 3]), np.array([0, 1, 3, 6])
    test = {**classification_metrics(truth, predicted), "split": "test", "command": "tapelab fer eval"}
    validation = {**classification_metrics(truth[:2], predicted[:2]), "split": "validation",
                  "command": "tapelab fer eval --split validation"}
    chosen_on_test = emotion_section(emotion_findings(test, None, None, None, validation=validation), "fer")
    assert "chosen on PublicTest, so this figure is optimistic" in chosen_on_test
    assert "this model scores 100.00% on them, but it was trained on them too" in chosen_on_test
    runs = [{"command": f"tapelab fer train --seed {seed}", "train": {"seed": seed, "epochs": 40}, "best_epoch": 38,
             "train_seconds": 3600.0} for seed in (0, 1)]
    ensemble = {"training": {"members": runs, "mirror_average": False}, "metrics": {"validation": {}}}
    latency = {"litert_batch_1_p50_ms": 1.5, "litert_batch_4_p50_ms": 5.0, "command": "python scripts/bench_fer.py"}
    quantized = emotion_section(emotion_findings({**test, "runtime": "LiteRT, int8 weights"}, None, None,
                                                 {**latency, "litert_kernels": "int8"}), "fer")
    assert "in one call (run by LiteRT, int8 weights;" in quantized and "(median, LiteRT, int8 kernels, " in quantized
    choice = {"candidates": [{}, {}, {}], "budget": {"latency_ms": 3.0, "megabytes": 32.0},
              "command": "tapelab fer choose a.h5 b.h5 c.h5"}
    honest = emotion_section(emotion_findings(test, None, None, latency, validation=validation, model=ensemble,
                                              choice=choice), "fer")
    assert "the most accurate on those faces of 3 candidates within 3 ms per face and 32 MB" in honest
    choice["budget"]["training_hours"] = 4.0
    with_hours = emotion_section(emotion_findings(test, None, None, latency, validation=validation, model=ensemble,
                                                  choice=choice), "fer")
    assert "of 3 candidates within 3 ms per face, 32 MB and 4 hours of training ([choice.md]" in with_hours
    assert "PublicTest was scored once" in honest and "on the 2 validation faces it scores 100.00%" in honest
    assert "optimistic" not in honest and "75.00% of the 4 PublicTest faces" in honest
    assert "averages 2 nets trained in separate runs (2 net passes: 2 nets, each over the face alone)" in honest
    assert "took 2.00 hours of this 2-core machine in all" in honest
    assert "| 1 | 1 | 40 | 38 | 60 | `tapelab fer train --seed 1` |" in honest
    assert "1.50 ms (median, LiteRT, float32 kernels, 2 net passes: 2 nets, each over the face alone)" in honest
    single = {"training": {"cnn": {"mirror_average": True}, "train": {"seed": 0}, "train_seconds": 60.0},
              "metrics": {"test": {}}}
    mirrored = emotion_section(emotion_findings(test, None, None, latency, validation=validation, model=single), "fer")
    assert "(median, LiteRT, float32 kernels, 2 net passes: one net over the face and its mirror image)" in mirrored
    assert "separate runs" not in mirrored and "optimistic" in mirrored
    staged = {"training": {**runs[1], "stages": [runs[0]], "cnn": {"mirror_average": True}}, "metrics": {}}
    two_runs = emotion_section(emotion_findings(test, None, None, latency, validation=validation, model=staged), "fer")
    assert "The model's net was trained in several runs, each starting from the last one's kept weights" in two_runs
    assert "took 2.00 hours" in two_runs and "| 0 | 0 | 40 | 38 | 60 | `tapelab fer train --seed 0` |" in two_runs
    snapshots = {"training": {"members": [runs[0], {**runs[1], "stages": [runs[0]]}], "mirror_average": True},
                 "metrics": {}}
    shared = emotion_section(emotion_findings(test, None, None, latency, validation=validation, model=snapshots), "fer")
    assert "took 2.00 hours" in shared and "| 1 | 0 | 40 | 38 | (counted above: the same run) |" in shared


def test_readme_results_at_a_glance_are_the_committed_results():
    """The README's table is the one the code draws from results/, so its figures cannot drift from them."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    start, end = readme.index(GLANCE_START), readme.index(GLANCE_END) + len(GLANCE_END)
    assert readme[start:end] == glance_table(Path(__file__).parent.parent / "results", "results/")


def test_ship_copies_a_model_with_a_complete_record_and_refuses_one_without(tmp_path, capsys):
    from tapelab.core.models import build_cnn
    from tapelab.scripts.cli import main

    run = tmp_path / "run"
    run.mkdir()
    build_cnn((8, 8, 1), 3, widths=(2,), dense_units=0).save(run / "tiny_cnn.h5")
    (run / "tiny_cnn.json").write_text(json.dumps({"command": "tapelab classifier", "train_seconds": 1.0}))
    assert main(["ship", str(run / "tiny_cnn.h5"), "--to", str(tmp_path / "models")]) == 2
    assert "lacks data_fingerprint; retrain" in capsys.readouterr().err
    assert not (tmp_path / "models" / "tiny_cnn.h5").exists()
    record = {"command": "tapelab classifier", "train_seconds": 1.0, "data_fingerprint": "ab" * 32}
    (run / "tiny_cnn.json").write_text(json.dumps(record))
    assert main(["ship", str(run / "tiny_cnn.h5"), "--to", str(tmp_path / "models")]) == 0
    assert (tmp_path / "models" / "tiny_cnn.h5").read_bytes() == (run / "tiny_cnn.h5").read_bytes()
    assert model_record(tmp_path / "models" / "tiny_cnn.h5")["data_fingerprint"] == "ab" * 32


def test_the_committed_report_is_what_the_committed_results_give(tmp_path):
    """REPORT.md cannot drift from its data: composed again from the committed results, it is the same page."""
    import shutil

    results = Path(__file__).parent.parent / "results"
    shutil.copytree(results, tmp_path / "results")
    assert write_lab_report(tmp_path / "results").read_text() == (results / "REPORT.md").read_text()
