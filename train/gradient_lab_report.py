"""The gradient lab's sections of results/REPORT.md: questions answered in sentences whose every
number comes from the results JSON (the backprop check's and the gradient-flow grid's).

    tapelab all --out results    # composes REPORT.md from these sections

`backprop_section(check, link)` and `gradient_flow_section(results, folder)` return Markdown;
`train.gradient_flow_report.findings(results)` is the dict of every figure the second one cites.
Wording that depends on the data ("exactly zero" or "vanishing", "larger than the spread" or
"within it") is chosen here from the numbers.
"""

import math

from tapelab.core.activations import LECUN_LEAK, LECUN_SCALE, LECUN_SLOPE, get_activation
from tapelab.train.gradient_flow_report import FAILED_ACCURACY, findings, pct, points, spread_markdown

FORMULAS = {  # f(x) and f'(x), in words that Markdown shows without a math renderer
    "relu": ("max(0, x)", "1 if x > 0, else 0"),
    "tanh": ("tanh x", "1 - tanh²x"),
    "sigmoid": ("s(x) = 1 / (1 + e^-x)", "s(x)(1 - s(x))"),
    "lecun": (f"{LECUN_SCALE} tanh(2x/3) + {LECUN_LEAK}x",
              f"{LECUN_SCALE} · (2/3) · (1 - tanh²(2x/3)) + {LECUN_LEAK}"),
}
# LeCun's derivative at 0, its maximum: 1.7159 * 2/3 + 0.01.
LECUN_SLOPE_AT_ZERO = LECUN_SCALE * LECUN_SLOPE + LECUN_LEAK


def _g(value) -> str:
    return f"{value:.3g}"


def _geo(values) -> float:
    return 0.0 if min(values) == 0.0 else math.exp(sum(math.log(value) for value in values) / len(values))


def _in_seeds(count: int, total: int) -> str:
    return "in every seed" if count == total else f"in {count} of {total} seeds"


def backprop_section(check: dict, link: str, docs_link: str = "../docs/backprop.md") -> str:
    """The equations, each activation's derivative with its sampled range, and what the ranges predict
    for depth. `check` is backprop_check.json; `link` points at its table (backprop_check.md)."""
    ranges = {entry["activation"]: entry for entry in check["derivative_ranges"]}
    depths = sorted({entry["depth"] for entry in check["checks"]})
    worst = max(entry["max_rel_error"] for entry in check["checks"])
    lines = [
        "## 1. Backpropagation by hand",
        "",
        "For hidden layers l = 1..L with z_l = W_l a_{l-1} + b_l and a_l = f(z_l) (one sample, column vectors), "
        "and a softmax output with crossentropy (so δ_{L+1} = p - y), the error δ_l = ∂L/∂z_l of each layer and "
        "the weight gradient are",
        "",
        "    δ_l = (W_{l+1}^T δ_{l+1}) ⊙ f'(z_l),        ∂L/∂W_l = δ_l a_{l-1}^T",
        "",
        f"(derivation in [docs/backprop.md]({docs_link})). The error reaching layer 1 is multiplied by one factor "
        "f'(z) per hidden layer, so the range of f' decides what depth does to the gradient. Coded by hand, these "
        f"equations {'agree' if check['passed'] else 'do NOT agree'} with tf.GradientTape in float64 at depths "
        f"{', '.join(map(str, depths))}: the largest relative error is {worst:.2e} (tolerance {check['tolerance']:g}; "
        f"[table]({link})).",
        "",
        "| activation | f(x) | f'(x) | range of f' | sampled min f' | sampled max f' |",
        "|---|---|---|---|---|---|",
    ]
    for name, entry in ranges.items():
        forward, derivative = FORMULAS.get(name, ("", ""))
        lines.append(f"| {name} | {forward} | {derivative} | {entry['documented']} | {entry['observed_min']:.6g} | "
                     f"{entry['observed_max']:.6g} |")
    lines += ["", "What the ranges predict for depth:", "", *_depth_predictions(ranges, depths)]
    return "\n".join(lines) + "\n"


