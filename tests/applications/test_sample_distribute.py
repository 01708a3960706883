"""`python -m applications.sample --distribute`: the runs under a strategy, the chief's outputs.

* `--distribute mirrored --cpu-devices 2` (TensorFlow) and `--distribute data-parallel
  --cpu-devices 2` (JAX), each in a subprocess followed there by the same command without
  `--distribute` (one interpreter start for both): the samples are written, each sample's
  weights are bitwise the same on both devices, and they are those of one device up to float
  rounding (the same global batches, the same noise, the gradient summed in two halves);
* a process other than the chief (in this process, a `Distribution` that is not the chief's):
  it trains, but writes nothing of the chief's outputs and leaves no temporary file, and it
  follows the chief's word on which methods were evaluated before.

The errors of bad `--distribute` settings are `tests/applications/test_distribute.py`'s, for every script.
"""

import csv
import json
import math
import os
import sys
import tempfile
import textwrap

import keras
import numpy as np
import pytest
from distribute_helpers import Processes, env, h5_arrays

from applications import cli, distribute, sample
from keras_langevin.sampling import load_samples

ARGS = [
    "--quick",
    "--methods", "clsgd,psgld",
    "--model", "mlp-2",
    "--epochs", "2",
    "--cycles", "2",
]  # fmt: skip
TRAIN_TAKE, BATCH_SIZE = sample.QUICK["train_take"], sample.DEFAULTS["batch_size"]
# Samples after: cSGLD, the end of each of the 2 cycles; pSGLD, epoch 2 (after a burn-in of 1).
SAMPLED_EPOCHS = {"clsgd-seed0": [1, 2], "psgld-seed0": [2]}
# One device against two: rounding only (the weights are of order 1).
ATOL = 1e-5

