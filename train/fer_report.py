"""The emotion classifier's section of the lab report (results/REPORT.md), every number computed here from
the saved evaluation and benchmark files."""

import numpy as np

from tapelab.core.fer import EMOTIONS
from tapelab.train.fer import model_nets, run_key

CONFUSIONS_SHOWN = 3


def emotion_findings(evaluation: dict, tta: dict | None, realtime: dict | None, latency: dict | None, *,
                     validation: dict | None = None, model: dict | None = None, choice: dict | None = None) -> dict:
    """Figures for the section: `evaluation`, `tta` and `validation` are `tapelab fer eval` JSONs (PublicTest in
    one call and ten-crop, the validation faces carved from Training), `realtime` and `latency` the JSONs of
    scripts/bench_realtime.py and scripts/bench_fer.py, `model` the JSON beside the shipped `.h5`: it says whether
    the model's epochs and ensemble were chosen on the validation faces (it holds their scores) rather than on
    PublicTest, and how many nets it averages, each over how many views; `choice` the JSON of `tapelab fer
    choose` that picked it."""
    confusion = np.asarray(evaluation["confusion"], dtype=float)
    rates = confusion / np.maximum(confusion.sum(axis=1, keepdims=True), 1)
    off_diagonal = [(rates[t, p], t, p) for t in range(len(EMOTIONS)) for p in range(len(EMOTIONS)) if t != p]
    confusions = [{"true": EMOTIONS[t], "predicted": EMOTIONS[p], "share": float(share), "count": int(confusion[t, p])}
                  for share, t, p in sorted(off_diagonal, reverse=True)[:CONFUSIONS_SHOWN]]
    per_class = evaluation["per_class"]
    counts = evaluation.get("train_class_counts")
    findings = {
        "accuracy": evaluation["accuracy"], "macro_f1": evaluation["macro_f1"], "count": evaluation["count"],
        "split": evaluation["split"], "command": evaluation["command"],
        "runtime": evaluation.get("runtime", "Keras"),  # files from before LiteRT scored evaluations say nothing
        "tta_accuracy": tta["accuracy"] if tta else None,
        "per_class": per_class, "confusions": confusions,
        "train_class_counts": dict(zip(EMOTIONS, counts)) if counts else None,
        "validation": ({"accuracy": validation["accuracy"], "count": validation["count"],
                        "command": validation["command"]} if validation else None),
        "chosen_on_validation": "validation" in (model or {}).get("metrics", {}),
        "nets": model_nets(model or {}),
        "choice": ({"candidates": len(choice["candidates"]), "budget": choice["budget"], "command": choice["command"]}
                   if choice else None),
        "worst_recall": min(per_class, key=lambda name: per_class[name]["recall"]),
        "best_recall": max(per_class, key=lambda name: per_class[name]["recall"]),
    }
    if realtime:
        findings["realtime"] = {"fps": realtime["fps"], "classify_p50_ms": realtime["stages"]["classify"]["p50_ms"],
                                "recall": realtime.get("recall"), "emotion": realtime.get("emotion"),
                                "command": realtime["command"]}
    if latency:
        findings["latency"] = {"litert_one_face_p50_ms": latency["litert_batch_1_p50_ms"],
                               "litert_four_faces_p50_ms": latency["litert_batch_4_p50_ms"],
                               "kernels": latency.get("litert_kernels", "float32"),  # int8 since it was measured
                               "command": latency["command"]}
    return findings


def _passes_phrase(nets: dict) -> str:
    count = len(nets["members"])
    views = "the face and its mirror image" if nets["mirror"] else "the face alone"
    nets_phrase = f"{count} nets, each" if count > 1 else "one net"
    return f"{nets['passes']} net pass{'es' if nets['passes'] > 1 else ''}: {nets_phrase} over {views}"


def _members_table(nets: dict) -> list[str]:
    """The training runs behind the shipped model, with their commands and times (the compute it cost): shown when
    there is more than one (several nets, or a net trained further from an earlier run's weights)."""
    runs = [(index, run) for index, member in enumerate(nets["members"]) for run in member["runs"]]
    if len(runs) < 2 or nets["train_seconds"] is None:
        return []
    total = nets["train_seconds"]
    count = len(nets["members"])
    made = (f"The model averages {count} nets trained in separate runs" if count > 1
            else "The model's net was trained in several runs, each starting from the last one's kept weights")
    lines = [f"{made} ({_passes_phrase(nets)}); the training took {total / 3600:.2f} hours of this 2-core "
             "machine in all:", "",
             "| net | seed | epochs | kept epoch (best on validation) | training time (min) | command |",
             "|---|---|---|---|---|---|"]
    counted = set()
    for index, run in runs:
        minutes = "(counted above: the same run)" if run_key(run) in counted else f"{run['train_seconds'] / 60:.0f}"
        counted.add(run_key(run))
        lines.append(f"| {index} | {run['seed']} | {run['epochs']} | {run['best_epoch']} | {minutes} | "
                     f"`{run['command']}` |")
    return [*lines, ""]