def _depth_predictions(ranges: dict, depths: list) -> list[str]:
    notes = []
    if "sigmoid" in ranges:
        top = ranges["sigmoid"]["observed_max"]
        bounds = ", ".join(f"{top:g}^{depth} = {top ** depth:.3g} at depth {depth}" for depth in depths)
        notes.append(f"- **sigmoid**: f' is at most {top:g}, so the error reaching the first layer of an L-layer "
                     f"net is at most {top:g}^L of the output's before the weights act: {bounds}.")
    if "tanh" in ranges:
        notes.append(f"- **tanh**: f' is at most {ranges['tanh']['observed_max']:g} (at z = 0) and never 0, so "
                     "the error does not grow through f'; it shrinks only where units saturate.")
    if "relu" in ranges:
        notes.append(f"- **ReLU**: f' is {ranges['relu']['observed_min']:g} or {ranges['relu']['observed_max']:g}: "
                     "active paths pass the error unchanged, but a unit that is off for every input (a dead unit) "
                     "passes exactly nothing, and a layer of dead units makes every gradient below it exactly 0.")
    if "lecun" in ranges:
        top, low = ranges["lecun"]["observed_max"], ranges["lecun"]["observed_min"]
        notes.append(f"- **LeCun**: the slope at 0 is {LECUN_SCALE} · 2/3 + {LECUN_LEAK} = {LECUN_SLOPE_AT_ZERO:.5f} "
                     f"(sampled maximum {top:.6g}) > 1, so near z = 0 each layer can *grow* the error going backward; "
                     f"the leak keeps f' above {low:.6g}, so no unit ever passes exactly nothing.")
    return notes


def gradient_flow_section(results: dict, folder: str) -> str:
    """Scores and why, per-layer gradients, LeCun against tanh, seed spread and heatmaps, from results.json.
    `folder` is the gradient-flow results folder relative to REPORT.md, for the image links."""
    found = findings(results)
    return "\n".join([
        "## 2. Gradient flow in deep MLPs on MNIST",
        "",
        f"Every model trained {found['epochs']} epoch(s) once per seed {found['seeds']}; plots show seed "
        f"{found['seeds'][0]}. Full tables: [{folder}/report.md]({folder}/report.md).",
        "",
        *_scores_and_why(found),
        *_per_layer_gradients(found, folder),
        *_lecun(found, folder),
        *_seed_spread(found),
        *_heatmaps(found, folder),
    ])


def _scores_and_why(found: dict) -> list[str]:
    depths, models = found["depths"], found["models"]
    lines = ["### Test scores (mean ± std over seeds, [min - max])", "",
             "| activation | " + " | ".join(f"{depth} layers" for depth in depths) + " |",
             "|---|" + "---|" * len(depths)]
    for activation in found["activations"]:
        cells = [models[f"{activation}-{depth}"]["accuracy"] for depth in depths]
        lines.append(f"| {activation} | " + " | ".join(
            f"{pct(c['mean'])} ± {c['std'] * 100:.2f} [{pct(c['min'])} - {pct(c['max'])}]" for c in cells) + " |")
    lines += [""] + [f"- {text}" for text in (_why_sigmoid(found), _why_relu(found), _why_tanh(found)) if text] + [""]
    return lines


def _prediction_text(model: dict) -> str:
    total, classes = model["test_images"], model["top_class"]
    if all(count == total for count in model["top_class_count"]):
        if len(set(classes)) == 1:
            return (f"it predicts digit {classes[0]} for all {total:,} test images in every seed, so its "
                    f"{pct(model['accuracy']['mean'])} is just the share of {classes[0]}s in the test set")
        listed = ", ".join(f"digit {c} in seed {seed}" for c, seed in zip(classes, model["seeds"]))
        return f"it predicts one digit for all {total:,} test images ({listed}), so it scores that digit's share"
    listed = ", ".join(f"digit {c} for {n:,} of {total:,} test images in seed {seed}"
                       for c, n, seed in zip(classes, model["top_class_count"], model["seeds"]))
    return f"its most frequent predictions are {listed}"


def _why_sigmoid(found: dict) -> str:
    names = [f"sigmoid-{depth}" for depth in found["depths"] if f"sigmoid-{depth}" in found["models"]]
    if not names:
        return ""
    model = found["models"][names[0]]
    depth, ratio = model["depth"], _geo(model["first_to_last_untrained"])
    verdict = "fails even" if model["accuracy"]["mean"] < FAILED_ACCURACY else "learns"
    return (f"**Why sigmoid {verdict} at {depth} layers** ({pct(model['accuracy']['mean'])}): in the untrained net the "
            f"first layer's max gradient is {_g(ratio)} of the output layer's (geometric mean over seeds; the 1/4 "
            f"bound alone gives 4^-{depth} = {_g(4.0 ** -depth)}), {_g(_geo(model['first_to_last_trained']))} after "
            f"training: the layers near the input get that much less of the error to learn from, and "
            f"{_prediction_text(model)}.")


