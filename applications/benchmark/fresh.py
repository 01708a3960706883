"""Measurements in a fresh process: the child prints its result on one marked line."""

import json
import os
import subprocess
import sys

RESULT = "BENCHMARK-RESULT"


def print_result(value):
    print(RESULT + json.dumps(value), flush=True)


def fresh_result(module, call, single_core=False):
    """The value of `call`, Python code calling a function of `module` (a module of this
    package), computed in a fresh process (on one core when asked)."""
    code = f"from applications.benchmark import fresh, {module} as m; fresh.print_result(m.{call})"
    out = run_fresh(code, single_core=single_core)
    line = next(ln for ln in out.splitlines() if ln.startswith(RESULT))
    return json.loads(line[len(RESULT) :])


def run_fresh(code, timeout=1800, single_core=False):
    """Runs Python `code` in a fresh process (on one core when asked); returns its stdout."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    preexec = (
        (lambda: os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})) if (single_core) else None
    )
    completed = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
        preexec_fn=preexec,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{completed.stderr[-3000:]}")
    return completed.stdout
