"""Tests of the shared reporting module (`applications.report`)."""

import math

import numpy as np
import pytest

from applications import report


def test_mean_std_is_the_sample_std():
    mean, std, count = report.mean_std([1.0, 2.0, 4.0])
    assert count == 3 and mean == pytest.approx(7 / 3)
    assert std == pytest.approx(np.std([1.0, 2.0, 4.0], ddof=1))
    assert math.isnan(report.mean_std([5.0])[1]) and report.mean_std([])[2] == 0


def test_format_mean_std_and_interval():
    assert report.format_mean_std([0.5, 0.7], scale=100, digits=1) == "60.0 ± 14.1"
    assert report.format_mean_std([0.5], scale=100, digits=1, signed=True) == "+50.0"
    assert report.format_mean_std([]) == "–"
    assert report.format_interval(-0.012, -0.03, 0.004, scale=100) == "−1.20 [−3.00, +0.40]"
    assert report.format_interval(float("nan"), 0, 1) == "–"
    assert report.format_interval(0.5, None, None, digits=1) == "+0.5"
    assert report.format_p(0.0004) == "<0.001" and report.format_p(0.25) == "0.250"


def test_markdown_table_layout_and_errors():
    text = report.markdown_table(["a", "b"], [[1, "x"], [2, "y"]], align="lr")
    assert text.splitlines() == ["| a | b |", "|---|---:|", "| 1 | x |", "| 2 | y |"]
    with pytest.raises(ValueError, match="align"):
        report.markdown_table(["a", "b"], [], align="lrr")
    with pytest.raises(ValueError, match="2 headers"):
        report.markdown_table(["a", "b"], [[1]])


def test_document_and_figure_are_written(tmp_path):
    text = report.document("T", [report.section("S", "para"), "", report.bullets(["x"])])
    assert text == "# T\n\n## S\n\npara\n\n- x\n"
    path = report.write_markdown(tmp_path / "r.md", text)
    assert path.read_text() == text
    png = report.errorbar_plot(
        tmp_path / "p.png",
        [
            ("sym", [1, 2], [0.1, float("nan")], [0.05, 0.05]),
            ("ci", [1, 2], [0.0, 0.2], ([-0.1, 0.1], [0.1, 0.3])),
        ],
        "x",
        "y",
        xticks=[1, 2],
        dodge=0.1,
    )
    assert png.stat().st_size > 1000
