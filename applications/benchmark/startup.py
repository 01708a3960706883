"""Start-up: the first `model.fit` epoch, each optimizer in a fresh process."""

import time

import keras
import numpy as np

import keras_langevin as kl
from applications.benchmark import fresh
from applications.benchmark.common import PAIRS, make_row
from applications.benchmark.report import progress, progress_rows

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
                progress(f"{group}: {label} (repeat {repeat + 1} of {repeats})")
                first_epoch, second_epoch = fresh.fresh_result(
                    "startup", f"first_epoch_seconds({model_name!r}, {label!r})"
                )
                first[label].append(first_epoch)
                second[label].append(second_epoch)
        for label, base in labels:
            row = make_row(group, label, first[label], first[base], unit="s")
            row["second_epoch"] = second[label]
            rows.append(row)
        progress_rows(rows[-len(labels) :])
    return rows
