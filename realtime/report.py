"""The realtime benchmark's table and curve, drawn from its saved JSON (`scripts/bench_realtime.py --plot-only`)."""

from pathlib import Path

from matplotlib.figure import Figure

GOALS = "goals: at least 98% of faces found, at most 1% of frames with a false face, at least 1.35x the FPS"


def plot_curve(result: dict, path: Path) -> None:
    """Faces found against FPS, one point per setting; the defaults and the full-resolution pipeline marked."""
    figure = Figure(figsize=(8, 5), layout="constrained")
    axes = figure.add_subplot()
    for rank, (name, run) in enumerate(sorted(result["runs"].items(), key=lambda item: item[1]["fps"])):
        special = {result["defaults"]: ("tab:green", "*", 250), result["full_resolution"]: ("tab:red", "s", 90)}
        color, marker, area = special.get(name, ("tab:blue", "o", 50))
        axes.scatter(run["fps"], 100 * run["recall"], c=color, marker=marker, s=area, zorder=3)
        axes.annotate(name, (run["fps"], 100 * run["recall"]), textcoords="offset points",
                      xytext=(6, -12 if rank % 2 else 6), fontsize=8)
    plain = result["runs"][result["full_resolution"]]["fps"]
    axes.axvline(1.35 * plain, color="grey", linestyle=":", label="1.35x the full-resolution FPS")
    axes.axhline(98, color="grey", linestyle="--", label="98% of faces found")
    recalls = [100 * run["recall"] for run in result["runs"].values()]
    fastest = max(run["fps"] for run in result["runs"].values())
    axes.set_xlim(0, 1.3 * fastest)
    axes.set_ylim(min(97.5, min(recalls) - 0.5), 100.2)
    axes.set(xlabel="frames per second (end to end, 640x480)", ylabel="faces found (%)",
             title=f"Faces found against speed, {result['frames']} frames, {result['faces']} faces")
    axes.legend(loc="lower right", fontsize=8)
    axes.grid(alpha=0.3)
    figure.savefig(path, dpi=110)


def markdown(result: dict) -> str:
    lines = ["# Realtime pipeline benchmark", "",
             f"Produced by `{result['command']}` on {result['cpu_count']} CPU cores: {result['frames']} frames of "
             f"{result['frame_size'][0]}x{result['frame_size'][1]} video, {result['faces']} faces (60-300 pixels, "
             f"zero to four per frame, moving, some partly off the edge), {result['blank_frames']} blank frames.", "",
             f"With the defaults ({result['defaults']}): **{result['recall']:.1%} of faces found**, "
             f"**{result['false_face_rate']:.2%} of frames with a false face**, **{result['fps']:.1f} FPS = "
             f"{result['fps_ratio_vs_full_resolution']:.2f}x the full-resolution pipeline** ({GOALS}).", "",
             "A face is found when a reported box overlaps its true box with IoU >= 0.3 or has its centre inside it; "
             "faces less than 2/3 inside the frame are not counted either way. A false face is a reported box "
             "that finds no face.", "",
             "Settings: \"every Nth\" searches the whole frame every Nth frame (and at cuts) and only near known "
             "faces between; \"no hold\" drops a missed face at once instead of keeping it 2 frames; \"320 wide\" "
             "shrinks the frame to 320 pixels for the whole-frame search.", "",
             "| setting | FPS | faces found | frames with a false face | false faces on blank frames | "
             "detect p50 ms | classify p50 ms |", "|---|---|---|---|---|---|---|"]
    for name, run in sorted(result["runs"].items(), key=lambda item: item[1]["fps"]):
        lines.append(f"| {name} | {run['fps']:.1f} | {run['recall']:.2%} | {run['false_face_rate']:.2%} | "
                     f"{run['blank_false_face_rate']:.2%} | {run['stages']['detect']['p50_ms']:.2f} | "
                     f"{run['stages']['classify']['p50_ms']:.2f} |")
    lines += ["", "![faces found against FPS](curve.png)", "",
              "| stage (defaults) | calls | mean ms | p50 ms | p95 ms |", "|---|---|---|---|---|"]
    lines += [f"| {name} | {s['calls']} | {s['mean_ms']:.2f} | {s['p50_ms']:.2f} | {s['p95_ms']:.2f} |"
              for name, s in result["stages"].items()]
    emotion = result.get("emotion")
    if emotion:
        lines += ["", "## What the user sees: emotions end to end", "",
                  f"{emotion['faces_shown']} face appearances of FER2013 test faces, enlarged to 100-200 pixels, four "
                  f"per frame on a background: the program found **{emotion['found']:.1%}** of them and gave the "
                  f"right emotion for **{emotion['right_emotion']:.1%}** of all of them (goals: 90% and 60%); the "
                  f"classifier on the same 48x48 crops is right for {emotion['classifier_on_crops']:.1%}."]
    lines += ["", "What the window shows (a frame of the video, with the run's FPS):", "", "![window](window.png)", ""]
    return "\n".join(lines)
