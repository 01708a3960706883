"""End to end: `model.fit` epochs, Adam against LAdam, and what bounds their ratio per step."""

import statistics

import keras
import numpy as np

import keras_langevin as kl
from applications.benchmark.common import (
    compare,
    generator_runner,
    make_row,
    random_gradients,
    update_step_runner,
)
from applications.benchmark.report import progress, progress_rows


def fit_epoch_runner(model, optimizer, x, y, batch_size, jit_compile="auto", distribution=None):
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
            runners[name] = fit_epoch_runner(
                models[name], optimizer, data_x, data_y, batch, jit_compile
            )
        progress(f"{group}: {', '.join(runners)}")
        times = compare(runners, repeats, warmup=1)
        for name, t in times.items():
            row = make_row(group, name, t, times["Adam"], unit="s")
            row["images_per_second"] = len(data_x) / statistics.median(t)
            rows.append(row)
        steps = -(-len(data_x) // batch)
        bounds = _step_bounds(model_name, models["Adam"], times, steps, repeats, jit_compile)
        rows += bounds
        progress_rows(rows[-len(times) - len(bounds) :])
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
    grads = random_gradients(variables, np.random.default_rng(1))
    runner_jit = jit_compile is True  # Keras leaves the train step uncompiled on CPU
    runners = {
        "Adam update alone": update_step_runner(
            keras.optimizers.Adam(1e-3), variables, grads, runner_jit
        ),
        "LAdam update alone": update_step_runner(
            kl.LAdam(1e-3, sigma=1e-3, seed=0), variables, grads, runner_jit
        ),
        "Gaussian generator alone": generator_runner([v.shape for v in variables]),
    }
    times = compare(runners, max(repeats, 5) * 3)
    group = (
        f"per step, {model_name}: share of Adam's fit step ({adam_step * 1e3:.1f} ms; "
        f"LAdam adds {extra * 1e3:.1f} ms)"
    )
    return [make_row(group, name, t, adam_step) for name, t in times.items()]
