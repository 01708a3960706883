"""TensorFlow, several devices and workers: the optimizers and `applications.train`.

* two worker processes (MultiWorkerMirroredStrategy, TF_CONFIG on 127.0.0.1), `model.fit`
  with LAdam, a fixed seed and seed=None with Python's `random` seeded differently per worker:
  weights and optimizer state bitwise identical across workers, and the noise applied;
* `applications.train --distribute mirrored` over two logical CPUs and `--distribute
  multi-worker` with two workers: the same model, bit for bit; only the chief writes the
  summary, the model and the export, which serves;
* one worker of a two-worker run killed mid-epoch, the job restarted: it resumes and ends with
  the weights of the uninterrupted run.

Every process has a time limit and is killed at the end; ports come from binding port 0.
"""

import json
import signal
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from distribute_helpers import (
    TIMEOUT,
    Processes,
    env,
    h5_arrays,
    kill_mid_run,
    start_workers,
)

from applications.data import load_dataset

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow strategies"),
]

WORKER_SCRIPT = textwrap.dedent(
    """
    import json, random, sys
    import numpy as np
    import tensorflow as tf

    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    import keras
    import keras_langevin as kl
    from applications import distribute

    index = json.loads(__import__("os").environ["TF_CONFIG"])["task"]["index"]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((128, 8)).astype("float32")
    y = rng.integers(0, 3, 128)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(32)
    out = {}
    for name, sigma, seed in (("seed7", 0.05, 7), ("seedNone", 0.05, None), ("plain", 0.0, 7)):
        keras.utils.set_random_seed(0)
        random.seed(1000 + index)  # seed=None draws from here: a different seed per worker
        with strategy.scope():
            model = keras.Sequential([keras.Input((8,)),
                                      keras.layers.Dense(16, activation="relu"),
                                      keras.layers.Dense(3, activation="softmax")])
            model.compile(kl.LAdam(1e-2, sigma=sigma, seed=seed),
                          "sparse_categorical_crossentropy")
        with distribute.keras_distributed_fit(model):
            model.fit(dataset, epochs=2, verbose=0)
        for k, w in enumerate(model.get_weights()):
            out[f"{name}/weight{k}"] = w
        for v in model.optimizer.variables:
            out[f"{name}/optimizer/{v.path}"] = keras.ops.convert_to_numpy(v)
    np.savez(sys.argv[1], **out)
    """
)


