"""The study's files and their state after an interruption: ``runs.csv``, ``completed.json``
(finished runs, tuning results, invocations) and ``config.json`` (the settings).

A run counts as done when ``completed.json`` lists it and ``runs.csv`` holds exactly its
epochs 1..epochs; rows of a run interrupted mid-way are dropped and the run is redone. A
tuning run is done when ``completed.json`` lists it (its rows are not kept).
"""

from __future__ import annotations

import csv
import json
import os
from collections import defaultdict

from applications import files
from applications.depth_study.plan import RunSpec, format_sigma

CSV_FIELDS = (
    "family",
    "depth",
    "seed",
    "optimizer",
    "sigma",
    "lr",
    "epoch",
    "loss",
    "accuracy",
    "val_loss",
    "val_accuracy",
    "seconds",
)
RUNS_CSV = "runs.csv"
COMPLETED_JSON = "completed.json"
CONFIG_JSON = "config.json"


class ConfigMismatchError(ValueError):
    """The output directory holds a study run with different settings (a usage error)."""


def _parse_row(raw):
    try:
        row = {
            "family": raw["family"],
            "depth": int(raw["depth"]),
            "seed": int(raw["seed"]),
            "optimizer": raw["optimizer"],
            "sigma": format_sigma(float(raw["sigma"])),
            "lr": float(raw["lr"]) if raw.get("lr") not in (None, "") else None,
        }
        for key in ("loss", "accuracy", "val_loss", "val_accuracy", "seconds"):
            row[key] = float(raw[key])
        row["epoch"] = int(raw["epoch"])
        return row
    except (KeyError, TypeError, ValueError):
        return None  # a line torn by an interruption


def read_csv(path):
    """The well-formed rows of `path` ([] if missing)."""
    rows = [_parse_row(raw) for raw in files.read_csv(path)]
    return [row for row in rows if row is not None]


def row_key(row):
    return RunSpec(row["depth"], row["seed"], row["optimizer"], row["sigma"]).key


def check_config(output, config, epsilon_given=True):
    """Writes ``config.json`` on a fresh study; refuses to resume one with other settings.

    A study keeps the epsilon it started with when `--epsilon` is not given (one started
    before the flag existed ran with Keras's default). Returns the epsilon to use.

    Raises:
        ConfigMismatchError: naming every differing setting.
    """
    path = os.path.join(output, CONFIG_JSON)
    if not os.path.exists(path):
        files.write_json(path, config)
        return config.get("epsilon")
    with open(path) as handle:
        stored = json.load(handle)
    stored.setdefault("epsilon", "keras" if config.get("epsilon") is not None else None)
    if not epsilon_given and stored["epsilon"] != config["epsilon"]:
        print(f"Resuming {output} with its epsilon: {stored['epsilon']}")
        config["epsilon"] = stored["epsilon"]
    differences = {
        key: (stored.get(key), value) for key, value in config.items() if stored.get(key) != value
    }
    if differences:
        detail = ", ".join(
            f"{key}: stored {old!r}, requested {new!r}"
            for key, (old, new) in sorted(differences.items())
        )
        raise ConfigMismatchError(
            f"{output} holds a study with other settings ({detail}); use another --output "
            "or the same settings to resume it"
        )
    return config["epsilon"]


def load_state(output, epochs):
    """Reconciles ``runs.csv`` and ``completed.json`` after a possible interruption.

    Rows of runs not complete are dropped from the CSV, entries of ``completed.json``
    without their rows are forgotten; both files are rewritten atomically when anything
    changed. Returns ``(state, rows)``; `state` has "runs", "tuning", "invocations".
    """
    csv_path = os.path.join(output, RUNS_CSV)
    json_path = os.path.join(output, COMPLETED_JSON)
    state = {"runs": {}, "tuning": {}, "invocations": []}
    if os.path.exists(json_path):
        with open(json_path) as handle:
            state.update(json.load(handle))
    rows = read_csv(csv_path)
    by_key = defaultdict(list)
    for row in rows:
        by_key[row_key(row)].append(row)
    complete = {
        key
        for key, key_rows in by_key.items()
        if key in state["runs"]
        and sorted(row["epoch"] for row in key_rows) == list(range(1, epochs + 1))
    }
    kept = [row for row in rows if row_key(row) in complete]
    forgotten = [key for key in state["runs"] if key not in complete]
    csv_intact = os.path.exists(csv_path) and len(kept) == len(rows) and _csv_clean(csv_path, rows)
    if not csv_intact:
        files.write_csv(csv_path, CSV_FIELDS, kept)
    if forgotten:
        for key in forgotten:
            del state["runs"][key]
        files.write_json(json_path, state)
    dropped = len(rows) - len(kept)
    if dropped:
        print(f"Resume: dropped {dropped} row(s) of interrupted runs from {csv_path}")
    return state, kept


def _csv_clean(path, parsed_rows):
    """Whether every line of `path` parsed (no torn line left by an interruption)."""
    with open(path, newline="") as handle:
        lines = sum(1 for _ in csv.reader(handle))
    return lines == len(parsed_rows) + 1
