import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from tapelab.core.errors import ConfigError, DataError
from tapelab.core.fer import (
    EMOTIONS,
    KAGGLE_FOLDERS,
    carve_validation,
    load_fer2013,
    load_fer_split,
    preprocess_face,
    split_class_counts,
    validation_counts,
    validation_record,
)
from tapelab.core.lite import LiteModel, to_litert
from tapelab.core.models import MIRROR_AVERAGE_LAYER, build_cnn, mirror_averaged, model_crop_margin, without_mirror
from tapelab.train.fer import (
    SHIPPED_MODEL,
    classification_metrics,
    load_emotion_model,
    mean_probabilities,
    model_nets,
    predict_images,
    tta_views,
)
from tapelab.train.fer_choice import ShippingBudget

ASTRONAUT = Path(__file__).parent / "fixtures" / "astronaut.png"


def _face(label, seed):
    """A 48x48 grey 'face' whose brightness encodes the label, so the label can be read back."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(30 * label + 20, 3, (48, 48)), 0, 255).astype(np.uint8)


def _write_folders(root, per_class=3):
    for split in ("train", "test"):
        for label, folder in enumerate(KAGGLE_FOLDERS):
            (root / split / folder).mkdir(parents=True)
            for index in range(per_class):
                cv2.imwrite(str(root / split / folder / f"{split}_{index}.png"), _face(label, index))


def _write_csv(path, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["emotion", "pixels", "Usage"])
        writer.writerows(rows)


def _row(label, usage, seed=0):
    return [label, " ".join(map(str, _face(label, seed).ravel())), usage]


def test_label_order_is_the_products():
    assert EMOTIONS == ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
    assert dict(zip(KAGGLE_FOLDERS, EMOTIONS))["happy"] == "happiness"
    assert dict(zip(KAGGLE_FOLDERS, EMOTIONS))["sad"] == "sadness"


def test_folder_form_maps_folders_to_labels(tmp_path):
    _write_folders(tmp_path / "fer2013")
    data = load_fer2013(tmp_path)
    # Three Training faces per class: one of each is carved for validation, the other two are trained on.
    assert data.x_train.shape == (14, 48, 48, 1) and data.x_test.shape == (7, 48, 48, 1)
    assert list(data.y_test.argmax(axis=1)) == list(range(7))
    labels = data.y_train.argmax(axis=1)
    brightness = data.x_train.mean(axis=(1, 2, 3)) * 255
    np.testing.assert_allclose(brightness, 30 * labels + 20, atol=2)  # each image kept its folder's label
    assert data.class_names == EMOTIONS


def test_validation_is_carved_stratified_fixed_and_apart_from_training():
    labels = np.repeat(np.arange(7), [400, 44, 410, 722, 483, 317, 496])[np.random.default_rng(5).permutation(2872)]
    carved = carve_validation(labels)
    np.testing.assert_array_equal(carved, carve_validation(labels.copy()))  # the seed is fixed
    np.testing.assert_array_equal(np.bincount(labels[carved]), [40, 4, 41, 72, 48, 32, 50])  # 10% of each class
    np.testing.assert_array_equal(validation_counts([400, 44, 410, 722, 483, 317, 496]), np.bincount(labels[carved]))
    assert len(np.unique(carved)) == len(carved) and np.all(np.diff(carved) > 0)
    np.testing.assert_array_equal(validation_counts([1, 2, 0, 4, 5, 6, 7]), [0, 1, 0, 1, 1, 1, 1])


def test_train_and_validation_split_training_and_counts_agree(tmp_path):
    _write_folders(tmp_path, per_class=12)
    train, validation = load_fer_split(tmp_path, "train"), load_fer_split(tmp_path, "validation")
    whole = np.concatenate([train[0], validation[0]]).reshape(-1, 48 * 48)
    assert len(whole) == len(np.unique(whole, axis=0)) == 12 * 7  # together all of Training, each face once
    for split, (_, y, _) in {"train": train, "validation": validation}.items():
        assert split_class_counts(tmp_path, split) == y.sum(axis=0).astype(int).tolist()
    record = validation_record(tmp_path)
    assert record["per_class"] == dict(zip(EMOTIONS, [1] * 7)) and len(record["files"]) == 7
    for name, face in zip(record["files"], validation[0]):  # each recorded file is the validation face
        np.testing.assert_allclose(preprocess_face(cv2.imread(str(tmp_path / name), cv2.IMREAD_GRAYSCALE)), face)


def test_csv_form_reads_each_usage(tmp_path):
    rows = [_row(3, "Training"), _row(6, "Training", 1), _row(0, "PublicTest"), _row(5, "PrivateTest")]
    _write_csv(tmp_path / "fer2013.csv", rows)
    x, y, skipped = load_fer_split(tmp_path, "train")
    assert x.shape == (2, 48, 48, 1) and list(y.argmax(axis=1)) == [3, 6] and skipped == 0
    np.testing.assert_allclose(x[0, ..., 0], _face(3, 0) / 255.0, rtol=1e-6)
    assert list(load_fer_split(tmp_path, "private")[1].argmax(axis=1)) == [5]


@pytest.mark.parametrize("bad_row, message", [
    ([2, "1 2 3", "Training"], "row 3: 3 pixels instead of 2304"),
    ([9, " ".join(["0"] * 2304), "Training"], "row 3: unknown emotion label 9"),
    (["x", " ".join(["0"] * 2304), "Training"], "row 3: invalid literal"),
])
def test_malformed_csv_row_names_file_and_row(tmp_path, bad_row, message):
    _write_csv(tmp_path / "fer2013.csv", [_row(1, "Training"), bad_row])
    with pytest.raises(DataError, match=message) as error:
        load_fer_split(tmp_path, "train")
    assert str(tmp_path / "fer2013.csv") in str(error.value)
    x, _, skipped = load_fer_split(tmp_path, "train", skip_bad=True)
    assert len(x) == 1 and skipped == 1


def test_unreadable_image_is_named_or_counted(tmp_path):
    _write_folders(tmp_path, per_class=1)
    (tmp_path / "train" / "fear" / "broken.jpg").write_bytes(b"garbage")
    with pytest.raises(DataError, match="cannot read image .*broken.jpg"):
        load_fer_split(tmp_path, "train")
    x, _, skipped = load_fer_split(tmp_path, "train", skip_bad=True)
    assert len(x) == 7 and skipped == 1


def test_missing_data_folder(tmp_path):
    with pytest.raises(DataError, match="expected fer2013.csv or train/EMOTION"):
        load_fer_split(tmp_path, "train")


def test_preprocess_face_gives_the_model_input():
    colour = np.random.default_rng(0).integers(0, 256, (100, 80, 3), dtype=np.uint8)
    face = preprocess_face(colour)
    assert face.shape == (48, 48, 1) and face.dtype == np.float32
    assert 0.0 <= face.min() and face.max() <= 1.0
    same_size = _face(2, 0)
    np.testing.assert_allclose(preprocess_face(same_size)[..., 0], same_size / 255.0, rtol=1e-6)


def test_metrics_from_a_known_confusion():
    true = np.array([0, 0, 1, 1, 3, 3, 3, 6])
    predicted = np.array([0, 1, 1, 1, 3, 3, 0, 6])
    metrics = classification_metrics(true, predicted)
    assert metrics["accuracy"] == pytest.approx(6 / 8)
    assert metrics["per_class"]["anger"]["precision"] == pytest.approx(1 / 2)
    assert metrics["per_class"]["happiness"]["recall"] == pytest.approx(2 / 3)
    assert metrics["per_class"]["disgust"]["f1"] == pytest.approx(2 * (2 / 3) * 1 / (2 / 3 + 1))
    assert np.asarray(metrics["confusion"]).sum() == 8


def test_h5_round_trip_gives_identical_predictions(emotion_model):
    model, path = emotion_model
    faces = np.stack([preprocess_face(_face(label, 3)) for label in range(7)])
    np.testing.assert_array_equal(load_emotion_model(path)(faces).numpy(), model(faces).numpy())


def test_shipped_model_loads_and_its_description_matches_the_committed_evaluation():
    """A fresh clone classifies faces without training: the committed model loads with the product's input,
    stays within the size budget it was chosen under, and its JSON states the labels in order and the PublicTest
    score in results/fer."""
    description = json.loads(SHIPPED_MODEL.with_suffix(".json").read_text())
    evaluation = json.loads((SHIPPED_MODEL.parent.parent / "results" / "fer" / "eval_test.json").read_text())
    assert description["labels"] == list(EMOTIONS) and description["input_shape"] == [48, 48, 1]
    assert description["metrics"]["test"]["accuracy"] == pytest.approx(evaluation["accuracy"])
    assert SHIPPED_MODEL.stat().st_size <= ShippingBudget().megabytes * 2**20
    probabilities = load_emotion_model()(np.stack([preprocess_face(_face(label, 0)) for label in range(7)])).numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)


def test_predict_finds_the_face_in_a_photo_and_takes_a_crop_as_is(emotion_model, tmp_path):
    _, path = emotion_model
    crop = tmp_path / "crop.png"
    cv2.imwrite(str(crop), _face(3, 0))
    photo, whole = predict_images(load_emotion_model(path), [ASTRONAUT, crop])
    assert len(photo["faces"]) == 1
    x, y, width, height = photo["faces"][0]["box"]
    assert 150 < x + width / 2 < 300 and 60 < y + height / 2 < 200 and width > 60  # the astronaut's face
    assert photo["faces"][0]["label"] in EMOTIONS and 1 / 7 <= photo["faces"][0]["confidence"] <= 1
    assert whole["faces"][0]["box"] is None


def test_fer_train_eval_predict_commands(tmp_path, capsys):
    import json

    from tapelab.scripts.cli import main

    _write_folders(tmp_path / "data", per_class=6)
    models, results = tmp_path / "models", tmp_path / "results"
    status = main(["fer", "train", "--data-dir", str(tmp_path / "data"), "--out", str(models), "--results",
                   str(results), "--epochs", "4", "--widths", "4,8", "--convs-per-stage", "1", "--dense-units", "16",
                   "--batch-size", "8", "--learning-rate", "0.05", "--crop-margin", "2", "--max-shift", "2", "--quiet"])
    assert status == 0
    description = json.loads((models / "fer2013_emotion.json").read_text())
    assert description["labels"] == list(EMOTIONS) and description["input_shape"] == [48, 48, 1]
    assert "preprocess_face" in description["preprocessing"]
    assert list(description["metrics"]) == ["validation"]  # training never reads PublicTest
    summary = json.loads((results / "fer2013_emotion.json").read_text())
    losses = [record["train_loss"] for record in summary["records"]]
    assert losses[-1] < losses[0]
    # The preset ships the mirror-averaged net: the summary scores the saved file, and the net alone apart.
    assert summary["cnn"]["mirror_average"] and "net_test_accuracy" in summary
    evaluation = json.loads((results / "eval_validation.json").read_text())
    assert evaluation["count"] == 7 and not (results / "eval_test.json").exists()
    assert evaluation["train_class_counts"] == [6] * 7  # all of Training, both parts
    assert evaluation["runtime"] == "LiteRT, int8 weights"  # scored as the programs run it
    assert main(["fer", "eval", "--model", str(models / "fer2013_emotion.h5"), "--data", str(tmp_path / "data"),
                 "--split", "validation", "--weights", "float32", "--out", str(results)]) == 0
    in_float = json.loads((results / "eval_validation_float32.json").read_text())
    assert summary["test_accuracy"] == pytest.approx(in_float["accuracy"])  # its held-out faces: validation
    assert "run by LiteRT, float32 weights" in (results / "eval_validation_float32.md").read_text()
    assert description["metrics"]["validation"]["accuracy"] == pytest.approx(evaluation["accuracy"])
    assert "the net alone" in (results / "fer2013_emotion.md").read_text()
    assert summary["held_out"] == "validation"  # what the log, the page and the curves call the kept-epoch scores
    assert "Validation accuracy **" in (results / "fer2013_emotion.md").read_text()
    assert "| validation loss | validation accuracy |" in (results / "fer2013_emotion.md").read_text()
    assert (results / "fer2013_emotion_curves.png").exists()
    assert "![learning curves](fer2013_emotion_curves.png)" in (results / "fer2013_emotion.md").read_text()
    assert (results / "eval_validation_confusion.png").exists() and (results / "eval_validation.md").exists()
    assert main(["fer", "eval", "--model", str(models / "fer2013_emotion.h5"), "--data", str(tmp_path / "data"),
                 "--out", str(results), "--record"]) == 0
    tested = json.loads((models / "fer2013_emotion.json").read_text())["metrics"]["test"]
    evaluation = json.loads((results / "eval_test.json").read_text())
    assert tested["confusion"] == evaluation["confusion"] and tested["count"] == 42
    assert tested["recall"] == {name: c["recall"] for name, c in evaluation["per_class"].items()}
    assert "--record" in tested["command"]
    capsys.readouterr()
    assert main(["fer", "predict", str(ASTRONAUT), "--model", str(models / "fer2013_emotion.h5")]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{ASTRONAUT}: ") and "(box x=" in line
    assert main(["fer", "eval", "--model", str(models / "fer2013_emotion.h5"), "--data", str(tmp_path / "data"),
                 "--out", str(results), "--tta"]) == 0
    assert "mean over 10 views" in (results / "eval_test_tta.md").read_text()
    assert json.loads((results / "eval_test_tta.json").read_text())["views"] == 10
    assert main(["fer", "eval", "--model", str(models / "fer2013_emotion.h5"), "--data", str(tmp_path / "none")]) == 2
    assert "data folder" in capsys.readouterr().err


def test_ensemble_averages_its_members_in_one_h5(tmp_path, capsys):
    from tapelab.scripts.cli import main

    _write_folders(tmp_path / "data", per_class=4)
    members = []
    for seed in (1, 2, 3):
        models = tmp_path / f"member{seed}"
        assert main(["fer", "train", "--data-dir", str(tmp_path / "data"), "--out", str(models), "--results",
                     str(models / "results"), "--epochs", "1", "--widths", "4", "--convs-per-stage", "1",
                     "--dense-units", "8", "--batch-size", "8", "--seed", str(seed), "--crop-margin", "2",
                     "--quiet"]) == 0
        members.append(models / "fer2013_emotion.h5")
    members, later = members[:2], members[2]
    out = tmp_path / "ensemble"
    assert main(["fer", "ensemble", *map(str, members), "--data-dir", str(tmp_path / "data"), "--out", str(out)]) == 0
    faces = np.stack([preprocess_face(_face(label, 9)) for label in range(7)])
    expected = np.mean([load_emotion_model(path)(faces).numpy() for path in members], axis=0)
    ensemble = load_emotion_model(out / "fer2013_emotion.h5")
    np.testing.assert_allclose(ensemble(faces).numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(LiteModel(ensemble, max_batch=2, weights="float32")(faces), expected, rtol=1e-4,
                               atol=1e-6)  # what the realtime program runs, its kernels in float
    description = json.loads((out / "fer2013_emotion.json").read_text())
    times = [json.loads(path.with_suffix(".json").read_text())["training"]["train_seconds"] for path in members]
    assert description["training"]["train_seconds"] == pytest.approx(sum(times))
    assert [m["train"]["seed"] for m in description["training"]["members"]] == [1, 2]
    assert description["metrics"]["validation"]["count"] == 7
    assert description["training"]["mirror_average"] is True
    # Without the mirror pass: the mean of the members' nets over the faces alone, half the passes.
    single_pass = tmp_path / "single_pass"
    assert main(["fer", "ensemble", *map(str, members), "--data-dir", str(tmp_path / "data"), "--out",
                 str(single_pass), "--no-mirror"]) == 0
    nets = [without_mirror(load_emotion_model(path)) for path in members]
    assert all(MIRROR_AVERAGE_LAYER not in {layer.name for layer in net.layers} for net in nets)
    unmirrored = np.mean([net(faces).numpy() for net in nets], axis=0)
    assert not np.allclose(unmirrored, expected, rtol=1e-3)  # the mirror pass changes the output
    np.testing.assert_allclose(load_emotion_model(single_pass / "fer2013_emotion.h5")(faces).numpy(), unmirrored,
                               rtol=1e-5)
    assert json.loads((single_pass / "fer2013_emotion.json").read_text())["training"]["mirror_average"] is False
    # An ensemble grows by a net trained later: its nets join one by one, each weighing a third.
    grown = tmp_path / "grown"
    capsys.readouterr()
    assert main(["fer", "ensemble", str(out / "fer2013_emotion.h5"), str(later), "--data-dir",
                 str(tmp_path / "data"), "--out", str(grown)]) == 0
    assert "3 nets, 6 net passes a call" in capsys.readouterr().out
    three = np.mean([load_emotion_model(path)(faces).numpy() for path in [*members, later]], axis=0)
    np.testing.assert_allclose(load_emotion_model(grown / "fer2013_emotion.h5")(faces).numpy(), three, rtol=1e-5)
    grown_training = json.loads((grown / "fer2013_emotion.json").read_text())["training"]
    assert [m["train"]["seed"] for m in grown_training["members"]] == [1, 2, 3]
    assert grown_training["train_seconds"] == pytest.approx(description["training"]["train_seconds"] + json.loads(
        later.with_suffix(".json").read_text())["training"]["train_seconds"])
    capsys.readouterr()
    assert main(["fer", "ensemble", str(out / "fer2013_emotion.h5"), str(members[0]), "--data-dir",
                 str(tmp_path / "data"), "--out", str(tmp_path / "twice")]) == 2
    assert "among the members twice" in capsys.readouterr().err
    # Choosing what ships reads validation scores only, and keeps to the latency and size budgets.
    candidates = [members[0], out / "fer2013_emotion.h5", single_pass / "fer2013_emotion.h5",
                  grown / "fer2013_emotion.h5"]
    accuracy = {str(path): json.loads(path.with_suffix(".json").read_text())["metrics"]["validation"]["accuracy"]
                for path in candidates}
    assert main(["fer", "choose", *map(str, candidates), "--out", str(tmp_path / "choice"), "--calls", "5"]) == 0
    choice = json.loads((tmp_path / "choice" / "choice.json").read_text())
    assert accuracy[choice["chosen"]] == max(accuracy.values())
    assert [c["nets"]["passes"] for c in choice["candidates"]] == [2, 4, 2, 6]
    assert all(c["latency_p50_ms"] > 0 and c["within_budget"] for c in choice["candidates"])
    assert "| **yes** |" in (tmp_path / "choice" / "choice.md").read_text()
    assert (tmp_path / "choice" / "choice.png").read_bytes().startswith(b"\x89PNG")
    smallest = members[0].stat().st_size / 2**20  # every ensemble file is larger than one net's
    assert main(["fer", "choose", *map(str, candidates), "--out", str(tmp_path / "small"), "--calls", "5",
                 "--megabytes", str(smallest)]) == 0
    assert json.loads((tmp_path / "small" / "choice.json").read_text())["chosen"] == str(members[0])
    # Equal validation accuracy and passes: the candidate that took less training wins, whatever the order.
    slower = tmp_path / "slower" / "fer2013_emotion.h5"
    slower.parent.mkdir()
    slower.write_bytes(members[0].read_bytes())
    record = json.loads(members[0].with_suffix(".json").read_text())
    record["training"]["train_seconds"] *= 2
    slower.with_suffix(".json").write_text(json.dumps(record))
    assert main(["fer", "choose", str(slower), str(members[0]), "--out", str(tmp_path / "tie"), "--calls", "5"]) == 0
    assert json.loads((tmp_path / "tie" / "choice.json").read_text())["chosen"] == str(members[0])
    # The training budget counts every run behind a candidate: the three-net ensemble took the longest.
    hours = {c["model"]: c["training_hours"] for c in choice["candidates"]}
    assert hours[str(grown / "fer2013_emotion.h5")] == pytest.approx(grown_training["train_seconds"] / 3600)
    assert main(["fer", "choose", *map(str, candidates), "--out", str(tmp_path / "quick"), "--calls", "5",
                 "--training-hours", str(max(hours.values()) * 0.999)]) == 0
    quick = json.loads((tmp_path / "quick" / "choice.json").read_text())
    assert [c["within_budget"] for c in quick["candidates"]] == [hours[c["model"]] < max(hours.values())
                                                                 for c in quick["candidates"]]
    assert quick["budget"]["training_hours"] == pytest.approx(max(hours.values()) * 0.999)
    assert "training hours |" in (tmp_path / "quick" / "choice.md").read_text()
    capsys.readouterr()
    assert main(["fer", "choose", *map(str, candidates), "--out", str(tmp_path / "none"), "--calls", "5",
                 "--latency-ms", "1e-6"]) == 2
    assert "no candidate is within" in capsys.readouterr().err and not (tmp_path / "none" / "choice.json").exists()
    unscored = json.loads(later.with_suffix(".json").read_text())
    del unscored["metrics"]["validation"]
    later.with_suffix(".json").write_text(json.dumps(unscored))
    assert main(["fer", "choose", str(later), str(members[0]), "--out", str(tmp_path / "unscored")]) == 2
    assert "--split validation --record" in capsys.readouterr().err
    # Members trained on other data cannot be averaged, and an existing model is not replaced silently.
    record = json.loads(members[1].with_suffix(".json").read_text())
    record["training"]["data_fingerprint"] = "other"
    members[1].with_suffix(".json").write_text(json.dumps(record))
    capsys.readouterr()
    assert main(["fer", "ensemble", *map(str, members), "--data-dir", str(tmp_path / "data"), "--out",
                 str(tmp_path / "mixed")]) == 2
    assert "different data" in capsys.readouterr().err
    assert main(["fer", "ensemble", *map(str, members), "--data-dir", str(tmp_path / "data"), "--out", str(out)]) == 2
    assert main(["fer", "train", "--data-dir", str(tmp_path / "data"), "--out", str(out), "--results", str(out)]) == 2
    assert "same folder" in capsys.readouterr().err


def test_training_can_start_from_an_earlier_runs_net_of_the_same_data(tmp_path, capsys):
    from tapelab.scripts.cli import main

    _write_folders(tmp_path / "data", per_class=4)
    tiny = ["--widths", "4", "--convs-per-stage", "1", "--dense-units", "8", "--batch-size", "8", "--crop-margin", "2",
            "--quiet", "--data-dir", str(tmp_path / "data")]

    def train(name, *options):
        return main(["fer", "train", *tiny, "--out", str(tmp_path / name), "--results",
                     str(tmp_path / name / "results"), *options])

    def trained_weights(path):  # batch norm's running statistics move without a learning rate: left out
        return [weight.numpy() for weight in without_mirror(load_emotion_model(path)).trainable_weights]

    first = tmp_path / "first" / "fer2013_emotion.h5"
    assert train("first", "--epochs", "2", "--learning-rate", "0.05") == 0
    # A learning rate too small to move the weights shows where the second run started: the first run's net.
    assert train("second", "--epochs", "1", "--learning-rate", "1e-12", "--init-from", str(first)) == 0
    second = tmp_path / "second" / "fer2013_emotion.h5"
    for started, kept in zip(trained_weights(first), trained_weights(second)):
        np.testing.assert_allclose(kept, started, atol=1e-6)
    assert train("fresh", "--epochs", "1", "--learning-rate", "1e-12") == 0
    assert not np.allclose(trained_weights(tmp_path / "fresh" / "fer2013_emotion.h5")[0], trained_weights(first)[0],
                           atol=1e-3)
    # The new net's record holds the run it started from: the compute it cost is both runs'.
    training = json.loads(second.with_suffix(".json").read_text())["training"]
    first_training = json.loads(first.with_suffix(".json").read_text())["training"]
    assert [stage["command"] for stage in training["stages"]] == [first_training["command"]]
    runs = model_nets({"training": training})["members"][0]["runs"]
    assert [run["epochs"] for run in runs] == [2, 1]
    assert [run["train_seconds"] for run in runs] == [first_training["train_seconds"], training["train_seconds"]]
    # A third run from the second keeps the whole chain.
    assert train("third", "--epochs", "1", "--init-from", str(second)) == 0
    third = json.loads((tmp_path / "third" / "fer2013_emotion.json").read_text())["training"]
    assert [stage["train"]["epochs"] for stage in third["stages"]] == [2, 1]
    # Refused before training: a net of another architecture, an ensemble, a net of other data, one without JSON.
    capsys.readouterr()
    assert train("wider", "--epochs", "1", "--widths", "6", "--init-from", str(first)) == 2
    assert "not of this run's architecture" in capsys.readouterr().err
    assert main(["fer", "ensemble", str(first), str(second), "--data-dir", str(tmp_path / "data"), "--out",
                 str(tmp_path / "pair")]) == 0  # a snapshot ensemble: the second net went on from the first
    pair = json.loads((tmp_path / "pair" / "fer2013_emotion.json").read_text())["training"]
    assert pair["train_seconds"] == pytest.approx(first_training["train_seconds"] + training["train_seconds"])
    capsys.readouterr()
    assert train("from_pair", "--epochs", "1", "--init-from", str(tmp_path / "pair" / "fer2013_emotion.h5")) == 2
    assert "is an ensemble" in capsys.readouterr().err
    record = json.loads(first.with_suffix(".json").read_text())
    record["training"]["data_fingerprint"] = "other"
    first.with_suffix(".json").write_text(json.dumps(record))
    assert train("other", "--epochs", "1", "--init-from", str(first)) == 2
    assert "trained on other data" in capsys.readouterr().err
    assert not (tmp_path / "other" / "fer2013_emotion.h5").exists()
    first.with_suffix(".json").unlink()
    assert train("unrecorded", "--epochs", "1", "--init-from", str(first)) == 2
    assert "needs the JSON" in capsys.readouterr().err


def test_litert_classifier_matches_the_model_for_any_number_of_faces(emotion_model):
    model, _ = emotion_model
    classify = LiteModel(model, max_batch=8, weights="float32")
    faces = np.random.default_rng(1).random((11, 48, 48, 1), dtype=np.float32)
    for count in (0, 1, 3, 8, 11):  # empty, one, some, the largest interpreter, two chunks
        expected = model(faces[:count], training=False).numpy() if count else np.zeros((0, 7))
        np.testing.assert_allclose(classify(faces[:count]), expected, rtol=1e-4, atol=1e-6)


def test_litert_int8_kernels_are_a_quarter_of_the_size_and_close_to_the_float_ones():
    model = build_cnn((48, 48, 1), 7, widths=(16, 32), convs_per_stage=1, dense_units=64, mean=[0.5], std=[0.25])
    int8, float32 = to_litert(model), to_litert(model, "float32")
    assert len(int8) < 0.4 * len(float32)
    faces = np.random.default_rng(4).random((6, 48, 48, 1), dtype=np.float32)
    quantized, exact = LiteModel(model, max_batch=4)(faces), LiteModel(model, max_batch=4, weights="float32")(faces)
    np.testing.assert_allclose(exact, model(faces).numpy(), rtol=1e-4, atol=1e-6)
    assert not np.array_equal(quantized, exact)  # int8 arithmetic, not the float kernels
    np.testing.assert_allclose(quantized, exact, atol=0.02)
    np.testing.assert_allclose(quantized.sum(axis=1), 1, rtol=1e-5)
    with pytest.raises(ConfigError, match="unknown weight format 'int4'"):
        to_litert(model, "int4")


def test_tta_views_are_the_ten_crops_the_model_sees():
    """Through the model's centre crop, the views are the centre and the four corner windows, each also
    mirrored; the averaged probabilities are the mean over them. A net without a crop gets the image and
    its mirror."""
    margin = 2
    model = build_cnn((12, 12, 1), 7, widths=(4,), convs_per_stage=1, dense_units=8, crop_margin=margin)
    assert model_crop_margin(model) == margin and model_crop_margin(build_cnn((12, 12, 1), 7, widths=(4,))) == 0
    images = np.random.default_rng(2).random((3, 12, 12, 1), dtype=np.float32)
    views = tta_views(images, margin)
    seen = [view[:, margin:-margin, margin:-margin] for view in views]
    windows = [images[:, dy:dy + 8, dx:dx + 8] for dy, dx in [(2, 2), (0, 0), (0, 4), (4, 0), (4, 4)]]
    for got, want in zip(seen, windows + [window[:, :, ::-1] for window in windows]):
        np.testing.assert_array_equal(got, want)
    assert len(views) == 10
    expected = np.mean([model(view).numpy() for view in views], axis=0)
    np.testing.assert_allclose(mean_probabilities(lambda x: model(x).numpy(), views, batch_size=2), expected,
                               rtol=1e-5)
    plain = tta_views(images, 0)
    assert len(plain) == 2 and np.array_equal(plain[1], images[:, :, ::-1])


def test_mirror_averaged_model_is_the_mean_over_each_face_and_its_mirror(tmp_path):
    """The wrapper shares the net's weights, adds none to train, averages the net over the face and its
    left-right mirror, and survives the .h5 round trip and the LiteRT conversion."""
    net = build_cnn((48, 48, 1), 7, widths=(4,), convs_per_stage=1, dense_units=8, crop_margin=4, mean=[0.5],
                    std=[0.25])
    model = mirror_averaged(net)
    faces = np.random.default_rng(3).random((5, 48, 48, 1), dtype=np.float32)
    expected = (net(faces).numpy() + net(faces[:, :, ::-1]).numpy()) / 2
    np.testing.assert_allclose(model(faces).numpy(), expected, rtol=1e-6)
    assert not np.allclose(expected, net(faces).numpy())  # the mirror changes this net's answer
    assert [w.name for w in model.trainable_weights] == [w.name for w in net.trainable_weights]
    model.save(tmp_path / "mirrored.h5")
    loaded = load_emotion_model(tmp_path / "mirrored.h5")
    np.testing.assert_array_equal(loaded(faces).numpy(), model(faces).numpy())
    assert model_crop_margin(loaded) == 4
    np.testing.assert_allclose(LiteModel(loaded, max_batch=2, weights="float32")(faces), expected, rtol=1e-4,
                               atol=1e-6)


def _predict_inputs(tmp_path):
    """Two readable 48x48 faces and a file that is not an image."""
    good = [tmp_path / "good1.png", tmp_path / "good2.png"]
    for index, path in enumerate(good):
        cv2.imwrite(str(path), _face(index, 0))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image")
    return good, broken


def test_predict_gives_each_image_as_it_is_done(emotion_model, tmp_path):
    (good, _), broken = _predict_inputs(tmp_path)
    results = predict_images(load_emotion_model(emotion_model[1]), [good, broken])
    assert next(results)["path"] == str(good)  # the first is out before the broken one is read
    with pytest.raises(DataError, match="cannot read image .*broken.jpg.*--skip-bad"):
        next(results)


def test_predict_prints_the_good_images_before_failing_on_a_bad_one(emotion_model, tmp_path, capsys):
    from tapelab.scripts.cli import main

    good, broken = _predict_inputs(tmp_path)
    assert main(["fer", "predict", *map(str, good), str(broken), "--model", str(emotion_model[1])]) == 2
    captured = capsys.readouterr()
    assert [line.split(": ")[0] for line in captured.out.splitlines()] == list(map(str, good))
    err = captured.err.strip()
    assert err.startswith("tapelab: error: cannot read image") and "--skip-bad" in err and "\n" not in err


def test_predict_skip_bad_counts_the_unreadable_images(emotion_model, tmp_path, capsys):
    from tapelab.scripts.cli import main

    good, broken = _predict_inputs(tmp_path)
    argv = ["fer", "predict", str(good[0]), str(broken), str(good[1]), "--model", str(emotion_model[1]), "--skip-bad"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert [line.split(": ")[0] for line in captured.out.splitlines()] == list(map(str, good))
    assert f"skipped cannot read image {broken}" in captured.err and "1 of 3 images skipped" in captured.err
    assert main(["fer", "predict", str(broken), "--model", str(emotion_model[1]), "--skip-bad"]) == 2
    assert "none of the 1 images could be read" in capsys.readouterr().err


def test_predict_json_prints_only_json_lines(emotion_model, tmp_path, capsys):
    from tapelab.scripts.cli import main

    empty = tmp_path / "empty.png"
    cv2.imwrite(str(empty), np.full((100, 100, 3), 90, np.uint8))
    (good, _), broken = _predict_inputs(tmp_path)
    argv = ["fer", "predict", str(ASTRONAUT), str(empty), str(good), str(broken), "--model", str(emotion_model[1]),
            "--json", "--skip-bad"]
    assert main(argv) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]  # every line parses
    assert [record["path"] for record in records] == [str(ASTRONAUT), str(empty), str(good)]
    assert len(records[0]["faces"]) == 1 and records[1]["faces"] == [] and records[2]["faces"][0]["box"] is None


def test_eval_checks_its_output_folder_before_loading_anything(emotion_model, tmp_path, capsys):
    from tapelab.scripts.cli import main

    (tmp_path / "file").write_text("x")
    argv = ["fer", "eval", "--model", str(emotion_model[1]), "--data", str(tmp_path / "no-data")]
    assert main([*argv, "--out", str(tmp_path / "file" / "results")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("tapelab: error: cannot write to output folder") and "no-data" not in err
    # A folder made for the report is removed again when the command fails before writing into it.
    assert main([*argv, "--out", str(tmp_path / "new" / "results")]) == 2
    assert "data folder" in capsys.readouterr().err and not (tmp_path / "new").exists()
