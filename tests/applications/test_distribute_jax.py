"""JAX, keras.distribution: several processes (DataParallel) and a sharded kernel (ModelParallel).

* two processes with one CPU device each (gloo collectives, Keras's KERAS_DISTRIBUTION_*
  variables on 127.0.0.1), `model.fit` with LAdam, a fixed seed and seed=None with Python's
  `random` seeded differently per process: weights and optimizer state bitwise identical
  across processes, and the noise applied;
* one process with two CPU devices, a kernel sharded over both by
  `applications.distribute.kernel_parallel`: the noise of a zero-gradient step (inside one
  jitted update) is, bit for bit, the noise of the unsharded kernel;
* `applications.train --distribute data-parallel` with two processes: only process 0 writes
  the summary, the model and the export, which serves; process 1 of a run killed mid-run, the
  job restarted: it resumes and ends with the weights and optimizer state of the
  uninterrupted run, bit for bit.

Every process has a time limit and is killed at the end; ports come from binding port 0.
"""

import json
import signal
import sys
import textwrap

import keras
import numpy as np
import pytest
from distribute_helpers import (
    Processes,
    env,
    h5_arrays,
    kill_mid_run,
    small_train_args,
    start_jax_processes,
)

from applications.data import load_dataset

pytestmark = pytest.mark.slow  # subprocesses on the JAX backend, whatever this one runs

PROCESS_SCRIPT = textwrap.dedent(
    """
    import random, sys
    import numpy as np
    import jax

    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    import keras

    keras.distribution.initialize()  # from KERAS_DISTRIBUTION_JOB_ADDRESSES, ...
    import tensorflow as tf
    import keras_langevin as kl

    index = jax.process_index()
    keras.distribution.set_distribution(keras.distribution.DataParallel())
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 8)).astype("float32")
    y = rng.integers(0, 3, 128)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)  # the global batch
    out = {"processes": np.array(jax.process_count())}
    for name, sigma, seed in (("seed7", 0.05, 7), ("seedNone", 0.05, None), ("plain", 0.0, 7)):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((8,)),
                                  keras.layers.Dense(16, activation="relu"),
                                  keras.layers.Dense(3, activation="softmax")])
        random.seed(1000 + index)  # seed=None draws from here: a different seed per process
        model.compile(kl.LAdam(1e-2, sigma=sigma, seed=seed), "sparse_categorical_crossentropy")
        model.fit(dataset, epochs=2, verbose=0)
        for k, w in enumerate(model.get_weights()):
            out[f"{name}/weight{k}"] = w
        for v in model.optimizer.variables:
            out[f"{name}/optimizer/{v.path}"] = keras.ops.convert_to_numpy(v)
    np.savez(sys.argv[1], **out)
    """
)


def test_two_processes_add_the_same_noise(tmp_path):
    script = tmp_path / "process.py"
    script.write_text(PROCESS_SCRIPT)
    with Processes() as processes:
        started = start_jax_processes(
            processes,
            lambda index: [str(script), str(tmp_path / f"process{index}.npz")],
            tmp_path,
            "process",
        )
        for process in started:
            processes.finish(process)
    results = []
    for index in range(2):
        with np.load(tmp_path / f"process{index}.npz") as data:
            results.append(dict(data))
    first, second = results
    assert int(first["processes"]) == 2
    assert set(first) == set(second)
    for key, value in first.items():  # weights, moments, step, seed: bit for bit
        assert value.tobytes() == second[key].tobytes(), key
    steps = [value for key, value in first.items() if key.endswith("/iteration")]
    assert steps and all(int(step) == 8 for step in steps)  # 2 epochs of 4 global batches
    for run in ("seed7", "seedNone"):
        assert not np.allclose(first[f"{run}/weight0"], first["plain/weight0"])
    assert not np.array_equal(first["seed7/weight0"], first["seedNone/weight0"])


