"""Helpers of the distribution tests: free loopback ports, worker processes with time limits."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

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


def start_workers(processes, argv, log_dir, name, count=2):
    """`count` TensorFlow workers, TF_CONFIG on fresh loopback ports; `argv(index)` is the
    command line of worker `index` after the Python executable."""
    ports = free_ports(count)
    return [
        processes.start(
            [sys.executable, *argv(index)],
            Path(log_dir) / f"{name}-{index}.log",
            env(TF_CONFIG=tf_config(ports, index)),
        )
        for index in range(count)
    ]


def wait_for(predicate, timeout=TIMEOUT, interval=0.002):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False
