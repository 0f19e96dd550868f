"""results/REPORT.md, the lab report: the sections of every experiment, in the lab's order, composed from the
results the main job saved. Every number is inserted from those files by the section functions."""

import json
from pathlib import Path

import numpy as np

from tapelab.attacks.experiment import method_summary
from tapelab.attacks.lab_sections import adversarial_section, attack_findings, robust_findings, robust_section
from tapelab.core.io import write_atomic
from tapelab.core.shipped import MODELS_DIR
from tapelab.scripts.main_job import format_duration
from tapelab.train.fer_report import emotion_findings, emotion_section
from tapelab.train.gradient_flow_report import findings as gradient_findings
from tapelab.train.gradient_lab_report import backprop_section, gradient_flow_section

DATASETS = ("mnist", "cifar10")


def _load(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


def _missing(what: str, command: str) -> str:
    return f"*{what}: not run yet; `{command}` makes it.*\n"


def _header(job: dict | None) -> str:
    lines = ["# tapelab lab report", "",
             "What `model.fit` hides, measured: how gradients flow through deep nets and why some fail to train, "
             "how little change fools a classifier and what makes one robust, and how well a small CNN reads "
             "emotions from faces. Every number on this page is inserted from the results files of the run "
             "named below; each section links its own report, data and command.", ""]
    if job:
        ran = [stage for stage in job["stages"] if not stage["skipped"]]
        lines += [f"Produced by `{job['command']}` in **{format_duration(job['total_seconds'])}** on "
                  f"{job['cpu_count']} CPU cores ({len(ran)} of {len(job['stages'])} stages ran; times at the end "
                  "of the page).", ""]
    return "\n".join(lines)


def _adversarial(out: Path) -> str:
    findings, folders = {}, {}
    for dataset in DATASETS:
        folder = out / f"attack_{dataset}"
        results = _load(folder / "results.json")
        if results and (folder / "images.npz").is_file():
            with np.load(folder / "images.npz") as images:
                findings[dataset] = attack_findings(results, {"sources": images["sources"]})
            folders[dataset] = folder.name
    if not findings:
        return "## 3. Adversarial examples\n\n" + _missing("Adversarial examples", "tapelab attack --dataset mnist")
    return adversarial_section(findings, folders)


def _robust(out: Path) -> str:
    loaded = {dataset: _load(out / f"robust_{dataset}" / "results.json") for dataset in DATASETS}
    findings = {dataset: robust_findings(results) for dataset, results in loaded.items() if results}
    if not findings:
        return "## 4. Adversarially robust models\n\n" + _missing("Robust models", "tapelab robust --dataset mnist")
    return robust_section(findings, {dataset: f"robust_{dataset}" for dataset in findings})


def _emotion(out: Path, job: dict | None) -> str:
    evaluation = _load(out / "fer" / "eval_test.json")
    if not evaluation:
        return "## 5. Emotion recognition (FER2013)\n\n" + _missing(
            "The emotion classifier's evaluation", "tapelab fer eval --data <folder with FER2013>")
    description = _load(MODELS_DIR / "fer2013_emotion.json") or {}
    findings = emotion_findings(evaluation, _load(out / "fer" / "eval_test_tta.json"),
                                _load(out / "bench_realtime" / "bench_realtime.json"),
                                _load(out / "bench_fer" / "bench_fer.json"),
                                validation=_load(out / "fer" / "eval_validation.json"),
                                model=description, choice=_load(out / "fer" / "choice.json"))
    text = emotion_section(findings, "fer")
    skipped = [stage["skipped"] for stage in (job or {}).get("stages", []) if "emotion" in stage["title"]]
    if skipped and skipped[0]:
        text += (f"\n*This run did not evaluate the emotion classifier ({skipped[0]}); the figures above are "
                 "those of the last run that did.*\n")
    return text


def _stage_times(job: dict | None) -> str:
    if not job:
        return ""
    lines = ["## How this page was made", "", "| stage | command | time | status |", "|---|---|---|---|"]
    for stage in job["stages"]:
        status = "skipped" if stage["skipped"] else ("ok" if stage["status"] == 0 else f"exit {stage['status']}")
        lines.append(f"| {stage['title']} | `{stage['command']}` | {format_duration(stage['seconds'])} | {status} |")
    lines += ["", "Timings and training times depend on the machine; the other figures are deterministic up to "
              "floating-point summation order.", ""]
    return "\n".join(lines)


GLANCE_START, GLANCE_END = "<!-- results at a glance: made by scripts/lab_report.py -->", "<!-- end of results -->"


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _glance_rows(out: Path) -> list[tuple[str, str, str]]:
    """(experiment, headline figure, report path relative to `out`) for each experiment with results."""
    rows = []
    check = _load(out / "backprop_check.json")
    if check:
        worst = max(layer["max_rel_error"] for model in check["checks"] for layer in model["layers"])
        rows.append(("Backprop by hand", f"{'matches' if check['passed'] else 'DIFFERS FROM'} tf.GradientTape in "
                     f"{len(check['checks'])} nets, largest relative error {worst:.1e} (float64)", "backprop_check.md"))
    gradients = _load(out / "gradient_flow" / "results.json")
    if gradients:
        models = gradient_findings(gradients)["models"]
        deepest = max(gradients["settings"]["grid"]["depths"])
        scores = ", ".join(f"{activation} {_pct(models[f'{activation}-{deepest}']['accuracy']['mean'])}"
                           for activation in gradients["settings"]["grid"]["activations"])
        rows.append((f"Gradient flow, {deepest} hidden layers",
                     f"test accuracy {scores} (mean of {len(gradients['settings']['grid']['seeds'])} seeds)",
                     "gradient_flow/report.md"))
    for dataset, title in (("mnist", "MNIST"), ("cifar10", "CIFAR-10")):
        attack = _load(out / f"attack_{dataset}" / "results.json")
        if attack:
            methods = {row["method"]: row for row in method_summary(attack)}
            g, pgd = methods["generator"], methods["pgd_l2_ladder"]
            rows.append((f"Adversarial examples, {title}", f"generator reaches {_pct(g['success_rate'])} of targets, "
                         f"mean L2 {g['mean_l2']:.2f} (L2-PGD {pgd['mean_l2']:.2f}), mean L-inf {g['mean_linf']:.3f}",
                         f"attack_{dataset}/report.md"))
    for dataset, title in (("mnist", "MNIST"), ("cifar10", "CIFAR-10")):
        robust = _load(out / f"robust_{dataset}" / "results.json")
        if robust:
            r, s = robust["models"]["robust"]["scores"], robust["models"]["standard"]["scores"]
            rows.append((f"Robust model, {title}", f"PGD accuracy {_pct(r['pgd'])} (standard {_pct(s['pgd'])}) at "
                         f"eps {robust['robust_training']['eps']:.3g}; clean {_pct(r['clean'])} "
                         f"(standard {_pct(s['clean'])})", f"robust_{dataset}/report.md"))
    evaluation = _load(out / "fer" / "eval_test.json")
    if evaluation:
        rows.append(("Emotion classifier, FER2013", f"PublicTest {evaluation['accuracy']:.2%} in one call, macro-F1 "
                     f"{evaluation['macro_f1']:.3f}", "fer/eval_test.md"))
    realtime = _load(out / "bench_realtime" / "bench_realtime.json")
    if realtime:
        rows.append(("Realtime program", f"{realtime['recall']:.1%} of faces found, {realtime['false_face_rate']:.2%} "
                     f"of frames with a false face, {realtime['fps']:.1f} frames per second "
                     f"({realtime['fps_ratio_vs_full_resolution']:.2f}x a full-resolution Haar pipeline)",
                     "bench_realtime/bench_realtime.md"))
    return rows


def glance_table(out, link_prefix: str = "") -> str:
    """The results-at-a-glance table (README and REPORT.md), between markers so a test can compare the two."""
    lines = [GLANCE_START, "| experiment | result | details |", "|---|---|---|"]
    lines += [f"| {name} | {headline} | [{Path(link).parent.name or link}]({link_prefix}{link}) |"
              for name, headline, link in _glance_rows(Path(out))]
    return "\n".join([*lines, GLANCE_END])


def write_lab_report(out) -> Path:
    """Compose REPORT.md in `out` from the results there; a section whose results are missing says how to
    make them."""
    out = Path(out)
    job = _load(out / "main_job.json")
    check = _load(out / "backprop_check.json")
    gradients = _load(out / "gradient_flow" / "results.json")
    parts = [
        _header(job), "## Results at a glance", "", glance_table(out), "",
        backprop_section(check, "backprop_check.md") if check else
        "## 1. Backpropagation by hand\n\n" + _missing("The backprop check", "tapelab backprop-check --out results"),
        gradient_flow_section(gradients, "gradient_flow") if gradients else
        "## 2. Gradient flow in deep MLPs on MNIST\n\n" + _missing("The gradient-flow grid", "tapelab gradients"),
        _adversarial(out), _robust(out), _emotion(out, job), _stage_times(job),
    ]
    return write_atomic(out / "REPORT.md", "\n".join(parts))
