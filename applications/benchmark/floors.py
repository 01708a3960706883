"""The floor: nanoseconds per element of a memory pass, the hash, the transform and the noise."""

import os
import statistics

import keras
import numpy as np

from applications.benchmark import fresh
from applications.benchmark.common import compare, make_row
from applications.benchmark.report import progress, progress_rows

FLOOR_SHAPE = (3, 3, 256, 256)


FLOOR_COUNT = 25


def _floor_runners():
    """Compiled loops over 25 arrays of 3x3x256x256 (14.7M elements), each writing its result
    back as an update does: a memory pass (x + 1), the integer hash alone, the Gaussian
    transform alone (on the array's values), Rademacher noise and Gaussian noise."""
    from keras import ops

    from keras_langevin import noise as noise_lib

    rng = np.random.default_rng(0)
    arrays = [
        keras.Variable(rng.uniform(-0.9, 0.9, FLOOR_SHAPE).astype("float32"), name=f"a{i}")
        for i in range(FLOOR_COUNT)
    ]
    seed = ops.convert_to_tensor(7, dtype="int32")
    step = ops.convert_to_tensor(3, dtype="int32")

    def key(i):
        return noise_lib.step_key(seed, step, i)

    passes = {
        "memory pass (x + 1)": lambda x, i: ops.add(x, 1.0),
        "integer hash alone": lambda x, i: ops.add(
            x, ops.cast(noise_lib.random_bits(FLOOR_SHAPE, key(i)), "float32")
        ),
        "Gaussian transform alone": lambda x, i: noise_lib._sqrt2_erfinv(x),
        "Rademacher noise": lambda x, i: ops.add(
            x, noise_lib.sample("rademacher", FLOOR_SHAPE, key(i))
        ),
        "Gaussian noise": lambda x, i: ops.add(
            x, noise_lib.sample("gaussian", FLOOR_SHAPE, key(i))
        ),
    }
    backend = keras.backend.backend()
    values = [a.value for a in arrays]
    runners = {}
    for name, fn in passes.items():
        if backend == "tensorflow":
            import tensorflow as tf

            def run(fn=fn):
                for i, a in enumerate(arrays):
                    a.assign(fn(a.value, i))
                return a.value

            compiled = tf.function(run, jit_compile=True, autograph=False)
            runners[name] = (compiled, lambda out: out.numpy())
        elif backend == "jax":
            import jax

            def run(values, fn=fn):
                return [fn(x, i) for i, x in enumerate(values)]

            compiled = jax.jit(run)
            runners[name] = ((lambda c=compiled, v=values: c(v)), jax.block_until_ready)
        else:
            raise ValueError(f"Backend {backend!r} is not supported by the benchmark.")
    return runners


def floor_rows(repeats):
    """The floor in this process: nanoseconds per element of each pass."""
    elements = FLOOR_COUNT * int(np.prod(FLOOR_SHAPE))
    times = compare(_floor_runners(), repeats)
    rows = []
    for name, t in times.items():
        row = make_row("floor", name, t, times["memory pass (x + 1)"])
        row["ns_per_element"] = statistics.median(t) / elements * 1e9
        rows.append(row)
    return rows


def bench_floors(repeats):
    """The floor on every core of this machine and on one core (fresh processes)."""
    rows = []
    cores = len(os.sched_getaffinity(0))
    for single in (False, True):
        threads = 1 if single else cores
        group = (
            f"floor per element, {FLOOR_COUNT} arrays of 3x3x256x256 (14.7M), "
            f"{threads} core{'s' if threads > 1 else ''}"
        )
        progress(f"{group} (a fresh process)")
        group_rows = fresh.fresh_result("floors", f"floor_rows({repeats})", single_core=single)
        for row in group_rows:
            row["group"] = group
            row["cores"] = threads
        progress_rows(group_rows)
        rows += group_rows
    return rows
