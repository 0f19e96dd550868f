"""Benchmark: emotion-classifier latency on this CPU, for 1 face and for a batch of 4 faces per call.

    python scripts/bench_fer.py --model models/fer2013_emotion.h5 --record

The model is called directly, not through `predict`, several ways in one run: by LiteRT on two threads
with int8 kernels (`core.lite.LiteModel`, what `fer predict` and the realtime program use), with float32
kernels, and on one thread; as one XLA program, as a plain TensorFlow graph, and eagerly; p50 and p95 over
many calls after a warm-up, and each way's p50 over the LiteRT p50.
"""

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import tensorflow as tf

from tapelab.core.io import ensure_writable_dir, save_json, write_atomic
from tapelab.core.lite import LiteModel, call_latencies_ms
from tapelab.train.fer import load_emotion_model, record_in_description


def tensorflow_call(model, jit_compile: bool):
    call = tf.function(lambda faces: model(faces, training=False), jit_compile=jit_compile)
    return lambda faces: call(faces).numpy()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="emotion .h5 (default: the shipped model)")
    parser.add_argument("--calls", type=int, default=500, help="timed calls per batch size")
    parser.add_argument("--out", type=Path, default=Path("results/bench_fer"), help="where to write results")
    parser.add_argument("--record", action="store_true",
                        help="also write the LiteRT latencies into the JSON beside the model, under latency")
    args = parser.parse_args(argv)
    out = ensure_writable_dir(args.out)
    model = load_emotion_model(args.model)
    result = {"command": " ".join(["python", "scripts/bench_fer.py", *sys.argv[1:]]), "calls": args.calls,
              "cpu_count": os.cpu_count(), "litert_kernels": "int8"}  # LiteModel's default, what the programs run
    ways = {"litert": LiteModel(model), "litert_float32_weights": LiteModel(model, weights="float32"),
            "litert_1_thread": LiteModel(model, threads=1),
            "xla": tensorflow_call(model, jit_compile=True), "graph": tensorflow_call(model, jit_compile=False),
            "eager": lambda faces: model(faces, training=False).numpy()}
    for way, classify in ways.items():
        for batch_size in (1, 4):
            faces = np.random.default_rng(0).random((batch_size, 48, 48, 1), dtype=np.float32)
            times = call_latencies_ms(classify, faces, args.calls)
            key = f"{way}_batch_{batch_size}"
            result[f"{key}_p50_ms"] = float(np.percentile(times, 50))
            result[f"{key}_p95_ms"] = float(np.percentile(times, 95))
            print(f"{way}, {batch_size} face(s) per call: p50 {result[f'{key}_p50_ms']:.2f} ms, "
                  f"p95 {result[f'{key}_p95_ms']:.2f} ms")
    others = [way for way in ways if way != "litert"]
    for batch_size in (1, 4):
        for way in others:
            result[f"{way}_over_litert_batch_{batch_size}_p50"] = (result[f"{way}_batch_{batch_size}_p50_ms"]
                                                                   / result[f"litert_batch_{batch_size}_p50_ms"])
    save_json(out / "bench_fer.json", result)
    lines = ["# Emotion-classifier latency", "", f"Command: `{result['command']}`", "", "| measure | value |",
             "|---|---|"] + [f"| {k} | {v:.3g} |" if isinstance(v, float) else f"| {k} | {v} |"
                              for k, v in result.items() if k != "command"]
    write_atomic(out / "bench_fer.md", "\n".join(lines) + "\n")
    if args.record:
        record_in_description(args.model, "latency", {**{key: value for key, value in result.items()
                                                         if key.startswith("litert_batch")},
                                                      "command": result["command"], "cpu_count": os.cpu_count(),
                                                      "kernels": result["litert_kernels"]})


if __name__ == "__main__":
    main()
