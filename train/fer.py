"""The facial-emotion classifier: export with its description, evaluation, and prediction on photos.

    tapelab fer train --data-dir ../shared/datasets/fer2013 --seed 1 --out runs/fer_1
    tapelab fer ensemble runs/fer_1/fer2013_emotion.h5 runs/fer_2/fer2013_emotion.h5 --data-dir ... --out runs/fer_12
    tapelab fer ensemble runs/fer_12/fer2013_emotion.h5 runs/fer_3/fer2013_emotion.h5 --data-dir ... --out runs/fer_123
    tapelab fer eval --model runs/fer_12/fer2013_emotion.h5 --data ../shared/datasets/fer2013 --split test --record
    tapelab fer predict photo.jpg
"""

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from tapelab.core.errors import ConfigError, DataError
from tapelab.core.faces import FaceDetector
from tapelab.core.fer import EMOTIONS, FACE_SIZE, load_fer_split, preprocess_face, split_class_counts
from tapelab.core.io import ensure_writable_dir, load_json, save_figure, save_json, write_atomic
from tapelab.core.lite import LiteModel
from tapelab.core.models import (
    averaged_ensemble,
    load_model_file,
    member_nets,
    mirror_averaged,
    model_crop_margin,
    save_model,
)
from tapelab.core.shipped import MODELS_DIR
from tapelab.train.classifier import ClassifierSpec, load_dataset, run_classifier

MODEL_NAME = "fer2013_emotion"
SHIPPED_MODEL = MODELS_DIR / f"{MODEL_NAME}.h5"
PREPROCESSING = (
    "tapelab.core.fer.preprocess_face: greyscale (OpenCV BGR->GRAY), resize to 48x48 (INTER_AREA when shrinking, "
    "INTER_LINEAR when enlarging), scale to float32 in [0, 1], shape (48, 48, 1); the model standardises inside"
)


def describe_model(model_path, summary: dict, metrics: dict) -> Path:
    """Write the JSON that travels beside the `.h5`: labels, input, preprocessing, measured metrics."""
    description = {
        "labels": list(EMOTIONS),
        "input_shape": [FACE_SIZE, FACE_SIZE, 1],
        "preprocessing": PREPROCESSING,
        "training": {key: summary[key]
                     for key in ("command", "train", "cnn", "best_epoch", "train_seconds", "eval_seconds",
                                 "data_fingerprint", "members", "mirror_average", "stages") if key in summary},
        "metrics": metrics,
    }
    return save_json(Path(model_path).with_suffix(".json"), description)


def model_nets(description: dict) -> dict:
    """How the model that a JSON `description` describes computes: its nets, each with the training runs that made
    it (one, or several when a run started from an earlier run's net; oldest first, each with what it recorded: the
    command, seed, epochs, best epoch and time), and whether each net also sees the mirror image (two passes, not
    one), and the training time of all those runs."""
    training = description.get("training", {})
    nets = training.get("members", [training])
    mirror = training.get("mirror_average", training.get("cnn", {}).get("mirror_average", False))
    members = [{"runs": [_run_record(run) for run in [*net.get("stages", []), net]]} for net in nets]
    seconds = [run["train_seconds"] for run in distinct_runs([run for member in members for run in member["runs"]])]
    return {"members": members, "mirror": bool(mirror), "passes": len(members) * (2 if mirror else 1),
            "train_seconds": None if None in seconds else sum(seconds)}  # each run once; None: not all recorded


def distinct_runs(runs: list[dict]) -> list[dict]:
    """`runs` (training records) with each training run once: nets of one ensemble may share a run, when one net
    is a snapshot of a run that another net's training went on from (Huang et al. 2017, snapshot ensembles)."""
    seen, distinct = set(), []
    for run in runs:
        if run_key(run) not in seen:
            seen.add(run_key(run))
            distinct.append(run)
    return distinct


def run_key(run: dict) -> tuple:
    """What tells one training run from another in the records: its command and its measured time."""
    return run.get("command"), run.get("train_seconds")


def _run_record(run: dict) -> dict:
    return {"command": run.get("command"), "seed": run.get("train", {}).get("seed"),
            "epochs": run.get("train", {}).get("epochs"), "best_epoch": run.get("best_epoch"),
            "train_seconds": run.get("train_seconds")}