def _class_sentence(f: dict) -> str:
    per_class, counts = f["per_class"], f["train_class_counts"]
    worst, best = f["worst_recall"], f["best_recall"]
    text = (f"Recall ranges from {per_class[worst]['recall']:.1%} for {worst} to {per_class[best]['recall']:.1%} "
            f"for {best}.")
    if counts:
        rarest, commonest = min(counts, key=counts.get), max(counts, key=counts.get)
        text += (f" The training split is far from balanced: {counts[rarest]:,} {rarest} faces against "
                 f"{counts[commonest]:,} {commonest} faces ({counts[commonest] / counts[rarest]:.0f} times as many)")
        text += (f", and {rarest} has only {per_class[rarest]['support']} test faces, so its scores move by "
                 f"{1 / per_class[rarest]['support']:.1%} per face." if per_class[rarest]["support"] else ".")
        text += (f" The commonest class is also the best recognised ({commonest}: recall "
                 f"{per_class[commonest]['recall']:.1%})" if commonest == best else
                 f" The best recognised class is {best}")
        text += (", and a smile is the most distinctive of the seven expressions." if best == "happiness" else ".")
    return text


def _protocol_sentence(f: dict) -> str:
    """How far the PublicTest figure can be trusted: which faces the model's choices were made on."""
    val = f["validation"]
    if f["chosen_on_validation"]:
        text = ("Its training epochs (and ensemble) were chosen on validation faces carved from Training "
                "(`results/fer/validation_split.json`), and PublicTest was scored once, at the end, so this is a "
                "fair test score")
        if f["choice"]:
            c, budget = f["choice"], f["choice"]["budget"]
            limits = [f"{budget['latency_ms']:g} ms per face", f"{budget['megabytes']:g} MB"]
            if "training_hours" in budget:  # choices made before this budget was checked lack it
                limits.append(f"{budget['training_hours']:g} hours of training")
            text += (f"; it was the most accurate on those faces of {c['candidates']} candidates within "
                     f"{', '.join(limits[:-1])} and {limits[-1]} ([choice.md](fer/choice.md), `{c['command']}`)")
        return text + (f"; on the {val['count']:,} validation faces it scores {val['accuracy']:.2%}." if val else ".")
    text = "Its training epoch was chosen on PublicTest, so this figure is optimistic"
    if val:
        text += (f". Under the protocol every new model follows, choices are made on {val['count']:,} faces carved "
                 f"from Training (`results/fer/validation_split.json`); this model scores {val['accuracy']:.2%} on "
                 "them, but it was trained on them too, so that figure measures recall of seen faces, not "
                 f"generalisation (`{val['command']}`)")
    return text + "."


def _confusion_sentence(f: dict) -> str:
    listed = "; ".join(f"{c['share']:.1%} of the {c['true']} faces ({c['count']}) are taken for {c['predicted']}"
                       for c in f["confusions"])
    return (f"The largest confusions: {listed}. These are expressions that share their most visible parts: a "
            "lowered mouth and brows in sadness, fear and anger, an open mouth and raised brows in fear and "
            "surprise, and a neutral face next to a mild sad one; FER2013's own labels disagree most on such faces "
            "(Goodfellow et al. 2013).")


def emotion_section(f: dict, folder: str) -> str:
    """Markdown for the emotion classifier; `folder` is the link from REPORT.md to its results."""
    lines = ["## 5. Emotion recognition (FER2013)", "",
             f"The shipped model (`models/fer2013_emotion.h5`) classifies {f['accuracy']:.2%} of the {f['count']:,} "
             f"PublicTest faces correctly in one call (run by {f['runtime']}; macro-F1 {f['macro_f1']:.3f}; "
             f"`{f['command']}`)"
             + (f"; averaged over ten crops of each face, {f['tta_accuracy']:.2%}." if f["tta_accuracy"] else ".")
             + " " + _protocol_sentence(f), "",
             "| emotion | training faces | precision | recall | F1 | test faces |", "|---|---|---|---|---|---|"]
    counts = f["train_class_counts"] or {}
    for name in EMOTIONS:
        c = f["per_class"][name]
        training = f"{counts[name]:,}" if name in counts else "n/a"
        lines.append(f"| {name} | {training} | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} | "
                     f"{c['support']} |")
    lines += ["", f"![confusion]({folder}/eval_test_confusion.png)", "",
              *_members_table(f["nets"]),
              "**Per class, and why.** " + _class_sentence(f), "", "**Main confusions.** " + _confusion_sentence(f), ""]
    if "latency" in f or "realtime" in f:
        text = "**Speed.**"
        if "latency" in f:
            lat = f["latency"]
            text += (f" One face takes {lat['litert_one_face_p50_ms']:.2f} ms (median, LiteRT, {lat['kernels']} "
                     f"kernels, {_passes_phrase(f['nets'])}), "
                     f"four faces {lat['litert_four_faces_p50_ms']:.2f} ms (`{lat['command']}`).")
        if "realtime" in f:
            rt = f["realtime"]
            text += (f" The realtime program runs at {rt['fps']:.1f} frames per second end to end on a 640x480 "
                     f"video, classifying in {rt['classify_p50_ms']:.2f} ms per frame (median; `{rt['command']}`)")
            text += f" and finds {rt['recall']:.1%} of its faces." if rt["recall"] is not None else "."
            if rt["emotion"]:
                e = rt["emotion"]
                text += (f" What the user sees, on a video of {e['faces_shown']:,} labelled PublicTest faces: the "
                         f"program finds {e['found']:.1%} of them and names the right emotion for "
                         f"{e['right_emotion']:.1%} of all, against {e['classifier_on_crops']:.1%} for the classifier "
                         "on the same faces' crops: the faces it misses are where the user's accuracy goes.")
        lines += [text, ""]
    return "\n".join(lines)
