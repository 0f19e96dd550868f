"""The adversarial lab's sections of the lab report (results/REPORT.md): questions answered in sentences
whose every number is computed here from the saved results, never typed.

Each `*_findings` function returns the figures a section cites (a test compares them with the JSON);
each `*_section` function turns them into Markdown.
"""

import numpy as np

from tapelab.attacks.experiment import mean_first_success_l2, method_summary
from tapelab.core.data import dataset_title

# The L-infinity budget the literature commonly treats as imperceptible on 8-bit images (Madry et al. 2018).
IMPERCEPTIBLE_LINF = 8 / 255
# Up to this multiple of the budget a change is described as just above it, not as visible.
NEAR_BUDGET = 1.5
METHOD_TITLES = {"generator": "generator f(w)=x", "fgsm": "FGSM (one step)", "pgd_linf": "L-inf PGD",
                 "pgd_l2_ladder": "L2-PGD, smallest radius of a ladder"}
HARDEST_SHOWN = 5


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def attack_findings(results: dict, images: dict) -> dict:
    """The figures the adversarial section cites for one data set."""
    methods = {row["method"]: row for row in method_summary(results)}
    names = results["class_names"]
    pairs = [p for p in results["pairs"] if p["method"] == "generator" and not p["trivial"]]
    won = [p for p in pairs if p["success"]]
    hardest = sorted(won, key=lambda p: -p["l2"])[:HARDEST_SHOWN]
    by_target = {names[t]: float(np.mean([p["l2"] for p in won if p["target_class"] == t]))
                 for t in sorted({p["target_class"] for p in won})}
    by_source = {names[s]: float(np.mean([p["l2"] for p in won if p["source_class"] == s]))
                 for s in sorted({p["source_class"] for p in won})}
    sources = images["sources"]
    pixels = int(np.prod(sources.shape[1:]))
    generator = methods["generator"]
    return {
        "dataset": results["dataset"],
        "settings": results["generator"],
        "mean_first_success_l2": mean_first_success_l2(won),
        "classifier_accuracy": results.get("classifier", {}).get("test_accuracy"),
        "pairs": len(pairs),
        "pixels": pixels,
        "methods": methods,
        "generator_rms_per_pixel": generator["mean_l2"] / np.sqrt(pixels),
        "saturated_pixel_share": float(np.mean((sources == 0) | (sources == 1))),
        "hardest": [{"source": names[p["source_class"]], "target": names[p["target_class"]], "l2": p["l2"],
                     "rounds": p["rounds"]} for p in hardest],
        "failed": [{"source": names[p["source_class"]], "target": names[p["target_class"]]}
                   for p in pairs if not p["success"]],
        "mean_l2_by_target": by_target,
        "mean_l2_by_source": by_source,
    }


def _perceptibility(f: dict) -> str:
    g = f["methods"]["generator"]
    title = dataset_title(f["dataset"])
    levels = g["mean_linf"] * 255
    text = (f"On {title} the generator's images differ from their sources by a mean L2 of {g['mean_l2']:.3f} over "
            f"{f['pixels']:,} inputs (root mean square {f['generator_rms_per_pixel']:.4f} per input, "
            f"{255 * f['generator_rms_per_pixel']:.1f} of 255 grey levels) and by at most {g['mean_linf']:.3f} in "
            f"one input on average ({levels:.0f} of 255 grey levels). ")
    if f["mean_first_success_l2"]:
        text += (f"The minimal phase cut the mean L2 from {f['mean_first_success_l2']:.3f}, where the pairs first "
                 f"held the target, to {g['mean_l2']:.3f} ({g['mean_l2'] / f['mean_first_success_l2']:.0%} of it). ")
    budget = f"the {IMPERCEPTIBLE_LINF * 255:.0f}/255 budget commonly taken as imperceptible"
    ratio = g["mean_linf"] / IMPERCEPTIBLE_LINF
    if ratio <= 1:
        return text + (f"That is within {budget}: side by side, adversarial and source images look the same, and "
                       "only the amplified perturbation grid shows the change.")
    if ratio < NEAR_BUDGET:
        return text + (f"That is {ratio:.2f} times {budget}, just above it, while the typical input moves by far "
                       "less: side by side, adversarial and source images look alike, and the amplified "
                       "perturbation grid shows where the change is.")
    text += f"That is {ratio:.1f} times {budget}: the changes are visible"
    if f["dataset"] == "mnist":
        text += (", as grey smudges and strokes on the black background, though the digit itself still reads as "
                 "the source class to a person")
    return text + "."