def earlier_stages(init_from, data_fingerprint: str) -> list[dict]:
    """The training runs behind the net that a run starts from (`init_from`, its JSON beside it), oldest first: the
    compute the new net costs includes theirs. Refused when that net was trained on other data, since it would then
    have seen faces this run holds out for choosing (the validation faces, or PublicTest)."""
    if not init_from:
        return []
    path = Path(init_from).with_suffix(".json")
    if not path.is_file():
        raise DataError(f"{path} is missing: --init-from needs the JSON that `tapelab fer train` writes beside the .h5")
    training = load_json(path)["training"]
    if "members" in training:
        raise ConfigError(f"{init_from} is an ensemble; start from the .h5 of one training run")
    if training.get("data_fingerprint") != data_fingerprint:
        raise ConfigError(f"{init_from} was trained on other data (its data fingerprint differs), so its net has "
                          "seen faces this run holds out; start from a net `tapelab fer train` made from these files")
    return [*training.get("stages", []), {key: training[key] for key in ("command", "train", "best_epoch",
                                                                          "train_seconds") if key in training}]


def train_emotion_model(spec: ClassifierSpec, out_dir, command: str = "", *, models_dir, data_dir,
                        progress: bool = True, strategy=None) -> dict:
    """Train the spec's net on FER2013 Training less the validation faces, keeping its best epoch on them
    (`run_classifier`: MODEL_NAME.h5 into `models_dir`, its training report into `out_dir`), evaluate the
    saved model on the validation faces (that report into `out_dir` too) and write the JSON that travels
    beside the .h5; the validation metrics. PublicTest is not read: it is scored once, by `tapelab fer eval`,
    on the model chosen."""
    data = load_dataset(spec.dataset, data_dir)
    stages = earlier_stages(spec.train.init_from, data.fingerprint())  # checked before the hours of training
    summary = run_classifier(spec, out_dir, command, models_dir=models_dir, data=data, progress=progress,
                             model_name=MODEL_NAME, strategy=strategy)
    if stages:
        summary["stages"] = stages
    model_path = Path(models_dir) / summary["model"]
    metrics = evaluate_split(load_emotion_model(model_path), data_dir, "validation")
    write_evaluation(metrics, out_dir, command)
    describe_model(model_path, summary, {"validation": _headline(metrics)})
    return metrics


def _headline(metrics: dict) -> dict:
    return {key: metrics[key] for key in ("accuracy", "macro_f1", "count")}


def ensemble_emotion_models(member_paths, out_dir, command: str = "", *, data_dir, mirror_average: bool = True) -> dict:
    """Average the nets of the emotion models at `member_paths` (each trained by `train_emotion_model` on the
    same data, or an ensemble of such: its nets join one by one) into one `.h5` (`averaged_ensemble`), over each
    face and its mirror image when `mirror_average` (two passes of every net per call, or one without), score it
    on the validation faces and write it with its JSON into `out_dir`: the nets' training records, their summed
    training time, the validation metrics."""
    trainings = [load_json(Path(path).with_suffix(".json"))["training"] for path in member_paths]
    records = [record for training in trainings for record in training.get("members", [training])]
    fingerprints = {training["data_fingerprint"] for training in trainings}
    if len(fingerprints) > 1:
        raise ConfigError("the ensemble's members were trained on different data (their data fingerprints differ); "
                          "train every member on the same FER2013 files")
    if len({run_key(record) for record in records}) < len(records):
        raise ConfigError("the same trained net is among the members twice (an ensemble already holds it?); "
                          "pass each training run once")
    nets = [net for path in member_paths for net in member_nets(load_emotion_model(path))]
    members = [mirror_averaged(net) for net in nets] if mirror_average else nets  # mirror inside: .h5 keeps
    model = averaged_ensemble(members, name=f"{MODEL_NAME}_ensemble")           # one net per weight group
    model_path = save_model(model, Path(ensure_writable_dir(out_dir)) / f"{MODEL_NAME}.h5")
    metrics = evaluate_split(load_emotion_model(model_path), data_dir, "validation")
    write_evaluation(metrics, out_dir, command)
    summary = {"command": command, "members": records, "mirror_average": mirror_average,
               "data_fingerprint": fingerprints.pop(),
               "train_seconds": model_nets({"training": {"members": records}})["train_seconds"]}
    describe_model(model_path, summary, {"validation": _headline(metrics)})
    return metrics