def test_two_workers_add_the_same_noise(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(WORKER_SCRIPT)
    with Processes() as processes:
        workers = start_workers(
            processes, lambda i: [str(script), str(tmp_path / f"worker{i}.npz")], tmp_path, "w"
        )
        for process in workers:
            processes.finish(process)
    results = []
    for index in range(2):
        with np.load(tmp_path / f"worker{index}.npz") as data:
            results.append(dict(data))
    first, second = results
    assert set(first) == set(second)
    assert any("/optimizer/" in key and "langevin_seed" in key for key in first)
    for key, value in first.items():  # weights, moments, step, seed: bit for bit
        assert value.tobytes() == second[key].tobytes(), key
    for run in ("seed7", "seedNone"):  # the noise was applied: the noiseless run ends elsewhere
        assert not np.allclose(first[f"{run}/weight0"], first["plain/weight0"])
    assert not np.array_equal(first["seed7/weight0"], first["seedNone/weight0"])


# ----------------------------------------------------------------------------- train


EPOCHS = 3
TRAIN_ARGS = [
    "-m", "applications.train",
    "--model", "cnn-4",
    "--model-option", "width=8",
    "--model-option", "batch_norm=True",
    "--optimizer", "layer-ladam",
    "--epochs", str(EPOCHS),
    "--batch-size", "32",
    "--train-take", "512",
    "--test-take", "64",
    "--decay-epochs", "1",
    "--seed", "3",
    "--verbose", "2",
]  # fmt: skip


def _weights(path):
    return keras.saving.load_model(path, compile=False).get_weights()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Mirrored over two logical CPUs; two workers; two workers killed mid-epoch, restarted."""
    tmp = tmp_path_factory.mktemp("distribute")
    out = {name: tmp / name for name in ("mirrored", "workers", "killed")}

    def worker_args(name, export):
        def argv(index):
            tail = ["--export-dir", str(tmp / f"{name}-export")] if export else ["--no-export"]
            return [*TRAIN_ARGS, "--distribute", "multi-worker", "--output", str(out[name]), *tail]

        return argv

    with Processes() as processes:
        reference = start_workers(processes, worker_args("workers", True), tmp, "workers")
        victims = start_workers(processes, worker_args("killed", False), tmp, "killed")
        # Worker 1 is killed once both have committed a backup: in the next epoch. (A worker
        # killed before its commit while the chief committed is test_distribute.py's case.)
        # Its peer, stuck in a collective or failing, is stopped too; the job is restarted.
        chief_epoch, worker_epoch = kill_mid_run(
            processes, victims, [out["killed"] / "backup", out["killed"] / "worker-1" / "backup"]
        )
        killed_at = {"chief": chief_epoch, "worker": worker_epoch}
        state_after_kill = {
            "summary": (out["killed"] / "summary.json").exists(),
            "model": (out["killed"] / "model.keras").exists(),
        }
        restarted = start_workers(processes, worker_args("killed", False), tmp, "restarted")
        mirrored = processes.start(
            [sys.executable, *TRAIN_ARGS, "--distribute", "mirrored", "--cpu-devices", "2",
             "--output", str(out["mirrored"]), "--no-export"],
            tmp / "mirrored.log",
            env(),
        )  # fmt: skip
        outputs = {
            "workers": [processes.finish(p) for p in reference],
            "restarted": [processes.finish(p) for p in restarted],
            "mirrored": processes.finish(mirrored),
        }
    return {
        "dirs": out,
        "export": tmp / "workers-export",
        "outputs": outputs,
        "killed_at": killed_at,
        "state_after_kill": state_after_kill,
        "victim_returncode": victims[1].returncode,
        "tmp": tmp,
    }


def test_mirrored_and_multi_worker_train_the_same_model(runs):
    mirrored = _weights(runs["dirs"]["mirrored"] / "model.keras")
    workers = _weights(runs["dirs"]["workers"] / "model.keras")
    assert len(mirrored) == len(workers) > 0
    for a, b in zip(mirrored, workers):
        assert a.tobytes() == b.tobytes()
    for name in ("mirrored", "workers"):
        summary = json.loads((runs["dirs"][name] / "summary.json").read_text())
        assert summary["epochs"] == EPOCHS
        assert summary["distribution"]["replicas"] == 2
        assert summary["steps_per_epoch"] == 512 // 32  # --batch-size is the global batch
    summary = json.loads((runs["dirs"]["workers"] / "summary.json").read_text())
    assert summary["distribution"]["mode"] == "multi-worker"
    assert summary["distribution"]["processes"] == 2
    # The logs agree too (the same global batches, metrics averaged over the replicas).
    mirrored_rows, worker_rows = (
        [line.split(",") for line in (runs["dirs"][name] / "log.csv").read_text().splitlines()]
        for name in ("mirrored", "workers")
    )
    assert mirrored_rows[0] == worker_rows[0] and len(mirrored_rows) == EPOCHS + 1
    np.testing.assert_allclose(
        np.array(mirrored_rows[1:], float), np.array(worker_rows[1:], float), rtol=1e-6
    )


def test_only_the_chief_writes_summary_model_and_export(runs):
    run_dir = runs["dirs"]["workers"]
    worker = run_dir / "worker-1"
    assert (run_dir / "summary.json").exists() and (run_dir / "model.keras").exists()
    assert (worker / "backup" / "training_metadata.json").exists()  # its own backup
    assert not (worker / "summary.json").exists() and not (worker / "model.keras").exists()
    assert not (worker / "tensorboard").exists()
    assert {p.name for p in runs["tmp"].glob("*export*")} == {"workers-export"}
    assert not list(runs["tmp"].glob(".*"))  # no temporary folder left
    # The chief's backup and the worker's hold the same training state.
    name = f"epoch-{EPOCHS:06d}.weights.h5"
    chief_state = h5_arrays(run_dir / "backup" / name)
    worker_state = h5_arrays(worker / "backup" / name)
    assert set(chief_state) == set(worker_state)
    # Keras 3 keeps BatchNormalization's moving statistics per replica (not synchronized):
    # each worker's backup holds its own, the chief's are those of the model. Everything else
    # (weights, optimizer step, moments, noise seed) is identical.
    moving = {
        key
        for key in chief_state
        if "batch_normalization" in key and key.endswith(("vars/2", "vars/3"))
    }
    assert moving and any(key.startswith("optimizer") for key in chief_state)
    for key, value in chief_state.items():
        if key not in moving:
            assert value.tobytes() == worker_state[key].tobytes(), key


def test_the_chief_export_serves(runs, tmp_path):
    images = next(iter(load_dataset("digits", batch_size=64, test_take=64, augment="none").test))
    images = np.asarray(images[0])
    model = keras.saving.load_model(runs["dirs"]["workers"] / "model.keras", compile=False)
    expected = keras.ops.convert_to_numpy(model(images, training=False))
    np.save(tmp_path / "images.npy", images)
    script = (
        "import sys, numpy as np, tensorflow as tf\n"
        "loaded = tf.saved_model.load(sys.argv[1])\n"
        "served = loaded.serve(tf.constant(np.load(sys.argv[2])))\n"
        "np.save(sys.argv[3], served.numpy())\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script, str(runs["export"]), str(tmp_path / "images.npy"),
         str(tmp_path / "served.npy")],
        env=env(), capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stderr[-5000:]
    np.testing.assert_allclose(np.load(tmp_path / "served.npy"), expected, rtol=1e-5, atol=1e-5)


def test_a_killed_worker_job_resumes_to_the_same_weights(runs):
    killed_at = runs["killed_at"]
    assert runs["victim_returncode"] == -signal.SIGKILL
    assert 1 <= min(killed_at.values()) < EPOCHS, killed_at
    assert not runs["state_after_kill"]["summary"] and not runs["state_after_kill"]["model"]
    run_dir = runs["dirs"]["killed"]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["resumed_from_epoch"] == min(killed_at.values())
    assert f"Resuming {run_dir} after epoch" in runs["outputs"]["restarted"][0]
    expected = _weights(runs["dirs"]["workers"] / "model.keras")
    actual = _weights(run_dir / "model.keras")
    for a, b in zip(expected, actual):
        assert a.tobytes() == b.tobytes()
    rows = (run_dir / "log.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == [str(e) for e in range(1, EPOCHS + 1)]
