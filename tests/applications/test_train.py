"""`python -m applications.train`: logs, summary, kill-and-resume, export, argument errors.

The training runs are subprocesses (`python -m applications.train ...`), as a user runs them,
with a tiny CNN with batch normalization on a subset of the embedded digits. One uninterrupted
run (with export) and one run that is killed with SIGKILL after its first backup and started
again are shared by the tests of this module.
"""

import csv
import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import keras
import numpy as np
import pytest
from distribute_helpers import h5_arrays

from applications import files, train

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # training subprocesses, one of them killed and resumed
EPOCHS = 5
# cnn-4 with batch norm: BN statistics, data augmentation and Langevin noise on the first 30 %
# of the layers are all part of the state that resuming must restore.
ARGS = [
    "--model", "cnn-4",
    "--model-option", "width=8",
    "--model-option", "batch_norm=True",
    "--optimizer", "layer-ladam",
    "--epochs", str(EPOCHS),
    "--batch-size", "32",
    "--train-take", "480",
    "--test-take", "64",
    "--lr-schedule", "inverse-time",  # the paper's schedules (train's default is cosine),
    "--sigma-schedule", "log",
    "--decay-epochs", "1",  # fast: lr and sigma visibly decrease within 5 epochs
    "--seed", "3",
    "--verbose", "2",
]  # fmt: skip
TIMEOUT = 600


def _env():
    env = dict(os.environ)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _start(args, log_path):
    with open(log_path, "w") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "applications.train", *args],
            cwd=ROOT,
            env=_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def _finish(process, log_path):
    process.wait(timeout=TIMEOUT)
    output = Path(log_path).read_text()
    assert process.returncode == 0, f"training failed:\n{output[-5000:]}"
    return output


def _backup_epoch(run_dir):
    try:
        metadata = json.loads((run_dir / "backup" / "training_metadata.json").read_text())
        return int(metadata["epoch"])
    except (FileNotFoundError, json.JSONDecodeError, KeyError):
        return 0


