"""applications/_keras_patches.py: every use of Keras internals by the harness, each guarded.

For each patch: it applies on the Keras releases that need it (and only those), the patched
behaviour is observed, and with its target monkeypatched away it fails loudly, naming the
installed Keras version. Sections follow the module's.
"""

import json
import os
import subprocess
import sys
import textwrap
import types

import keras
import numpy as np
import pytest

from applications import _keras_patches as patches
from applications import distribute

VERSION = keras.__version__.replace(".", r"\.")

# ----------------------------------------------------------------------------- 1. guards


class _Base:
    inherited = "base"


class _Owner(_Base):
    own = "owner"


def test_replaced_restores_own_and_inherited_attributes():
    with patches.replaced(_Owner, "own", "new", "a test") as original:
        assert original == "owner" and _Owner.own == "new"
    assert vars(_Owner)["own"] == "owner"
    with patches.replaced(_Owner, "inherited", "new", "a test") as original:
        assert original == "base" and _Owner.inherited == "new"
    assert "inherited" not in vars(_Owner) and _Owner.inherited == "base"


def test_a_missing_target_fails_loudly_with_the_keras_version():
    error = pytest.raises(patches.KerasInternalsError, match=rf"_Owner\.gone.*Keras {VERSION}")
    with error, patches.replaced(_Owner, "gone", "new", "a test"):
        pass
    assert not hasattr(_Owner, "gone")
    with pytest.raises(patches.KerasInternalsError, match=rf"keras\.src\.nowhere.*Keras {VERSION}"):
        patches.internal_module("keras.src.nowhere", "a test")


def test_keras_release_counts_a_development_release_as_its_release():
    assert patches.keras_release("3.16.0.dev2026102704") == (3, 16)
    assert patches.keras_release("3.10.0") == (3, 10)
    assert patches.keras_release() == tuple(int(p) for p in keras.__version__.split(".")[:2])


# ----------------------------------------------------------------------------- 2. tf.distribute

tf_only = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="Keras's TensorFlow trainer"
)


def _tf_trainer():
    return patches.internal_module("keras.src.backend.tensorflow.trainer", "a test")


def _mirrored_model():
    import tensorflow as tf

    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    with strategy.scope():
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
        model.compile("sgd", "mse", metrics=["mae"])
    return model


@tf_only
def test_multi_worker_fit_builds_without_drawing_a_batch():
    """Keras's own `_maybe_symbolic_build` opens the dataset and draws a batch before
    training opens it again; the patched one builds from the element spec (one opening)."""
    import tensorflow as tf

    openings = []

    def rows():
        openings.append(1)
        for i in range(8):
            yield np.full(3, i, "float32"), np.float32(i)

    spec = (tf.TensorSpec((3,), tf.float32), tf.TensorSpec((), tf.float32))
    dataset = tf.data.Dataset.from_generator(rows, output_signature=spec).batch(4)
    model = _mirrored_model()
    tf_trainer = _tf_trainer()
    original = tf_trainer.reduce_per_replica
    with distribute.keras_distributed_fit(model):
        assert tf_trainer.reduce_per_replica is not original
        assert "_maybe_symbolic_build" in vars(model)
        history = model.fit(dataset, epochs=1, verbose=0)
    assert len(openings) == 1
    assert np.isfinite(history.history["loss"][0]) and "mae" in history.history
    assert tf_trainer.reduce_per_replica is original
    assert "_maybe_symbolic_build" not in vars(model)


@tf_only
def test_multi_worker_fit_reduces_scalar_logs_over_workers(monkeypatch):
    """Under a multi-worker strategy a scalar log is reduced with axis=None (Keras: axis=0,
    an error on a scalar); other reductions and strategies are Keras's own."""
    import tensorflow as tf

    tf_trainer = _tf_trainer()
    monkeypatch.setattr(tf_trainer, "_collective_all_reduce_multi_worker", lambda s: True)
    calls = []

    class Strategy:
        def reduce(self, op, value, axis):
            calls.append((op, axis))
            return value

    with distribute.keras_distributed_fit(_mirrored_model()):
        out = tf_trainer.reduce_per_replica({"loss": tf.constant(2.0)}, Strategy(), "auto")
    assert calls == [("MEAN", None)] and float(out["loss"]) == 2.0


@tf_only
@pytest.mark.parametrize(
    "target", ["reduce_per_replica", "_collective_all_reduce_multi_worker", "_symbolic_build"]
)
def test_multi_worker_fit_fails_loudly_without_its_target(monkeypatch, target):
    model = _mirrored_model()
    if target == "_symbolic_build":  # a method of Keras's trainer classes
        owner = next(c for c in type(model).__mro__ if target in vars(c))
    else:  # functions of Keras's TensorFlow trainer module
        owner = _tf_trainer()
    monkeypatch.delattr(owner, target)
    error = pytest.raises(patches.KerasInternalsError, match=rf"{target}.*Keras {VERSION}")
    with error, distribute.keras_distributed_fit(model):
        pass


# ----------------------------------------------------------------------------- 3. JAX distribution


