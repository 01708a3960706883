"""TensorFlow only: the XLA-compiled update, tf.train.Checkpoint, tf.distribute."""

import json
import os
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import classification_data, dense_classifier, gradient_sequence, run
from keras import ops

import keras_langevin as kl

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="TensorFlow-specific behaviour"
)


def _model(optimizer, jit_compile=False):
    return dense_classifier(optimizer, hidden=(16,), jit_compile=jit_compile)


def _compiled_update(optimizer):
    functions = list(optimizer._compiled_updates.functions.values())
    assert len(functions) == 1
    return functions[0]


def _deep_model(optimizer, depth, width=8):
    return dense_classifier(optimizer, hidden=(width,) * depth, features=width)


def test_update_is_xla_compiled_once_per_shape_not_per_variable():
    """The start-up cost of deep models: 10 hidden layers of one width trace (and compile)
    the update once per distinct shape: 4 here, (8, 8), (8,), (8, 3), (3,)."""
    x, y = classification_data()
    model = _deep_model(kl.LAdam(1e-2, sigma=1e-2, seed=0), depth=10)
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    update = _compiled_update(model.optimizer)
    assert update._jit_compile is True
    assert update.experimental_get_tracing_count() == 4
    assert len(model.trainable_variables) == 22
    # The traced update lowers to one XLA computation containing the noise generator.
    variable = model.trainable_variables[0]
    optimizer = model.optimizer
    hlo = update.experimental_get_compiler_ir(
        ops.zeros_like(variable),
        variable.value,
        optimizer._slots(0),
        ops.convert_to_tensor(1e-2),
        ops.convert_to_tensor(0),
        device=None,
    )(stage="hlo")
    assert "log(" in hlo and "xor(" in hlo