def record_in_description(model_path, key: str, figures: dict) -> Path:
    """Put measured `figures` (a split's scores, the latency) under `key` of the JSON beside the `.h5`, so
    the shipped model carries what was measured of it."""
    path = Path(model_path or SHIPPED_MODEL).with_suffix(".json")
    if not path.is_file():
        raise DataError(f"{path} is missing: the model has no description to record in; train or ship it first")
    description = load_json(path)
    section, _, name = key.partition(".")
    if name:
        description.setdefault(section, {})[name] = figures
    else:
        description[section] = figures
    return save_json(path, description)


def recorded_scores(metrics: dict, command: str) -> dict:
    """What the model's JSON keeps of an evaluation: headline scores, recall per class, the confusion matrix."""
    return {**_headline(metrics), "recall": {name: c["recall"] for name, c in metrics["per_class"].items()},
            "confusion": metrics["confusion"], "command": command}


def load_emotion_model(path=None):
    return load_model_file(path or SHIPPED_MODEL, (FACE_SIZE, FACE_SIZE, 1), len(EMOTIONS))


def classification_metrics(true_labels: np.ndarray, predicted: np.ndarray) -> dict:
    """Accuracy, per-class precision, recall and F1, macro-F1 and the confusion matrix."""
    k = len(EMOTIONS)
    confusion = np.zeros((k, k), np.int64)
    np.add.at(confusion, (true_labels, predicted), 1)
    per_class = {}
    for index, name in enumerate(EMOTIONS):
        tp = confusion[index, index]
        precision = tp / max(confusion[:, index].sum(), 1)
        recall = tp / max(confusion[index].sum(), 1)
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[name] = {"precision": float(precision), "recall": float(recall), "f1": float(f1),
                           "support": int(confusion[index].sum())}
    return {
        "accuracy": float(np.trace(confusion) / confusion.sum()),
        "macro_f1": float(np.mean([c["f1"] for c in per_class.values()])),
        "per_class": per_class,
        "confusion": confusion.tolist(),
        "count": int(confusion.sum()),
    }


def tta_views(images: np.ndarray, margin: int) -> list[np.ndarray]:
    """Full-size inputs whose centre crop (the model's) is the centre or a corner window, each also
    mirrored: ten crops (Krizhevsky et al. 2012) for a net that crops, the image and its mirror for one
    that does not."""
    height, width = images.shape[1:3]
    padded = np.pad(images, ((0, 0), (margin, margin), (margin, margin), (0, 0)))
    corners = [(dy, dx) for dy in (0, 2 * margin) for dx in (0, 2 * margin)] if margin else []
    views = [padded[:, dy:dy + height, dx:dx + width] for dy, dx in [(margin, margin), *corners]]
    return views + [view[:, :, ::-1] for view in views]


def mean_probabilities(classify, views: list[np.ndarray], batch_size: int = 512) -> np.ndarray:
    """Softmax outputs of `classify` (faces -> probabilities, as numpy) in batches, averaged over `views` of the
    same faces."""
    return np.mean([np.concatenate([classify(view[i:i + batch_size]) for i in range(0, len(view), batch_size)])
                    for view in views], axis=0)


def evaluate_split(model, data_dir, split: str, skip_bad: bool = False, tta: bool = False,
                   weights: str = "int8") -> dict:
    """Metrics of one split, scored as `fer predict` and the realtime program run the model (`LiteModel`, its
    kernels in `weights`); with `tta` each face is averaged over its `tta_views`."""
    x, y, skipped = load_fer_split(data_dir, split, skip_bad)
    views = tta_views(x, model_crop_margin(model)) if tta else [x]
    predicted = mean_probabilities(LiteModel(model, weights=weights), views).argmax(axis=1)
    return {**classification_metrics(y.argmax(axis=1), predicted), "split": split, "skipped": skipped,
            "views": len(views), "weights": weights, "runtime": f"LiteRT, {weights} weights",
            "train_class_counts": _training_counts(data_dir)}