def _jax_trainer():
    return patches.internal_module("keras.src.backend.jax.trainer", "a test")


def test_jax_batch_form_of_the_installed_keras():
    """The form read from the code is the one these releases have (3.16 changed it)."""
    expected = patches.FIRST_BATCH if patches.keras_release() < (3, 16) else patches.EACH_BATCH
    assert patches.jax_batch_form() == expected


# Stand-ins for Keras's JAX trainer module, one per form, and two that have neither.
FIRST_BATCH_SOURCE = """
class JAXEpochIterator:
    def __init__(self, batches):
        self.batches = batches

    def _get_iterator(self):
        return self._get_distributed_iterator("keras distribution")

    def _get_distributed_iterator(self, distribution):
        for batch in self.batches:
            yield ("first layout", batch)
"""
EACH_BATCH_SOURCE = """
def _distribute_data(data, layouts=None, is_super_batch=False):
    return ("keras layout", data)


class JAXEpochIterator:
    def __init__(self, batches):
        self.batches = batches

    def _get_iterator(self):
        def batches():
            for batch in self.batches:
                yield _distribute_data(batch)
        return batches()
"""
UNUSED_SOURCE = FIRST_BATCH_SOURCE.replace(
    'return self._get_distributed_iterator("keras distribution")', "return iter(self.batches)"
)
NEITHER_SOURCE = EACH_BATCH_SOURCE.replace("yield _distribute_data(batch)", "yield batch")


def _stand_in(source):
    module = types.ModuleType("jax_trainer_stand_in")
    exec(source, module.__dict__)  # noqa: S102 - a module from the test's own text
    return module


def test_jax_batch_form_reads_each_form_from_the_code():
    assert patches.jax_batch_form(_stand_in(FIRST_BATCH_SOURCE)) == patches.FIRST_BATCH
    assert patches.jax_batch_form(_stand_in(EACH_BATCH_SOURCE)) == patches.EACH_BATCH


@pytest.mark.parametrize("source", [UNUSED_SOURCE, NEITHER_SOURCE], ids=["unused", "neither"])
def test_jax_batch_form_fails_loudly_on_neither_form(source):
    with pytest.raises(patches.KerasInternalsError, match=rf"_get_iterator.*Keras {VERSION}"):
        patches.jax_batch_form(_stand_in(source))
    with (
        pytest.raises(patches.KerasInternalsError, match=rf"_get_iterator.*Keras {VERSION}"),
        patches.jax_batches_by_size(lambda a, d: a, _stand_in(source)),
    ):
        pass


def _laid_out(array, distribution):
    return ("laid out", array.shape, distribution)


def test_batches_by_size_on_the_first_batch_form():
    module = _stand_in(FIRST_BATCH_SOURCE)
    original = module.JAXEpochIterator._get_distributed_iterator
    iterator = module.JAXEpochIterator([np.zeros((2, 3)), np.zeros((1, 3))])
    iterator.data_adapter = types.SimpleNamespace(get_jax_iterator=lambda: iter(iterator.batches))
    with patches.jax_batches_by_size(_laid_out, module):
        got = list(iterator._get_iterator())
    assert got == [
        ("laid out", (2, 3), "keras distribution"),
        ("laid out", (1, 3), "keras distribution"),
    ]
    assert module.JAXEpochIterator._get_distributed_iterator is original


def test_batches_by_size_on_the_each_batch_form(monkeypatch):
    """Under a Keras distribution every batch (x and y alike) goes to `lay_out`; a stacked
    batch (`steps_per_execution > 1`) and a run without a distribution stay Keras's."""
    module = _stand_in(EACH_BATCH_SOURCE)
    original = module._distribute_data
    x, y = np.zeros((2, 3)), np.zeros((2, 1))
    iterator = module.JAXEpochIterator([(x, y), (x[:1], y[:1])])
    with patches.jax_batches_by_size(_laid_out, module):
        assert next(iterator._get_iterator()) == ("keras layout", (x, y))  # no distribution
        monkeypatch.setattr(keras.distribution, "distribution", lambda: "mesh")
        got = list(iterator._get_iterator())
        stacked = module._distribute_data(x, is_super_batch=True)
    assert got == [
        (("laid out", (2, 3), "mesh"), ("laid out", (2, 1), "mesh")),
        (("laid out", (1, 3), "mesh"), ("laid out", (1, 1), "mesh")),
    ]
    assert stacked == ("keras layout", x)
    assert module._distribute_data is original


def test_batches_by_size_fails_loudly_without_its_target(monkeypatch):
    jax_trainer = _jax_trainer()
    if patches.jax_batch_form() == patches.FIRST_BATCH:
        owner, target = jax_trainer.JAXEpochIterator, "_get_distributed_iterator"
    else:
        owner, target = jax_trainer, "_distribute_data"
    monkeypatch.delattr(owner, target)
    with (
        pytest.raises(patches.KerasInternalsError, match=rf"{target}.*Keras {VERSION}"),
        distribute.keras_global_batches(),
    ):
        pass


