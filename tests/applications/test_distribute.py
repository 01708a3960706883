"""`applications.distribute` and the engine's multi-process resume, in this process.

Settings that cannot run give a usage error before anything is written; the backups of
several processes resume from the last epoch all of them completed.
"""

import json

import keras
import numpy as np
import pytest

from applications import compare, distribute, engine, sample, train

BACKEND = keras.backend.backend()
OTHER_BACKEND_MODE = "data-parallel" if BACKEND == "tensorflow" else "mirrored"
TF_CONFIG = json.dumps(
    {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": 1}}
)


# The settings that fail on this backend: the other backend's modes, and this one's own
# configuration errors (TF_CONFIG for TensorFlow's multi-worker, Keras's process variables on JAX).
OWN_MODE_ERRORS = {
    "tensorflow": [
        (["--distribute", "multi-worker"], {}, "needs TF_CONFIG"),
        (["--distribute", "multi-worker"], {"TF_CONFIG": "{"}, "TF_CONFIG must be JSON"),
        (
            ["--distribute", "multi-worker"],
            {"TF_CONFIG": TF_CONFIG.replace('"index": 1', '"index": 2')},
            "is not in the cluster",
        ),
    ],
    "jax": [
        (
            ["--distribute", "data-parallel"],
            {"KERAS_DISTRIBUTION_NUM_PROCESSES": "2"},
            "missing: KERAS_DISTRIBUTION_JOB_ADDRESSES, KERAS_DISTRIBUTION_PROCESS_ID",
        ),
    ],
}


@pytest.mark.multibackend
@pytest.mark.parametrize(
    "argv, environ, message",
    [
        *OWN_MODE_ERRORS[BACKEND],
        (
            ["--distribute", OTHER_BACKEND_MODE],
            {},
            f"needs the {'JAX' if BACKEND == 'tensorflow' else 'TensorFlow'} backend",
        ),
        (["--cpu-devices", "2"], {}, "--cpu-devices is used by"),
        (["--model-shards", "2"], {}, "--model-shards is used only by"),
        (["--distribute", "pipeline"], {}, "invalid choice: 'pipeline'"),
    ],
)
@pytest.mark.parametrize("script", [train, compare, sample])
def test_bad_distribution_settings_fail_early(script, argv, environ, message, tmp_path, capsys,
                                              monkeypatch):  # fmt: skip
    monkeypatch.delenv("TF_CONFIG", raising=False)
    for key, value in environ.items():
        monkeypatch.setenv(key, value)
    if script is train:
        argv = [*argv, "--output", str(tmp_path / "run"), "--no-export"]
    else:
        argv = [*argv, "--output", str(tmp_path / "run"), "--quick"]
    with pytest.raises(SystemExit) as exit_info:
        script.main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # failed before anything was written


class _Mesh:
    def __init__(self, shape, axis_names):
        self.shape, self.axis_names = shape, axis_names


class _KerasDistribution:
    """The parts of a `keras.distribution.Distribution` that the batch split reads."""

    def __init__(self, shape, axis_names=("batch",)):
        self.device_mesh, self.batch_dim_name = _Mesh(shape, list(axis_names)), "batch"


@pytest.mark.parametrize(
    "keras_distribution, replicas",
    [
        (_KerasDistribution((4,)), 4),
        (_KerasDistribution((2, 3), ("batch", "model")), 2),  # model-parallel: the batch axis
        (_KerasDistribution((3, 2), ("model", "batch")), 2),
    ],
)
def test_a_jax_batch_size_must_split_evenly_among_the_replicas(keras_distribution, replicas):
    distribution = distribute.Distribution("data-parallel", keras_distribution=keras_distribution)
    assert distribution.num_replicas == replicas
    distribution.check_batch_size(replicas * 16)
    with pytest.raises(distribute.DistributionError, match=rf"--batch-size {replicas * 16 + 1} "
                       rf"must be a multiple of the {replicas} data-parallel replicas"):  # fmt: skip
        distribution.check_batch_size(replicas * 16 + 1)
    distribute.OFF.check_batch_size(33)  # one device, or a tf.distribute strategy: any size


# ----------------------------------------------------------------------------- data placement


class _Strategy:
    """Stands for a `tf.distribute` strategy: the placement reads nothing of it."""


def _modes():
    """A `Distribution` of every mode, with stand-ins for the strategy or Keras distribution."""
    keras_distribution = _KerasDistribution((2,))
    keras_distribution.auto_shard_dataset = True  # Keras's default
    objects = {
        "mirrored": {"strategy": _Strategy()},
        "multi-worker": {"strategy": _Strategy(), "num_processes": 2},
        "data-parallel": {"keras_distribution": keras_distribution},
        "model-parallel": {"keras_distribution": _KerasDistribution((1, 2), ("batch", "model"))},
    }
    return {
        mode: distribute.Distribution(mode, **objects.get(mode, {})) for mode in distribute.MODES
    }


@pytest.mark.multibackend
@pytest.mark.parametrize("mode", distribute.MODES)
def test_each_mode_places_the_data_as_it_says(mode):
    """One device and JAX's modes read the dataset as is (JAX's batches are laid out as `fit`
    reads them, and Keras's own split among processes is off); TensorFlow's strategies split
    every global batch by elements, the batches themselves unchanged."""
    import tensorflow as tf

    distribution = _modes()[mode]
    dataset = tf.data.Dataset.range(10).batch(4)
    placed = distribution.place(dataset)
    policy = tf.data.experimental.AutoShardPolicy
    assert dataset.options().experimental_distribute.auto_shard_policy == policy.AUTO
    if mode in distribute.TENSORFLOW_MODES:
        assert placed.options().experimental_distribute.auto_shard_policy == policy.DATA
        assert [b.tolist() for b in placed.as_numpy_iterator()] == [
            [0, 1, 2, 3],
            [4, 5, 6, 7],
            [8, 9],
        ]
    else:
        assert placed is dataset
    if mode in distribute.JAX_MODES:
        assert distribution.keras_distribution.auto_shard_dataset is False


def test_an_unknown_mode_is_refused():
    with pytest.raises(distribute.DistributionError, match="unknown distribution mode 'ring'"):
        distribute.Distribution("ring")


class _RecordingDistribution(distribute.Distribution):
    """One device; records the datasets it places and marks what it returns."""

    def __init__(self):
        super().__init__()
        self.placed = []

    def place(self, dataset):
        self.placed.append(dataset)
        return ("placed", dataset)


@pytest.mark.multibackend
def test_the_trainer_fits_on_the_data_its_distribution_placed(monkeypatch):
    import tensorflow as tf

    config = engine.RunConfig(model="mlp-2", model_options=(("width", 8),), augment="none",
                              optimizer="ladam", epochs=2, train_take=64, test_take=32)  # fmt: skip
    distribution = _RecordingDistribution()
    trainer = engine.Trainer(config, distribution=distribution)
    fitted = {}
    monkeypatch.setattr(
        trainer.model, "fit", lambda x, validation_data, **_: fitted.update(x=x, v=validation_data)
    )
    trainer.fit([], start_epoch=1)
    train, test = distribution.placed
    assert fitted == {"x": ("placed", train), "v": ("placed", test)}
    assert train.cardinality() == tf.data.INFINITE_CARDINALITY  # the repeated training stream
    assert test is trainer.dataset.test


@pytest.mark.parametrize(
    "cluster, task, chief",
    [
        ({"worker": ["a:1", "b:1"]}, {"type": "worker", "index": 0}, True),
        ({"worker": ["a:1", "b:1"]}, {"type": "worker", "index": 1}, False),
        ({"chief": ["c:1"], "worker": ["a:1"]}, {"type": "worker", "index": 0}, False),
        ({"chief": ["c:1"], "worker": ["a:1"]}, {"type": "chief", "index": 0}, True),
    ],
)
def test_the_chief_of_tf_config(cluster, task, chief):
    environ = {"TF_CONFIG": json.dumps({"cluster": cluster, "task": task})}
    distribute.check("multi-worker", "tensorflow", environ)
    assert distribute.tf_config_task(environ) == (task["type"], task["index"], chief)


def test_jax_process_variables_all_or_none():
    environ = {"KERAS_DISTRIBUTION_NUM_PROCESSES": "2"}
    with pytest.raises(distribute.DistributionError, match="KERAS_DISTRIBUTION_PROCESS_ID"):
        distribute.check("data-parallel", "jax", environ)
    distribute.check("data-parallel", "jax", {})


def _model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.compile(keras.optimizers.Adam(1e-2), "mse")
    return model


def _data():
    rng = np.random.default_rng(0)
    return rng.standard_normal((32, 4)).astype("float32"), rng.standard_normal((32, 3))


def test_backup_keeps_the_previous_epoch_and_restores_the_agreed_one(tmp_path):
    x, y = _data()
    states = {}

    class Record(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            states[epoch + 1] = [np.array(w) for w in self.model.get_weights()]

    backup = engine.AtomicBackupAndRestore(str(tmp_path), False, keep_previous=True)
    _model().fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[Record(), backup])
    metadata = engine.AtomicBackupAndRestore.read_metadata(str(tmp_path))
    assert metadata["epoch"] == 3 and metadata["previous"]["epoch"] == 2
    assert sorted(engine.AtomicBackupAndRestore.backups(metadata)) == [2, 3]
    assert sorted(p.name for p in tmp_path.glob("*.weights.h5")) == [
        "epoch-000002.weights.h5",
        "epoch-000003.weights.h5",
    ]
    for epoch in (2, 3):  # the agreed epoch is loaded, whichever of the two it is
        model = _model()
        restore = engine.AtomicBackupAndRestore(str(tmp_path), restore_epoch=epoch)
        restore.set_model(model)
        restore.on_train_begin()
        assert model._initial_epoch == epoch
        for a, b in zip(model.get_weights(), states[epoch]):
            np.testing.assert_array_equal(a, b)
    model = _model()
    fresh = [np.array(w) for w in model.get_weights()]
    restore = engine.AtomicBackupAndRestore(str(tmp_path), restore_epoch=0)  # start again
    restore.set_model(model)
    restore.on_train_begin()
    for a, b in zip(model.get_weights(), fresh):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(RuntimeError, match="no backup of epoch 1"):
        restore = engine.AtomicBackupAndRestore(str(tmp_path), restore_epoch=1)
        restore.set_model(_model())
        restore.on_train_begin()


class _FakeDistribution:
    num_processes = 2

    def __init__(self, epochs):
        self.epochs = epochs

    def agree(self, value):
        return self.epochs


def test_processes_resume_from_the_last_epoch_all_completed(tmp_path, capsys):
    x, y = _data()
    backup = engine.AtomicBackupAndRestore(str(tmp_path), False, keep_previous=True)
    _model().fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[backup])
    assert engine._agree_on_start(_FakeDistribution([2, 2]), str(tmp_path), 2) == 2
    assert engine._agree_on_start(_FakeDistribution([2, 1]), str(tmp_path), 2) == 1
    assert "resuming from epoch 1" in capsys.readouterr().err
    assert engine._agree_on_start(_FakeDistribution([2, 0]), str(tmp_path), 2) == 0
    backup = engine.AtomicBackupAndRestore(str(tmp_path), False, keep_previous=True)
    _model().fit(x, y, epochs=4, batch_size=8, verbose=0, callbacks=[backup])
    with pytest.raises(RuntimeError, match="cannot go back to epoch 1"):
        engine._agree_on_start(_FakeDistribution([4, 1]), str(tmp_path), 4)
