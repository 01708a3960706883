"""Resume after a real kill: a training process killed by SIGKILL at the end of an epoch (after
its sample was written, before the backup of that epoch), then started again, ends with the same
samples and ensemble predictions as an uninterrupted run in this process."""

import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from keras_langevin import sampling

pytestmark = [
    pytest.mark.multibackend,
    pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL"),
]

TESTS = os.path.dirname(os.path.abspath(__file__))

CHILD = textwrap.dedent(
    """
    import os, sys
    sys.path.insert(0, {tests!r})
    import keras
    from test_sampling import _data, _model
    from keras_langevin import sampling

    class Kill(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 == int(os.environ.get("KILL_AFTER_EPOCH", "0")):
                os.kill(os.getpid(), 9)  # no cleanup, no exception handling: a dead process

    x, y = _data()
    model = _model()
    callbacks = [
        sampling.PosteriorSampler({samples!r}, burn_in_epochs=1),
        Kill(),
        keras.callbacks.BackupAndRestore({backup!r}),
    ]
    model.fit(x, y, batch_size=16, epochs=6, verbose=0, shuffle=False, callbacks=callbacks)
    """
)


def _child(tmp_path, kill_after=None):
    script = tmp_path / "train.py"
    script.write_text(
        CHILD.format(
            tests=TESTS, samples=str(tmp_path / "samples"), backup=str(tmp_path / "backup")
        )
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    if kill_after is not None:
        env["KILL_AFTER_EPOCH"] = str(kill_after)
    return subprocess.run(
        [sys.executable, str(script)],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_killed_process_restarted_has_the_same_samples_and_predictions(tmp_path):
    from test_sampling import _data, _model, _sample_weights, _sampling_run

    killed = _child(tmp_path, kill_after=4)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert [s.epoch for s in sampling.load_samples(tmp_path / "samples")] == [2, 3, 4]
    resumed = _child(tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]

    model = _sampling_run(tmp_path / "whole")  # uninterrupted, in this process
    whole = sampling.load_samples(tmp_path / "whole" / "samples")
    cut = sampling.load_samples(tmp_path / "samples")
    assert [s.epoch for s in cut] == [s.epoch for s in whole] == [2, 3, 4, 5, 6]
    for a, b in zip(whole, cut):
        for u, v in zip(_sample_weights(model, a.path), _sample_weights(model, b.path)):
            np.testing.assert_array_equal(u, v)
    x, _ = _data(seed=1)
    reference = _model(compile=False)
    np.testing.assert_array_equal(
        sampling.PosteriorEnsemble(reference, whole).predict(x),
        sampling.PosteriorEnsemble(reference, cut).predict(x),
    )