def test_batches_by_size_replaces_its_target_for_the_block_only():
    jax_trainer = _jax_trainer()
    if patches.jax_batch_form() == patches.FIRST_BATCH:
        owner, target = jax_trainer.JAXEpochIterator, "_get_distributed_iterator"
    else:
        owner, target = jax_trainer, "_distribute_data"
    before = getattr(owner, target)
    with distribute.keras_global_batches():
        assert getattr(owner, target) is not before
    assert getattr(owner, target) is before


# Two CPU devices, data parallel: an epoch of 5 rows in batches of 2 (the last one partial,
# indivisible by the 2 replicas) trains to the weights of one device, on either form of Keras's
# JAX trainer; the rows on each device are recorded where the patch lays out the batches.
DATA_PARALLEL_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import keras, numpy as np, tensorflow as tf
    from applications import _keras_patches, distribute

    placed = []
    global_batch = distribute.global_batch

    def recording(array, keras_distribution):
        out = global_batch(array, keras_distribution)
        placed.append([out.shape[0], sorted(s.data.shape[0] for s in out.addressable_shards)])
        return out

    distribute.global_batch = recording
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 3)).astype("float32")
    y = rng.standard_normal((5, 1)).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(2)

    def train(distribution):
        keras.utils.set_random_seed(0)
        with distribution.scope():
            model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
            model.compile(keras.optimizers.SGD(0.1), "mse")
        with distribution.fitting(model):
            model.fit(data, epochs=2, verbose=0)
            loss = model.evaluate(data, verbose=0)
        return [w.tolist() for w in model.get_weights()], float(loss)

    parallel = keras.distribution.DataParallel(devices=keras.distribution.list_devices())
    parallel.auto_shard_dataset = False
    two = distribute.Distribution("data-parallel", keras_distribution=parallel)
    weights, loss = train(two)
    placed_two = list(placed)
    one_weights, one_loss = train(distribute.OFF)
    print("RESULT" + json.dumps({
        "form": _keras_patches.jax_batch_form(), "replicas": two.num_replicas,
        "placed": placed_two, "weights": weights, "loss": loss,
        "one_weights": one_weights, "one_loss": one_loss}))
    """
)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="runs once, on the TF pass")
def test_jax_data_parallel_splits_partial_batches_on_either_form():
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "XLA_FLAGS": "--xla_force_host_platform_device_count=2",
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "CUDA_VISIBLE_DEVICES": "",
    }
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    completed = subprocess.run(
        [sys.executable, "-c", DATA_PARALLEL_SCRIPT],
        capture_output=True, text=True, env=env, cwd=root, timeout=600, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-3000:]
    line = next(ln for ln in completed.stdout.splitlines() if ln.startswith("RESULT"))
    result = json.loads(line[len("RESULT") :])
    assert result["replicas"] == 2
    for got, want in zip(result["weights"], result["one_weights"]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert result["loss"] == pytest.approx(result["one_loss"], rel=1e-5)
    assert result["form"] == patches.jax_batch_form()
    # every batch (x and y) placed by the patch, each by its size: a whole batch one row per
    # device, the partial one whole on each device
    assert {json.dumps(p) for p in result["placed"]} == {"[2, [1, 1]]", "[1, [1, 1]]"}


# ----------------------------------------------------------------------------- 4. run engine
# (applications/trainer.py and applications/backup.py)


def _compiled_model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile("adam", "mse", metrics=["mae"])
    return model


def _spec():
    import tensorflow as tf

    return (tf.TensorSpec((None, 4), tf.float32), tf.TensorSpec((None, 3), tf.float32))


def test_build_compiled_state_builds_the_metrics_from_the_spec():
    model = _compiled_model()
    assert not any("mean_absolute_error" in v.path for v in model.metrics_variables)
    patches.build_compiled_state(model, _spec())
    assert any("mean_absolute_error" in v.path for v in model.metrics_variables)
    assert model.optimizer.built


def test_build_compiled_state_fails_loudly_without_its_target(monkeypatch):
    model = _compiled_model()
    owner = next(c for c in type(model).__mro__ if "_symbolic_build" in vars(c))
    monkeypatch.delattr(owner, "_symbolic_build")
    with pytest.raises(patches.KerasInternalsError, match=rf"_symbolic_build.*Keras {VERSION}"):
        patches.build_compiled_state(model, _spec())


class _StartAt(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch, self.epochs = epoch, []

    def on_train_begin(self, logs=None):
        patches.set_initial_epoch(self.model, self.epoch)

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)


def test_set_initial_epoch_makes_the_starting_fit_continue_there():
    x, y = np.zeros((8, 4), "float32"), np.zeros((8, 3), "float32")
    callback = _StartAt(2)
    _compiled_model().fit(x, y, epochs=4, batch_size=4, verbose=0, callbacks=[callback])
    assert callback.epochs == [2, 3]


def test_set_initial_epoch_fails_loudly_without_its_target():
    model = _compiled_model()
    del model._initial_epoch
    with pytest.raises(patches.KerasInternalsError, match=rf"_initial_epoch.*Keras {VERSION}"):
        patches.set_initial_epoch(model, 1)
