"""Small-batch inference with LiteRT: the Keras model converted in memory and run by LiteRT's interpreter.

Why: a TensorFlow call of the emotion CNN on one face costs a few milliseconds on 2 CPU cores, most of
it fixed per-call work, whether the graph is XLA-compiled or not; LiteRT's interpreter (XNNPACK
kernels, buffers planned once) does the same arithmetic with little per-call cost. By default the
conversion also stores the conv and dense kernels of 1,024 weights or more as int8 (dynamic-range
quantization), and XNNPACK then runs those layers in int8 arithmetic, quantizing each layer's input on
the fly: several times faster on a CPU with int8 dot-product instructions, for outputs within about a
hundredth of the float ones (ratios by `scripts/bench_fer.py`; accuracy both ways by `tapelab fer eval
--weights`). The `.h5` stays the shipped artifact, in float32; the conversion happens at load time."""

import contextlib
import io
import time

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from tapelab.core.errors import ConfigError

WEIGHT_FORMATS = ("int8", "float32")


def to_litert(model, weights: str = "int8") -> bytes:
    """The inference graph of `model` as a LiteRT flatbuffer, batch size left open, its kernels stored in
    `weights` (one of WEIGHT_FORMATS). Keras' export prints a listing of the graph on stdout, which would break
    the realtime program's `--json` lines: muted."""
    if weights not in WEIGHT_FORMATS:
        raise ConfigError(f"unknown weight format {weights!r}; choose one of {', '.join(WEIGHT_FORMATS)}")
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if weights == "int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # without sample data: dynamic-range int8 kernels
    with contextlib.redirect_stdout(io.StringIO()):
        return converter.convert()


def call_latencies_ms(classify, faces: np.ndarray, calls: int, warm_up: int = 20) -> np.ndarray:
    """Milliseconds of each of `calls` calls of `classify(faces)`, after `warm_up` calls that are not timed."""
    for _ in range(warm_up):
        classify(faces)
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        classify(faces)
        times.append((time.perf_counter() - start) * 1000)
    return np.asarray(times)


class LiteModel:
    """`model(x, training=False).numpy()` for float32 batches of any size, run by LiteRT.

    One interpreter per batch size up to `max_batch`, each allocated here, so a change in the number of
    inputs (a second face appearing) never waits for memory planning; larger batches go in chunks.
    Two threads halved one thread's latency on the 2-core development machine (`scripts/bench_fer.py`).
    """

    def __init__(self, model, max_batch: int = 8, threads: int = 2, weights: str = "int8"):
        content = to_litert(model, weights)
        self.input_shape = tuple(model.input_shape[1:])
        self.num_outputs = model.output_shape[-1]
        self._interpreters = [self._interpreter(content, batch, threads) for batch in range(1, max_batch + 1)]
        self._input = self._interpreters[0].get_input_details()[0]["index"]
        self._output = self._interpreters[0].get_output_details()[0]["index"]

    def _interpreter(self, content: bytes, batch: int, threads: int) -> Interpreter:
        interpreter = Interpreter(model_content=content, num_threads=threads)
        interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], (batch, *self.input_shape))
        interpreter.allocate_tensors()
        return interpreter

    def __call__(self, x) -> np.ndarray:
        x = np.ascontiguousarray(x, np.float32)
        largest = len(self._interpreters)
        chunks = [self._run(x[start : start + largest]) for start in range(0, len(x), largest)]
        return np.concatenate(chunks) if chunks else np.zeros((0, self.num_outputs), np.float32)

    def _run(self, x: np.ndarray) -> np.ndarray:
        interpreter = self._interpreters[len(x) - 1]
        interpreter.set_tensor(self._input, x)
        interpreter.invoke()
        return interpreter.get_tensor(self._output).copy()
