"""Helpers of the distribution tests: free loopback ports, worker processes with time limits,
backups of a run, a job killed mid-run."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import h5py

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT = 300  # seconds, for any one process


def free_ports(count):
    """`count` distinct free TCP ports on 127.0.0.1 (bound to port 0, then released)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def tf_config(ports, index):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    return json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})


def env(backend="tensorflow", **extra):
    environment = dict(os.environ)
    environment.pop("TF_CONFIG", None)
    environment.update(
        KERAS_BACKEND=backend,
        TF_CPP_MIN_LOG_LEVEL="2",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), environment.get("PYTHONPATH")])),
    )
    environment.update({key: str(value) for key, value in extra.items()})
    return environment


class Processes:
    """Started processes, each in its own process group, all killed on exit of the block."""

    def __init__(self):
        self.processes = []

    def start(self, argv, log_path, environment):
        log = open(log_path, "w")  # noqa: SIM115 - closed with the process
        process = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=environment,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        process.log_path, process.log = Path(log_path), log
        self.processes.append(process)
        return process

    def kill(self, process):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
        process.log.close()

    def finish(self, process, timeout=TIMEOUT):
        """Waits for `process`; returns its output, asserting it succeeded."""
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill(process)
            raise AssertionError(f"timed out:\n{process.log_path.read_text()[-5000:]}") from None
        process.log.close()
        output = process.log_path.read_text()
        assert process.returncode == 0, f"{process.args} failed:\n{output[-5000:]}"
        return output

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        for process in self.processes:
            if process.poll() is None:
                self.kill(process)
            else:
                process.log.close()


def _start_job(processes, argv, log_dir, name, count, environment):
    return [
        processes.start(
            [sys.executable, *argv(index)],
            Path(log_dir) / f"{name}-{index}.log",
            environment(index),
        )
        for index in range(count)
    ]


def start_workers(processes, argv, log_dir, name, count=2):
    """`count` TensorFlow workers, TF_CONFIG on fresh loopback ports; `argv(index)` is the
    command line of worker `index` after the Python executable."""
    ports = free_ports(count)
    return _start_job(
        processes, argv, log_dir, name, count, lambda index: env(TF_CONFIG=tf_config(ports, index))
    )


def start_jax_processes(processes, argv, log_dir, name, count=2, extra_env=None):
    """`count` JAX processes, Keras's KERAS_DISTRIBUTION_* variables on fresh loopback ports;
    `argv(index)` is the command line of process `index` after the Python executable,
    `extra_env(index)` (optional) more variables of its environment."""
    addresses = ",".join(f"127.0.0.1:{port}" for port in free_ports(count))
    return _start_job(
        processes,
        argv,
        log_dir,
        name,
        count,
        lambda index: env(
            "jax",
            KERAS_DISTRIBUTION_JOB_ADDRESSES=addresses,
            KERAS_DISTRIBUTION_NUM_PROCESSES=count,
            KERAS_DISTRIBUTION_PROCESS_ID=index,
            **(extra_env(index) if extra_env else {}),
        ),
    )


def small_train_args(epochs, seed, *extra):
    """`python -m applications.train` (after the Python executable) on a small MLP with Layer
    LAdam, 1,000 training rows (31 * 32 + 8: every epoch ends on a partial batch that two
    replicas split) and 75 test rows (2 * 32 + 11: a last batch that two replicas cannot
    split); `extra` are more arguments."""
    return [
        "-m", "applications.train",
        "--model", "mlp-3",
        "--model-option", "width=16",
        "--augment", "none",
        "--optimizer", "layer-ladam",
        "--epochs", str(epochs),
        "--batch-size", "32",
        "--train-take", "1000",
        "--test-take", "75",
        "--seed", str(seed),
        *extra,
    ]  # fmt: skip


def wait_for(predicate, timeout=TIMEOUT, interval=0.002):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def backup_epoch(backup_dir):
    """The epoch of the backup committed in `backup_dir` (`AtomicBackupAndRestore`); 0: none."""
    try:
        return int(json.loads((Path(backup_dir) / "training_metadata.json").read_text())["epoch"])
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return 0


def h5_arrays(path):
    """`{name: array}` of every dataset of an HDF5 file (a `.weights.h5` backup)."""
    arrays = {}
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda name, obj: (
                arrays.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None
            )
        )
    return arrays


def kill_mid_run(processes, job, backup_dirs, victim=1, grace=20):
    """Kills a training job mid-run, as a crash of one of its processes would.

    Once every backup of `backup_dirs` (one per process) has committed an epoch, `job[victim]`
    is SIGKILLed; its peers, stuck in a collective or failing, get `grace` seconds to end, then
    are killed too. Returns the epochs of the backups once the whole job has stopped (what a
    restart finds).
    """
    assert wait_for(
        lambda: min(map(backup_epoch, backup_dirs)) >= 1 or job[victim].poll() is not None
    ), "no backup"
    processes.kill(job[victim])
    for process in job:
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace)
        processes.kill(process)
    return [backup_epoch(backup_dir) for backup_dir in backup_dirs]