def test_variables_of_one_shape_get_their_own_slots_and_noise():
    """One compiled update serves every variable of a shape: each must still update its own
    slots and draw its own noise. Same gradients on all layers, all weights equal at the
    start: after a step the weights differ (own noise) and match the uncompiled update."""
    x, y = classification_data()
    models = []
    for jit in (True, False):
        model = _deep_model(kl.LAdam(1e-2, sigma=1e-2, seed=0, jit_compile=jit), depth=4)
        for layer in model.layers[1:4]:
            layer.set_weights(model.layers[0].get_weights())
        model.fit(x, y, batch_size=64, epochs=2, verbose=0, shuffle=False)
        models.append(model)
    compiled, plain = models
    for a, b in zip(compiled.optimizer.variables, plain.optimizer.variables):
        np.testing.assert_allclose(
            ops.convert_to_numpy(a), ops.convert_to_numpy(b), rtol=1e-5, atol=1e-7
        )
    for a, b in zip(compiled.get_weights(), plain.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_update_inside_a_jit_compiled_train_step():
    x, y = classification_data()
    compiled = _model(kl.LAdam(1e-2, sigma=1e-2, seed=0), jit_compile=True)
    compiled.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    eager_xla = _model(kl.LAdam(1e-2, sigma=1e-2, seed=0), jit_compile=False)
    eager_xla.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(compiled.get_weights(), eager_xla.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kwargs", [{"sigma": 1e-2, "jit_compile": False}, {"sigma": 0.0}])
def test_keras_path_without_jit_or_without_noise(kwargs):
    x, y = classification_data()
    model = _model(kl.LAdam(1e-2, seed=0, **kwargs))
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert model.optimizer._compiled_updates.functions == {}


def test_resume_through_tf_train_checkpoint_is_exact(tmp_path):
    x, y = classification_data()

    def make():
        return _model(kl.LRMSprop(1e-2, sigma=kl.schedules.LogAnnealing(1e-2, 0.1), seed=None))

    straight = make()
    straight.fit(x, y, batch_size=16, epochs=2, verbose=0, shuffle=False)

    first = make()
    first.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    path = tf.train.Checkpoint(model=first, optimizer=first.optimizer).save(str(tmp_path / "c"))
    keras.backend.clear_session()
    second = make()
    second.optimizer.build(second.trainable_variables)
    tf.train.Checkpoint(model=second, optimizer=second.optimizer).restore(path).assert_consumed()
    second.fit(x, y, batch_size=16, epochs=1, verbose=0, shuffle=False)
    # seed=None drew a seed in each process-level build; the checkpoint carried the first one.
    for a, b in zip(straight.get_weights(), second.get_weights()):
        np.testing.assert_array_equal(a, b)


MIRRORED_OPTIMIZERS = ("LAdam", "LAdamW", "LNadam", "LSGHMC")

# One process for every optimizer: the logical devices and the strategy are set up once.
MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import keras_langevin as kl

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 8)).astype("float32")
    y = rng.integers(0, 3, 128)

    def fit(name, sigma, seed, jit_compile=True):
        keras.utils.set_random_seed(0)
        with strategy.scope():
            model = keras.Sequential([keras.Input((8,)),
                                      keras.layers.Dense(16, activation="relu"),
                                      keras.layers.Dense(3, activation="softmax")])
            optimizer = getattr(kl, name)(1e-2, sigma=sigma, seed=seed, jit_compile=jit_compile)
            model.compile(optimizer, "sparse_categorical_crossentropy")
        model.fit(x, y, batch_size=32, epochs=2, verbose=0, shuffle=False)
        worst = 0.0
        for v in model.trainable_variables:
            copies = [c.numpy() for c in v.value.values]
            worst = max(worst, max(float(np.abs(c - copies[0]).max()) for c in copies))
        return model, {"max_replica_difference": worst,
                       "kernel": model.get_weights()[0].ravel()[:8].tolist(),
                       "compiled": len(model.optimizer._compiled_updates.functions)}

    results = {}
    for name in sys.argv[1:]:
        result = {"replicas": strategy.num_replicas_in_sync}
        compiled, result["7"] = fit(name, 0.05, 7)
        _, result["None"] = fit(name, 0.05, None)
        _, result["noiseless"] = fit(name, 0.0, 7)
        # The per-replica update is XLA-compiled; without XLA (Keras's per-replica path plus
        # the noise as plain operations) it computes the same weights.
        plain, _ = fit(name, 0.05, 7, jit_compile=False)
        result["jit_vs_plain"] = max(float(np.abs(a - b).max())
                                     for a, b in zip(compiled.get_weights(), plain.get_weights()))
        results[name] = result
    print("RESULT" + json.dumps(results))
    """
)


@pytest.fixture(scope="module")
def mirrored_results(tmp_path_factory):
    script = tmp_path_factory.mktemp("mirrored") / "mirrored.py"
    script.write_text(MIRRORED_SCRIPT)
    env = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "2"}
    completed = subprocess.run(
        [sys.executable, str(script), *MIRRORED_OPTIMIZERS],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    line = next(ln for ln in completed.stdout.splitlines() if ln.startswith("RESULT"))
    return json.loads(line[len("RESULT") :])


@pytest.mark.parametrize("name", MIRRORED_OPTIMIZERS)
def test_mirrored_strategy_replicas_stay_identical_with_the_compiled_update(name, mirrored_results):
    result = mirrored_results[name]
    assert result["replicas"] == 2
    assert result["jit_vs_plain"] < 1e-5
    for seed in ("7", "None"):
        assert result[seed]["max_replica_difference"] == 0.0
        assert result[seed]["compiled"] == 1  # the per-replica update is compiled
        # The noise was really applied: the noiseless run ends elsewhere.
        assert not np.allclose(result[seed]["kernel"], result["noiseless"]["kernel"])


@pytest.mark.parametrize(
    "cls", [kl.LSGD, kl.LAdam, kl.LRMSprop, kl.LAdadelta, kl.LAdamW, kl.LNadam, kl.LSGHMC]
)
def test_xla_update_matches_the_uncompiled_update(cls):
    """The XLA-compiled noisy update is the same computation as Keras's path plus noise.

    50 steps: LAdadelta's steps grow from tiny, and a learning rate off by 1e-4 in the compiled
    path stays under the 1e-6 bound for 10 steps (7.9e-7) but not for 50 (2.4e-6)."""
    grads = gradient_sequence(50)
    options = {"learning_rate": 1.0 if cls is kl.LAdadelta else 0.05, "sigma": 1e-2, "seed": 3}
    if cls in (kl.LSGD, kl.LRMSprop):
        options["momentum"] = 0.5
    compiled, _ = run(cls(**options), grads)
    plain, _ = run(cls(jit_compile=False, **options), grads)
    worst = max(
        float(np.linalg.norm(x - y) / np.linalg.norm(y))
        for a, b in zip(compiled, plain)
        for x, y in zip(a, b)
    )
    assert worst <= 1e-6


def test_setting_sigma_does_not_retrace_the_compiled_update():
    x, y = classification_data()
    model = _model(kl.LAdam(1e-2, sigma=1e-2, seed=0))
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    update = _compiled_update(model.optimizer)
    traces = update.experimental_get_tracing_count()
    train_function = model.train_function
    model.optimizer.sigma = 0.0
    before = model.get_weights()
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert update.experimental_get_tracing_count() == traces
    assert model.train_function is train_function
    assert not all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
