"""Resume after a kill in the one-process modes with several devices.

`applications.train --distribute mirrored --cpu-devices 2` (TensorFlow) and `--distribute
model-parallel --cpu-devices 2` (JAX, the kernels sharded over both devices), each killed with
SIGKILL once it has committed a backup, then started again with the same command: it resumes
after the last completed epoch and ends with the weights of an uninterrupted run, bit for bit.
(The several-process modes are `test_distribute_tf.py`'s and `test_distribute_jax.py`'s.)
"""

import json
import signal
import sys

import keras
import pytest
from distribute_helpers import Processes, env, kill_mid_run, small_train_args

pytestmark = pytest.mark.slow  # training subprocesses, one of them killed and restarted

EPOCHS = 4
TRAIN_ARGS = small_train_args(EPOCHS, 5, "--no-export")


@pytest.mark.parametrize(
    "backend, mode",
    [("tensorflow", "mirrored"), ("jax", "model-parallel")],
)
def test_a_killed_run_on_two_devices_resumes_to_the_same_weights(backend, mode, tmp_path):
    out = {name: tmp_path / name for name in ("reference", "killed")}

    def start(name, log):
        argv = [*TRAIN_ARGS, "--distribute", mode, "--cpu-devices", "2", "--output", str(out[name])]
        return processes.start([sys.executable, *argv], log, env(backend))

    with Processes() as processes:
        reference = start("reference", tmp_path / "reference.log")
        victim = start("killed", tmp_path / "killed.log")
        (killed_at,) = kill_mid_run(processes, [victim], [out["killed"] / "backup"], victim=0)
        assert victim.returncode == -signal.SIGKILL
        assert not (out["killed"] / "summary.json").exists()
        restarted = start("killed", tmp_path / "restarted.log")
        processes.finish(reference)
        restarted_output = processes.finish(restarted)
    assert 1 <= killed_at < EPOCHS
    assert f"Resuming {out['killed']} after epoch {killed_at}." in restarted_output
    summary = json.loads((out["killed"] / "summary.json").read_text())
    assert summary["resumed_from_epoch"] == killed_at and summary["epochs"] == EPOCHS
    assert summary["distribution"]["mode"] == mode
    assert summary["distribution"]["devices"] and len(summary["distribution"]["devices"]) == 2
    expected = keras.saving.load_model(out["reference"] / "model.keras", compile=False)
    actual = keras.saving.load_model(out["killed"] / "model.keras", compile=False)
    assert len(expected.get_weights()) == len(actual.get_weights()) > 0
    for a, b in zip(expected.get_weights(), actual.get_weights()):
        assert a.tobytes() == b.tobytes()
