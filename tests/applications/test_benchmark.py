"""The benchmark script runs and reports ratios against the base optimizer (no timing asserts)."""

import json
import os
import statistics
import subprocess
import sys

import keras
import numpy as np
import pytest

from applications import benchmark
from applications.benchmark import common, end_to_end, floors, fresh, startup, strategy


def test_conv_kernel_shapes_hold_about_the_target():
    for target in (1_000_000, 15_000_000):
        total = sum(3 * 3 * c * c for _, _, c, _ in common.conv_kernel_shapes(target))
        assert 0.9 * target < total < 1.1 * target


def test_quick_run_writes_rows_for_every_pair(tmp_path, capsys):
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
    assert conditions == set(common.default_conditions())
    assert "tensorflow" in saved["versions"] or "jax" in saved["versions"]
    assert saved["versions"]["keras"]
    # Progress as it goes: every group announced, and every row reported, before the table.
    out = capsys.readouterr().out
    table = out.index("| measurement | optimizer |")
    for row in saved["rows"]:
        assert 0 <= out.find(f"[benchmark] {row['group']}: ") < table, row["group"]
        assert 0 <= out.find(f"[benchmark]   {row['name']}: ") < table, row["name"]


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
        return f"noise\n{fresh.RESULT}[{first}, 0.1]\n"

    monkeypatch.setattr(fresh, "run_fresh", fake_run)
    rows = startup.bench_startup(["mlp-60"], ["ladam", "lrmsprop"], repeats=2)
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
    first, second = startup.first_epoch_seconds("mlp-60", "LAdam layers=0.3")
    assert first > 0 and second > 0
    with pytest.raises(ValueError, match="Unknown start-up optimizer"):
        startup._startup_optimizer("LNadam")


@pytest.mark.multibackend
def test_floor_rows_measure_every_pass_per_element():
    rows = floors.floor_rows(repeats=1)
    assert [r["name"] for r in rows] == [
        "memory pass (x + 1)",
        "integer hash alone",
        "Gaussian transform alone",
        "Rademacher noise",
        "Gaussian noise",
    ]
    for row in rows:
        assert row["ns_per_element"] > 0
        elements = floors.FLOOR_COUNT * 3 * 3 * 256 * 256
        assert abs(row["ns_per_element"] - row["median"] * 1e6 / elements) < 1e-9


@pytest.mark.slow
@pytest.mark.multibackend
def test_strategy_rows_compare_under_a_distribution():
    mode = strategy.STRATEGY_MODES[keras.backend.backend()]
    rows = strategy.bench_strategy(50_000, repeats=1, fit_repeats=1)
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
    row = common.make_row("g", "L", langevin, base, unit="s")
    assert row["ratio"] == 1.5
    assert row["ratio_of_medians"] == 1.5
    skewed = common.make_row("g", "L", [1.5, 1.5, 3.0, 3.0, 3.0], base, unit="s")
    assert skewed["ratio"] == 1.5 and skewed["ratio_of_medians"] == 3.0
    scalar = common.make_row("g", "share", [0.002, 0.004, 0.003], 0.01)
    assert abs(scalar["ratio"] - 0.3) < 1e-12 and scalar["median"] == 3.0


@pytest.mark.multibackend
@pytest.mark.parametrize("jit_compile", ["auto", True])
def test_step_bounds_measure_the_update_and_the_generator_on_the_model_variables(jit_compile):
    from applications.models import build_model

    model = build_model("mlp-3", input_shape=(8,), classes=3, width=4)
    fit_times = {"Adam": [0.10, 0.12], "LAdam": [0.11, 0.14]}
    rows = end_to_end._step_bounds(
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
    fn, block = common.generator_runner([(3, 4), (5,)])
    assert np.isfinite(float(np.asarray(block(fn()))))


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--sizes", "-5"), ("--sizes", "0"), ("--repeats", "0"), ("--repeats", "-1"),
     ("--startup-repeats", "0"), ("--images", "0"), ("--batch-size", "0"), ("--sizes", "nan")],
)  # fmt: skip
def test_bad_counts_and_sizes_are_usage_errors(capsys, flag, value):
    with pytest.raises(SystemExit) as exit_info:
        benchmark.parse_args([flag, value])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}: " in err and repr(value) in err
    assert err.startswith("usage: python -m applications.benchmark ")


def test_runs_as_a_module_with_its_usage_line():
    completed = subprocess.run(
        [sys.executable, "-m", "applications.benchmark", "--repeats", "0"],
        capture_output=True, text=True, timeout=300, check=False,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )  # fmt: skip
    assert completed.returncode == 2
    assert "usage: python -m applications.benchmark " in completed.stderr
    assert "benchmark.py" not in completed.stderr and "__main__" not in completed.stderr
