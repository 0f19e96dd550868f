"""TensorFlow without its start-up chatter. Importing it prints oneDNN, CUDA-driver and CPU-feature lines
from C++ before any Python logging setting applies (TF_CPP_MIN_LOG_LEVEL does not reach them), so the
import and the device setup run with the process's stderr captured; lines that are not such chatter are
passed on, so real errors still show."""

import os
import re
import sys
import tempfile

CHATTER = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog|To enable the following instructions|"
    r"[IWE]\d{4} [\d:. ]+\d+ (port|cudart_stub|cpu_feature_guard|cuda_platform|cuda_executor|cuda_dnn|cuda_fft|"
    r"cuda_blas|gpu_device|dso_loader)\.cc:\d+\])")


def import_tensorflow_quietly():
    """`import tensorflow`, its devices set up, with the start-up lines dropped; returns the module."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_logical_devices()  # device setup prints its own lines: do it now
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        sink.seek(0)
        kept = [line for line in sink.read().decode(errors="replace").splitlines() if not CHATTER.match(line)]
    if kept:
        print("\n".join(kept), file=sys.stderr)
    return tf
