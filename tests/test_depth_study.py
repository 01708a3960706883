"""Tests of the depth study (`python -m applications.depth_study`)."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import csv
import json
from collections import Counter

import keras
import numpy as np
import pytest

from applications import depth_study, engine, files
from applications.depth_study import (
    CSV_FIELDS,
    ConfigMismatchError,
    initial_weights_path,
    main,
    parse_args,
    plan_runs,
    planned_specs,
    run_config,
    summarize,
    weights_fingerprint,
)

QUICK_SEEDS = 2
QUICK_OPTIMIZERS = ("adam", "ladam", "layer-ladam")


def _read_rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def _run_key(row):
    return (int(row["depth"]), int(row["seed"]), row["optimizer"], row["sigma"])


def _table(markdown, heading):
    """The rows (lists of cells) of the first table after `heading`."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(heading))
    table = []
    for line in lines[start + 1 :]:
        if line.startswith("|"):
            table.append([cell.strip() for cell in line.strip("|").split("|")])
        elif table:
            break
    return table


@pytest.fixture(scope="module")
def quick_study(tmp_path_factory):
    output = tmp_path_factory.mktemp("quick") / "study"
    result = main(["--quick", "--seeds", str(QUICK_SEEDS), "--output", str(output)])
    return output, result


# ------------------------------------------------------------------------------ end to end


