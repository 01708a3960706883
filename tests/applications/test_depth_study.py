"""Tests of the depth study (`python -m applications.depth_study`)."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import csv
import json
from collections import Counter

import keras
import numpy as np
import pytest

from applications import engine, files
from applications.depth_study import (
    CSV_FIELDS,
    initial_weights_path,
    main,
    parse_args,
    plan_runs,
    planned_specs,
    run_config,
    runner,
    weights_fingerprint,
)

QUICK_SEEDS = 2
KERAS_NAMES = ("adam", "ladam", "layer-ladam")
STUDY_NAMES = (*KERAS_NAMES, "iso-layer-ladam", "rescaled-adam")


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
    argv = ["--quick", "--seeds", str(QUICK_SEEDS), "--lr-grid", "0.5", "2"]
    result = main([*argv, "--output", str(output)])
    return output, result


# ------------------------------------------------------------------------------ end to end


def test_quick_study_writes_every_file_and_records_init_and_lr(quick_study):
    output, result = quick_study
    args = parse_args(["--quick"])
    runs = len(args.depths) * QUICK_SEEDS * len(STUDY_NAMES)
    assert len(result["planned"]) == runs and result["skipped"] == []
    for name in ("runs.csv", "tuning.csv", "completed.json", "config.json", "results.md"):
        assert (output / name).is_file(), name
    with open(output / "differences_vs_depth.png", "rb") as handle:
        assert handle.read(8) == b"\x89PNG\r\n\x1a\n"
    rows = _read_rows(output / "runs.csv")
    assert list(rows[0]) == list(CSV_FIELDS) and len(rows) == runs * args.epochs
    assert set(Counter(_run_key(row) for row in rows).values()) == {args.epochs}
    assert json.loads((output / "config.json").read_text())["init"] == "he"
    state = json.loads((output / "completed.json").read_text())
    tuned = json.loads((output / "tuned_lr.json").read_text())
    assert tuned["init"] == "he"
    for entry in state["runs"].values():
        assert entry["init"] == "he"
        twin = {"iso-layer-ladam": "layer-ladam", "rescaled-adam": "adam"}
        name = twin.get(entry["optimizer"], entry["optimizer"])
        assert entry["lr"] == tuned["chosen"][str(entry["depth"])][name]
    assert "kernel initialiser **he**" in (output / "results.md").read_text()


def test_learning_rates_are_chosen_on_the_validation_split(quick_study):
    output, _ = quick_study
    state = json.loads((output / "completed.json").read_text())
    tuned = json.loads((output / "tuned_lr.json").read_text())["chosen"]
    args = parse_args(["--quick"])
    assert len(state["tuning"]) == len(args.depths) * len(KERAS_NAMES) * 2  # --lr-grid 0.5 2
    for depth, chosen in tuned.items():
        for name, lr in chosen.items():
            entries = [
                e
                for e in state["tuning"].values()
                if e["depth"] == int(depth) and e["optimizer"] == name
            ]
            best = max(entries, key=lambda e: (e["final_val_accuracy"], -e["final_val_loss"]))
            assert lr == pytest.approx(float(best["lr"]))
    table = _table((output / "results.md").read_text(), "## Tuned learning rates")
    assert table[0] == ["depth", *sorted(KERAS_NAMES)]


def test_validation_split_is_carved_from_the_training_set():
    from applications.data import load_digits_arrays

    args = parse_args(["--quick", "--train-take", "100", "--batch-size", "1000"])
    config = run_config(args, 2)
    split = runner.validation_split(config, 0.2)
    x_train, _, x_test, _ = load_digits_arrays()
    ((held_out, _),) = list(split.test)
    ((trained, _),) = list(split.train.take(1))
    assert split.train_size == 80 and split.test_size == 20
    np.testing.assert_allclose(
        np.sort(np.asarray(held_out).ravel()), np.sort(x_train[80:100].ravel())
    )
    assert np.asarray(trained).shape[0] == 80
    held = {np.asarray(x).tobytes() for x in np.asarray(held_out)}
    assert not held & {x.tobytes() for x in x_test}
    assert not held & {np.asarray(x).tobytes() for x in np.asarray(trained)}


def test_results_table_has_every_depth_optimizer_and_control(quick_study):
    output, _ = quick_study
    args = parse_args(["--quick"])
    markdown = (output / "results.md").read_text()
    accuracy = _table(markdown, "## Final test accuracy")
    assert accuracy[0] == ["depth", *STUDY_NAMES]
    assert [int(row[0]) for row in accuracy[2:]] == list(args.depths)
    differences = _table(markdown, "## Paired difference")
    assert differences[0] == ["depth"] + [f"{n} − adam" for n in STUDY_NAMES[1:]]
    rows = _read_rows(output / "runs.csv")
    final = {_run_key(r): float(r["val_accuracy"]) for r in rows if r["epoch"] == "2"}
    depth = args.depths[0]
    d = [final[(depth, s, "ladam", "0.005")] - final[(depth, s, "adam", "0")] for s in (0, 1)]
    cell = differences[2][1]
    assert cell.startswith(f"{100 * np.mean(d):+.1f}".replace("-", "−"))
    assert cell.endswith(f"n={QUICK_SEEDS})") and "[" in cell


def test_every_optimizer_of_a_depth_and_seed_starts_from_the_same_weights(quick_study):
    output, _ = quick_study
    runs = json.loads((output / "completed.json").read_text())["runs"]
    by_group = {}
    for run in runs.values():
        by_group.setdefault((run["depth"], run["seed"]), set()).add(run["initial_weights"])
    assert len(by_group) == len(parse_args(["--quick"]).depths) * QUICK_SEEDS
    assert all(len(fingerprints) == 1 for fingerprints in by_group.values())
    assert len({next(iter(f)) for f in by_group.values()}) == len(by_group)


def test_rescaled_control_follows_layer_langevin_norms(quick_study):
    output, _ = quick_study
    runs = json.loads((output / "completed.json").read_text())["runs"]
    for entry in runs.values():
        if entry["optimizer"] != "rescaled-adam":
            continue
        layer = runs[f"{entry['depth']}|{entry['seed']}|layer-ladam|0.005"]
        assert set(entry["rescale_factors"]) == set(layer["norms"]) and layer["norms"]
        assert all(len(f) == 2 for f in entry["rescale_factors"].values())


def test_non_layer_optimizers_write_the_report_replacing_a_stale_one(tmp_path):
    """Issue 19 item 8: without a layer-* optimizer the study used to crash after its runs."""
    output = tmp_path / "study"
    output.mkdir()
    (output / "results.md").write_text("stale")
    argv = ["--quick", "--optimizers", "adam", "ladam", "--lr", "0.01", "--depths", "2"]
    result = main(argv + ["--output", str(output)])
    assert len(result["executed"]) == 2
    markdown = (output / "results.md").read_text()
    assert markdown.startswith("# Depth study") and "ladam − adam" in markdown
    assert _table(markdown, "## Final test accuracy")[0] == ["depth", "adam", "ladam"]
    assert "0.01 for every optimizer (no tuning)" in markdown


# ------------------------------------------------------------------------------ controls


def test_rescaler_sets_the_recorded_norms():
    from applications.depth_study import controls

    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(3, name="d")(inputs))
    model.compile(optimizer="adam", loss="mse")
    targets = {"d/kernel": [5.0, 0.5]}
    rescaler = controls.NormRescaler(targets)
    x, y = np.ones((8, 4), "float32"), np.zeros((8, 3), "float32")
    model.fit(x, y, epochs=1, batch_size=4, verbose=0, callbacks=[rescaler])
    assert np.linalg.norm(model.get_layer("d").kernel) == pytest.approx(5.0, rel=1e-5)
    # Two steps per epoch: rescaled after the second, before the evaluation of the epoch.
    history = model.fit(
        x,
        y,
        initial_epoch=1,
        epochs=2,
        batch_size=4,
        validation_data=(x, y),
        verbose=0,
        callbacks=[rescaler],
    )
    assert np.linalg.norm(model.get_layer("d").kernel) == pytest.approx(0.5, rel=1e-5)
    assert history.history["val_loss"][-1] == pytest.approx(model.evaluate(x, y, verbose=0))
    assert len(rescaler.factors["d/kernel"]) == 2


def test_isotropic_noise_keeps_the_draws_and_the_mean_scale():
    """One step from the same state: LAdam's noise is sigma sqrt(lr) sqrt(P) xi; the control's
    is sigma sqrt(lr) mean(sqrt(P)) xi, with the same xi (same seed and variable index)."""
    import keras_langevin as kl
    from applications.depth_study import controls

    rng = np.random.default_rng(0)
    value, gradient = rng.normal(size=(30, 20)), rng.normal(size=(30, 20))
    sigma, lr, eps = 0.1, 0.01, 1e-6

    def step(optimizer_class, sigma_value):
        variable = keras.Variable(value.astype("float32"))
        optimizer = optimizer_class(learning_rate=lr, sigma=sigma_value, seed=3, epsilon=eps)
        optimizer.apply([keras.ops.convert_to_tensor(gradient, "float32")], [variable])
        return np.asarray(variable, dtype=np.float64)

    adam = step(kl.LAdam, 0.0)
    langevin = (step(kl.LAdam, sigma) - adam) / (sigma * np.sqrt(lr))
    iso = (step(controls.isotropic(kl.LAdam), sigma) - adam) / (sigma * np.sqrt(lr))
    v = 0.001 * gradient**2  # (1 - beta_2) g^2 after one step
    sqrt_p = np.sqrt(np.sqrt(0.001) / (0.1 * (np.sqrt(v) + eps)))
    xi = langevin / sqrt_p
    np.testing.assert_allclose(iso, np.mean(sqrt_p) * xi, rtol=2e-3, atol=2e-3)
    assert abs(np.std(xi) - 1) < 0.15  # 600 normals: the SD of their SD is ~0.03


# ------------------------------------------------------------------------------ statistics


def test_holm_and_sign_flip_and_bootstrap():
    from applications.depth_study import stats

    np.testing.assert_allclose(stats.holm([0.01, 0.04, 0.03]), [0.03, 0.06, 0.06])
    adjusted = stats.holm([0.02, float("nan")])
    assert adjusted[0] == 0.02 and np.isnan(adjusted[1])
    # Ten positive differences: 2 of the 1024 sign patterns are as extreme (exact test).
    summary = stats.paired_summary(np.linspace(0.01, 0.1, 10))
    assert summary["p"] == pytest.approx(2 / 1024)
    d = np.random.default_rng(1).normal(1.0, 1.0, size=200)
    low, high = stats.bootstrap_interval(d)
    assert low < d.mean() < high
    # Width 2 * 1.96 * s / sqrt(n) for the mean of 200 draws; 20% leaves room for BCa.
    assert high - low == pytest.approx(2 * 1.96 * d.std(ddof=1) / np.sqrt(200), rel=0.2)
    assert stats.paired_summary([0.0, 0.0])["p"] == 1.0


# ------------------------------------------------------------------------------ helpers


def test_initial_weights_depend_only_on_family_depth_and_seed(tmp_path):
    args = parse_args(["--family", "resnet-nobn", "--image-size", "8", "--output", str(tmp_path)])
    first = initial_weights_path(args, 8, 0)
    engine.build_model(run_config(args, 14), engine.load_data(run_config(args, 14)))
    np.random.default_rng().random(10)
    again_args = parse_args(
        ["--family", "resnet-nobn", "--image-size", "8", "--output", str(tmp_path / "b")]
    )
    model = engine.build_model(run_config(args, 8), engine.load_data(run_config(args, 8)))
    weights = []
    for path in (first, initial_weights_path(again_args, 8, 0), initial_weights_path(args, 8, 1)):
        model.load_weights(path)
        weights.append(weights_fingerprint(model.get_weights()))
    assert weights[0] == weights[1] != weights[2]


def test_trainer_reused_across_seeds_equals_a_fresh_one(tmp_path):
    """A reused trainer starts each run from the given weights and a fresh optimizer."""
    args = parse_args(
        [
            "--quick",
            "--train-take",
            "96",
            "--test-take",
            "32",
            "--batch-size",
            "32",
            "--output",
            str(tmp_path),
        ]
    )
    initial = {seed: initial_weights_path(args, 6, seed) for seed in (0, 1)}

    def fit(trainer):
        records = engine.EpochRecords(str(tmp_path / "rows.csv"), CSV_FIELDS)
        trainer.fit([records])
        return records.rows

    job = runner.job_for(args, run_config, "layer-ladam", 6, 0.01, sigma=0.005)
    reused = runner.StudyTrainer(job, initial[0])
    reused.reset(0, initial[0])
    fit(reused)
    reused.reset(1, initial[1])
    rows_reused = fit(reused)
    job = runner.job_for(args, run_config, "layer-ladam", 6, 0.01, sigma=0.005)
    fresh = runner.StudyTrainer(job, initial[1])
    fresh.reset(1, initial[1])
    rows_fresh = fit(fresh)
    for a, b in zip(rows_reused, rows_fresh):
        for field in ("loss", "val_loss"):
            np.testing.assert_allclose(a[field], b[field], rtol=1e-3, err_msg=field)


def test_plan_orders_controls_last_and_sweeps_only_the_deepest_depth():
    sigma = {"adam": 0.0, "ladam": 0.005, "layer-ladam": 0.005, "iso-layer-ladam": 0.005}
    sigma["rescaled-adam"] = 0.0
    names = ["rescaled-adam", "iso-layer-ladam", "layer-ladam", "adam", "ladam"]
    plan = plan_runs([2, 5], [0, 1], names, sigma.get, sigma_sweep=[0.001, 0.005])
    specs = planned_specs(plan)
    assert len(specs) == len({spec.key for spec in specs})
    assert [c[0] for c, _ in plan[0][1]] == list(STUDY_NAMES)
    assert [c for c, _ in plan[1][1]][5:] == [("ladam", "0.001"), ("layer-ladam", "0.001")]


# ------------------------------------------------------------------------------ resume


def test_resume_runs_only_the_missing_runs(tmp_path, monkeypatch):
    output = tmp_path / "study"
    argv = ["--quick", "--lr", "0.01", "--controls", "none", "--output", str(output)]
    all_keys = main(argv + ["--stop-after", "2"])["planned"]
    assert len(all_keys) == 6 and len(_read_rows(output / "runs.csv")) == 2 * 2

    real_append, calls = files.append_csv_row, []

    def interrupting_append(path, fields, row):
        real_append(path, fields, row)
        calls.append(row)
        if len(calls) == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(files, "append_csv_row", interrupting_append)
    with pytest.raises(KeyboardInterrupt):
        main(argv)
    monkeypatch.undo()
    assert len(_read_rows(output / "runs.csv")) == 3 * 2 + 1
    with open(output / "runs.csv", "a") as handle:
        handle.write("mlp,2,0,ad")  # a line torn by the interruption
    result = main(argv)
    assert result["skipped"] == all_keys[:3] and result["executed"] == all_keys[3:]
    rows = _read_rows(output / "runs.csv")
    assert len(rows) == 6 * 2 and set(
        Counter((_run_key(r), r["epoch"]) for r in rows).values()
    ) == {1}
    assert "Runs complete: 6 of 6" in (output / "results.md").read_text()
    assert main(argv)["executed"] == []


def test_settings_mismatch_is_a_usage_error(tmp_path, capsys):
    """Issue 19 item 12: exit 2 with the differing setting named, not a traceback."""
    output = str(tmp_path / "study")
    main(["--quick", "--depths", "2", "--stop-after", "0", "--output", output])
    with pytest.raises(SystemExit) as error:
        main(["--quick", "--depths", "2", "--epochs", "3", "--output", output])
    assert error.value.code == 2
    assert "epochs: stored 2, requested 3" in capsys.readouterr().err


# ------------------------------------------------------------------------------ flags


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--family", "resnet-nobn", "--depths", "10"], "6n+2"),
        (["--family", "densenet", "--depths", "8"], "3n+4"),
        (["--optimizers", "adam", "ladamx"], "ladamx"),
        (["--optimizers", "adam", "--sigma-sweep", "0.01"], "Langevin optimizer"),
        (["--controls", "iso", "bogus"], "--controls"),
        (["--init", "lecun"], "invalid choice: 'lecun'"),
        (["--validation-fraction", "1.5"], "--validation-fraction"),
        (["--optimizers", "adam", "--sigma", "0.1"], "--sigma"),
        (["--langevin-layers", "nope_*"], "nope_*"),
    ],
)
def test_bad_flags_fail_before_any_work(tmp_path, capsys, argv, message):
    output = tmp_path / "never"
    with pytest.raises(SystemExit) as error:
        main(argv + ["--quick", "--output", str(output)])
    assert error.value.code == 2
    assert message in capsys.readouterr().err
    assert not output.exists()


def test_parse_args_defaults_and_lists():
    args = parse_args([])
    assert args.seeds == list(range(10)) and args.depths == [10, 20, 30, 40, 60]
    assert args.init == "he" and args.lr_grid == [0.3, 1.0, 3.0]
    assert args.optimizers == list(STUDY_NAMES)
    args = parse_args(["--quick", "--controls", "none", "--optimizers", "layer-lrmsprop", "ladam"])
    assert args.optimizers == ["rmsprop", "layer-lrmsprop", "adam", "ladam"]
    assert parse_args(["--seeds", "7,"]).seeds == [7]
    args = parse_args(["--family", "resnet-nobn"])
    assert args.depths == [14, 20, 32, 44, 56] and args.image_size == 8
    assert run_config(args, 14).model == "resnet-nobn-14"
    assert dict(run_config(args, 14).model_options)["init"] == "he"
