"""The one reporting module of the applications: markdown tables, figures and summaries.

Every script that writes a report (``depth_study``, ``compare``, ``sample``) builds it from
these helpers, so that a number is formatted, a table laid out and a figure saved the same
way everywhere:

* numbers: :func:`mean_std`, :func:`format_mean_std` ("mean ± std", just the mean for one
  value, "–" for none), :func:`format_interval` ("+1.20 [−0.30, +2.70]");
* markdown: :func:`markdown_table` (a header, an alignment row and one line per row),
  :func:`bullets`, :func:`document` (a title and sections joined with blank lines),
  :func:`write_markdown` (written atomically);
* figures: :func:`pyplot` (matplotlib on the Agg backend, imported on first use),
  :func:`errorbar_plot` (one series per label, symmetric or asymmetric error bars, a zero
  line, written atomically) and :func:`save_figure`.

A report is written complete or not at all (`applications.files`): a reader never sees
half a table. Example::

    from applications import report

    rows = [[10, report.format_mean_std([0.91, 0.93], scale=100, digits=1)]]
    text = report.document(
        "Depth study", [report.markdown_table(["depth", "accuracy (%)"], rows, align="r")]
    )
    report.write_markdown("runs/x/results.md", text)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from applications import files

DASH = "–"
MINUS = "−"


# ----------------------------------------------------------------------------- numbers


def mean_std(values):
    """`(mean, std, n)` of `values`: the sample standard deviation (ddof = 1), NaN when
    n < 2; `(nan, nan, 0)` for no values."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return math.nan, math.nan, 0
    std = float(values.std(ddof=1)) if values.size > 1 else math.nan
    return float(values.mean()), std, int(values.size)


def _number(value, scale, digits, signed):
    text = f"{scale * value:{'+' if signed else ''}.{digits}f}"
    return text.replace("-", MINUS)


def format_mean_std(values, scale=1.0, digits=4, signed=False):
    """ "mean ± std" of `values` times `scale` (just the mean for one value, "–" for none)."""
    mean, std, count = mean_std(values)
    if count == 0:
        return DASH
    text = _number(mean, scale, digits, signed)
    return text + (f" ± {scale * std:.{digits}f}" if count > 1 else "")


def format_interval(estimate, low, high, scale=1.0, digits=2, signed=True):
    """ "estimate [low, high]" times `scale`; "–" when the estimate is missing (None or NaN),
    just the estimate when the interval is."""
    if estimate is None or not math.isfinite(estimate):
        return DASH
    text = _number(estimate, scale, digits, signed)
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        return text
    return f"{text} [{_number(low, scale, digits, signed)}, {_number(high, scale, digits, signed)}]"


def format_p(value):
    """A p-value: "–" when missing, "<0.001" below 0.001, else three decimals."""
    if value is None or not math.isfinite(value):
        return DASH
    return "<0.001" if value < 0.001 else f"{value:.3f}"


# ----------------------------------------------------------------------------- markdown

_ALIGN = {"l": "---", "r": "---:", "c": ":---:"}


def markdown_table(headers: Sequence, rows: Sequence[Sequence], align="l") -> str:
    """A markdown table. `align` is one letter for every column ("l", "r", "c") or one per
    column (a string or a sequence); cells are written with `str`.

    Raises:
        ValueError: a row or `align` whose length is not the number of headers, or an
            unknown alignment letter.
    """
    width = len(headers)
    aligns = [align] * width if isinstance(align, str) and len(align) == 1 else list(align)
    if len(aligns) != width or any(a not in _ALIGN for a in aligns):
        raise ValueError(
            f"Argument `align` must be one of 'l', 'r', 'c' or one per column ({width}). "
            f"Received: align={align!r}"
        )
    lines = [
        "| " + " | ".join(map(str, headers)) + " |",
        "|" + "|".join(_ALIGN[a] for a in aligns) + "|",
    ]
    for row in rows:
        if len(row) != width:
            raise ValueError(f"A table row has {len(row)} cells for {width} headers: {row!r}")
        lines.append("| " + " | ".join(map(str, row)) + " |")
    return "\n".join(lines)


def bullets(items: Sequence[str]) -> str:
    """A markdown bullet list."""
    return "\n".join(f"- {item}" for item in items)


def document(title: str, sections: Sequence[str]) -> str:
    """A markdown page: `# title` and the sections (each already markdown), blank-line
    separated, ending with a newline. Empty sections are left out."""
    parts = [f"# {title}", *(section.strip("\n") for section in sections if section)]
    return "\n\n".join(parts) + "\n"


def section(heading: str, *paragraphs: str, level: int = 2) -> str:
    """A markdown section: a heading of `level` and its paragraphs."""
    return "\n\n".join([f"{'#' * level} {heading}", *(p for p in paragraphs if p)])


def write_markdown(path, text: str) -> str:
    """Writes `text` to `path` atomically; returns `path`."""
    files.write_text(path, text)
    return path


# ----------------------------------------------------------------------------- figures


def pyplot():
    """`matplotlib.pyplot` on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure, path) -> str:
    """Saves `figure` to `path` atomically, closes it, returns `path`."""
    figure.tight_layout()
    files.save_figure_atomic(figure, path)
    pyplot().close(figure)
    return path


def errorbar_plot(
    path,
    series,
    xlabel,
    ylabel,
    title="",
    xticks=None,
    xscale="linear",
    zero_line=True,
    dodge=0.0,
):
    """One error-bar series per entry of `series`, saved to `path`.

    Args:
        path: output file (PNG).
        series: list of `(label, xs, ys, errors)`; `errors` is None, one half-width per
            point, or a pair `(lows, highs)` of interval ends (absolute values). Points whose
            y is NaN are left out.
        xlabel, ylabel, title: the axes' labels and the title.
        xticks: the x ticks (default: matplotlib's).
        xscale: "linear" or "log".
        zero_line: draw y = 0.
        dodge: horizontal offset between series, in x units, so bars do not overlap.

    Returns:
        `path`.
    """
    plt = pyplot()
    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    plotted = 0
    for index, (label, xs, ys, errors) in enumerate(series):
        offset = (index - (len(series) - 1) / 2) * dodge
        xs, ys = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
        keep = np.isfinite(ys)
        if not keep.any():
            continue
        plotted += 1
        yerr = None
        if errors is not None and len(errors) == 2 and not np.isscalar(errors[0]):
            lows, highs = (np.asarray(e, dtype=float)[keep] for e in errors)
            yerr = np.nan_to_num(np.vstack([ys[keep] - lows, highs - ys[keep]]))
        elif errors is not None:
            yerr = np.nan_to_num(np.asarray(errors, dtype=float)[keep])
        axis.errorbar(xs[keep] + offset, ys[keep], yerr=yerr, marker="o", capsize=3, label=label)
    if zero_line:
        axis.axhline(0.0, color="black", linewidth=0.8)
    axis.set_xscale(xscale)
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    if title:
        axis.set_title(title, fontsize=10)
    if xticks is not None:
        axis.set_xticks(list(xticks))
    if plotted:
        axis.legend(fontsize=8)
    axis.grid(alpha=0.3)
    return save_figure(figure, path)
