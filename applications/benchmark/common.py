"""What every measurement shares: the optimizer pairs, the conv-kernel variables, the compiled
update-step and noise-generator runners, the alternating timer and the table row.
"""

import statistics
import time

import keras
import numpy as np

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


def timed(fn, block):
    start = time.perf_counter()
    block(fn())
    return time.perf_counter() - start


def kernel_variables(shapes, seed=0):
    """Variables of the given shapes, one name scope each, with random gradients for them."""
    rng = np.random.default_rng(seed)
    variables = []
    for i, shape in enumerate(shapes):
        with keras.name_scope(f"conv{i}"):
            initial = rng.standard_normal(shape).astype("float32") * 0.05
            variables.append(keras.Variable(initial, name="kernel"))
    return variables, random_gradients(variables, rng)


class KernelHolder(keras.layers.Layer):
    """An identity layer holding one kernel-shaped variable (`kernel_model`)."""

    def __init__(self, initial, **kwargs):
        super().__init__(**kwargs)
        self.kernel = self.add_weight(shape=initial.shape, initializer="zeros", name="kernel")
        self.kernel.assign(initial)

    def call(self, inputs):
        return inputs


def kernel_model(shapes, seed=0):
    """The variables and gradients of `kernel_variables` (the same values), each held by its
    own layer of a Sequential model, which Layer Langevin orders (`optimizer.set_model`):
    `(model, variables, gradients)`."""
    rng = np.random.default_rng(seed)
    holders = [
        KernelHolder(rng.standard_normal(shape).astype("float32") * 0.05, name=f"conv{i}")
        for i, shape in enumerate(shapes)
    ]
    model = keras.Sequential([keras.Input((1,)), *holders])
    variables = [holder.kernel for holder in holders]
    return model, variables, random_gradients(variables, rng)


def random_gradients(variables, rng):
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


def default_conditions():
    if keras.backend.backend() == "tensorflow":
        return list(CONDITIONS)
    return ["jit"]


def condition_label(condition):
    if keras.backend.backend() != "tensorflow":
        return "jitted stateless_apply"
    return CONDITIONS[condition][1]


def update_step_runner(optimizer, variables, grads, jit_compile=True):
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


def generator_runner(shapes, noise="gaussian"):
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
            timed(fn, block)
    names = list(runners)
    times = {name: [] for name in names}
    for repeat in range(repeats):
        shift = repeat % len(names)
        for name in names[shift:] + names[:shift]:
            fn, block = runners[name]
            times[name].append(timed(fn, block))
    return times


def make_row(group, name, seconds, base_seconds, unit="ms"):
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