# Runs `applications.sample` with each argument list of the JSON `sys.argv[2]`, in this order,
# and records, for every sample written, the copies of every weight on the devices
# (TensorFlow: the mirrored variable's components; JAX: the replicated array's shards) and
# whether they are bitwise identical.
RECORDING_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import keras
    import numpy as np
    from keras_langevin.sampling import sampler as sampler_lib
    from applications import sample

    records = []
    write = sampler_lib.PosteriorSampler._write_sample

    def copies(model, variable):
        if keras.backend.backend() == "tensorflow":
            return model.distribute_strategy.experimental_local_results(variable.value)
        return [shard.data for shard in variable.value.addressable_shards]

    def write_sample(self, epoch):
        write(self, epoch)
        weights = [[np.asarray(c) for c in copies(self.model, v)] for v in self.model.weights]
        records.append({
            "directory": self.directory,
            "epoch": epoch,
            "copies": sorted({len(c) for c in weights}),
            "identical": all(c.tobytes() == w[0].tobytes() for w in weights for c in w),
        })

    sampler_lib.PosteriorSampler._write_sample = write_sample
    for argv in json.loads(sys.argv[2]):
        sample.main(argv)
    with open(sys.argv[1], "w") as handle:
        json.dump(records, handle)
    """
)


def _run_both(tmp_path, backend, distribute_args):
    """The command with `distribute_args`, then without (the devices are set up before
    TensorFlow or JAX start); their outputs and the records of their samples."""
    script = tmp_path / "record.py"
    script.write_text(RECORDING_SCRIPT)
    runs = {"distributed": distribute_args, "one": []}
    argvs = [[*ARGS, "--output", str(tmp_path / name), *extra] for name, extra in runs.items()]
    with Processes() as processes:
        process = processes.start(
            [sys.executable, str(script), str(tmp_path / "records.json"), json.dumps(argvs)],
            tmp_path / "sample.log",
            env(backend),
        )
        processes.finish(process)
    records = json.loads((tmp_path / "records.json").read_text())
    return {
        name: (
            tmp_path / name,
            [r for r in records if r["directory"].startswith(f"{tmp_path / name}{os.sep}")],
        )
        for name in runs
    }


def _check_distributed_run(results, mode):
    one, one_records = results["one"]
    output, records = results["distributed"]
    # Every sample written, its weights the same on both devices (one device without).
    for found, copies in ((records, 2), (one_records, 1)):
        assert [(r["epoch"], r["copies"], r["identical"]) for r in found] == [
            (epoch, [copies], True) for epochs in SAMPLED_EPOCHS.values() for epoch in epochs
        ]
    for run, epochs in SAMPLED_EPOCHS.items():
        samples = load_samples(output / "runs" / run / "samples")
        assert [s.epoch for s in samples] == epochs
        assert [s.step for s in samples] == [e * TRAIN_TAKE // BATCH_SIZE for e in epochs]
        reference = load_samples(one / "runs" / run / "samples")
        assert [s.epoch for s in reference] == epochs
        for distributed_sample, one_sample in zip(samples, reference):
            actual, expected = h5_arrays(distributed_sample.path), h5_arrays(one_sample.path)
            assert set(actual) == set(expected) and actual
            for key, value in expected.items():
                np.testing.assert_allclose(actual[key], value, rtol=0, atol=ATOL, err_msg=key)
        summary = json.loads((output / "runs" / run / "summary.json").read_text())
        assert summary["epochs"] == 2
        assert summary["steps_per_epoch"] == TRAIN_TAKE // BATCH_SIZE  # the global batch
        assert summary["distribution"]["mode"] == mode
        assert summary["distribution"]["replicas"] == 2
        assert summary["distribution"]["processes"] == 1
    # The summary of the whole run: every method evaluated, tables and figures.
    rows = {r["method"]: r for r in _csv_rows(output / "results.csv")}
    assert sorted(rows) == ["clsgd", "psgld"]
    assert {m: int(r["weights"]) for m, r in rows.items()} == {"clsgd": 2, "psgld": 1}
    for row in rows.values():
        assert all(math.isfinite(float(row[key])) for key in sample.COLUMNS[2:]), row
    table = (output / "results.md").read_text()
    assert f"Trained with --distribute {mode}: 2 replicas in 1 process(es)" in table
    assert f"--distribute {mode} --cpu-devices 2`" in table  # the command
    for name in ("reliability.png", "entropy.png"):
        assert (output / name).read_bytes().startswith(b"\x89PNG")
    assert sorted(p.name for p in output.iterdir()) == sorted(p.name for p in one.iterdir())


def _csv_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.slow
@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="TensorFlow strategy")
def test_mirrored_over_two_cpus_samples_the_weights_of_one_device(tmp_path):
    results = _run_both(tmp_path, "tensorflow", ["--distribute", "mirrored", "--cpu-devices", "2"])
    _check_distributed_run(results, "mirrored")


@pytest.mark.slow
def test_jax_data_parallel_over_two_cpus_samples_the_weights_of_one_device(tmp_path):
    results = _run_both(tmp_path, "jax", ["--distribute", "data-parallel", "--cpu-devices", "2"])
    _check_distributed_run(results, "data-parallel")


# ----------------------------------------------------------------------------- not the chief


class _Agreeing(distribute.Distribution):
    """One process that plays a member of a larger job: `agree` answers `answers`."""

    def __init__(self, is_chief, answers=None):
        super().__init__("multi-worker", task="chief" if is_chief else "worker-1",
                         is_chief=is_chief)  # fmt: skip
        self.answers = answers

    def agree(self, value):
        return [int(value)] if self.answers is None else list(self.answers)


def test_a_process_other_than_the_chief_writes_none_of_its_outputs(tmp_path, monkeypatch):
    monkeypatch.setattr(cli, "setup_distribution", lambda parser, args: _Agreeing(False))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))  # its temporary paths
    (tmp_path / "tmp").mkdir()
    output = tmp_path / "out"
    assert sample.main([*ARGS, "--output", str(output)]) == []
    written = sorted(str(p.relative_to(output)) for p in output.rglob("*") if p.is_file())
    # Only the engine's own backup and log, for resuming (as `applications.train`).
    for run in SAMPLED_EPOCHS:
        assert f"runs/{run}/worker-1/log.csv" in written
        assert f"runs/{run}/worker-1/backup/training_metadata.json" in written
    assert all(path.startswith(("runs/clsgd-seed0/worker-1/", "runs/psgld-seed0/worker-1/"))
               for path in written), written  # fmt: skip
    assert not list((tmp_path / "tmp").glob("worker-*"))  # its samples and weights: deleted


def test_every_process_follows_the_chief_on_what_was_evaluated(tmp_path):
    stem = str(tmp_path / "psgld-seed0")
    settings = {"runs": "these"}
    chief, worker = _Agreeing(True), _Agreeing(False, answers=[sample.NOT_EVALUATED] * 2)
    assert sample.evaluation_state(stem, settings, chief) == (sample.NOT_EVALUATED, None)
    (tmp_path / "psgld-seed0.npz").write_bytes(b"")
    evaluation = {"settings": settings, "row": {"method": "psgld"}}
    (tmp_path / "psgld-seed0.json").write_text(json.dumps(evaluation))
    assert sample.evaluation_state(stem, settings, chief) == (sample.EVALUATED, evaluation)
    assert sample.evaluation_state(stem, {"runs": "others"}, chief)[0] == sample.OTHER_SETTINGS
    # A worker does not look at the files (they are on the chief's host): the chief decides.
    assert sample.evaluation_state(stem, settings, worker) == (sample.NOT_EVALUATED, None)
    for state in (sample.EVALUATED, sample.OTHER_SETTINGS):
        worker.answers = [state, sample.NOT_EVALUATED]
        assert sample.evaluation_state(stem, settings, worker) == (state, None)