def _read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An uninterrupted run (exported), and the same run killed after epoch 1 and resumed."""
    tmp = tmp_path_factory.mktemp("train")
    reference = tmp / "reference"
    resumed = tmp / "resumed"
    export = tmp / "export"
    reference_args = [*ARGS, "--output", str(reference), "--export-dir", str(export)]
    resumed_args = [*ARGS, "--output", str(resumed), "--no-export"]

    # The uninterrupted run and the run to kill go side by side.
    reference_process = _start(reference_args, tmp / "reference.log")
    victim = _start(resumed_args, tmp / "killed.log")
    deadline = time.monotonic() + TIMEOUT
    killed_at = 0
    while time.monotonic() < deadline:
        killed_at = _backup_epoch(resumed)
        if killed_at >= 1:
            victim.send_signal(signal.SIGKILL)
            break
        if victim.poll() is not None:
            break
        time.sleep(0.002)
    victim.wait(timeout=TIMEOUT)
    killed_log = (tmp / "killed.log").read_text()
    assert victim.returncode == -signal.SIGKILL, f"the run was not killed:\n{killed_log[-5000:]}"
    state_after_kill = {
        "backup_epoch": _backup_epoch(resumed),
        "summary_exists": (resumed / "summary.json").exists(),
        "model_exists": (resumed / "model.keras").exists(),
    }

    # Started again with the same command, it resumes.
    resumed_output = _finish(_start(resumed_args, tmp / "resumed.log"), tmp / "resumed.log")
    reference_output = _finish(reference_process, tmp / "reference.log")
    return {
        "reference": reference,
        "resumed": resumed,
        "export": export,
        "killed_at": killed_at,
        "state_after_kill": state_after_kill,
        "resumed_output": resumed_output,
        "reference_output": reference_output,
    }


def test_logs_and_summary(runs):
    run_dir = runs["reference"]
    rows = _read_csv(run_dir / "log.csv")
    assert [int(row["epoch"]) for row in rows] == list(range(1, EPOCHS + 1))
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "lr", "sigma"} <= set(rows[0])
    lr = [float(row["lr"]) for row in rows]
    sigma = [float(row["sigma"]) for row in rows]
    assert all(value > 0 for value in sigma)
    assert all(b < a for a, b in itertools.pairwise(sigma)), sigma  # log annealing
    assert all(b < a for a, b in itertools.pairwise(lr)), lr  # inverse-time decay
    # the paper's initial values (15 steps an epoch, T = 15 steps): the learning rate at the
    # end of epoch 1, sigma the mean over the epoch's updates t = 0..14 (SigmaLogger)
    np.testing.assert_allclose(lr[0], 5e-3 / 2, rtol=1e-5)
    steps = np.arange(15)
    np.testing.assert_allclose(
        sigma[0], np.mean(5e-3 / np.sqrt(np.log(np.e + steps / 15))), rtol=1e-5
    )

    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["epochs"] == EPOCHS
    assert summary["resumed_from_epoch"] == 0
    assert summary["args"]["optimizer"] == "layer-ladam"
    assert summary["augmentation"] == {"policies": ["standard"], "batch_implementation": None}
    assert summary["args"]["model_options"] == [["width", 8], ["batch_norm", True]]
    # the records hold the values used, the defaults resolved
    assert summary["settings"]["langevin_layers"] == 0.3 and summary["settings"]["sigma"] == 5e-3
    assert (summary["settings"]["lr"], summary["settings"]["epsilon"]) == (5e-3, 1e-6)
    val_accuracy = [float(row["val_accuracy"]) for row in rows]
    assert summary["final_test_accuracy"] == pytest.approx(val_accuracy[-1])
    assert summary["best_test_accuracy"] == pytest.approx(max(val_accuracy))
    assert summary["final_train_loss"] == pytest.approx(float(rows[-1]["loss"]))
    assert summary["wall_time_s"] > 0
    assert Path(summary["paths"]["model"]) == run_dir / "model.keras"
    assert Path(summary["paths"]["export"]) == runs["export"]
    for key in ("csv_log", "tensorboard", "model", "export", "summary"):
        assert Path(summary["paths"][key]).exists(), key
        assert str(summary["paths"][key]) in runs["reference_output"]  # printed at the end
    assert not list(run_dir.glob(".*tmp*")) and not list(run_dir.parent.glob(".export*"))


def test_tensorboard_logs_have_lr_and_sigma(runs):
    import tensorflow as tf

    scalars = {}
    for event_file in (runs["reference"] / "tensorboard" / "train").glob("events.out.tfevents*"):
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            for value in event.summary.value:
                scalars.setdefault(value.tag, {})[event.step] = float(tf.make_ndarray(value.tensor))
    assert {"epoch_loss", "epoch_lr", "epoch_sigma"} <= set(scalars)
    rows = _read_csv(runs["reference"] / "log.csv")
    sigma = [scalars["epoch_sigma"][epoch] for epoch in range(EPOCHS)]
    np.testing.assert_allclose(sigma, [float(row["sigma"]) for row in rows], rtol=1e-6)
    assert all(b < a for a, b in itertools.pairwise(sigma))
    assert list((runs["reference"] / "tensorboard" / "validation").glob("events.out.tfevents*"))


def test_killed_run_resumes_to_the_same_weights(runs):
    reference, resumed = runs["reference"], runs["resumed"]
    state = runs["state_after_kill"]
    # killed after a backup, before the end of training
    assert 1 <= state["backup_epoch"] < EPOCHS
    assert not state["summary_exists"] and not state["model_exists"]
    assert f"Resuming {resumed} after epoch {state['backup_epoch']}" in runs["resumed_output"]

    summary = json.loads((resumed / "summary.json").read_text())
    assert summary["resumed_from_epoch"] == state["backup_epoch"]
    assert summary["epochs"] == EPOCHS

    # Final weights: bitwise equal.
    expected = keras.saving.load_model(reference / "model.keras", compile=False).get_weights()
    actual = keras.saving.load_model(resumed / "model.keras", compile=False).get_weights()
    assert len(expected) == len(actual)
    for e, a in zip(expected, actual):
        np.testing.assert_array_equal(a, e)

    # The whole training state (BN statistics, optimizer step, moments, noise seed): equal.
    name = f"epoch-{EPOCHS:06d}.weights.h5"
    expected_state = h5_arrays(reference / "backup" / name)
    actual_state = h5_arrays(resumed / "backup" / name)
    assert set(actual_state) == set(expected_state)
    assert any(key.startswith("optimizer") for key in expected_state)
    for key, value in expected_state.items():
        np.testing.assert_array_equal(actual_state[key], value, err_msg=key)

    # The log has each epoch once, with the metrics of the uninterrupted run.
    expected_rows = _read_csv(reference / "log.csv")
    actual_rows = _read_csv(resumed / "log.csv")
    assert [row["epoch"] for row in actual_rows] == [str(e) for e in range(1, EPOCHS + 1)]
    for e, a in zip(expected_rows, actual_rows):
        np.testing.assert_allclose(
            [float(a[key]) for key in e], [float(e[key]) for key in e], rtol=1e-6
        )


def test_export_serves_the_predictions_of_the_keras_model(runs, tmp_path):
    from applications.data import load_dataset

    images = next(iter(load_dataset("digits", batch_size=64, test_take=64, augment="none").test))[0]
    images = np.asarray(images)
    model = keras.saving.load_model(runs["reference"] / "model.keras", compile=False)
    expected = keras.ops.convert_to_numpy(model(images, training=False))
    np.save(tmp_path / "images.npy", images)

    # A fresh process that loads the SavedModel with TensorFlow.
    script = textwrap.dedent(
        """
        import sys
        import numpy as np
        import tensorflow as tf

        export, images, out = sys.argv[1:]
        loaded = tf.saved_model.load(export)
        predictions = loaded.serve(tf.constant(np.load(images)))
        np.save(out, predictions.numpy())
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(runs["export"]), str(tmp_path / "images.npy"),
         str(tmp_path / "served.npy")],
        env=_env(),
        check=False,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-5000:]
    served = np.load(tmp_path / "served.npy")
    assert served.shape == (64, 10)
    np.testing.assert_allclose(served, expected, rtol=1e-5, atol=1e-5)