def test_quick_study_writes_every_file(quick_study):
    output, result = quick_study
    args = parse_args(["--quick"])
    runs = len(args.depths) * QUICK_SEEDS * len(QUICK_OPTIMIZERS)
    assert len(result["executed"]) == runs and result["skipped"] == []
    for name in ("runs.csv", "completed.json", "config.json", "results.md", "gain_vs_depth.png"):
        assert (output / name).is_file(), name

    with open(output / "runs.csv", newline="") as handle:
        assert next(csv.reader(handle)) == list(CSV_FIELDS)
    rows = _read_rows(output / "runs.csv")
    assert len(rows) == runs * args.epochs
    epochs = Counter(_run_key(row) for row in rows)
    assert len(epochs) == runs and set(epochs.values()) == {args.epochs}
    for row in rows:
        assert row["family"] == "mlp"
        assert 0.0 <= float(row["val_accuracy"]) <= 1.0 and float(row["seconds"]) > 0
        assert (row["sigma"] == "0") == (row["optimizer"] == "adam")

    with open(output / "gain_vs_depth.png", "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"


def test_quick_results_table_has_every_depth_and_optimizer(quick_study):
    output, _ = quick_study
    args = parse_args(["--quick"])
    markdown = (output / "results.md").read_text()
    assert f"Seeds: {QUICK_SEEDS}" in markdown and f"epochs: {args.epochs}" in markdown

    accuracy = _table(markdown, "## Final test accuracy")
    assert accuracy[0] == ["depth", *QUICK_OPTIMIZERS]
    assert [int(row[0]) for row in accuracy[2:]] == list(args.depths)
    for row in accuracy[2:]:
        assert all("±" in cell for cell in row[1:])  # mean ± std over the 2 seeds

    gains = _table(markdown, "## Paired gain")
    assert gains[0] == ["depth", "ladam − adam", "layer-ladam − adam"]
    assert [int(row[0]) for row in gains[2:]] == list(args.depths)
    for row in gains[2:]:
        assert all(cell.endswith(f"(n={QUICK_SEEDS})") for cell in row[1:])


def test_quick_paired_gain_matches_csv(quick_study):
    output, _ = quick_study
    rows = _read_rows(output / "runs.csv")
    final = {_run_key(row): float(row["val_accuracy"]) for row in rows if row["epoch"] == "2"}
    depth = min(parse_args(["--quick"]).depths)
    gains = [final[(depth, s, "ladam", "0.005")] - final[(depth, s, "adam", "0")] for s in (0, 1)]
    cell = _table((output / "results.md").read_text(), "## Paired gain")[2][1]
    assert cell.startswith(f"{100 * np.mean(gains):+.2f} ± {100 * np.std(gains, ddof=1):.2f}")


def test_every_optimizer_of_a_depth_and_seed_starts_from_the_same_weights(quick_study):
    output, _ = quick_study
    runs = json.loads((output / "completed.json").read_text())["runs"]
    by_group = {}
    for run in runs.values():
        by_group.setdefault((run["depth"], run["seed"]), set()).add(run["initial_weights"])
    assert len(by_group) == len(parse_args(["--quick"]).depths) * QUICK_SEEDS
    for fingerprints in by_group.values():
        assert len(fingerprints) == 1  # every optimizer of the group
    assert len({next(iter(f)) for f in by_group.values()}) == len(by_group)  # groups differ


# ------------------------------------------------------------------------------ helpers


def _weights(path, args, depth):
    model = engine.build_model(run_config(args, depth), engine.load_data(run_config(args, depth)))
    model.load_weights(path)
    return model.get_weights()


def test_initial_weights_depend_only_on_family_depth_and_seed(tmp_path):
    args = parse_args(["--family", "resnet", "--image-size", "8", "--output", str(tmp_path)])
    first = _weights(initial_weights_path(args, 8, 0), args, 8)
    # Disturb every random generator and the Keras session, as earlier runs would.
    engine.build_model(run_config(args, 14), engine.load_data(run_config(args, 14)))
    np.random.default_rng().random(10)
    args_again = parse_args(
        ["--family", "resnet", "--image-size", "8", "--output", str(tmp_path / "b")]
    )
    again = _weights(initial_weights_path(args_again, 8, 0), args, 8)
    other = _weights(initial_weights_path(args, 8, 1), args, 8)
    model = engine.build_model(run_config(args, 8), engine.load_data(run_config(args, 8)))
    assert len(first) == len(model.get_weights())  # batch-norm statistics included
    assert len(model.get_weights()) > len(model.trainable_weights)
    assert weights_fingerprint(first) == weights_fingerprint(again)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert weights_fingerprint(first) != weights_fingerprint(other)


def test_trainer_reused_across_seeds_equals_a_fresh_one(tmp_path):
    """Each run of a reused trainer starts from the given weights and a fresh optimizer.

    The tolerance leaves room for the last bits of float sums: a stale optimizer state, moving
    statistics or noise seed would change the losses in the first digits.
    """
    args = parse_args(
        ["--family", "resnet", "--quick", "--image-size", "8", "--epochs", "2"]
        + ["--train-take", "96", "--test-take", "32", "--batch-size", "32"]
        + ["--output", str(tmp_path)]
    )
    initial = {seed: initial_weights_path(args, 8, seed) for seed in (0, 1)}

    def fit(trainer):
        records = engine.EpochRecords(str(tmp_path / "rows.csv"), CSV_FIELDS)
        trainer.fit([records])
        return records.rows

    config = run_config(args, 8, "layer-ladam", "0.005")
    reused = engine.Trainer(config, initial_weights=initial[0])
    reused.reset(0, initial[0])
    fit(reused)
    reused.reset(1, initial[1])
    assert weights_fingerprint(reused.model.get_weights()) == weights_fingerprint(
        _weights(initial[1], args, 8)
    )
    rows_reused = fit(reused)

    fresh = engine.Trainer(config.replace(seed=1), initial_weights=initial[1])
    keras.utils.set_random_seed(1)
    rows_fresh = fit(fresh)
    for a, b in zip(rows_reused, rows_fresh):
        for field in ("loss", "accuracy", "val_loss", "val_accuracy"):
            np.testing.assert_allclose(a[field], b[field], rtol=1e-3, err_msg=field)
    for a, b in zip(reused.model.get_weights(), fresh.model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5)


def test_plan_groups_runs_and_sweeps_only_the_deepest_depth():
    plan = plan_runs([2, 5], [0, 1], ["adam", "ladam"], sigma=None, sigma_sweep=[0.001, 0.005])
    specs = planned_specs(plan)
    assert len(specs) == len({spec.key for spec in specs})
    assert [depth for depth, _ in plan] == [2, 5]
    assert [config for config, _ in plan[0][1]] == [("adam", "0"), ("ladam", "0.005")]
    # 0.005 is the main-grid sigma of ladam: swept once, not twice.
    assert [config for config, _ in plan[1][1]] == [
        ("adam", "0"),
        ("ladam", "0.005"),
        ("ladam", "0.001"),
    ]
    assert all([spec.seed for spec in group] == [0, 1] for _, c in plan for _, group in c)


def test_summary_pairs_runs_by_seed():
    args = parse_args(["--depths", "3", "--seeds", "3", "--sigma-sweep", "0.01"])
    accuracy = {("adam", "0"): [0.5, 0.6, 0.7], ("ladam", "0.005"): [0.6, 0.6, 0.9]}
    accuracy[("ladam", "0.01")] = [0.4, 0.5, 0.6]
    accuracy[("layer-ladam", "0.005")] = [0.5, 0.7]  # seed 2 missing
    rows = [
        {"depth": 3, "seed": seed, "optimizer": name, "sigma": sigma, "epoch": args.epochs}
        | {"val_accuracy": value}
        for (name, sigma), values in accuracy.items()
        for seed, value in enumerate(values)
    ]
    summary = summarize(rows, args)
    np.testing.assert_allclose(summary["gains"][(3, "ladam")], [0.1, 0.0, 0.2])
    np.testing.assert_allclose(summary["gains"][(3, "layer-ladam")], [0.0, 0.1])
    accs, gains = summary["sweep"][("ladam", 0.01)]
    np.testing.assert_allclose(gains, [-0.1, -0.1, -0.1])
    assert len(accs) == 3


# ------------------------------------------------------------------------------ resume


def test_resume_runs_only_the_missing_runs(tmp_path, monkeypatch):
    output = tmp_path / "study"
    argv = ["--quick", "--output", str(output)]
    all_keys = main(argv + ["--stop-after", "2"])["planned"]
    assert len(all_keys) == 6
    rows = _read_rows(output / "runs.csv")
    assert len(rows) == 2 * 2

    # Interrupt the next invocation after the first epoch of its second run.
    real_append = files.append_csv_row
    calls = []

    def interrupting_append(path, fields, row):
        real_append(path, fields, row)
        calls.append(row)
        if len(calls) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(files, "append_csv_row", interrupting_append)
    with pytest.raises(KeyboardInterrupt):
        main(argv)
    monkeypatch.undo()
    rows = _read_rows(output / "runs.csv")
    assert len(rows) == 3 * 2 + 1  # three complete runs and one epoch of the fourth
    assert len(json.loads((output / "completed.json").read_text())["runs"]) == 3
    with open(output / "runs.csv", "a") as handle:
        handle.write("mlp,2,0,ad")  # a line torn by the interruption

    result = main(argv)
    assert result["skipped"] == all_keys[:3]
    assert result["executed"] == all_keys[3:]
    rows = _read_rows(output / "runs.csv")
    keys = Counter((_run_key(row), row["epoch"]) for row in rows)
    assert len(rows) == 6 * 2 and set(keys.values()) == {1}  # complete, no duplicates
    assert "Runs complete: 6 of 6" in (output / "results.md").read_text()

    # A run whose rows went missing is redone; nothing else is.
    depth, seed, optimizer, sigma = all_keys[0].split("|")
    kept = [row for row in rows if _run_key(row) != (int(depth), int(seed), optimizer, sigma)]
    with open(output / "runs.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(kept)
    assert main(argv)["executed"] == [all_keys[0]]
    assert main(argv)["executed"] == []
    invocations = json.loads((output / "completed.json").read_text())["invocations"]
    assert [item["runs_executed"] for item in invocations] == [2, 1, 3, 1, 0]


def test_resume_with_another_grid_of_optimizers(quick_study):
    """The grid may change on resume, also to optimizers that use fewer settings."""
    output, _ = quick_study
    args = parse_args(["--quick", "--optimizers", "adam", "--output", str(output)])
    assert args.langevin_layers is None and args.noise is None
    config = json.loads((output / "config.json").read_text())
    assert depth_study.study_config(args) == config


def test_a_study_from_before_the_epsilon_flag_keeps_keras_epsilon(tmp_path, capsys):
    """config.json without "epsilon" (written before the flag): resumed without --epsilon, the
    study keeps Keras's epsilon; asked explicitly for another epsilon, it is refused."""
    args = parse_args(["--quick", "--output", str(tmp_path)])
    config = depth_study.study_config(args)
    old = {key: value for key, value in config.items() if key != "epsilon"}
    (tmp_path / "config.json").write_text(json.dumps(old))
    depth_study.check_config(str(tmp_path), dict(config), args)
    assert args.epsilon == "keras" and "with its epsilon: keras" in capsys.readouterr().out
    explicit = parse_args(["--quick", "--epsilon", "paper", "--output", str(tmp_path)])
    with pytest.raises(ConfigMismatchError, match="epsilon"):
        depth_study.check_config(str(tmp_path), depth_study.study_config(explicit), explicit)


def test_resume_refuses_other_settings(quick_study):
    output, _ = quick_study
    with pytest.raises(ConfigMismatchError, match="epochs"):
        main(["--quick", "--epochs", "3", "--output", str(output)])


# ------------------------------------------------------------------------------ flags


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--family", "resnet", "--depths", "10"], "6n+2"),
        (["--family", "resnet", "--depths", "8,20,10"], "received 10"),
        (["--family", "densenet", "--depths", "8"], "3n+4"),
        (["--optimizers", "adam", "ladamw"], "unknown optimizer(s) 'ladamw'"),
        (["--optimizers", "adam", "--sigma-sweep", "0.01"], "Langevin optimizer"),
        (["--seeds", "0", "-1"], "--seeds: expected an integer >= 0, got '-1'"),
        (["--depths", "two"], "--depths: expected a positive integer, got 'two'"),
        (["--dataset", "imagenet"], "invalid choice: 'imagenet'"),
        (["--optimizers", "adam", "--sigma", "0.1"], "--sigma is used by only the Langevin"),
        (["--optimizers", "adam", "ladam", "--langevin-layers", "0.5"], "--langevin-layers"),
        (["--langevin-layers", "nope_*"], "names no layer of the model"),
    ],
)
def test_bad_flags_fail_before_any_work(tmp_path, capsys, argv, message):
    output = tmp_path / "never"
    with pytest.raises(SystemExit) as error:
        main(argv + ["--output", str(output)])
    assert error.value.code == 2
    assert message in capsys.readouterr().err
    assert not output.exists()


def test_parse_args_defaults_and_lists():
    args = parse_args(["--quick"])
    assert args.epochs == 2 and args.seeds == [0] and args.image_size == 8
    assert args.train_take is not None and args.optimizers == list(QUICK_OPTIMIZERS)
    args = parse_args(["--seeds", "4", "--depths", "10,2", "5"])
    assert args.epsilon == "paper" and args.langevin_layers == 0.3
    assert args.seeds == [0, 1, 2, 3] and args.depths == [2, 5, 10]
    assert parse_args(["--seeds", "7,"]).seeds == [7]
    assert parse_args(["--seeds", "3", "5"]).seeds == [3, 5]
    args = parse_args(["--optimizers", "layer-lrmsprop", "ladam"])
    assert args.optimizers == ["rmsprop", "layer-lrmsprop", "adam", "ladam"]
    args = parse_args(["--family", "resnet"])
    assert args.image_size is None and all((d - 2) % 6 == 0 for d in args.depths)