def _training_counts(data_dir) -> list[int] | None:
    """FER2013 Training's faces per emotion (both its parts), for reading per-class results (None when the folder
    has no Training split)."""
    try:
        parts = [split_class_counts(data_dir, part) for part in ("train", "validation")]
        return [sum(counts) for counts in zip(*parts)]
    except DataError:
        return None


def plot_confusion(metrics: dict, path) -> Path:
    from matplotlib.figure import Figure

    confusion = np.asarray(metrics["confusion"], dtype=float)
    rates = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    figure = Figure(figsize=(7, 6))
    axis = figure.subplots()
    shown = axis.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    for row in range(len(EMOTIONS)):
        for col in range(len(EMOTIONS)):
            axis.text(col, row, f"{int(confusion[row, col])}\n{rates[row, col]:.0%}", ha="center", va="center",
                      fontsize=7, color="white" if rates[row, col] > 0.5 else "black")
    axis.set_xticks(range(len(EMOTIONS)), EMOTIONS, rotation=45, ha="right")
    axis.set_yticks(range(len(EMOTIONS)), EMOTIONS)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    figure.colorbar(shown, label="share of the true class")
    axis.set_title(f"FER2013 {metrics['split']}: accuracy {metrics['accuracy']:.2%}, "
                   f"macro-F1 {metrics['macro_f1']:.3f}")
    return save_figure(figure, path)


def evaluation_name(split: str, tta: bool, weights: str = "int8") -> str:
    """The file stem of an evaluation report: `eval_<split>`, `_tta` when averaged over views, and `_float32` when
    scored with float kernels instead of the int8 ones the programs run."""
    return f"eval_{split}" + ("_tta" if tta else "") + ("" if weights == "int8" else f"_{weights}")


def write_evaluation(metrics: dict, out_dir, command: str) -> Path:
    out_dir = Path(out_dir)
    averaged = metrics["views"] > 1
    name = evaluation_name(metrics["split"], averaged, metrics.get("weights", "int8"))  # older files: Keras
    save_json(out_dir / f"{name}.json", {**metrics, "command": command})
    plot_confusion(metrics, out_dir / f"{name}_confusion.png")
    title = f"# FER2013 emotion classifier, split `{metrics['split']}`"
    if averaged:
        title += f", mean over {metrics['views']} views of each face (test-time augmentation)"
    lines = [title, "", f"Produced by `{command}`; the model run by {metrics.get('runtime', 'Keras')}.", "",
             f"Accuracy **{metrics['accuracy']:.4f}** on {metrics['count']} faces; macro-F1 "
             f"**{metrics['macro_f1']:.4f}**" + (f"; {metrics['skipped']} bad items skipped." if metrics["skipped"]
                                                 else "."), "",
             "| emotion | precision | recall | F1 | support |", "|---|---|---|---|---|"]
    lines += [f"| {name_} | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} | {c['support']} |"
              for name_, c in metrics["per_class"].items()]
    lines += ["", f"![confusion]({name}_confusion.png)", ""]
    return write_atomic(out_dir / f"{name}.md", "\n".join(lines))


def predict_images(model, paths, detector: FaceDetector | None = None,
                   skip_bad: bool = False) -> Iterator[dict]:
    """Per image, as soon as it is done, per face: label, confidence and box. A 48x48 image is taken as the
    face itself. An unreadable image raises `DataError`, or with `skip_bad` gives {"path", "error"}."""
    detector = detector or FaceDetector()
    classify = LiteModel(model)
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            problem = (f"cannot read image {path}; give a JPEG or PNG file" if Path(path).is_file()
                       else f"image {path} not found")
            if not skip_bad:
                raise DataError(f"{problem}, or pass --skip-bad to skip unreadable images")
            yield {"path": str(path), "error": problem}
            continue
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        if gray.shape == (FACE_SIZE, FACE_SIZE):
            boxes = [None]
        else:
            boxes = detector.detect(gray)
        faces = [preprocess_face(gray if box is None else box.crop(gray)) for box in boxes]
        probabilities = classify(np.stack(faces)) if faces else np.zeros((0, len(EMOTIONS)))
        yield {"path": str(path), "faces": [
            {"label": EMOTIONS[int(p.argmax())], "confidence": float(p.max()),
             "box": None if box is None else [box.x, box.y, box.width, box.height]}
            for box, p in zip(boxes, probabilities)]}
