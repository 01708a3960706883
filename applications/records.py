"""A run's records: the epoch logs, the CSV log, its summary, and the statistics over runs.

* callbacks: `EpochInfo` (lr and sigma into the epoch logs), `EpochRecords` (one CSV row per
  completed epoch, numbered from 1);
* `read_log`, `summarize`: a run's `log.csv` and its final and best values;
* `mean_std`, `format_mean_std`: the statistics the scripts' tables report over seeds.

Epochs are numbered from 1 in every record: epoch k is the state after k epochs of training.
"""

import math
import time

import keras
import numpy as np
from keras import ops

import keras_langevin.callbacks
from applications import files

# Columns of a run's `log.csv`.
LOG_FIELDS = ("epoch", "loss", "accuracy", "val_loss", "val_accuracy", "lr", "sigma")


class EpochInfo(keras_langevin.callbacks.SigmaLogger):
    """Adds `lr` and `sigma` to the epoch logs (the library's `SigmaLogger`, plus `lr`).

    Both are the schedules' values at the optimizer's step at the end of the epoch; `sigma` is
    0 for the plain Keras optimizers. Put this callback before the loggers that should see them.
    """

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        if logs is not None:
            # Keras's LossScaleOptimizer forwards `learning_rate` to the optimizer it wraps.
            logs["lr"] = float(ops.convert_to_numpy(self.model.optimizer.learning_rate))


class EpochRecords(keras.callbacks.Callback):
    """Appends one CSV row per completed epoch (numbered from 1) and keeps the rows.

    A row holds `fields` taken from `constants`, then from the epoch logs; `epoch` is the
    number of completed epochs and `seconds` the wall time of the epoch. Each row is synced to
    disk when written, so an interrupted run keeps the rows of its completed epochs.
    """

    def __init__(self, path, fields=LOG_FIELDS, constants=None):
        super().__init__()
        self.path, self.fields, self.constants = path, tuple(fields), dict(constants or {})
        self.rows = []
        self._started = None

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        row = {"epoch": epoch + 1, "seconds": time.perf_counter() - self._started}
        for field in self.fields:
            if field in logs:
                row[field] = float(logs[field])
        row.update(self.constants)
        row = {field: row.get(field, math.nan) for field in self.fields}
        files.append_csv_row(self.path, self.fields, row)
        self.rows.append(row)


def read_log(path):
    """The rows of a run's `log.csv`, as dicts of floats (epoch as int)."""
    return [
        {key: int(value) if key == "epoch" else float(value) for key, value in row.items()}
        for row in files.read_csv(path)
    ]


def summarize(rows):
    """Final and best test accuracy, final training loss, lr and sigma of a run's records."""
    if not rows:
        return {}
    last = rows[-1]
    best = max(rows, key=lambda row: row.get("val_accuracy", float("-inf")))
    return {
        "final_test_accuracy": last.get("val_accuracy"),
        "final_test_loss": last.get("val_loss"),
        "best_test_accuracy": best.get("val_accuracy"),
        "best_epoch": best["epoch"],
        "final_train_loss": last.get("loss"),
        "final_train_accuracy": last.get("accuracy"),
        "final_lr": last.get("lr"),
        "final_sigma": last.get("sigma"),
    }


def mean_std(values):
    """`(mean, std, n)` of `values`: the sample standard deviation (n - 1 in the denominator),
    NaN when n < 2; `(nan, nan, 0)` for no values."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return math.nan, math.nan, 0
    std = float(values.std(ddof=1)) if values.size > 1 else math.nan
    return float(values.mean()), std, int(values.size)


def format_mean_std(values, scale=1.0, digits=4, signed=False):
    """ "mean ± std" (just the mean for one value, "–" for none)."""
    mean, std, count = mean_std(values)
    if count == 0:
        return "–"
    text = f"{scale * mean:{'+' if signed else ''}.{digits}f}"
    return text + (f" ± {scale * std:.{digits}f}" if count > 1 else "")
