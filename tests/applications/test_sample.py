"""`python -m applications.sample`: `--quick` end to end, resume, argument errors."""

import csv
import json
import math
import os

import keras
import numpy as np
import pytest

from applications import sample
from keras_langevin.sampling import load_samples

OUTPUTS = ("results.csv", "results.md", "reliability.png", "entropy.png")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """Every method, `--quick` (1 seed, 4 epochs, 256 training examples)."""
    output = tmp_path_factory.mktemp("sample")
    rows = sample.main(["--quick", "--output", str(output)])
    return output, rows


def _csv(path):
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def test_quick_writes_every_output_with_sane_values(quick_run):
    output, rows = quick_run
    for name in OUTPUTS:
        assert (output / name).stat().st_size > 0, name
    for name in ("reliability.png", "entropy.png"):
        assert (output / name).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    columns, written = _csv(output / "results.csv")
    assert tuple(columns) == sample.COLUMNS
    assert [(r["method"], r["seed"]) for r in written] == [(m, "0") for m in sample.METHODS]
    assert [row["accuracy"] for row in rows] == [float(r["accuracy"]) for r in written]
    max_entropy = math.log(10)
    for row in written:
        values = {key: float(row[key]) for key in sample.COLUMNS[2:]}
        for key in ("accuracy", "accuracy_rotated", "accuracy_noisy", "ece"):
            assert 0.0 <= values[key] <= 1.0, (row["method"], key)
        assert 0.0 <= values["brier"] <= 2.0 and values["nll"] > 0.0
        for split in sample.SPLITS:
            assert 0.0 <= values[f"entropy_{split}"] <= max_entropy + 1e-9
            assert 0.0 <= values[f"mi_{split}"] <= values[f"entropy_{split}"] + 1e-9
        # The stated budget: one model or one chain --epochs; the ensemble M fully trained.
        members = sample.QUICK["ensemble_size"] if row["method"] == "deep-ensemble" else 1
        assert values["epochs"] == members * sample.QUICK["epochs"], row["method"]
    weights = {row["method"]: int(row["weights"]) for row in written}
    assert weights["adam"] == weights["sgd"] == 1
    assert weights["deep-ensemble"] == sample.QUICK["ensemble_size"]
    assert weights["clsgd"] == sample.QUICK["cycles"] * sample.QUICK["samples_per_cycle"]
    assert weights["csghmc"] == weights["clsgd"]
    assert weights["psgld"] == 2  # epochs 3 and 4, after a burn-in of 2
    by_method = {row["method"]: row for row in written}
    for method in ("adam", "sgd"):  # one model: no disagreement between weights
        assert float(by_method[method]["mi_test"]) == 0.0
    table = (output / "results.md").read_text()
    assert "Command: `python -m applications.sample --quick --output" in table
    for label in sample.LABELS.values():
        assert f"| {label} |" in table
    ensemble_budget = f"{sample.QUICK['ensemble_size']} x {sample.QUICK['epochs']} = "
    assert f"| {sample.LABELS['deep-ensemble']} | {ensemble_budget}" in table
    assert "Posterior temperature T = 1 for the Langevin methods" in table


def test_runs_are_engine_runs_with_their_samples(quick_run):
    output, _ = quick_run
    runs = sorted(p.name for p in (output / "runs").iterdir())
    assert runs == [
        "adam-seed0", "clsgd-seed0", "csghmc-seed0", "deep-ensemble-seed0-member0",
        "deep-ensemble-seed0-member1", "psgld-seed0", "sgd-seed0",
    ]  # fmt: skip
    for run in runs:
        for name in ("log.csv", "backup", "model.keras", "summary.json", "samples"):
            assert (output / "runs" / run / name).exists(), (run, name)
    with open(output / "runs" / "psgld-seed0" / "summary.json") as f:
        settings = json.load(f)["settings"]
    assert settings["optimizer"] == "lrmsprop"
    assert settings["optimizer_options"] == [["rho", sample.PSGLD_RHO]]
    assert settings["sigma"] == pytest.approx(math.sqrt(2.0 / sample.QUICK["train_take"]))
    assert ["l2", sample.prior_l2(sample.QUICK["train_take"], 0.5)] in settings["model_options"]
    with open(output / "runs" / "csghmc-seed0" / "summary.json") as f:
        settings = json.load(f)["settings"]
    assert settings["optimizer"] == "lsghmc" and settings["lr"] == sample.CSGHMC_LR
    assert ["momentum", sample.CSGHMC_MOMENTUM] in settings["optimizer_options"]
    assert settings["sigma"] == pytest.approx(math.sqrt(2.0 / sample.QUICK["train_take"] / 0.1))
    epochs = {
        run: [s.epoch for s in load_samples(output / "runs" / run / "samples")]
        for run in ("adam-seed0", "clsgd-seed0", "csghmc-seed0", "psgld-seed0")
    }
    # One model: its last epoch; cSGLD, cSGHMC: the cycle ends; pSGLD: every epoch after the
    # burn-in.
    cycle_ends = [2, 4]
    assert epochs == {
        "adam-seed0": [4], "clsgd-seed0": cycle_ends, "csghmc-seed0": cycle_ends,
        "psgld-seed0": [3, 4],
    }  # fmt: skip


def test_rerun_skips_finished_runs(quick_run, capsys):
    output, rows = quick_run
    stamps = {path: os.stat(path).st_mtime_ns for path in output.glob("runs/*/summary.json")} | {
        path: os.stat(path).st_mtime_ns for path in output.glob("evaluations/*")
    }
    capsys.readouterr()
    again = sample.main(["--quick", "--output", str(output)])
    out = capsys.readouterr().out
    assert out.count("evaluated before: skipped") == len(sample.METHODS)
    assert {path: os.stat(path).st_mtime_ns for path in stamps} == stamps  # nothing retrained
    assert again == rows