def _gradient_words(model: dict) -> str:
    states, seeds = model["gradient_state"], len(model["seeds"])
    zero, vanishing = states.count("exactly zero"), states.count("vanishing")
    if zero:
        words = f"exactly zero (dead units) {_in_seeds(zero, seeds)}, not merely vanishing"
        return words + (f"; vanishing (tiny, not zero) in {vanishing}" if vanishing else "")
    if vanishing:
        return f"vanishing (tiny but not zero) {_in_seeds(vanishing, seeds)}"
    return "neither zero nor vanishing"


def _why_relu(found: dict) -> str:
    relu = [found["models"][f"relu-{d}"] for d in found["depths"] if f"relu-{d}" in found["models"]]
    if not relu:
        return ""
    deepest = relu[-1]
    trend = ", ".join(f"{pct(m['accuracy']['mean'])} at {m['depth']}" for m in relu)
    verdict = "falls off" if deepest["accuracy"]["mean"] < relu[0]["accuracy"]["mean"] else "holds up"
    def seed_text(seed, gradient, dead):
        if dead:
            return (f"seed {seed}: first-layer max gradient {_g(gradient)}; every unit of hidden layer(s) "
                    f"{', '.join(map(str, dead))} is dead, so no error passes through them")
        return f"seed {seed}: first-layer max gradient {_g(gradient)}, no layer entirely dead"

    per_seed = "; ".join(seed_text(*values) for values in zip(deepest["seeds"], deepest["first_layer_gradient"],
                                                               deepest["dead_layer_numbers"]))
    return (f"**Why ReLU {verdict} with depth** ({trend}): in the {deepest['depth']}-layer net the first layer's "
            f"gradient after training is {_gradient_words(deepest)} ({per_seed}). A unit counts as dead when f' = 0 "
            f"on all of the fixed test images; untrained, {', '.join(map(str, deepest['dead_layers_untrained']))} "
            "layers (per seed) were entirely dead." + _relu_decay(deepest))


def _relu_decay(model: dict) -> str:
    """Where no layer is dead: how fast the error still shrinks per layer, seed by seed."""
    alive = [(seed, decay) for seed, decay, dead in zip(model["seeds"], model["decay_trained_per_seed"],
                                                        model["dead_layer_numbers"]) if not dead and decay]
    if not alive:
        return ""
    listed = ", ".join(f"{_g(decay)} in seed {seed}" for seed, decay in alive)
    return (f" Where no layer is dead the error still shrinks going backward, by a factor of {listed} per layer: "
            "in each layer only the units active for an input pass its error on.")


def _why_tanh(found: dict) -> str:
    tanh = [found["models"][f"tanh-{d}"] for d in found["depths"] if f"tanh-{d}" in found["models"]]
    if not tanh:
        return ""
    model = tanh[-1]
    verdict = "still trains" if model["accuracy"]["mean"] >= FAILED_ACCURACY else "fails"
    return (f"**Why tanh {verdict} at {model['depth']} layers** ({pct(model['accuracy']['mean'])}): f' never "
            f"reaches 0 (share of units with f' exactly 0: {max(model['zero_derivative_share']):.3g} at most), and "
            f"the max gradient changes by a factor of {_g(model['decay_trained'])} per layer going backward "
            f"({_g(model['decay_untrained'])} untrained), so the first layer gets "
            f"{_g(_geo(model['first_to_last_trained']))} of the output layer's gradient after training.")


