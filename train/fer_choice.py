"""Choosing the emotion model to ship: the most accurate on the validation faces among the candidates that fit
the latency, size and training-compute budgets, so PublicTest plays no part in the choice and is scored once,
on the winner.

    tapelab fer choose runs/fer_m0/fer2013_emotion.h5 runs/fer_m01/fer2013_emotion.h5 --out results/fer
"""

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tapelab.core.errors import ConfigError, DataError
from tapelab.core.fer import FACE_SIZE
from tapelab.core.io import load_json, save_figure, save_json, write_atomic
from tapelab.core.lite import LiteModel, call_latencies_ms
from tapelab.train.fer import load_emotion_model, model_nets


@dataclass
class ShippingBudget:
    """What the shipped model may cost: the realtime program's per-face call, the file users download, and the
    machine time that trained it."""

    latency_ms: float = 3.0  # p50 of one LiteRT call on one face, every pass included
    megabytes: float = 32.0
    training_hours: float = 4.0  # of every training run behind the model, each counted once


def validation_score(model_path) -> dict:
    """The validation scores in the JSON beside `model_path` (`fer train`, `fer ensemble` or `fer eval --split
    validation --record` put them there)."""
    description_path = Path(model_path).with_suffix(".json")
    if not description_path.is_file():
        raise DataError(f"{description_path} is missing: give .h5 files that `tapelab fer train` or "
                        "`tapelab fer ensemble` wrote")
    description = load_json(description_path)
    scores = description.get("metrics", {}).get("validation")
    if not scores:
        raise DataError(f"{description_path} has no validation score; run `tapelab fer eval --model {model_path} "
                        "--split validation --record` first")
    return {**scores, "nets": model_nets(description)}


def interleaved_latencies_ms(model_paths, calls: int, rounds: int) -> dict[str, float]:
    """p50 of one LiteRT call on one face per model, timed in `rounds` alternating rounds of `calls` calls each,
    so that a slower spell of a shared machine falls on every candidate alike."""
    classifiers = {str(path): LiteModel(load_emotion_model(path), max_batch=1) for path in model_paths}
    face = np.random.default_rng(0).random((1, FACE_SIZE, FACE_SIZE, 1), dtype=np.float32)
    times = {path: [] for path in classifiers}
    for round_index in range(rounds):
        paths, shift = list(classifiers), round_index % len(classifiers)
        for path in paths[shift:] + paths[:shift]:
            times[path].extend(call_latencies_ms(classifiers[path], face, calls))
    return {path: float(np.median(values)) for path, values in times.items()}


def choose_emotion_model(model_paths, budget: ShippingBudget, calls: int = 200, rounds: int = 5) -> dict:
    """Each candidate's validation scores, net passes, size and latency, and the chosen one: the highest
    validation accuracy within `budget`; ties go to fewer passes, then to less training, so the listed order never
    decides. Raises `ConfigError` when none fits."""
    if len(set(map(str, model_paths))) < len(model_paths):
        raise ConfigError("a candidate is listed twice; list each model once")
    candidates = [{"model": str(path), **validation_score(path),
                   "megabytes": Path(path).stat().st_size / 2**20} for path in model_paths]
    latencies = interleaved_latencies_ms(model_paths, calls, rounds)
    for candidate in candidates:
        seconds = candidate["nets"]["train_seconds"]
        candidate["latency_p50_ms"] = latencies[candidate["model"]]
        candidate["training_hours"] = hours = None if seconds is None else seconds / 3600
        candidate["within_budget"] = (candidate["latency_p50_ms"] <= budget.latency_ms
                                      and candidate["megabytes"] <= budget.megabytes
                                      and hours is not None and hours <= budget.training_hours)
    fitting = [candidate for candidate in candidates if candidate["within_budget"]]
    if not fitting:
        raise ConfigError(f"no candidate is within {budget.latency_ms} ms, {budget.megabytes} MB and "
                          f"{budget.training_hours} hours of training; fastest: {min(latencies.values()):.2f} ms; "
                          "add smaller models (fewer nets, --no-mirror)")
    chosen = max(fitting, key=lambda candidate: (candidate["accuracy"], -candidate["nets"]["passes"],
                                                 -candidate["training_hours"]))
    return {"budget": dataclasses.asdict(budget), "calls": calls, "rounds": rounds, "candidates": candidates,
            "chosen": chosen["model"]}


