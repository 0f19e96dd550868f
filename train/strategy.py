"""Which `tf.distribute.Strategy` a training runs under: one device, several on one machine, or several machines.

    tapelab classifier --dataset mnist --strategy mirrored
    TF_CONFIG='{"cluster": {"worker": ["10.0.0.1:12345", "10.0.0.2:12345"]}, "task": {"type": "worker", "index": 0}}' \
        tapelab classifier --dataset mnist --strategy multiworker

Distribution is TensorFlow's own engine, not a home-made one: the strategies below replicate the variables,
run the loop's step on every replica and sum the gradients with TensorFlow's collective all-reduce (over gRPC
between machines). `train.loop.Trainer` only has to build the model inside `strategy.scope()` and give each
replica its share of the global batch, so batch size and learning rate mean the same under every strategy.
See docs/distributed.md.
"""

import json
import os
from pathlib import Path

import tensorflow as tf

from tapelab.core.errors import ConfigError

STRATEGIES = ("default", "mirrored", "multiworker")

_TF_CONFIG_HELP = (
    'TF_CONFIG must hold JSON like {"cluster": {"worker": ["host0:port", "host1:port"]}, '
    '"task": {"type": "worker", "index": 0}}, the same cluster on every machine and its own index on each'
)


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The strategy called `name`, one of `STRATEGIES`.

    default: TensorFlow's default strategy, one device. mirrored: every GPU of this machine (or its CPU).
    multiworker: every machine named in the `TF_CONFIG` environment variable; this process is its `task`.
    Call it before any other TensorFlow work: the multi-worker strategy starts this worker's gRPC server and
    configures the collective ops, which TensorFlow allows only at program start-up. It returns once every
    worker of the cluster has started.
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        check_tf_config(os.environ.get("TF_CONFIG"))
        try:
            return tf.distribute.MultiWorkerMirroredStrategy()
        except RuntimeError as error:  # TensorFlow had already started: collectives can no longer be set up
            raise ConfigError(f"--strategy multiworker must be set up before TensorFlow starts ({error}); "
                              "create it first thing in the program") from None
    raise ConfigError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")


def check_tf_config(text: str | None) -> dict:
    """The parsed `TF_CONFIG`, or a `ConfigError` saying what it must hold."""
    if not text:
        raise ConfigError(f"--strategy multiworker needs the TF_CONFIG environment variable; {_TF_CONFIG_HELP}")
    try:
        tf_config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ConfigError(f"TF_CONFIG is not JSON ({error}); {_TF_CONFIG_HELP}") from None
    cluster = tf_config.get("cluster") if isinstance(tf_config, dict) else None
    task = tf_config.get("task") if isinstance(tf_config, dict) else None
    if not (isinstance(cluster, dict) and cluster and isinstance(task, dict)):
        raise ConfigError(f"TF_CONFIG needs a \"cluster\" and a \"task\"; {_TF_CONFIG_HELP}")
    if not all(job in ("chief", "worker") and isinstance(addresses, list) and addresses
               and all(isinstance(address, str) and ":" in address for address in addresses)
               for job, addresses in cluster.items()):
        raise ConfigError(f"TF_CONFIG's cluster must list \"worker\" (and optionally one \"chief\") addresses as "
                          f"\"host:port\" strings, got {cluster!r}; {_TF_CONFIG_HELP}")
    task_type, index = task.get("type"), task.get("index")
    if task_type not in cluster or not isinstance(index, int) or not 0 <= index < len(cluster[task_type]):
        raise ConfigError(f"TF_CONFIG's task {task!r} is not one of its cluster's tasks; {_TF_CONFIG_HELP}")
    return tf_config


def writes_results(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process saves the trained model and the run's files: under multiworker only the chief
    (worker 0, or the "chief" task if the cluster names one) does; the other workers hold the same weights."""
    return strategy.extended.should_checkpoint


def worker_path(path, strategy: tf.distribute.Strategy) -> Path:
    """Where this process writes what would go to `path`: `path` itself for the process that writes results,
    `<path>.worker<index>` beside it for the other workers of a multi-worker cluster. Every worker so keeps its
    own resume checkpoints and finished runs (they must all resume, or skip, alike: they train in lockstep), and
    workers that share a file system never write the same file."""
    path = Path(path)
    if writes_results(strategy):
        return path
    return path.with_name(f"{path.name}.worker{strategy.cluster_resolver.task_id}")