def _why_smaller(mnist: dict, cifar: dict) -> str:
    gm, gc = mnist["methods"]["generator"], cifar["methods"]["generator"]
    return (f"CIFAR-10 needs {gm['mean_l2'] / gc['mean_l2']:.1f} times less change than MNIST in L2 and "
            f"{gm['mean_linf'] / gc['mean_linf']:.1f} times less in L-infinity. Three measured differences point "
            f"the same way. (1) The CIFAR-10 classifier is weaker ({_pct(cifar['classifier_accuracy'])} test "
            f"accuracy against {_pct(mnist['classifier_accuracy'])}): its decision boundaries run closer to typical "
            f"images. (2) A CIFAR-10 image has {cifar['pixels']:,} inputs against {mnist['pixels']:,}: a change "
            "of the same size in every input moves a roughly linear score in proportion to the number of inputs "
            "(the linearity argument of Goodfellow et al. 2015), so each input needs "
            f"{cifar['pixels'] / mnist['pixels']:.0f} times less. (3) {_pct(mnist['saturated_pixel_share'])} of "
            f"the MNIST source pixels are exactly 0 or 1 (against {_pct(cifar['saturated_pixel_share'])} on "
            "CIFAR-10), so clipping to the valid range lets them move one way only: on MNIST most of the image "
            "offers half the directions a CIFAR-10 image does.")


def _method_comparison(f: dict) -> str:
    m = f["methods"]
    g = m["generator"]
    title = dataset_title(f["dataset"])
    sentences = [f"On {title} the generator reaches the target on {_pct(g['success_rate'])} of the "
                 f"{f['pairs']} pairs with mean L2 {g['mean_l2']:.3f} in {g['batch_seconds']:.1f} s for all pairs."]
    for method in ("fgsm", "pgd_linf", "pgd_l2_ladder"):
        row = m[method]
        sentence = (f"{METHOD_TITLES[method]}: {_pct(row['success_rate'])} success, mean L2 {row['mean_l2']:.3f}, "
                    f"mean L-inf {row['mean_linf']:.3f}, {row['batch_seconds']:.1f} s")
        if row["success_rate"] == g["success_rate"]:
            sentence += (f"; at the same success the generator's change is {g['mean_l2'] / row['mean_l2']:.2f} "
                         f"times its L2 in {g['batch_seconds'] / row['batch_seconds']:.2f} times its time")
        sentences.append(sentence + ".")
    return " ".join(sentences)


def _hardest_pairs(f: dict) -> str:
    title = dataset_title(f["dataset"])
    listed = ", ".join(f"{h['source']} to {h['target']} (L2 {h['l2']:.3f}, {h['rounds']} rounds)" for h in f["hardest"])
    text = f"On {title} the pairs that needed the largest change were {listed}. "
    for role, key in (("target", "target"), ("source", "source")):
        classes = [h[key] for h in f["hardest"]]
        common = max(set(classes), key=classes.count)
        if classes.count(common) > 1:
            text += f"{classes.count(common)} of these {len(classes)} share the {role} class {common}. "
    by_target = f["mean_l2_by_target"]
    hardest_target = max(by_target, key=by_target.get)
    easiest_target = min(by_target, key=by_target.get)
    text += (f"Averaged over all sources, the hardest target is {hardest_target} (mean L2 "
             f"{by_target[hardest_target]:.3f}) and the easiest {easiest_target} ({by_target[easiest_target]:.3f}): "
             "a hard pair is one where the classifier's evidence for the source class has to be erased and the "
             "target's built from nothing, which costs most where the two classes share the fewest strokes or "
             "textures.")
    if f["failed"]:
        text += " Pairs not reached: " + ", ".join(f"{p['source']} to {p['target']}" for p in f["failed"]) + "."
    return text