@pytest.mark.parametrize("temperature", [1.0, 0.1])
def test_cyclical_sghmc_plan_has_the_momentum_form_of_sigma(temperature):
    """cSGHMC: LSGHMC with momentum mu, the effective step lr / (1 - mu) of cSGLD's, and
    sigma = posterior_sigma(N, T, momentum=mu) = sqrt(2 T / (N (1 - mu))), where cSGLD has
    sqrt(2 T / N): the same cycles and sampled epochs."""
    from applications.sample.plan import Data

    _, args = sample.parse_args(["--temperature", str(temperature)])
    data = Data(train_size=1000, steps_per_epoch=32, l2=sample.prior_l2(1000, 0.5), splits={})
    (hmc,), (sgld,) = sample.plan("csghmc", args, 1, data), sample.plan("clsgd", args, 1, data)
    mu = sample.CSGHMC_MOMENTUM
    assert mu == 0.9
    assert hmc.name == "csghmc-seed1" and hmc.config.optimizer == "lsghmc"
    assert sample.CSGHMC_LR / (1 - mu) == pytest.approx(sample.CLSGD_LR)
    assert hmc.config.lr == sample.CSGHMC_LR and sgld.config.lr == sample.CLSGD_LR
    assert hmc.config.sigma == pytest.approx(math.sqrt(2 * temperature / (1000 * (1 - mu))))
    assert sgld.config.sigma == pytest.approx(math.sqrt(2 * temperature / 1000))
    assert hmc.sampler == sgld.sampler == {"epochs": [23, 24, 25, 48, 49, 50, 73, 74, 75, 98,
                                                      99, 100]}  # fmt: skip
    optimizer = hmc.config.optimizer_settings().build(data.steps_per_epoch, seed=0)
    assert type(optimizer).__name__ == "LSGHMC" and optimizer.momentum == mu
    schedule = keras.saving.deserialize_keras_object(optimizer.get_config()["learning_rate"])
    assert schedule.cycle_steps == 25 * 32  # 100 epochs in 4 cycles


def test_shifted_sets_are_fixed_and_in_range():
    images = np.random.default_rng(0).uniform(size=(6, 8, 8, 1)).astype("float32")
    first, second = sample.shifted_sets(images), sample.shifted_sets(images)
    assert set(first) == set(sample.SPLITS)
    for split in sample.SPLITS:
        np.testing.assert_array_equal(first[split], second[split])
        assert first[split].shape == images.shape and first[split].dtype == images.dtype
        assert first[split].min() >= 0.0 and first[split].max() <= 1.0
    assert not np.allclose(first["rotated"], images)
    assert not np.allclose(first["noisy"], images)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--methods", "adam,mcmc"], "--methods: unknown method 'mcmc'"),
        (["--methods", "adam,adam"], "methods must be distinct"),
        (["--ensemble-size", "1"], "--ensemble-size: expected an integer >= 2, got '1'"),
        (["--epochs", "6", "--cycles", "4"], "--cycles: --epochs 6 is not a multiple"),
        (["--samples-per-cycle", "5"], "--samples-per-cycle"),
        (["--prior-std", "0"], "--prior-std: expected a positive number, got '0'"),
        (["--temperature", "-1"], "--temperature: expected a positive number"),
        (["--model", "resnet20"], "--model: the prior is an L2 regulariser"),
        (["--model-option", "l2=0.1"], "--model-option l2: the prior is set by --prior-std"),
        (["--model-option", "depth=x"], "depth"),
    ],
)
def test_bad_arguments_fail_early(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        sample.main(["--quick", *argv, "--output", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_cyclical_schedules_and_optimizer_options():
    from applications import engine, optimizers
    from keras_langevin.sampling import CyclicalCosineDecay, CyclicalSigma

    optimizer = optimizers.make_optimizer(
        "lsgd", 10, lr=0.1, lr_schedule="cyclical-cosine", sigma=0.2,
        sigma_schedule="cyclical", decay_epochs=2, exploration_fraction=0.5,
    )  # fmt: skip
    config = optimizer.get_config()
    lr, sigma = (
        keras.saving.deserialize_keras_object(config[k]) for k in ("learning_rate", "sigma")
    )
    assert isinstance(lr, CyclicalCosineDecay) and lr.cycle_steps == 20
    assert isinstance(sigma, CyclicalSigma) and sigma.exploration_steps == 10
    assert optimizers.make_optimizer("lrmsprop", 10, rho=0.99).rho == 0.99
    with pytest.raises(ValueError, match="exploration_fraction"):
        optimizers.make_optimizer("lsgd", 10, exploration_fraction=0.5)  # log schedule
    assert "optimizer_options" not in engine.RunConfig().settings()  # older backups resume
    config = engine.RunConfig(optimizer="lrmsprop", optimizer_options=[("rho", 0.99)])
    assert config.settings()["optimizer_options"] == [["rho", 0.99]]


def test_mlp_l2_option_is_a_penalty_on_the_kernels_only():
    from applications.models import build_model

    model = build_model("mlp-3", input_shape=(8, 8, 1), l2=0.01)
    kernels = [layer.kernel for layer in model.layers if hasattr(layer, "kernel")]
    expected = 0.01 * sum(float(np.sum(np.square(k.numpy()))) for k in kernels)
    assert len(model.losses) == 3
    assert float(sum(model.losses)) == pytest.approx(expected, rel=1e-5)
    assert not build_model("mlp-3", input_shape=(8, 8, 1)).losses
    with pytest.raises(ValueError, match="l2"):
        build_model("mlp-3", input_shape=(8, 8, 1), l2=0.0)