def write_choice(choice: dict, out_dir, command: str) -> Path:
    """choice.json, choice.md and choice.png: every candidate's figures and the chosen model, with the command."""
    out_dir = Path(out_dir)
    save_json(out_dir / "choice.json", {**choice, "command": command})
    plot_choice(choice, out_dir / "choice.png")
    budget = choice["budget"]
    lines = ["# Which emotion model ships", "", f"Produced by `{command}`.", "",
             f"Rule: the highest accuracy on the validation faces carved from Training among the candidates whose "
             f"one-face LiteRT call takes at most {budget['latency_ms']:g} ms (median of {choice['rounds']} "
             f"alternating rounds of {choice['calls']} calls each), whose file is at most "
             f"{budget['megabytes']:g} MB and whose training runs took at most "
             f"{budget['training_hours']:g} hours in all (each run counted once); on equal accuracy, fewer "
             "net passes, then fewer training hours. PublicTest is not read here.", "",
             "| model | nets | views per net | net passes | validation accuracy | macro-F1 | one face (ms) | MB | "
             "training hours | within budget | chosen |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in choice["candidates"]:
        nets = c["nets"]
        chosen = "**yes**" if c["model"] == choice["chosen"] else ""
        lines.append(f"| `{c['model']}` | {len(nets['members'])} | {2 if nets['mirror'] else 1} | {nets['passes']} | "
                     f"{c['accuracy']:.2%} | {c['macro_f1']:.3f} | {c['latency_p50_ms']:.2f} | {c['megabytes']:.1f} | "
                     f"{_hours(c.get('training_hours'))} | {'yes' if c['within_budget'] else 'no'} | {chosen} |")
    return write_atomic(out_dir / "choice.md", "\n".join(lines) + "\n")


def plot_choice(choice: dict, path) -> Path:
    """Validation accuracy against training hours, one point per candidate (marker: number of nets), the
    training budget as a line and the chosen model ringed: how much accuracy each extra hour bought."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(7, 4.5))
    axis = figure.subplots()
    timed = [c for c in choice["candidates"] if c.get("training_hours") is not None]
    net_counts = sorted({len(c["nets"]["members"]) for c in timed})
    for nets, marker in zip(net_counts, "os^Dv*"):
        group = [c for c in timed if len(c["nets"]["members"]) == nets]
        axis.scatter([c["training_hours"] for c in group], [100 * c["accuracy"] for c in group], marker=marker,
                     c=["tab:blue" if c["within_budget"] else "tab:grey" for c in group],
                     label=f"{nets} net{'s' if nets > 1 else ''}")
    chosen = next(c for c in timed if c["model"] == choice["chosen"])  # within budget, so its hours are known
    axis.scatter(chosen["training_hours"], 100 * chosen["accuracy"], s=250, facecolors="none", edgecolors="tab:red",
                 label="chosen")
    axis.axvline(choice["budget"]["training_hours"], color="tab:red", linestyle="--", linewidth=1,
                 label="training budget")
    axis.set_xlabel("training hours of every run behind the model (each counted once)")
    axis.set_ylabel("validation accuracy (%)")
    axis.set_title("Emotion model candidates (grey: over a budget)")
    axis.legend(fontsize=8)
    axis.grid(alpha=0.3)
    return save_figure(figure, path)


def _hours(hours: float | None) -> str:
    return "not recorded" if hours is None else f"{hours:.2f}"
