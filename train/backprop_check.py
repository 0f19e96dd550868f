"""The backprop check as an experiment: hand-written gradients against the tape, as tables.

    tapelab backprop-check --depths 5,20,40
"""

from dataclasses import dataclass, field
from pathlib import Path

from tapelab.core.activations import ACTIVATIONS, get_activation
from tapelab.core.backprop import check_against_tape, sample_derivative_range
from tapelab.core.io import save_json, write_atomic


@dataclass
class BackpropCheckConfig:
    depths: tuple[int, ...] = field(default=(5, 20, 40), metadata={"help": "hidden-layer counts"})
    activations: tuple[str, ...] = field(default=tuple(ACTIVATIONS), metadata={"help": "activations to check"})
    batch_size: int = field(default=64, metadata={"help": "random float64 samples per check"})
    tolerance: float = field(default=1e-10, metadata={"help": "largest relative error that passes"})
    sample_limit: float = field(default=15.0, metadata={"help": "derivatives are sampled on [-limit, limit]"})
    seed: int = field(default=0, metadata={"help": "seed of the random nets and inputs"})


def run_backprop_check(config: BackpropCheckConfig) -> dict:
    """Per activation and depth the per-layer errors, and each derivative's sampled range."""
    checks = []
    for activation in config.activations:
        for depth in config.depths:
            errors = check_against_tape(depth, activation, config.batch_size, config.seed)
            checks.append({
                "activation": activation,
                "depth": depth,
                "layers": [vars(error) for error in errors],
                "max_rel_error": max(error.max_rel_error for error in errors),
            })
    ranges = []
    for activation in config.activations:
        low, high = sample_derivative_range(activation, config.sample_limit)
        ranges.append({
            "activation": activation,
            "observed_min": low,
            "observed_max": high,
            "documented": get_activation(activation).range_text(),
        })
    passed = all(check["max_rel_error"] < config.tolerance for check in checks)
    return {"tolerance": config.tolerance, "passed": passed, "checks": checks, "derivative_ranges": ranges}


def format_backprop_check(result: dict, per_layer: bool = False) -> str:
    """Markdown tables: max errors per model (or per layer) and the derivative ranges."""
    lines = ["| activation | depth | layer | max abs error | max rel error | max abs gradient |",
             "|---|---|---|---|---|---|"]
    for check in result["checks"]:
        layers = check["layers"] if per_layer else [max(check["layers"], key=lambda layer: layer["max_rel_error"])]
        for layer in layers:
            lines.append(
                f"| {check['activation']} | {check['depth']} | {layer['layer']} | {layer['max_abs_error']:.2e} | "
                f"{layer['max_rel_error']:.2e} | {layer['max_abs_gradient']:.2e} |"
            )
    verdict = "PASS" if result["passed"] else "FAIL"
    lines += ["", f"{verdict}: every relative error below {result['tolerance']:g}" if result["passed"]
              else f"{verdict}: some relative error is at or above {result['tolerance']:g}", ""]
    lines += ["| activation | observed min f' | observed max f' | documented range |", "|---|---|---|---|"]
    for entry in result["derivative_ranges"]:
        lines.append(
            f"| {entry['activation']} | {entry['observed_min']:.6g} | {entry['observed_max']:.6g} | "
            f"{entry['documented']} |"
        )
    return "\n".join(lines) + "\n"


def write_backprop_check(result: dict, out_dir, command: str = "") -> None:
    """`backprop_check.json` (the result and `command`, the command line that ran it) and `backprop_check.md`
    (every layer's errors) in `out_dir`."""
    save_json(Path(out_dir) / "backprop_check.json", {**result, "command": command})
    title = "# Backprop check: hand-written gradients against tf.GradientTape (float64)"
    header = f"{title}\n\nProduced by `{command}`.\n\n"
    write_atomic(Path(out_dir) / "backprop_check.md", header + format_backprop_check(result))