SHARDED_SCRIPT = textwrap.dedent(
    """
    import contextlib, json, sys
    import jax

    jax.config.update("jax_num_cpu_devices", 2)
    import keras
    import numpy as np
    import keras_langevin as kl
    from applications import distribute

    def zero_gradient_step(kernel_value, distribution):
        keras.utils.set_random_seed(0)
        with distribution.scope() if distribution else contextlib.nullcontext():
            layer = keras.layers.Dense(64, name="dense")
            layer.build((None, 24))
            layer.kernel.assign(kernel_value)
            optimizer = kl.LSGD(0.1, sigma=1.0, seed=5)
            optimizer.build([layer.kernel])
        kernel = layer.kernel.value
        update = jax.jit(optimizer.stateless_apply)
        (new_kernel,), _ = update(
            [v.value for v in optimizer.variables], [jax.numpy.zeros_like(kernel)], [kernel]
        )
        noise = np.asarray(new_kernel) - np.asarray(kernel)
        spec = lambda a: str(getattr(a.sharding, "spec", "single device"))
        return noise, spec(kernel), spec(new_kernel)

    devices = keras.distribution.list_devices()
    mesh = keras.distribution.DeviceMesh((1, 2), ["batch", "model"], devices)
    kernel = np.random.default_rng(0).standard_normal((24, 64)).astype("float32")
    sharded, spec, new_spec = zero_gradient_step(kernel, distribute.kernel_parallel(mesh))
    plain, plain_spec, _ = zero_gradient_step(kernel, None)
    print("RESULT" + json.dumps({
        "devices": len(devices), "spec": spec, "new_spec": new_spec, "plain_spec": plain_spec,
        "equal": sharded.tobytes() == plain.tobytes(), "std": float(plain.std()),
        "expected_std": float(np.sqrt(0.1)),
    }))
    """
)


def test_a_sharded_kernel_gets_the_noise_of_the_unsharded_one(tmp_path):
    script = tmp_path / "sharded.py"
    script.write_text(SHARDED_SCRIPT)
    with Processes() as processes:
        process = processes.start(
            [sys.executable, str(script)], tmp_path / "sharded.log", env("jax")
        )
        output = processes.finish(process)
    line = next(ln for ln in output.splitlines() if ln.startswith("RESULT"))
    result = json.loads(line[len("RESULT") :])
    assert result["devices"] == 2
    assert "model" in result["spec"] and "model" in result["new_spec"], result  # sharded
    assert "model" not in result["plain_spec"]
    assert result["equal"]  # bit for bit
    # sigma * sqrt(lr) * xi with 1536 draws: the standard deviation within a few percent
    assert result["std"] == pytest.approx(result["expected_std"], rel=0.1)


