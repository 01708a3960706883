"""Cost of the Langevin term, measured side by side with the base Keras optimizer.

    python -m applications.benchmark                      # full run (about 12 minutes on 2 CPU cores)
    python -m applications.benchmark --skip-update-step   # end to end only
    python -m applications.benchmark --quick              # small sizes, few repeats (5 minutes)

Three measurements, each alternating base and Langevin optimizer in one process and repeating:

1. the update step alone: `optimizer.apply` on a fixed set of conv-kernel-shaped variables
   (about 1M and 15M parameters), compiled as in training: on TensorFlow inside a
   `tf.function(jit_compile=True)` (the Langevin optimizers compile their update with XLA
   anyway), on JAX as a jitted `stateless_apply`;
2. end to end: `model.fit` seconds per epoch for a deep MLP on the embedded digits and for
   resnet56 on CIFAR-shaped synthetic data, and, on the same models' variables, what bounds
   that ratio per training step: Adam's and LAdam's update alone (compiled as `model.fit`
   compiles it) and the Gaussian noise generator alone, as shares of Adam's fit step;
3. Layer Langevin (fraction 0.3) against full Langevin on the update step.

It prints a table (median time, ratio to the base, min-max) and writes JSON. The ratio is the
median over repeats of (time / base time in the same repeat): pairing each measurement with
the base's neighbouring one cancels the slow drifts of a shared machine. The ratio of medians
is kept in the JSON as `ratio_of_medians`.
"""

import argparse
import json
import os
import platform
import statistics
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


def bench_update_steps(sizes, pairs, repeats, noises=("gaussian",)):
    rows = []
    for size in sizes:
        shapes = conv_kernel_shapes(size)
        params = sum(int(np.prod(s)) for s in shapes)
        group = f"update step, {params / 1e6:.1f}M params in {len(shapes)} kernels"
        for pair in pairs:
            langevin_cls, base_cls = PAIRS[pair]
            runners = {
                base_cls.__name__: _update_step_runner(
                    base_cls(learning_rate=1e-3), *_kernel_variables(shapes)
                )
            }
            for noise in noises:
                optimizer = langevin_cls(learning_rate=1e-3, sigma=1e-3, seed=0, noise=noise)
                label = langevin_cls.__name__ + ("" if noise == "gaussian" else f" ({noise})")
                runners[label] = _update_step_runner(optimizer, *_kernel_variables(shapes))
            times = compare(runners, repeats)
            base = times[base_cls.__name__]
            rows += [_row(group, name, t, base) for name, t in times.items()]
            keras.backend.clear_session()
    return rows


def bench_layer_langevin(size, repeats, fraction=0.3):
    shapes = conv_kernel_shapes(size)
    params = sum(int(np.prod(s)) for s in shapes)
    group = f"Layer Langevin {fraction} vs full, {params / 1e6:.1f}M params"
    runners = {
        "Adam": _update_step_runner(keras.optimizers.Adam(1e-3), *_kernel_variables(shapes)),
        "LAdam": _update_step_runner(
            kl.LAdam(1e-3, sigma=1e-3, seed=0), *_kernel_variables(shapes)
        ),
        f"LAdam layers={fraction}": _update_step_runner(
            kl.LAdam(1e-3, sigma=1e-3, seed=0, langevin_layers=fraction),
            *_kernel_variables(shapes),
        ),
    }
    times = compare(runners, repeats)
    rows = [_row(group, name, t, times["Adam"]) for name, t in times.items()]
    base = statistics.median(times["Adam"])
    full_extra = statistics.median(times["LAdam"]) - base
    layer_extra = statistics.median(times[f"LAdam layers={fraction}"]) - base
    rows[-1]["extra_cost_vs_full"] = layer_extra / full_extra if full_extra > 0 else None
    keras.backend.clear_session()
    return rows


def _fit_epoch_runner(model, optimizer, x, y, batch_size, jit_compile="auto"):
    model.compile(optimizer, "sparse_categorical_crossentropy", jit_compile=jit_compile)
    model.fit(x[:batch_size], y[:batch_size], batch_size=batch_size, epochs=1, verbose=0)

    def epoch():
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


def machine_description():
    import multiprocessing

    description = (
        f"{platform.processor() or platform.machine()}, {multiprocessing.cpu_count()} cores"
    )
    if keras.backend.backend() == "jax":
        import jax

        description = f"{jax.devices()[0].device_kind} ({jax.default_backend()}), " + description
    return description


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
    if not args.skip_update_step:
        rows += bench_update_steps(sizes, args.optimizers, repeats)
        rows += bench_update_steps(sizes[-1:], ["ladam"], repeats, noises=("rademacher",))
        rows += bench_layer_langevin(sizes[-1], repeats)
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
