"""The trained models that ship with tapelab, in `models/` beside the code.

Each `.h5` has a JSON beside it with its metrics, settings, the exact training command, the training time
and the fingerprint of the data it was trained on; the main job runs on them instead of retraining.
"""

from importlib import resources
from pathlib import Path

from tapelab.core.errors import TapelabError
from tapelab.core.io import load_json, write_atomic

# Package data of `tapelab` (setup.cfg), wherever it is installed: the repository's models/ in an editable install.
MODELS_DIR = Path(str(resources.files("tapelab") / "models"))
# The classifiers of the adversarial lab, in the order the main job uses them.
LAB_MODELS = ("mnist_cnn", "mnist_robust", "cifar10_cnn", "cifar10_robust")


def shipped_model(name: str) -> Path:
    """Path of the shipped `<name>.h5`; an error saying how to get it when it is missing."""
    path = MODELS_DIR / f"{name}.h5"
    if not path.is_file():
        raise TapelabError(f"the shipped model {path} is missing; restore it with `git checkout -- models/` "
                           "or train every model with `tapelab all --retrain`")
    return path


def _training_record(description: dict) -> dict:
    """The training summary inside a model's JSON: the whole file for the lab's classifiers, its `training`
    part (with the test metrics) for the emotion model, whose JSON also describes labels and preprocessing."""
    if "training" not in description:
        return description
    test = description.get("metrics", {}).get("test", {})
    return {**description["training"], **({"test_accuracy": test["accuracy"]} if "accuracy" in test else {})}


def model_record(model_path) -> dict:
    """What the JSON beside a trained `.h5` says of it (test accuracy, training command and time, data
    fingerprint), with the model's path; only the path when there is no such JSON."""
    model_path = Path(model_path)
    record = {"path": str(model_path)}
    summary_path = model_path.with_suffix(".json")
    if summary_path.is_file():
        summary = _training_record(load_json(summary_path))
        record.update({key: summary[key] for key in ("test_accuracy", "train_seconds", "command", "data_fingerprint")
                       if key in summary})
    return record


def ship_model(model_path, models_dir=MODELS_DIR) -> Path:
    """Copy a trained `.h5` and its JSON into `models_dir` (each replaced atomically), the explicit step that
    makes a run's model the one the main job and the realtime program use. The JSON must say how the model was
    made: its command, training time and data fingerprint."""
    model_path = Path(model_path)
    if model_path.suffix != ".h5" or not model_path.is_file():
        raise TapelabError(f"{model_path} is not a trained .h5 file; pass the .h5 that training wrote")
    summary = _training_record(load_json(model_path.with_suffix(".json")))
    missing = [key for key in ("command", "train_seconds", "data_fingerprint") if key not in summary]
    if missing:
        raise TapelabError(f"{model_path.with_suffix('.json')} lacks {', '.join(missing)}; retrain the model with "
                           "this version of tapelab so its record is complete")
    target = Path(models_dir) / model_path.name
    write_atomic(target.with_suffix(".json"), model_path.with_suffix(".json").read_bytes())
    write_atomic(target, model_path.read_bytes())
    return target
