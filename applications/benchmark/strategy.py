"""Adam against LAdam under a distribution (TensorFlow mirrored, JAX data parallel)."""

import keras
import numpy as np

import keras_langevin as kl
from applications.benchmark import fresh
from applications.benchmark.common import (
    compare,
    conv_kernel_shapes,
    kernel_variables,
    make_row,
    update_step_runner,
)
from applications.benchmark.end_to_end import fit_epoch_runner
from applications.benchmark.report import progress, progress_rows

STRATEGY_MODES = {"tensorflow": "mirrored", "jax": "data-parallel"}


def strategy_rows(size, repeats, cpu_devices=2, fit_repeats=None):
    """Adam against LAdam under a distribution (the engine's `applications.distribute`:
    TensorFlow's `MirroredStrategy`, or Keras's `DataParallel` on JAX) over `cpu_devices`
    logical CPUs: the update step (TensorFlow: `optimizer.apply` per replica, as `model.fit`
    runs it; JAX: the jitted `stateless_apply` on replicated variables) and a `model.fit`
    epoch of mlp-20 on the digits, as the engine runs it. Run in a fresh process
    (`bench_strategy`): the logical devices must be set before anything runs."""
    from applications import distribute
    from applications.data.digits import load_digits_arrays
    from applications.models import build_model

    mode = STRATEGY_MODES[keras.backend.backend()]
    distribution = distribute.setup(mode, cpu_devices=cpu_devices)
    shapes = conv_kernel_shapes(size)
    params = sum(int(np.prod(s)) for s in shapes)
    where = f"{mode} over {len(distribution.devices)} devices"
    rows = []
    runners = {}
    for name, make in (
        ("Adam", lambda: keras.optimizers.Adam(1e-3)),
        ("LAdam", lambda: kl.LAdam(1e-3, sigma=1e-3, seed=0)),
    ):
        with distribution.scope():
            variables, grads = kernel_variables(shapes)
            optimizer = make()
            optimizer.build(variables)
        runners[name] = _replica_update_runner(distribution, optimizer, variables, grads)
    times = compare(runners, repeats)
    group = f"update step under {where}, {params / 1e6:.1f}M params in {len(shapes)} kernels"
    rows += [make_row(group, name, t, times["Adam"]) for name, t in times.items()]

    x, y = load_digits_arrays()[:2]
    x = x.reshape(len(x), -1).astype("float32")
    runners = {}
    for name, make in (
        ("Adam", lambda: keras.optimizers.Adam(1e-3)),
        ("LAdam", lambda: kl.LAdam(1e-3, sigma=1e-3, seed=0)),
        ("Adam (control)", lambda: keras.optimizers.Adam(1e-3)),
    ):
        keras.utils.set_random_seed(0)
        with distribution.scope():
            model = build_model("mlp-20", input_shape=x.shape[1:], classes=10)
            runners[name] = fit_epoch_runner(model, make(), x, y, 64, distribution=distribution)
    times = compare(runners, fit_repeats or max(repeats, 5), warmup=1)
    group = f"fit epoch under {where}, mlp-20 on digits ({len(x)} images, global batch 64)"
    rows += [make_row(group, name, t, times["Adam"], unit="s") for name, t in times.items()]
    return rows


def _replica_update_runner(distribution, optimizer, variables, grads):
    """TensorFlow: one `apply` per replica inside a plain `tf.function`, as `model.fit` runs
    it. JAX: the jitted `stateless_apply` of the one-device runner, on the variables as the
    distribution lays them out (replicated) and the gradients laid out alike."""
    if distribution.strategy is None:
        import jax

        grads = [jax.device_put(g, v.value.sharding) for g, v in zip(grads, variables)]
        return update_step_runner(optimizer, variables, grads)
    import tensorflow as tf

    @tf.function
    def step():
        distribution.strategy.run(lambda: optimizer.apply(grads, variables))
        return optimizer.iterations.value

    return step, lambda out: out.numpy()


def bench_strategy(size, repeats, fit_repeats=None):
    """`strategy_rows` in a fresh process (`STRATEGY_MODES`, on 2 logical CPUs)."""
    progress(f"Adam and LAdam under {STRATEGY_MODES[keras.backend.backend()]} (a fresh process)")
    rows = fresh.fresh_result(
        "strategy", f"strategy_rows({size}, {repeats}, fit_repeats={fit_repeats})"
    )
    progress_rows(rows)
    return rows