def adversarial_section(findings: dict, folders: dict) -> str:
    """Markdown for the adversarial lab: `findings` and `folders` are keyed by data set."""
    settings = next(iter(findings.values()))["settings"]
    lines = ["## 3. Adversarial examples", "",
             "The simple generator f(w) = x (one input fixed at 1, its weights are the image) is trained in "
             "alternation toward the source image (mean squared error, Adam) and through the frozen classifier "
             f"toward a target class, until the classifier gives the target with confidence {settings['confidence']}"
             "; then, to make the change minimal, it keeps pulling toward the source, stepping back toward the "
             "target only in rounds that lost it, and keeps the smallest change that held the target, until that "
             f"change has not shrunk for {settings['shrink_patience']} rounds (at most {settings['max_rounds']} "
             "rounds in all; every setting is in each data set's results.json). The same pairs are attacked with "
             "targeted FGSM, L-inf PGD and L2-PGD (the smallest radius of a ladder that reaches the confidence).",
             "",
             "| data set | classifier accuracy | method | success | mean L2 | mean L-inf | time (s) |",
             "|---|---|---|---|---|---|---|"]
    for f in findings.values():
        title = dataset_title(f["dataset"])
        for method, row in f["methods"].items():
            lines.append(f"| {title} | {_pct(f['classifier_accuracy'])} | {METHOD_TITLES.get(method, method)} | "
                         f"{_pct(row['success_rate'])} | {row['mean_l2']:.3f} | {row['mean_linf']:.3f} | "
                         f"{row['batch_seconds']:.1f} |")
    lines.append("")
    for dataset, folder in folders.items():
        title = dataset_title(dataset)
        lines += [f"{title}, generator: source, then one column per target class (title: predicted class and "
                  "target confidence):", "", f"![{title} adversarial]({folder}/grid_adversarial.png)", "",
                  f"![{title} perturbation]({folder}/grid_perturbation.png)", ""]
    lines += ["**Are the changes perceptible?** " + " ".join(_perceptibility(f) for f in findings.values()), ""]
    if {"mnist", "cifar10"} <= set(findings):
        lines += ["**Why does CIFAR-10 need much smaller changes than MNIST?** "
                  + _why_smaller(findings["mnist"], findings["cifar10"]), ""]
    lines += ["**How does the generator compare with FGSM and PGD?** "
              + " ".join(_method_comparison(f) for f in findings.values())
              + " FGSM takes one step of the full budget in the sign of the gradient and overshoots or falls short; "
              "L-inf PGD spends its whole budget on almost every input; the L2 ladder and the generator look for "
              "a small change, the ladder radius by radius (its L2 is at most the radius that first succeeds), "
              "the generator by walking along the confidence boundary toward the source.", ""]
    lines += ["**Which pairs were hardest?** " + " ".join(_hardest_pairs(f) for f in findings.values()), ""]
    return "\n".join(lines)


def robust_findings(results: dict) -> dict:
    """The figures the robust section cites for one data set."""
    models = results["models"]
    training = results["training"]
    return {
        "dataset": results["dataset"],
        "training_attack": results["robust_training"],
        "epochs": training["train"]["epochs"],
        "train_seconds": training.get("train_seconds"),
        "eps": results["robust_training"]["eps"],
        "examples": next(iter(models.values()))["examples"],
        "validation": results["validation"],
        "scores": {name: model["scores"] for name, model in models.items()},
        "generator": {name: model["generator"] for name, model in models.items()},
        "checks": {name: {check: value["passed"] for check, value in model["checks"].items()}
                   for name, model in models.items()},
        "eps_sweep": {name: model["eps_sweep"] for name, model in models.items()},
    }


def _training_sentence(f: dict) -> str:
    attack = f["training_attack"]
    title = dataset_title(f["dataset"])
    how = (f"{attack['pgd_train_steps']}-step PGD" if attack["attack"] == "pgd" else
           "FGSM from a random start" if attack["attack"] == "fgsm_rs" else attack["attack"])
    minutes = f", {f['train_seconds'] / 60:.0f} minutes of training" if f["train_seconds"] else ""
    return (f"{title}: every training batch is replaced by its {how} attack at L-inf eps {f['eps']:.4g} "
            f"({f['epochs']} epochs{minutes}).")


