"""`python -m applications.compare`: outputs, same initial weights, argument errors."""

import csv
import shutil

import numpy as np
import pytest

from applications import compare

SEEDS = (0, 1)


@pytest.fixture(scope="module")
def quick_comparison(tmp_path_factory):
    """adam and layer-ladam, 2 seeds, `--quick` (mlp-4, 2 epochs, 256 training examples)."""
    output = tmp_path_factory.mktemp("compare")
    results = compare.main(
        ["--quick", "--optimizers", "adam,layer-ladam", "--seeds", "0,1", "--output", str(output)]
    )
    return output, results


def _rows(path):
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return reader.fieldnames, list(reader)


def test_csv_has_every_epoch_of_every_run(quick_comparison):
    output, _ = quick_comparison
    columns, rows = _rows(output / "results.csv")
    assert tuple(columns) == (
        "seed", "optimizer", "epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "sigma",
    )  # fmt: skip
    epochs = compare.QUICK["epochs"]
    assert len(rows) == len(SEEDS) * 2 * epochs
    keys = {(int(r["seed"]), r["optimizer"], int(r["epoch"])) for r in rows}
    assert keys == {
        (seed, name, epoch)
        for seed in SEEDS
        for name in ("adam", "layer-ladam")
        for epoch in range(1, epochs + 1)
    }
    for row in rows:
        sigma = float(row["sigma"])
        assert sigma == 0.0 if row["optimizer"] == "adam" else sigma > 0.0
        assert 0.0 <= float(row["val_accuracy"]) <= 1.0
    for seed in SEEDS:
        sigmas = [
            float(r["sigma"])
            for r in rows
            if r["optimizer"] == "layer-ladam" and int(r["seed"]) == seed
        ]
        assert sigmas[1] < sigmas[0]  # the paper's log annealing
    assert sorted(p.name for p in (output / "initial_weights").iterdir()) == [
        "seed0.weights.h5",
        "seed1.weights.h5",
    ]
    runs = sorted(p.name for p in (output / "runs").iterdir())
    assert runs == ["adam-seed0", "adam-seed1", "layer-ladam-seed0", "layer-ladam-seed1"]
    for run in runs:  # every run is an engine run: log, backup, model, summary
        for name in ("log.csv", "backup", "model.keras", "summary.json"):
            assert (output / "runs" / run / name).exists(), (run, name)


def test_table_reports_mean_and_std_over_seeds(quick_comparison):
    output, results = quick_comparison
    _, rows = _rows(output / "results.csv")
    table = (output / "results.md").read_text()
    assert (
        "| optimizer | runs | epochs | final test accuracy | best test accuracy | final train "
        "loss |" in table
    )
    for name in ("adam", "layer-ladam"):
        finals = [
            float(r["val_accuracy"])
            for r in rows
            if r["optimizer"] == name and int(r["epoch"]) == compare.QUICK["epochs"]
        ]
        mean, std = np.mean(finals), np.std(finals, ddof=1)
        assert results[name]["runs"] == len(SEEDS)
        np.testing.assert_allclose(results[name]["final_test_accuracy"], (mean, std))
        line = next(line for line in table.splitlines() if line.startswith(f"| {name} |"))
        assert f"{mean:.4f} ± {std:.4f}" in line
        assert line.count("±") == 3


def test_stored_runs_keep_the_epochs_they_ran(quick_comparison, tmp_path):
    # The finished runs of 2 epochs, compared again with --epochs 1: nothing is retrained, and
    # the table reports the epochs the runs have (2), with their final values.
    output, results = quick_comparison
    shutil.copytree(output, tmp_path / "again")
    again = compare.main(
        ["--quick", "--optimizers", "adam,layer-ladam", "--seeds", "0,1", "--epochs", "1",
         "--output", str(tmp_path / "again")]
    )  # fmt: skip
    epochs = compare.QUICK["epochs"]
    table = (tmp_path / "again" / "results.md").read_text()
    assert f", {epochs} epochs, batch size" in table and ", 1 epochs" not in table
    for name in ("adam", "layer-ladam"):
        assert again[name]["epochs"] == [epochs]
        assert again[name]["final_test_accuracy"] == results[name]["final_test_accuracy"]
        line = next(line for line in table.splitlines() if line.startswith(f"| {name} |"))
        assert line.startswith(f"| {name} | 2 | {epochs} | ")


def test_plot_is_a_png(quick_comparison):
    output, _ = quick_comparison
    data = (output / "curves.png").read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000


def test_optimizers_of_a_seed_start_from_the_same_weights(tmp_path):
    # With sigma = 0 LAdam is Adam: from the same initial weights and the same batches both
    # give the same losses (up to XLA's rounding: LAdam compiles its update).
    results = compare.main(
        ["--quick", "--optimizers", "adam,ladam", "--sigma", "0", "--sigma-schedule", "constant",
         "--seeds", "5,", "--epochs", "1", "--output", str(tmp_path)]
    )  # fmt: skip
    assert set(results) == {"adam", "ladam"}
    _, rows = _rows(tmp_path / "results.csv")
    adam, ladam = rows
    assert (adam["optimizer"], ladam["optimizer"]) == ("adam", "ladam")
    for key in ("loss", "accuracy", "val_loss", "val_accuracy"):
        np.testing.assert_allclose(float(ladam[key]), float(adam[key]), rtol=1e-4)


def test_seeds_give_other_initial_weights(quick_comparison):
    output, _ = quick_comparison
    _, rows = _rows(output / "results.csv")
    first = {
        int(r["seed"]): r["loss"] for r in rows if r["optimizer"] == "adam" and r["epoch"] == "1"
    }
    assert first[0] != first[1]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--optimizers", "adam,lbfgs"], "unknown optimizer(s) 'lbfgs'"),
        (["--optimizers", "adam,adam"], "optimizers must be distinct"),
        (["--seeds", "0,x"], "--seeds: expected an integer >= 0, got 'x'"),
        (["--seeds", "0", "--optimizers", "sgd", "--sigma-schedule", "log"], "--sigma-schedule"),
        (
            [
                "--optimizers",
                "lsgd",
                "--sigma-schedule",
                "cyclical",
                "--epochs",
                "3",
                "--decay-epochs",
                "4",
            ],
            "--sigma-schedule cyclical --epochs 3 --decay-epochs 4.0",
        ),
        (["--model", "transformer"], "unknown model 'transformer'"),
        (["--lr-schedule", "step"], "invalid choice: 'step'"),
        (["--optimizers", "adam,sgd", "--sigma", "0.1"], "--sigma is used by only the Langevin"),
        (["--optimizers", "adam", "--langevin-layers", "dense_*"], "--langevin-layers is used"),
        (["--optimizers", "layer-ladam", "--langevin-layers", "nope_*"], "names no layer"),
    ],
)
def test_bad_arguments_fail_early(argv, message, capsys, tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        compare.main(["--quick", *argv, "--output", str(tmp_path / "out")])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
