"""The benchmark script runs and reports ratios against the base optimizer (no timing asserts)."""

import json
import statistics

import keras
import numpy as np
import pytest

from applications import benchmark


def test_conv_kernel_shapes_hold_about_the_target():
    for target in (1_000_000, 15_000_000):
        total = sum(3 * 3 * c * c for _, _, c, _ in benchmark.conv_kernel_shapes(target))
        assert 0.9 * target < total < 1.1 * target


def test_quick_run_writes_rows_for_every_pair(tmp_path):
    output = tmp_path / "bench.json"
    result = benchmark.main(
        [
            "--quick",
            "--sizes",
            "0.05",
            "--repeats",
            "1",
            "--skip-end-to-end",
            "--skip-startup",
            "--skip-floor",
            "--skip-strategy",
            "--output",
            str(output),
        ]
    )
    saved = json.loads(output.read_text())
    assert saved["rows"] == result["rows"]
    names = {row["name"] for row in saved["rows"]}
    assert {
        "SGD",
        "LSGD",
        "Adam",
        "LAdam",
        "RMSprop",
        "LRMSprop",
        "Adadelta",
        "LAdadelta",
        "LAdam (rademacher)",
        "LAdam layers=0.3",
    } <= names
    for row in saved["rows"]:
        assert row["median"] > 0 and row["min"] <= row["median"] <= row["max"]
        if row["name"] in ("SGD", "Adam", "RMSprop", "Adadelta"):
            assert row["ratio"] == 1.0
    # Every update-step group has the control runner, its base again.
    groups = {}
    for row in saved["rows"]:
        groups.setdefault(row["group"], []).append(row["name"])
    for group, members in groups.items():
        assert f"{members[0]} (control)" in members, group
    layers = [r for r in saved["rows"] if r["name"] == "LAdam layers=0.3"]
    assert all("extra_cost_vs_full" in layer for layer in layers)
    # Both conditions of the update step on TensorFlow, the jitted one on JAX.
    conditions = {row["condition"] for row in saved["rows"]}
    assert conditions == set(benchmark._conditions())
    assert "tensorflow" in saved["versions"] or "jax" in saved["versions"]
    assert saved["versions"]["keras"]


def test_startup_rows_pair_each_fresh_process_with_its_base(monkeypatch):
    """Start-up rows from fresh processes (faked here: their output), alternated and paired
    with the base of the same repeat."""
    seconds = {"Adam": [10.0, 20.0], "LAdam": [12.0, 22.0], "LAdam layers=0.3": [11.0, 21.0]}
    seconds |= {"LRMSprop": [6.0, 6.0]}
    calls = []

    def fake_run(code, **kwargs):
        label = code.split(", ")[-1].rstrip(")").strip("'")
        calls.append(label)
        first = seconds[label][calls.count(label) - 1]
        return f"noise\n{benchmark._RESULT}[{first}, 0.1]\n"

    monkeypatch.setattr(benchmark, "_run_fresh", fake_run)
    rows = benchmark.bench_startup(["mlp-60"], ["ladam", "lrmsprop"], repeats=2)
    by_name = {row["name"]: row for row in rows}
    assert set(by_name) == set(seconds)
    assert by_name["LAdam"]["ratio"] == statistics.median([12 / 10, 22 / 20])
    # Every Langevin optimizer against Adam.
    assert by_name["LRMSprop"]["ratio"] == statistics.median([6 / 10, 6 / 20])
    assert by_name["Adam"]["ratio"] == 1.0
    assert by_name["LAdam"]["second_epoch"] == [0.1, 0.1]
    # The second repeat starts one process further along.
    assert calls[:4] != calls[4:] and sorted(calls[:4]) == sorted(calls[4:])


def test_first_epoch_runs_each_startup_optimizer():
    first, second = benchmark.first_epoch_seconds("mlp-60", "LAdam layers=0.3")
    assert first > 0 and second > 0
    with pytest.raises(ValueError, match="Unknown start-up optimizer"):
        benchmark._startup_optimizer("LNadam")


@pytest.mark.multibackend
def test_floor_rows_measure_every_pass_per_element():
    rows = benchmark.floor_rows(repeats=1)
    assert [r["name"] for r in rows] == [
        "memory pass (x + 1)",
        "integer hash alone",
        "Gaussian transform alone",
        "Rademacher noise",
        "Gaussian noise",
    ]
    for row in rows:
        assert row["ns_per_element"] > 0
        elements = benchmark.FLOOR_COUNT * 3 * 3 * 256 * 256
        assert abs(row["ns_per_element"] - row["median"] * 1e6 / elements) < 1e-9


@pytest.mark.slow
@pytest.mark.multibackend
def test_strategy_rows_compare_under_a_distribution():
    mode = benchmark.STRATEGY_MODES[keras.backend.backend()]
    rows = benchmark.bench_strategy(50_000, repeats=1, fit_repeats=1)
    names = [(r["group"].split(",")[0], r["name"]) for r in rows]
    assert names == [
        (f"update step under {mode} over 2 devices", "Adam"),
        (f"update step under {mode} over 2 devices", "LAdam"),
        (f"fit epoch under {mode} over 2 devices", "Adam"),
        (f"fit epoch under {mode} over 2 devices", "LAdam"),
        (f"fit epoch under {mode} over 2 devices", "Adam (control)"),
    ]
    assert all(r["median"] > 0 for r in rows)


def test_ratio_pairs_each_repeat_with_the_base_of_the_same_repeat():
    # A drift that doubles both times in the second half leaves every paired ratio at 1.5.
    base = [1.0, 1.0, 1.0, 2.0, 2.0]
    langevin = [1.5, 1.5, 1.5, 3.0, 3.0]
    row = benchmark._row("g", "L", langevin, base, unit="s")
    assert row["ratio"] == 1.5
    assert row["ratio_of_medians"] == 1.5
    skewed = benchmark._row("g", "L", [1.5, 1.5, 3.0, 3.0, 3.0], base, unit="s")
    assert skewed["ratio"] == 1.5 and skewed["ratio_of_medians"] == 3.0
    scalar = benchmark._row("g", "share", [0.002, 0.004, 0.003], 0.01)
    assert abs(scalar["ratio"] - 0.3) < 1e-12 and scalar["median"] == 3.0


@pytest.mark.multibackend
@pytest.mark.parametrize("jit_compile", ["auto", True])
def test_step_bounds_measure_the_update_and_the_generator_on_the_model_variables(jit_compile):
    from applications.models import build_model

    model = build_model("mlp-3", input_shape=(8,), classes=3, width=4)
    fit_times = {"Adam": [0.10, 0.12], "LAdam": [0.11, 0.14]}
    rows = benchmark._step_bounds(
        "mlp-3", model, fit_times, steps=10, repeats=1, jit_compile=jit_compile
    )
    assert [r["name"] for r in rows] == [
        "Adam update alone",
        "LAdam update alone",
        "Gaussian generator alone",
    ]
    for row in rows:
        # The share of Adam's fit step (median 0.11 s / 10 steps = 11 ms).
        assert abs(row["ratio"] - row["median"] / 11.0) < 1e-9
        assert row["min"] <= row["median"] <= row["max"]
    assert "LAdam adds 1.5 ms" in rows[0]["group"]


@pytest.mark.multibackend
def test_generator_runner_draws_finite_noise():
    fn, block = benchmark._generator_runner([(3, 4), (5,)])
    assert np.isfinite(float(np.asarray(block(fn()))))
