"""`tapelab all`: the main job. Every experiment in the lab's order, then results/REPORT.md.

    tapelab all --data-dir ../shared/datasets            # on the shipped models: evaluate, attack, draw
    tapelab all --data-dir ../shared/datasets --retrain  # train every model first (hours on 2 cores)

Each stage is one `tapelab` command line, shown and recorded as typed; it is parsed by the same parser as the
command line (`scripts.cli.run_command_line`) and run in this process. A line per stage says where the job is.
"""

import os
import time
from dataclasses import dataclass
from pathlib import Path

from tapelab.core.data import DATASET_TITLES
from tapelab.core.io import save_json
from tapelab.core.shipped import shipped_model

FER_MISSING = ("skipped: no FER2013 under the data folder, and FER2013 has no automatic download; get it "
               "(Kaggle folders train/EMOTION/*.jpg and test/EMOTION/*.jpg, or fer2013.csv) and pass its parent "
               "folder with --data-dir")


@dataclass
class Stage:
    title: str
    argv: list
    skipped: str = ""  # why the stage does not run; empty when it runs


def has_fer2013(data_dir) -> bool:
    """Whether `data_dir` holds FER2013 as `tapelab fer eval` reads it (folders or CSV, directly or in fer2013/)."""
    if data_dir is None:
        return False
    roots = (Path(data_dir), Path(data_dir) / "fer2013")
    return any((root / "fer2013.csv").is_file() or ((root / "test").is_dir() and (root / "train").is_dir())
               for root in roots)


def plan_stages(data_dir, out: Path, retrain: bool, models: Path, quiet: bool) -> list[Stage]:
    """The job's stages. Without `retrain` the adversarial lab runs on the shipped models; with it every
    classifier and robust model is trained first, into `models`."""
    data = ["--data-dir", str(data_dir)] if data_dir else []
    quiet_flag = ["--quiet"] if quiet else []
    # The job's purpose is to remake its results folder: each stage replaces its own earlier results.
    stages = [Stage("backprop check", ["backprop-check", "--summary", "--out", str(out), "--overwrite"]),
              Stage("gradient flow on MNIST (12 MLPs per seed)",
                    ["gradients", "--out", str(out / "gradient_flow"), "--overwrite", *quiet_flag, *data])]
    classifiers = {dataset: models / f"{dataset}_cnn.h5" if retrain else shipped_model(f"{dataset}_cnn")
                   for dataset in DATASET_TITLES}
    for dataset, title in DATASET_TITLES.items():
        if retrain:
            stages.append(Stage(f"training the {title} CNN", [
                "classifier", "--dataset", dataset, "--out", str(models),
                "--results", str(out / "classifiers"), "--overwrite", *quiet_flag, *data]))
        stages.append(Stage(f"adversarial examples on {title}", [
            "attack", "--dataset", dataset, "--model", str(classifiers[dataset]),
            "--out", str(out / f"attack_{dataset}"), "--overwrite", *data]))
    for dataset, title in DATASET_TITLES.items():
        robust_dir = models if retrain else shipped_model(f"{dataset}_robust").parent
        stages.append(Stage(("training and validating" if retrain else "validating") + f" the robust {title} model", [
            "robust", "--dataset", dataset, "--standard-model", str(classifiers[dataset]), "--out", str(robust_dir),
            "--results", str(out / f"robust_{dataset}"),
            "--attack-results", str(out / f"attack_{dataset}" / "results.json"), "--overwrite",
            *(["--retrain"] if retrain else []), *quiet_flag, *data]))
    fer_skip = "" if has_fer2013(data_dir) else FER_MISSING
    fer = ["fer", "eval", "--data", str(data_dir), "--out", str(out / "fer"), "--overwrite"]
    stages.append(Stage("the emotion classifier on FER2013 PublicTest", fer, fer_skip))
    stages.append(Stage("the emotion classifier, ten-crop averaging", [*fer, "--tta"], fer_skip))
    stages.append(Stage("the emotion classifier on the validation faces carved from Training",
                        [*fer, "--split", "validation"], fer_skip))
    return stages


def format_duration(seconds: float) -> str:
    minutes, seconds = divmod(round(seconds), 60)
    return f"{minutes} min {seconds} s" if minutes else f"{seconds} s"


def run_stages(stages: list[Stage], run_command, command: str, record_path: Path) -> dict:
    """Run every stage through `run_command(argv) -> exit status`, printing a line per stage; save the
    timings to `record_path` after each stage, so an interrupted job still leaves them."""
    start = time.perf_counter()
    record = {"command": command, "cpu_count": os.cpu_count(), "stages": [], "total_seconds": 0.0, "status": 0}
    for number, stage in enumerate(stages, 1):
        print(f"stage {number}/{len(stages)}: {stage.title}, {format_duration(time.perf_counter() - start)} so far",
              flush=True)
        stage_start = time.perf_counter()
        if stage.skipped:
            print(f"  {stage.skipped}", flush=True)
            status = 0
        else:
            print(f"  tapelab {' '.join(stage.argv)}", flush=True)
            status = run_command(stage.argv)
        record["stages"].append({"title": stage.title, "command": "tapelab " + " ".join(stage.argv),
                                 "skipped": stage.skipped, "status": status,
                                 "seconds": time.perf_counter() - stage_start})
        record["status"] = max(record["status"], status)
        record["total_seconds"] = time.perf_counter() - start
        save_json(record_path, record)
    print(f"all {len(stages)} stages done in {format_duration(record['total_seconds'])}", flush=True)
    return record