def _per_layer_gradients(found: dict, folder: str) -> list[str]:
    lines = [f"### Per-layer gradients after {found['epochs']} epoch(s)", "",
             f"![trained gradients]({folder}/grad_grid_trained.png)", ""]
    for depth in found["depths"]:
        model = found["models"].get(f"sigmoid-{depth}")
        if model is None or model["decay_trained"] is None:
            continue
        factor = model["decay_trained"]
        reading = ("at or below the derivative's bound of 1/4: the bound at work, and the weights shrink it further"
                   if factor <= 0.25 else "a little above the derivative's bound of 1/4: the weights make up for "
                   "part of it" if factor < 1 else "above 1: the weights more than make up for the 1/4 bound")
        lines.append(f"- sigmoid-{depth}: max |gradient| is multiplied by {_g(factor)} per layer going backward "
                     f"(geometric mean over seeds; {_g(model['decay_untrained'])} untrained), {reading}; over "
                     f"{depth - 1} layers that leaves the first hidden layer {_g(factor ** (depth - 1))} of the "
                     "last hidden layer's gradient.")
    sigmoid = [m for m in found["models"].values() if m["activation"] == "sigmoid"]
    if sigmoid:
        failed = sum(m["accuracy"]["mean"] < FAILED_ACCURACY for m in sigmoid)
        lines += ["", "Each sigmoid layer multiplies the error by f'(z) ≤ 1/4 on its way down, which is what these "
                  f"factors measure; {failed} of {len(sigmoid)} sigmoid nets stay below {FAILED_ACCURACY:.0%} mean "
                  "test accuracy."]
    return [*lines, ""]


def _lecun(found: dict, folder: str) -> list[str]:
    if not found["lecun_vs_tanh"]:
        return []
    lecun = get_activation("lecun")
    ratios = "; ".join(f"{depth} layers: LeCun {_g(_geo(found['models'][f'lecun-{depth}']['first_to_last_untrained']))}"
                       f", tanh {_g(_geo(found['models'][f'tanh-{depth}']['first_to_last_untrained']))}"
                       for depth in found["lecun_vs_tanh"])
    curves = "; ".join(f"{depth} layers: LeCun {pct(c['lecun_early'])} vs tanh {pct(c['tanh_early'])} at epoch "
                       f"{c['early_epoch']:.2f}, {pct(c['lecun_final'])} vs {pct(c['tanh_final'])} at the end"
                       for depth, c in found["lecun_vs_tanh"].items())
    return ["### LeCun's tanh against tanh", "",
            f"LeCun's f' ranges over {lecun.range_text()}; its slope at 0 is {LECUN_SLOPE_AT_ZERO:.5f} > 1, so near "
            "z = 0 a layer amplifies the error going backward where tanh (slope 1) at best keeps it. In the untrained "
            f"nets the first layer's max gradient over the output layer's (geometric mean over seeds) is: {ratios}.",
            "", f"![untrained gradients]({folder}/grad_grid_untrained.png)", "",
            f"Test accuracy (mean over seeds): {curves}.", "", f"![learning curves]({folder}/learning_curves.png)", ""]


def _seed_spread(found: dict) -> list[str]:
    lines = ["### Seed spread", "", "A difference counts as larger than the seed spread only when the two models' "
             "[min, max] test accuracies over the seeds do not overlap.", "", spread_markdown(found)]
    for depth, c in found["lecun_vs_tanh"].items():
        verdict = "larger than the seed spread" if c["larger_than_spread"] else "within the seed spread"
        lines.append(f"- {depth} layers, LeCun minus tanh: {points(c['difference'])}, {verdict} (LeCun "
                     f"[{pct(c['lecun_range'][0])}, {pct(c['lecun_range'][1])}], tanh [{pct(c['tanh_range'][0])}, "
                     f"{pct(c['tanh_range'][1])}]).")
    return [*lines, ""]


def _heatmaps(found: dict, folder: str) -> list[str]:
    zeros = [(name, m["trace"]) for name, m in found["models"].items() if m["trace"]["first_zero_epoch"] is not None]
    sigmoid = [(name, m["trace"]) for name, m in found["models"].items() if m["activation"] == "sigmoid"]
    text = ("Exactly-zero layers (red) appear in " + "; ".join(
        f"{name} from epoch {t['first_zero_epoch']:.3g} ({t['zero_layers_at_end']} layers at the end)"
        for name, t in zeros) + "." if zeros else "No layer's gradient is exactly zero at any point.")
    if sigmoid:
        name, trace = sigmoid[-1]
        text += (f" In {name} the first layer's max gradient stays between {_g(trace['first_layer_min'])} and "
                 f"{_g(trace['first_layer_max'])} over all {trace['points']} points (a factor of "
                 f"{_g(trace['first_layer_max'] / trace['first_layer_min'])}) while training runs."
                 if trace["first_layer_min"] > 0 else "")
    return ["### Per-layer gradients during training", "", f"![gradient heatmaps]({folder}/grad_heatmaps.png)", "",
            f"Seed {found['seeds'][0]}; layer 1 (input side) at the bottom. {text}", ""]
