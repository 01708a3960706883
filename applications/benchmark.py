"""Cost of the Langevin term, measured side by side with the base Keras optimizer.

    python -m applications.benchmark                      # full run (about 20 minutes on 2 CPU cores)
    python -m applications.benchmark --skip-update-step   # end to end only
    python -m applications.benchmark --quick              # small sizes, few repeats

Five measurements; those in one process alternate base and Langevin optimizer and repeat:

1. start-up: the first `model.fit` epoch of a 60-layer MLP and of ResNet50, each optimizer in
   a fresh process, so that tracing and compilation are included;
2. the update step alone: `optimizer.apply` on a fixed set of conv-kernel-shaped variables
   (about 1M and 15M parameters), in two conditions on TensorFlow: inside a
   `tf.function(jit_compile=True)` (Keras's fastest Adam) and inside a plain `tf.function`, as
   `model.fit` runs it on CPU; on JAX as a jitted `stateless_apply`;
3. Layer Langevin (fraction 0.3) against full Langevin on the update step;
4. the floor: per element, a pass over memory, the integer hash alone, the Gaussian transform
   alone and the whole noise, on two cores and on one;
5. end to end: `model.fit` seconds per epoch for a deep MLP on the embedded digits and for
   resnet56 on CIFAR-shaped synthetic data, and, on the same models' variables, what bounds
   that ratio per training step.

It prints a table (median time, ratio to the base, min-max) and writes JSON with the machine
(CPU model, cores, versions). The ratio is the median over repeats of (time / base time in the
same repeat): pairing each measurement with the base's neighbouring one cancels the slow
drifts of a shared machine. The ratio of medians is kept in the JSON as `ratio_of_medians`.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import keras
import numpy as np

import keras_langevin as kl
from applications import optimizers as optimizers_lib

# "l<base>": (Langevin class, its Keras base class).
PAIRS = {
    f"l{base}": (optimizers_lib.LANGEVIN_CLASSES[base], optimizers_lib.KERAS_CLASSES[base])
    for base in optimizers_lib.BASES
}


def conv_kernel_shapes(target_params):
    """3x3 conv kernels of 64, 128 and 256 channels, holding 15%, 25% and 60% of about
    `target_params` parameters (the proportions of a ResNet's stages)."""
    shapes = []
    for channels, share in ((64, 0.15), (128, 0.25), (256, 0.6)):
        count = max(1, round(target_params * share / (9 * channels * channels)))
        shapes += [(3, 3, channels, channels)] * count
    return shapes


def _timed(fn, block):
    start = time.perf_counter()
    block(fn())
    return time.perf_counter() - start


def _kernel_variables(shapes, seed=0):
    """Variables of the given shapes, one layer (name scope) each, so Layer Langevin can count
    them, with random gradients for them."""
    rng = np.random.default_rng(seed)
    variables = []
    for i, shape in enumerate(shapes):
        with keras.name_scope(f"conv{i}"):
            initial = rng.standard_normal(shape).astype("float32") * 0.05
            variables.append(keras.Variable(initial, name="kernel"))
    return variables, _random_gradients(variables, rng)


def _random_gradients(variables, rng):
    return [
        keras.ops.convert_to_tensor(rng.standard_normal(v.shape).astype("float32"))
        for v in variables
    ]


# TensorFlow conditions of the update step: XLA-compiled step, and the plain `tf.function` in
# which `model.fit` runs it on CPU (Keras turns XLA off for the model there).
CONDITIONS = {
    "jit": (True, "inside tf.function(jit_compile=True)"),
    "fit": (False, "inside a plain tf.function, as model.fit runs it on CPU"),
}


def _conditions():
    if keras.backend.backend() == "tensorflow":
        return list(CONDITIONS)
    return ["jit"]


def _condition_label(condition):
    if keras.backend.backend() != "tensorflow":
        return "jitted stateless_apply"
    return CONDITIONS[condition][1]


def _update_step_runner(optimizer, variables, grads, jit_compile=True):
    """A zero-argument callable running one compiled `apply`, and a function to block on.

    On TensorFlow `apply` runs inside a `tf.function`, XLA-compiled when `jit_compile` (as in a
    compiled train step) or not (as in `model.fit` on CPU, where Keras turns XLA off for the
    model); on JAX it is a jitted `stateless_apply` either way.
    """
    optimizer.build(variables)
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        @tf.function(jit_compile=jit_compile)
        def step():
            optimizer.apply(grads, variables)
            return optimizer.iterations

        return step, lambda out: out.numpy()
    if backend == "jax":
        import jax

        # Copies: the jitted step donates its buffers, and the variables may be shared.
        state = {
            "opt": [jax.numpy.array(v.value) for v in optimizer.variables],
            "vars": [jax.numpy.array(v.value) for v in variables],
        }
        apply = jax.jit(optimizer.stateless_apply, donate_argnums=(0, 2))

        def step():
            state["vars"], state["opt"] = apply(state["opt"], grads, state["vars"])
            return state["vars"]

        return step, jax.block_until_ready
    raise ValueError(f"Backend {backend!r} is not supported by the benchmark.")


def _generator_runner(shapes, noise="gaussian"):
    """The noise generator alone: one compiled call drawing the noise of every shape (as one
    training step does) and summing it, so that nothing is written back."""
    from keras_langevin import noise as noise_lib

    def draw(seed, step):
        total = 0.0
        for index, shape in enumerate(shapes):
            key = noise_lib.step_key(seed, step, index)
            total = keras.ops.add(total, keras.ops.sum(noise_lib.sample(noise, shape, key)))
        return total

    seed = keras.ops.convert_to_tensor(7, dtype="int32")
    step = keras.ops.convert_to_tensor(3, dtype="int32")
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        compiled = tf.function(draw, jit_compile=True, autograph=False)
        return (lambda: compiled(seed, step)), lambda out: out.numpy()
    if backend == "jax":
        import jax

        compiled = jax.jit(draw)
        return (lambda: compiled(seed, step)), jax.block_until_ready
    raise ValueError(f"Backend {backend!r} is not supported by the benchmark.")


def compare(runners, repeats, warmup=2):
    """Alternates the runners `repeats` times, starting each repeat one runner further along
    (so that none always runs first or after the same one); returns per-runner lists of
    seconds."""
    for fn, block in runners.values():
        for _ in range(warmup):
            _timed(fn, block)
    names = list(runners)
    times = {name: [] for name in names}
    for repeat in range(repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            fn, block = runners[name]
            times[name].append(_timed(fn, block))
    return times


def _row(group, name, seconds, base_seconds, unit="ms"):
    """One table row. `ratio` is the median over repeats of (time / base time of the same
    repeat) when both were measured in the same alternation, which cancels the machine's slow
    drifts; otherwise (a scalar base) the ratio of the median to it."""
    scale = 1e3 if unit == "ms" else 1.0
    median = statistics.median(seconds)
    if isinstance(base_seconds, (int, float)):
        ratio = ratio_of_medians = median / base_seconds
    else:
        ratio = statistics.median(s / b for s, b in zip(seconds, base_seconds))
        ratio_of_medians = median / statistics.median(base_seconds)
    return {
        "group": group,
        "name": name,
        "unit": unit,
        "median": median * scale,
        "min": min(seconds) * scale,
        "max": max(seconds) * scale,
        "ratio": ratio,
        "ratio_of_medians": ratio_of_medians,
        "times": [t * scale for t in seconds],
    }


def bench_update_steps(sizes, pairs, repeats, noises=("gaussian",), conditions=None):
    rows = []
    for condition in conditions or _conditions():
        jit_compile = CONDITIONS[condition][0]
        for size in sizes:
            shapes = conv_kernel_shapes(size)
            params = sum(int(np.prod(s)) for s in shapes)
            group = (
                f"update step, {params / 1e6:.1f}M params in {len(shapes)} kernels, "
                f"{_condition_label(condition)}"
            )
            for pair in pairs:
                langevin_cls, base_cls = PAIRS[pair]
                runners = {
                    base_cls.__name__: _update_step_runner(
                        base_cls(learning_rate=1e-3), *_kernel_variables(shapes), jit_compile
                    )
                }
                for noise in noises:
                    optimizer = langevin_cls(learning_rate=1e-3, sigma=1e-3, seed=0, noise=noise)
                    label = langevin_cls.__name__ + ("" if noise == "gaussian" else f" ({noise})")
                    runners[label] = _update_step_runner(
                        optimizer, *_kernel_variables(shapes), jit_compile
                    )
                # The base again, on variables of its own: how far timing noise alone moves a
                # ratio in this group (its graph is the base's, op for op).
                runners[f"{base_cls.__name__} (control)"] = _update_step_runner(
                    base_cls(learning_rate=1e-3), *_kernel_variables(shapes), jit_compile
                )
                times = compare(runners, repeats)
                base = times[base_cls.__name__]
                for name, t in times.items():
                    row = _row(group, name, t, base)
                    row["condition"] = condition
                    rows.append(row)
                keras.backend.clear_session()
    return rows


def bench_layer_langevin(size, repeats, fraction=0.3, conditions=None):
    shapes = conv_kernel_shapes(size)
    params = sum(int(np.prod(s)) for s in shapes)
    rows = []
    for condition in conditions or _conditions():
        jit_compile = CONDITIONS[condition][0]
        group = (
            f"Layer Langevin {fraction} vs full, {params / 1e6:.1f}M params, "
            f"{_condition_label(condition)}"
        )
        label = f"LAdam layers={fraction}"
        runners = {
            "Adam": _update_step_runner(
                keras.optimizers.Adam(1e-3), *_kernel_variables(shapes), jit_compile
            ),
            "LAdam": _update_step_runner(
                kl.LAdam(1e-3, sigma=1e-3, seed=0), *_kernel_variables(shapes), jit_compile
            ),
            label: _update_step_runner(
                kl.LAdam(1e-3, sigma=1e-3, seed=0, langevin_layers=fraction),
                *_kernel_variables(shapes),
                jit_compile,
            ),
            "Adam (control)": _update_step_runner(
                keras.optimizers.Adam(1e-3), *_kernel_variables(shapes), jit_compile
            ),
        }
        times = compare(runners, repeats)
        group_rows = [_row(group, name, t, times["Adam"]) for name, t in times.items()]
        base = statistics.median(times["Adam"])
        full_extra = statistics.median(times["LAdam"]) - base
        layer_extra = statistics.median(times[label]) - base
        group_rows[2]["extra_cost_vs_full"] = layer_extra / full_extra if full_extra > 0 else None
        for row in group_rows:
            row["condition"] = condition
        rows += group_rows
        keras.backend.clear_session()
    return rows


# ----------------------------------------------------------------------------- start-up

STARTUP_MODELS = {
    # name: (description, rows, batch size)
    "mlp-60": ("60-layer MLP, Dense(64) x 60, 256 random rows, batch 64", 256, 64),
    "resnet50": ("ResNet50, 64 random 32x32x3 images, batch 32 (2 steps)", 64, 32),
}


def _startup_optimizer(label):
    """The optimizers of the start-up rows, by label."""
    if label == "LAdam layers=0.3":
        return kl.LAdam(1e-3, sigma=1e-3, seed=0, langevin_layers=0.3)
    if label == "LAdam (rademacher)":
        return kl.LAdam(1e-3, sigma=1e-3, seed=0, noise="rademacher")
    for langevin_cls, base_cls in PAIRS.values():
        if label == base_cls.__name__:
            return base_cls(learning_rate=1e-3)
        if label == langevin_cls.__name__:
            return langevin_cls(learning_rate=1e-3, sigma=1e-3, seed=0)
    raise ValueError(f"Unknown start-up optimizer {label!r}.")


def first_epoch_seconds(model_name, label):
    """Builds the model, compiles it with the labelled optimizer and returns the seconds of
    its first `fit` epoch and of a second one (run in a fresh process by `bench_startup`)."""
    _, rows, batch_size = STARTUP_MODELS[model_name]
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    if model_name == "mlp-60":
        layers = [keras.Input((64,))]
        layers += [keras.layers.Dense(64, activation="relu") for _ in range(60)]
        model = keras.Sequential(layers + [keras.layers.Dense(10)])
        x = rng.uniform(size=(rows, 64)).astype("float32")
    else:
        model = keras.applications.ResNet50(weights=None, input_shape=(32, 32, 3), classes=10)
        x = rng.uniform(size=(rows, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 10, rows)
    model.compile(_startup_optimizer(label), keras.losses.SparseCategoricalCrossentropy())
    times = []
    for _ in range(2):
        start = time.perf_counter()
        model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)
        times.append(time.perf_counter() - start)
    return times


_RESULT = "BENCHMARK-RESULT"


def _print_result(value):
    print(_RESULT + json.dumps(value), flush=True)


def _fresh_result(call, single_core=False):
    """The value of `call`, Python code calling a function of this module, computed in a
    fresh process (on one core when asked)."""
    code = f"from applications import benchmark as b; b._print_result(b.{call})"
    out = _run_fresh(code, single_core=single_core)
    line = next(ln for ln in out.splitlines() if ln.startswith(_RESULT))
    return json.loads(line[len(_RESULT) :])


def _run_fresh(code, timeout=1800, single_core=False):
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


def startup_labels(pairs):
    """Adam, LAdam and Layer LAdam 0.3, then every other chosen Langevin optimizer, each
    against Adam (the performance target): (label, base label)."""
    labels = [("Adam", "Adam"), ("LAdam", "Adam"), ("LAdam layers=0.3", "Adam")]
    for pair in pairs:
        if pair != "ladam":
            labels.append((PAIRS[pair][0].__name__, "Adam"))
    return labels


def bench_startup(models, pairs, repeats):
    """First `fit` epoch, each optimizer in a fresh process; the processes alternate as the
    runners of `compare` do. Ratio: the median over repeats of time / base time."""
    rows = []
    labels = startup_labels(pairs)
    for model_name in models:
        description = STARTUP_MODELS[model_name][0]
        group = f"start-up: first fit epoch in a fresh process, {description}"
        first = {label: [] for label, _ in labels}
        second = {label: [] for label, _ in labels}
        for repeat in range(repeats):
            shift = repeat % len(labels)
            for label, _ in labels[shift:] + labels[:shift]:
                first_epoch, second_epoch = _fresh_result(
                    f"first_epoch_seconds({model_name!r}, {label!r})"
                )
                first[label].append(first_epoch)
                second[label].append(second_epoch)
        for label, base in labels:
            row = _row(group, label, first[label], first[base], unit="s")
            row["second_epoch"] = second[label]
            rows.append(row)
    return rows


# ----------------------------------------------------------------------- under a strategy


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
            variables, grads = _kernel_variables(shapes)
            optimizer = make()
            optimizer.build(variables)
        runners[name] = _replica_update_runner(distribution, optimizer, variables, grads)
    times = compare(runners, repeats)
    group = f"update step under {where}, {params / 1e6:.1f}M params in {len(shapes)} kernels"
    rows += [_row(group, name, t, times["Adam"]) for name, t in times.items()]

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
            runners[name] = _fit_epoch_runner(model, make(), x, y, 64, distribution=distribution)
    times = compare(runners, fit_repeats or max(repeats, 5), warmup=1)
    group = f"fit epoch under {where}, mlp-20 on digits ({len(x)} images, global batch 64)"
    rows += [_row(group, name, t, times["Adam"], unit="s") for name, t in times.items()]
    return rows


def _replica_update_runner(distribution, optimizer, variables, grads):
    """TensorFlow: one `apply` per replica inside a plain `tf.function`, as `model.fit` runs
    it. JAX: the jitted `stateless_apply` of the one-device runner, on the variables as the
    distribution lays them out (replicated) and the gradients laid out alike."""
    if distribution.strategy is None:
        import jax

        grads = [jax.device_put(g, v.value.sharding) for g, v in zip(grads, variables)]
        return _update_step_runner(optimizer, variables, grads)
    import tensorflow as tf

    @tf.function
    def step():
        distribution.strategy.run(lambda: optimizer.apply(grads, variables))
        return optimizer.iterations.value

    return step, lambda out: out.numpy()


def bench_strategy(size, repeats, fit_repeats=None):
    """`strategy_rows` in a fresh process (`STRATEGY_MODES`, on 2 logical CPUs)."""
    return _fresh_result(f"strategy_rows({size}, {repeats}, fit_repeats={fit_repeats})")


# ------------------------------------------------------------------------------- floors

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
        row = _row("floor", name, t, times["memory pass (x + 1)"])
        row["ns_per_element"] = statistics.median(t) / elements * 1e9
        rows.append(row)
    return rows


def bench_floors(repeats):
    """The floor on every core of this machine and on one core (fresh processes)."""
    rows = []
    cores = len(os.sched_getaffinity(0))
    for single in (False, True):
        threads = 1 if single else cores
        for row in _fresh_result(f"floor_rows({repeats})", single_core=single):
            row["group"] = (
                f"floor per element, {FLOOR_COUNT} arrays of 3x3x256x256 (14.7M), "
                f"{threads} core{'s' if threads > 1 else ''}"
            )
            row["cores"] = threads
            rows.append(row)
    return rows


def _fit_epoch_runner(model, optimizer, x, y, batch_size, jit_compile="auto", distribution=None):
    """A `model.fit` epoch (under `distribution.fitting`, as the engine runs it)."""
    from applications import distribute

    fitting = (distribution or distribute.OFF).fitting
    model.compile(optimizer, "sparse_categorical_crossentropy", jit_compile=jit_compile)
    with fitting(model):
        model.fit(x[:batch_size], y[:batch_size], batch_size=batch_size, epochs=1, verbose=0)

    def epoch():
        with fitting(model):
            model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)

    return epoch, lambda out: None


def bench_end_to_end(quick, repeats, images=None, batch_size=32, jit_compile="auto"):
    """`model.fit` epochs, Adam against LAdam, and what bounds their ratio: the update alone
    and the noise generator alone on the same model's variables, per training step."""
    from applications.data.digits import load_digits_arrays
    from applications.models import build_model

    rows = []
    digits = load_digits_arrays()
    x, y = digits[0], digits[1]
    x = x.reshape(len(x), -1).astype("float32")
    depth = 20 if quick else 40
    rng = np.random.default_rng(0)
    n_images = images or (64 if quick else 256)
    cifar_x = rng.uniform(0, 1, (n_images, 32, 32, 3)).astype("float32")
    cifar_y = rng.integers(0, 10, n_images)
    cases = [
        (
            f"mlp-{depth}",
            f"digits ({len(x)} images, batch 64)",
            lambda: build_model(f"mlp-{depth}", input_shape=x.shape[1:], classes=10),
            x,
            y,
            64,
        ),
        (
            "resnet56",
            f"synthetic 32x32x3 ({n_images} images, batch {batch_size})",
            lambda: build_model("resnet56", input_shape=(32, 32, 3), classes=10),
            cifar_x,
            cifar_y,
            batch_size,
        ),
    ]
    compiled = " (train step XLA-compiled)" if jit_compile is True else ""
    for model_name, data_name, builder, data_x, data_y, batch in cases:
        group = f"fit epoch, {model_name} on {data_name}{compiled}"
        models = {}
        runners = {}
        # The control is a second, identical Adam model: its ratio to the first shows how
        # far this machine's timing noise alone moves a ratio in this run.
        for name, optimizer in (
            ("Adam", keras.optimizers.Adam(1e-3)),
            ("LAdam", kl.LAdam(1e-3, sigma=1e-3, seed=0)),
            ("Adam (control)", keras.optimizers.Adam(1e-3)),
        ):
            keras.utils.set_random_seed(0)
            models[name] = builder()
            runners[name] = _fit_epoch_runner(
                models[name], optimizer, data_x, data_y, batch, jit_compile
            )
        times = compare(runners, repeats, warmup=1)
        for name, t in times.items():
            row = _row(group, name, t, times["Adam"], unit="s")
            row["images_per_second"] = len(data_x) / statistics.median(t)
            rows.append(row)
        steps = -(-len(data_x) // batch)
        rows += _step_bounds(model_name, models["Adam"], times, steps, repeats, jit_compile)
        keras.backend.clear_session()
    return rows


def _step_bounds(model_name, model, fit_times, steps, repeats, jit_compile):
    """Per training step: Adam's and LAdam's update alone, compiled as `model.fit` compiles the
    train step, and the Gaussian generator alone, each as a share of Adam's fit step."""
    adam_step = statistics.median(fit_times["Adam"]) / steps
    extra = statistics.median(
        (s - b) / steps for s, b in zip(fit_times["LAdam"], fit_times["Adam"])
    )
    variables = model.trainable_variables
    grads = _random_gradients(variables, np.random.default_rng(1))
    runner_jit = jit_compile is True  # Keras leaves the train step uncompiled on CPU
    runners = {
        "Adam update alone": _update_step_runner(
            keras.optimizers.Adam(1e-3), variables, grads, runner_jit
        ),
        "LAdam update alone": _update_step_runner(
            kl.LAdam(1e-3, sigma=1e-3, seed=0), variables, grads, runner_jit
        ),
        "Gaussian generator alone": _generator_runner([v.shape for v in variables]),
    }
    times = compare(runners, max(repeats, 5) * 3)
    group = (
        f"per step, {model_name}: share of Adam's fit step ({adam_step * 1e3:.1f} ms; "
        f"LAdam adds {extra * 1e3:.1f} ms)"
    )
    return [_row(group, name, t, adam_step) for name, t in times.items()]


def format_table(rows):
    lines = [
        "| measurement | optimizer | median | ratio to base | min - max |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        precision = 1 if r["unit"] == "ms" else 2
        median = f"{r['median']:.{precision}f} {r['unit']}"
        if "images_per_second" in r:
            median += f" ({r['images_per_second']:.0f} images/s)"
        lines.append(
            f"| {r['group']} | {r['name']} | {median} | {r['ratio']:.2f} | "
            f"{r['min']:.{precision}f} - {r['max']:.{precision}f} |"
        )
    return "\n".join(lines)


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_description():
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    description = f"{_cpu_model()}, {platform.machine()}, {cores} cores"
    if keras.backend.backend() == "jax":
        import jax

        description = f"{jax.devices()[0].device_kind} ({jax.default_backend()}), " + description
    return description


def versions():
    found = {"python": platform.python_version(), "keras": keras.__version__}
    for module in ("tensorflow", "jax", "numpy"):
        try:
            found[module] = __import__(module).__version__
        except ImportError:
            continue
    return found


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats")
    parser.add_argument(
        "--sizes",
        type=float,
        nargs="+",
        default=None,
        help="update-step sizes in millions of parameters (default 1 15)",
    )
    parser.add_argument("--optimizers", nargs="+", default=list(PAIRS), choices=list(PAIRS))
    parser.add_argument("--repeats", type=int, default=None)
    parser.add_argument("--skip-end-to-end", action="store_true")
    parser.add_argument(
        "--skip-startup", action="store_true", help="no first-epoch runs in fresh processes"
    )
    parser.add_argument(
        "--startup-models",
        nargs="+",
        default=None,
        choices=list(STARTUP_MODELS),
        help="models of the start-up rows (default both; --quick: mlp-60)",
    )
    parser.add_argument(
        "--startup-repeats", type=int, default=None, help="fresh processes per optimizer"
    )
    parser.add_argument("--skip-floor", action="store_true", help="no floor measurement")
    parser.add_argument(
        "--skip-strategy",
        action="store_true",
        help="no measurement under a distribution (TensorFlow: MirroredStrategy; JAX: "
        "DataParallel; 2 logical CPUs)",
    )
    parser.add_argument(
        "--skip-update-step", action="store_true", help="only the end-to-end measurements"
    )
    parser.add_argument(
        "--images",
        type=int,
        default=None,
        help="synthetic images per resnet56 epoch (default 256, quick 64)",
    )
    parser.add_argument("--batch-size", type=int, default=32, help="resnet56 batch size")
    parser.add_argument(
        "--jit-compile",
        action="store_true",
        help="XLA-compile the models' train step in the end-to-end runs "
        "(Keras leaves it uncompiled on CPU by default)",
    )
    parser.add_argument(
        "--mixed-precision",
        default=None,
        choices=["mixed_float16", "mixed_bfloat16"],
        help="global dtype policy for the end-to-end runs",
    )
    parser.add_argument("--output", default="runs/benchmark.json")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    sizes = [int(s * 1e6) for s in (args.sizes or ([1.0] if args.quick else [1.0, 15.0]))]
    repeats = args.repeats or (3 if args.quick else 7)
    rows = []
    if not args.skip_startup and not args.skip_update_step:
        models = args.startup_models or (["mlp-60"] if args.quick else list(STARTUP_MODELS))
        startup_repeats = args.startup_repeats or (1 if args.quick else 2)
        rows += bench_startup(models, args.optimizers, startup_repeats)
    if not args.skip_update_step:
        rows += bench_update_steps(sizes, args.optimizers, repeats)
        rows += bench_update_steps(sizes[-1:], ["ladam"], repeats, noises=("rademacher",))
        rows += bench_layer_langevin(sizes[-1], repeats)
    if not args.skip_floor and not args.skip_update_step:
        rows += bench_floors(repeats)
    if not args.skip_strategy:
        rows += bench_strategy(sizes[-1], repeats)
    if not args.skip_end_to_end:
        if args.mixed_precision:
            keras.mixed_precision.set_global_policy(args.mixed_precision)
        e2e_repeats = args.repeats or (2 if args.quick else 12)
        rows += bench_end_to_end(
            args.quick,
            e2e_repeats,
            args.images,
            args.batch_size,
            True if args.jit_compile else "auto",
        )
    result = {
        "backend": keras.backend.backend(),
        "machine": machine_description(),
        "keras": keras.__version__,
        "versions": versions(),
        "argv": sys.argv[1:] if argv is None else argv,
        "mixed_precision": args.mixed_precision,
        "jit_compile": args.jit_compile,
        "rows": rows,
    }
    policy = f", end to end under {args.mixed_precision}" if args.mixed_precision else ""
    print(f"\nbackend {result['backend']} on {result['machine']}{policy}\n")
    print(format_table(rows))
    os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
    with open(args.output, "w") as f:
        json.dump(result, f, indent=1)
    print(f"\nwrote {args.output}")
    return result


if __name__ == "__main__":
    main()