def _robust_results_sentence(f: dict) -> str:
    title = dataset_title(f["dataset"])
    standard, robust = f["scores"]["standard"], f["scores"]["robust"]
    v = f["validation"]
    return (f"On {title} ({f['examples']} random test images, eps {f['eps']:.4g}) the standard model keeps "
            f"{_pct(standard['pgd'])} under PGD-{v['pgd_steps']} with {v['restarts']} restarts, the robust model "
            f"{_pct(robust['pgd'])}; the price is clean accuracy, {_pct(robust['clean'])} against "
            f"{_pct(standard['clean'])} ({100 * (standard['clean'] - robust['clean']):.1f} points).")


def _checks_sentence(f: dict) -> str:
    title = dataset_title(f["dataset"])
    failed = [f"{check} ({name})" for name, checks in f["checks"].items() for check, ok in checks.items() if not ok]
    count = sum(len(checks) for checks in f["checks"].values())
    if not failed:
        return f"On {title} all {count} checks pass for both models."
    return f"On {title} {count - len(failed)} of {count} checks pass; failed: {', '.join(failed)}."


def _generator_sentence(f: dict) -> str:
    title = dataset_title(f["dataset"])
    standard, robust = f["generator"]["standard"], f["generator"]["robust"]
    text = (f"On {title} the generator reaches the target on {_pct(robust['success_rate'])} of the "
            f"{robust['pairs']} pairs against the robust model (standard: {_pct(standard['success_rate'])}), with "
            f"median L2 {robust['median_l2']:.3f} against {standard['median_l2']:.3f}, "
            f"{robust['median_l2'] / standard['median_l2']:.1f} times the change.")
    if "mean_alignment" in robust:
        text += (f" The change lines up with the difference between the mean training images of the target and "
                 f"the source class with cosine {robust['mean_alignment']:.2f} against the robust model and "
                 f"{standard['mean_alignment']:.2f} against the standard one")
        if robust["mean_alignment"] > 2 * max(standard["mean_alignment"], 0):
            text += (": the robust model only changes its mind when the image takes on the target class's "
                     "typical shape, so the generator has to draw it"
                     + (" (strokes of the target digit)." if f["dataset"] == "mnist" else "."))
        else:
            text += "."
    return text


def robust_section(findings: dict, folders: dict) -> str:
    """Markdown for the robust models: `findings` and `folders` keyed by data set."""
    lines = ["## 4. Adversarially robust models", "",
             "**How they were trained.** " + " ".join(_training_sentence(f) for f in findings.values())
             + " Training on the worst input near each example (within the eps ball), found by the attack, "
             "minimises the loss an attacker can reach rather than the loss on clean images (Madry et al. 2018): "
             "the model has to be nearly constant inside the ball, which it can only be by relying on coarse "
             "features that a small change cannot flip.", "",
             "| data set | model | clean | FGSM | PGD with restarts | generator success | generator median L2 |",
             "|---|---|---|---|---|---|---|"]
    for f in findings.values():
        title = dataset_title(f["dataset"])
        for name, scores in f["scores"].items():
            g = f["generator"][name]
            lines.append(f"| {title} | {name} | {_pct(scores['clean'])} | {_pct(scores['fgsm'])} | "
                         f"{_pct(scores['pgd'])} | {_pct(g['success_rate'])} | {g['median_l2']:.3f} |")
    lines += ["", "**Robust accuracy and its cost.** " + " ".join(_robust_results_sentence(f)
                                                                   for f in findings.values()), "",
              "**What the masking checks rule out.** A model can look robust only because its gradients are "
              "useless to the attacker (gradient masking, Athalye et al. 2018). Then a stronger attack would not "
              "beat a weaker one: PGD would do no better than FGSM or random noise, more steps and restarts would "
              "not lower accuracy, accuracy would not fall as eps grows, and it would not reach about 0 at a large "
              "eps. Each check compares attacks example by example with a paired sign test. "
              + " ".join(_checks_sentence(f) for f in findings.values()), "",
              "**The generator against the robust models.** " + " ".join(_generator_sentence(f)
                                                                         for f in findings.values()), ""]
    for dataset, folder in folders.items():
        title = dataset_title(dataset)
        lines += [f"{title}, generator against the robust model (title: target class, its confidence):", "",
                  f"![{title} robust]({folder}/grid_robust.png)", ""]
    return "\n".join(lines)
