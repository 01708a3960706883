"""What a `--distribute` setting needs before anything starts (`applications.distribute`).

`check` refuses, with a `DistributionError` naming the flag and the value, a mode that cannot
run on this backend or with this environment: TensorFlow's modes on JAX and back, `TF_CONFIG`
for multi-worker (present, JSON, this task in the cluster), Keras's process variables on JAX
(all or none). `tf_config_task` reads which process of the cluster this one is. Nothing here
imports TensorFlow or JAX.
"""

import json
import os

MODES = ("off", "mirrored", "multi-worker", "data-parallel", "model-parallel")
TENSORFLOW_MODES = ("mirrored", "multi-worker")
JAX_MODES = ("data-parallel", "model-parallel")
JAX_PROCESS_VARIABLES = (
    "KERAS_DISTRIBUTION_JOB_ADDRESSES",
    "KERAS_DISTRIBUTION_NUM_PROCESSES",
    "KERAS_DISTRIBUTION_PROCESS_ID",
)


class DistributionError(ValueError):
    """A `--distribute` setting that cannot run here (a usage error)."""


# ----------------------------------------------------------------------------- checks


def check(mode, backend, environ=None, cpu_devices=None, model_shards=None):
    """Raises `DistributionError` if `mode` cannot run on `backend` with `environ`.

    Checks only what is known before anything starts: the backend, `TF_CONFIG` for
    multi-worker (present, JSON, a cluster with this task in it), Keras's process variables for
    JAX (all or none).
    """
    environ = os.environ if environ is None else environ
    if mode not in MODES:
        raise DistributionError(f"unknown --distribute {mode!r}; expected one of {MODES}")
    if mode in TENSORFLOW_MODES and backend != "tensorflow":
        raise DistributionError(
            f"--distribute {mode} needs the TensorFlow backend (KERAS_BACKEND=tensorflow); "
            f"on {backend} use {' or '.join(JAX_MODES)}"
        )
    if mode in JAX_MODES and backend != "jax":
        raise DistributionError(
            f"--distribute {mode} needs the JAX backend (KERAS_BACKEND=jax); on {backend} use "
            f"{' or '.join(TENSORFLOW_MODES)}"
        )
    if model_shards is not None and mode != "model-parallel":
        raise DistributionError("--model-shards is used only by --distribute model-parallel")
    if cpu_devices is not None and mode in ("off", "multi-worker"):
        raise DistributionError(
            f"--cpu-devices is used by --distribute mirrored, data-parallel and "
            f"model-parallel; not by {mode}"
        )
    if mode == "multi-worker":
        _check_tf_config(environ.get("TF_CONFIG"))
    if mode in JAX_MODES:
        given = [name for name in JAX_PROCESS_VARIABLES if environ.get(name)]
        if given and len(given) != len(JAX_PROCESS_VARIABLES):
            missing = sorted(set(JAX_PROCESS_VARIABLES) - set(given))
            raise DistributionError(
                f"several JAX processes need all of {', '.join(JAX_PROCESS_VARIABLES)}; "
                f"missing: {', '.join(missing)}"
            )


def _check_tf_config(text):
    if not text:
        raise DistributionError(
            "--distribute multi-worker needs TF_CONFIG (the cluster and this worker's task), "
            'e.g. TF_CONFIG=\'{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}}\''
        )
    try:
        tf_config = json.loads(text)
        cluster, task = tf_config["cluster"], tf_config["task"]
        members = cluster[task["type"]]
        index = int(task["index"])
    except (ValueError, KeyError, TypeError) as error:
        raise DistributionError(
            f"TF_CONFIG must be JSON with 'cluster' and 'task' (type, index): {error!r}"
        ) from None
    if not 0 <= index < len(members):
        raise DistributionError(
            f"TF_CONFIG: task {task['type']} {index} is not in the cluster ({len(members)} "
            f"{task['type']} addresses)"
        )


def tf_config_task(environ=None):
    """`(task_type, task_index, is_chief)` of `TF_CONFIG`: the chief is the task of type
    'chief', or worker 0 when the cluster has no chief (TensorFlow's convention)."""
    tf_config = json.loads((os.environ if environ is None else environ)["TF_CONFIG"])
    task_type, index = tf_config["task"]["type"], int(tf_config["task"]["index"])
    has_chief = bool(tf_config["cluster"].get("chief"))
    is_chief = task_type == "chief" or (not has_chief and task_type == "worker" and index == 0)
    return task_type, index, is_chief