# Runs `applications.train` under `--distribute data-parallel --cpu-devices 2`, then in the
# same interpreter without it (the devices are set before JAX starts), and records, for every
# batch that the distributed `fit` and `evaluate` got, its rows and the rows on each device.
SPLIT_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import keras
    import numpy as np
    from applications import distribute, train

    batches = []
    global_batch = distribute.global_batch

    def recording_global_batch(array, keras_distribution):
        out = global_batch(array, keras_distribution)
        if out is not None and out.ndim > 1:  # the images
            batches.append([out.shape[0], sorted(s.data.shape[0] for s in out.addressable_shards)])
        return out

    distribute.global_batch = recording_global_batch
    results = {}
    for name, extra in json.loads(sys.argv[2]).items():
        batches.clear()
        summary = train.main(extra)
        model = keras.saving.load_model(summary["paths"]["model"], compile=False)
        results[name] = {
            "weights": [w.tolist() for w in model.get_weights()],
            "accuracy": summary["final_test_accuracy"],
            "batches": [list(b) for b in {tuple(map(str, b)): b for b in batches}.values()],
        }
    with open(sys.argv[1], "w") as handle:
        json.dump(results, handle)
    """
)
SPLIT_ARGS = [
    "--model", "mlp-2", "--model-option", "width=16", "--augment", "none",
    "--optimizer", "ladam", "--epochs", "2", "--batch-size", "32", "--seed", "1",
    "--train-take", "200", "--test-take", "75", "--no-export",
]  # fmt: skip


def test_data_parallel_splits_every_batch_and_trains_as_one_device(tmp_path):
    """Two devices each compute half of every batch; an epoch's last batch (200 = 6 * 32 + 8
    training rows: 4 on each device; 75 = 2 * 32 + 11 test rows, which two devices cannot
    split: whole on both) is trained and evaluated too, and the run ends with the weights of
    one device, up to the rounding of a gradient summed in two halves."""
    script = tmp_path / "split.py"
    script.write_text(SPLIT_SCRIPT)
    argvs = {
        "two": [*SPLIT_ARGS, "--output", str(tmp_path / "two"),
                "--distribute", "data-parallel", "--cpu-devices", "2"],
        "one": [*SPLIT_ARGS, "--output", str(tmp_path / "one")],
    }  # fmt: skip
    with Processes() as processes:
        process = processes.start(
            [sys.executable, str(script), str(tmp_path / "split.json"), json.dumps(argvs)],
            tmp_path / "split.log",
            env("jax"),
        )
        processes.finish(process)
    results = json.loads((tmp_path / "split.json").read_text())
    assert sorted(map(tuple, results["two"]["batches"])) == [
        (8, [4, 4]),  # training, the epoch's last batch: split
        (11, [11, 11]),  # test, the last batch: whole on each device
        (32, [16, 16]),  # every full batch: split
    ]
    assert results["one"]["batches"] == []  # no distribution: Keras's own path
    two, one = results["two"]["weights"], results["one"]["weights"]
    assert len(two) == len(one) > 0
    for a, b in zip(two, one):
        np.testing.assert_allclose(np.array(a), np.array(b), rtol=0, atol=1e-5)
    assert results["two"]["accuracy"] == pytest.approx(results["one"]["accuracy"], abs=1 / 75)


# ----------------------------------------------------------------------------- train


EPOCHS = 5
TRAIN_ARGS = small_train_args(
    EPOCHS, 3, "--distribute", "data-parallel", "--decay-epochs", "1", "--verbose", "2"
)


@pytest.fixture(scope="module")
def train_runs(tmp_path_factory):
    """Two processes; two processes of which one is killed mid-run, then both restarted."""
    tmp = tmp_path_factory.mktemp("data-parallel")
    out = {name: tmp / name for name in ("reference", "killed")}
    temp_dirs = [tmp / f"tmpdir-{index}" for index in range(2)]  # the processes' TMPDIR
    for folder in temp_dirs:
        folder.mkdir()

    def train_args(name, export):
        tail = ["--export-dir", str(tmp / f"{name}-export")] if export else ["--no-export"]
        return lambda index: [*TRAIN_ARGS, "--output", str(out[name]), *tail]

    with Processes() as processes:
        reference = start_jax_processes(
            processes,
            train_args("reference", True),
            tmp,
            "reference",
            extra_env=lambda index: {"TMPDIR": temp_dirs[index]},
        )
        victims = start_jax_processes(processes, train_args("killed", False), tmp, "killed")
        # Process 1 is killed once both processes have committed a backup: in a later epoch.
        killed_at = kill_mid_run(
            processes, victims, [out["killed"] / "backup", out["killed"] / "process-1" / "backup"]
        )
        state_after_kill = {
            "summary": (out["killed"] / "summary.json").exists(),
            "model": (out["killed"] / "model.keras").exists(),
        }
        restarted = start_jax_processes(processes, train_args("killed", False), tmp, "restarted")
        outputs = {
            "reference": [processes.finish(p) for p in reference],
            "restarted": [processes.finish(p) for p in restarted],
        }
    return {
        "dirs": out,
        "export": tmp / "reference-export",
        "outputs": outputs,
        "killed_at": killed_at,
        "state_after_kill": state_after_kill,
        "victim_returncode": victims[1].returncode,
        "temp_dirs": temp_dirs,
        "tmp": tmp,
    }


def _backup_state(run_dir):
    return h5_arrays(run_dir / "backup" / f"epoch-{EPOCHS:06d}.weights.h5")


def test_only_process_0_writes_summary_model_and_export(train_runs):
    run_dir = train_runs["dirs"]["reference"]
    process_1 = run_dir / "process-1"
    assert (run_dir / "summary.json").exists() and (run_dir / "model.keras").exists()
    assert (run_dir / "backup" / "training_metadata.json").exists()
    assert {p.name for p in process_1.iterdir()} == {"backup", "log.csv"}  # its own backup
    assert {p.name for p in train_runs["tmp"].glob("*export*")} == {"reference-export"}
    # Process 1 saved and exported in lockstep to a folder of its TMPDIR, deleted afterwards.
    assert not list(train_runs["temp_dirs"][1].glob("worker-*"))
    assert not list(train_runs["tmp"].glob(".*")) and not list(run_dir.glob(".*"))
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["epochs"] == EPOCHS and summary["resumed_from_epoch"] == 0
    assert summary["steps_per_epoch"] == 32  # 1000 rows: --batch-size is the global batch
    distribution = summary["distribution"]
    assert distribution["mode"] == "data-parallel" and distribution["task"] == "process-0"
    assert distribution["processes"] == distribution["replicas"] == 2
    assert "Outputs:" in train_runs["outputs"]["reference"][1]  # process 1 ended normally
    # Both processes hold the same training state (weights, optimizer step, moments, noise
    # seed) and log the same metrics (of the global batches).
    state, state_1 = _backup_state(run_dir), _backup_state(process_1)
    assert set(state) == set(state_1) and any(key.startswith("optimizer") for key in state)
    for key, value in state.items():
        assert value.tobytes() == state_1[key].tobytes(), key
    assert (run_dir / "log.csv").read_text() == (process_1 / "log.csv").read_text()


def test_the_process_0_export_serves(train_runs):
    import tensorflow as tf

    images = next(iter(load_dataset("digits", batch_size=64, test_take=64, augment="none").test))
    images = np.asarray(images[0])
    model = keras.saving.load_model(train_runs["dirs"]["reference"] / "model.keras", compile=False)
    expected = keras.ops.convert_to_numpy(model(images, training=False))
    loaded = tf.saved_model.load(str(train_runs["export"]))  # kept: it owns the variables
    served = loaded.serve(tf.constant(images)).numpy()
    assert served.shape == expected.shape == (64, 10)
    np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-5)


def test_a_killed_job_resumes_to_the_same_weights(train_runs):
    killed_at = train_runs["killed_at"]
    assert train_runs["victim_returncode"] == -signal.SIGKILL
    assert 1 <= min(killed_at) < EPOCHS, killed_at
    assert not train_runs["state_after_kill"]["summary"]
    assert not train_runs["state_after_kill"]["model"]
    reference, run_dir = train_runs["dirs"]["reference"], train_runs["dirs"]["killed"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["resumed_from_epoch"] == min(killed_at)
    assert summary["epochs"] == EPOCHS
    assert (
        f"Resuming {run_dir} after epoch {min(killed_at)}." in train_runs["outputs"]["restarted"][0]
    )
    expected = keras.saving.load_model(reference / "model.keras", compile=False).get_weights()
    actual = keras.saving.load_model(run_dir / "model.keras", compile=False).get_weights()
    assert len(expected) == len(actual) > 0
    for a, b in zip(expected, actual):
        assert a.tobytes() == b.tobytes()
    # The optimizer state too (step, moments, noise seed), and on both processes.
    for process_dir in (".", "process-1"):
        state, resumed = (
            _backup_state(reference / process_dir),
            _backup_state(run_dir / process_dir),
        )
        assert set(state) == set(resumed)
        for key, value in state.items():
            assert value.tobytes() == resumed[key].tobytes(), (process_dir, key)
    # The log: the epochs before the kill and those after, as the uninterrupted run logged them.
    assert (run_dir / "log.csv").read_text() == (reference / "log.csv").read_text()