def test_export_is_all_or_nothing(tmp_path):
    class FakeModel:
        def __init__(self, content, fail=False):
            self.content, self.fail = content, fail

        def export(self, path, format, verbose):
            Path(path, "saved_model.pb").write_text(self.content)
            if self.fail:
                raise RuntimeError("disk full")

    target = tmp_path / "export"
    files.export_atomic(FakeModel("first"), target)
    assert (target / "saved_model.pb").read_text() == "first"
    with pytest.raises(RuntimeError, match="disk full"):
        files.export_atomic(FakeModel("partial", fail=True), target)
    assert (target / "saved_model.pb").read_text() == "first"  # the previous export, untouched
    files.export_atomic(FakeModel("second"), target)
    assert (target / "saved_model.pb").read_text() == "second"
    assert [p.name for p in tmp_path.iterdir()] == ["export"]  # no temporary folder left


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_outputs_get_the_modes_of_the_umask(tmp_path, umask):
    class FakeModel:
        def export(self, path, format, verbose):
            Path(path, "saved_model.pb").write_text("model")

        def save(self, path, overwrite):
            Path(path).write_text("model")

    previous = os.umask(umask)
    try:
        files.write_text(tmp_path / "summary.json", "{}")
        files.save_model_atomic(FakeModel(), tmp_path / "model.keras")
        files.export_atomic(FakeModel(), tmp_path / "export")
    finally:
        os.umask(previous)
    for name in ("summary.json", "model.keras"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o666 & ~umask, name
    assert (tmp_path / "export").stat().st_mode & 0o777 == 0o777 & ~umask


def test_resuming_with_other_settings_is_refused(runs, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main([*ARGS, "--lr", "0.01", "--output", str(runs["resumed"]), "--no-export"])
    assert exit_info.value.code == 2
    message = capsys.readouterr().err
    assert "other settings" in message and "lr" in message


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--optimizer", "lbfgs"], "invalid choice: 'lbfgs'"),
        (["--model", "resnet7"], "unknown model 'resnet7'"),
        (["--dataset", "imagenet"], "invalid choice: 'imagenet'"),
        (["--langevin-layers", "1.5"], "must be in (0, 1]"),
        (["--mixed-precision", "float8"], "invalid choice: 'float8'"),
        (["--epochs", "0"], "expected a positive integer"),
        (["--model-option", "width"], "expected KEY=VALUE"),
        (["--augment", "rotate"], "Unknown augmentation 'rotate'"),
        (["--optimizer", "adam", "--sigma", "0.1"], "--sigma is used by only the Langevin"),
        (["--optimizer", "adam", "--noise", "rademacher"], "--noise is used by only the Langevin"),
        (["--optimizer", "ladam", "--langevin-layers", "0.5"], "--langevin-layers is used by"),
        (["--optimizer", "sgd", "--epsilon", "keras"], "--epsilon is used by"),
        (["--model", "mlp-3", "--langevin-layers", "nope_*"], "names no layer of the model"),
        (
            ["--sigma-schedule", "cyclical", "--epochs", "5", "--decay-epochs", "20"],
            "--sigma-schedule cyclical --epochs 5 --decay-epochs 20.0: sigma_schedule=",
        ),
    ],
)
def test_bad_arguments_fail_early(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        train.main([*argv, "--output", str(tmp_path / "run"), "--no-export"])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()  # failed before anything was written
