"""The benchmark script runs and reports ratios against the base optimizer (no timing asserts)."""

import json

from applications import benchmark


def test_conv_kernel_shapes_hold_about_the_target():
    for target in (1_000_000, 15_000_000):
        total = sum(3 * 3 * c * c for _, _, c, _ in benchmark.conv_kernel_shapes(target))
        assert 0.9 * target < total < 1.1 * target


def test_quick_run_writes_rows_for_every_pair(tmp_path):
    output = tmp_path / "bench.json"
    result = benchmark.main(["--quick", "--sizes", "0.05", "--repeats", "1",
                             "--skip-end-to-end", "--output", str(output)])
    saved = json.loads(output.read_text())
    assert saved["rows"] == result["rows"]
    names = {row["name"] for row in saved["rows"]}
    assert {"SGD", "LSGD", "Adam", "LAdam", "RMSprop", "LRMSprop", "Adadelta", "LAdadelta",
            "LAdam (rademacher)", "LAdam layers=0.3"} <= names
    for row in saved["rows"]:
        assert row["median"] > 0 and row["min"] <= row["median"] <= row["max"]
        if row["name"] in ("SGD", "Adam", "RMSprop", "Adadelta"):
            assert row["ratio"] == 1.0
    layer = next(r for r in saved["rows"] if r["name"] == "LAdam layers=0.3")
    assert "extra_cost_vs_full" in layer
