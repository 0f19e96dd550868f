"""Training on several machines: two worker processes on 127.0.0.1 under MultiWorkerMirroredStrategy give
the single-device weights, and bad strategy settings fail with one clear line.

    pytest tests/test_multiworker.py

Run as a script this file is one worker of such a cluster (`TF_CONFIG` says which), the way each machine of a
real cluster runs the same training command: `python tests/test_multiworker.py OUT_DIR`.
"""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tapelab.core.errors import ConfigError
from tapelab.core.models import build_mlp
from tapelab.train.config import TrainConfig
from tapelab.train.loop import fit
from tapelab.train.strategy import check_tf_config, make_strategy, worker_path, writes_results

REPO_ROOT = Path(__file__).resolve().parents[1]
WORKERS = 2
WORKER_TIMEOUT_S = 90  # start-up, cluster hand-shake and 16 steps take 20-40 s on 2 busy cores
# Plain SGD, no augmentation: every step is deterministic, so only the summation order of the all-reduce
# differs from one device. jit is off under several replicas (the loop's rule), on for the single device.
CONFIG = TrainConfig(epochs=2, batch_size=16, learning_rate=0.1, steps_per_call=5, augment="none", seed=3)
CURVE_KEYS = ("train_loss", "test_loss", "test_accuracy")


def _digits(count, rng):
    """MNIST-shaped float images where class k lights up a k-dependent band, and one-hot labels."""
    labels = rng.integers(0, 10, count)
    images = rng.uniform(0.0, 0.25, (count, 28, 28, 1)).astype(np.float32)
    for image, label in zip(images, labels):
        image[2 * label + 4 : 2 * label + 7, 4:24] = 1.0
    return images, np.eye(10, dtype=np.float32)[labels]


def _train(strategy):
    """The same small seeded MLP trained on the same data under `strategy`: (model, history)."""
    rng = np.random.default_rng(0)
    x_train, y_train = _digits(128, rng)
    x_test, y_test = _digits(32, rng)
    with strategy.scope():
        model = build_mlp(2, "tanh", units=16, seed=1)
    history = fit(model, x_train, y_train, x_test, y_test, CONFIG, strategy=strategy, progress=False)
    return model, history


def _worker(out_dir):
    """One worker: join the cluster of TF_CONFIG, train, and save weights and curves where this worker writes."""
    strategy = make_strategy("multiworker")  # first, before any TensorFlow op
    model, history = _train(strategy)
    folder = worker_path(Path(out_dir) / "run", strategy)
    folder.mkdir()
    curves = {key: [record[key] for record in history.records] for key in CURVE_KEYS}
    np.savez(folder / "weights.npz", *model.get_weights(), replicas=strategy.num_replicas_in_sync,
             writes_results=writes_results(strategy), **curves)


def _free_ports(count):
    """`count` distinct loopback ports that were free a moment ago (bound together, so never the same)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _worker_env(cluster, index):
    env = {key: value for key, value in os.environ.items()
           if key.lower() not in ("http_proxy", "https_proxy", "all_proxy", "grpc_proxy")}  # loopback only
    env.update(TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}),
               CUDA_VISIBLE_DEVICES="", TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")])))
    return env


def _tail(path, chars=3000):
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


def test_two_workers_give_the_single_device_weights(tmp_path):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in _free_ports(WORKERS)]}
    logs = [tmp_path / f"worker{index}.log" for index in range(WORKERS)]
    workers = []
    try:
        for index, log in enumerate(logs):
            with open(log, "wb") as log_file:
                workers.append(subprocess.Popen([sys.executable, __file__, str(tmp_path)], cwd=REPO_ROOT,
                                                env=_worker_env(cluster, index), stdout=log_file,
                                                stderr=subprocess.STDOUT))
        # The single-device run overlaps the workers' start-up.
        single, single_history = _train(tf.distribute.get_strategy())
        deadline = time.monotonic() + WORKER_TIMEOUT_S
        for worker in workers:
            worker.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pytest.fail(f"workers still running after {WORKER_TIMEOUT_S} s; worker 0 said:\n{_tail(logs[0])}\n"
                    f"worker 1 said:\n{_tail(logs[1])}")
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    for index, (worker, log) in enumerate(zip(workers, logs)):
        assert worker.returncode == 0, f"worker {index} exited with {worker.returncode}:\n{_tail(log)}"
    # Worker 0 writes the results; worker 1 writes beside them, never into the same folder.
    assert sorted(path.name for path in tmp_path.glob("run*")) == ["run", "run.worker1"]
    chief, other = np.load(tmp_path / "run" / "weights.npz"), np.load(tmp_path / "run.worker1" / "weights.npz")
    assert bool(chief["writes_results"]) and not bool(other["writes_results"])
    assert int(chief["replicas"]) == int(other["replicas"]) == WORKERS
    names = [f"arr_{index}" for index in range(len(single.get_weights()))]
    for name in names:  # both workers hold the same weights
        np.testing.assert_array_equal(chief[name], other[name])
    # The tolerances of the MirroredStrategy test in test_loop.py.
    for single_weight, name in zip(single.get_weights(), names):
        np.testing.assert_allclose(single_weight, chief[name], rtol=1e-4, atol=1e-5)
    for key in CURVE_KEYS:
        np.testing.assert_allclose([record[key] for record in single_history.records], chief[key], rtol=1e-4)


def test_unknown_strategy_is_rejected():
    with pytest.raises(ConfigError, match="unknown strategy 'horovod'; choose one of default, mirrored, multiwork"):
        make_strategy("horovod")


def test_default_strategy_is_tensorflows_default_and_writes_results_in_place(tmp_path):
    strategy = make_strategy("default")
    assert strategy is tf.distribute.get_strategy() and writes_results(strategy)
    assert worker_path(tmp_path / "run", strategy) == tmp_path / "run"


@pytest.mark.parametrize("tf_config, problem", [
    (None, "needs the TF_CONFIG environment variable"),
    ("{cluster", "TF_CONFIG is not JSON"),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}}', 'needs a "cluster" and a "task"'),
    ('{"cluster": {"ps": ["127.0.0.1:1"]}, "task": {"type": "ps", "index": 0}}', "must list \"worker\""),
    ('{"cluster": {"worker": ["127.0.0.1"]}, "task": {"type": "worker", "index": 0}}', "as \"host:port\""),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 1}}', "not one of its"),
])
def test_multiworker_without_a_valid_tf_config_says_what_it_must_hold(monkeypatch, tf_config, problem):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(ConfigError, match=problem) as raised:
        make_strategy("multiworker")
    assert "TF_CONFIG must hold JSON like" in str(raised.value) and "\n" not in str(raised.value)


def test_multiworker_after_tensorflow_started_says_to_create_it_first(monkeypatch):
    tf.constant(0.0).numpy()  # TensorFlow has started in this process, as in a program that set up too late
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["127.0.0.1:1"]},
                                                "task": {"type": "worker", "index": 0}}))
    with pytest.raises(ConfigError, match="must be set up before TensorFlow starts.*create it first thing"):
        make_strategy("multiworker")


def test_a_valid_tf_config_is_accepted():
    tf_config = {"cluster": {"chief": ["a:1"], "worker": ["b:2", "c:3"]}, "task": {"type": "worker", "index": 1}}
    assert check_tf_config(json.dumps(tf_config)) == tf_config


if __name__ == "__main__":
    _worker(sys.argv[1])
