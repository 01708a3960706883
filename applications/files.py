"""Files that are never half-written: atomic text, JSON, CSV rows, models and exports.

Every writer goes through a temporary file (or folder) in the destination's folder and an
atomic rename, so a path is at any moment absent, its previous complete content or its new one.
"""

import contextlib
import csv
import io
import json
import os
import shutil
import tempfile

import numpy as np


def _fsync_file(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path):
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_text(path, text):
    """Writes `text` to `path` atomically (temporary file in the same folder, then rename)."""
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write(text)


def write_json(path, obj):
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=json_default) + "\n")


def json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    return str(value)


def _umask():
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _modes_of_umask(path, directory=False):
    """Gives `path` the mode a plain `open` (or `os.makedirs`) would have given it: the
    temporary files and folders of `tempfile` are 0600/0700 whatever the umask, which would
    leave outputs unreadable to anyone else (a serving container, a group)."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


@contextlib.contextmanager
def atomic_path(path, suffix=""):
    """Yields a temporary path next to `path`; renamed onto `path` if the block succeeds.

    `suffix` keeps the extension a writer needs (Keras wants `.keras` or `.weights.h5`).
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{os.path.basename(path)}.", suffix=f".tmp{suffix}", dir=folder
    )
    os.close(fd)
    try:
        yield tmp
        _fsync_file(tmp)
        _modes_of_umask(tmp, directory=os.path.isdir(tmp))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    _fsync_dir(folder)


def save_model_atomic(model, path):
    """`model.save(path)` (a .keras file) through a temporary file and a rename."""
    with atomic_path(path, ".keras") as tmp:
        model.save(tmp, overwrite=True)


def save_weights_atomic(model, path):
    """`model.save_weights(path)` (a .weights.h5 file) through a temporary file and a rename."""
    with atomic_path(path, ".weights.h5") as tmp:
        model.save_weights(tmp, overwrite=True)


def save_figure_atomic(figure, path, dpi=120):
    """`figure.savefig(path)` (PNG) through a temporary file and a rename."""
    with atomic_path(path, ".png") as tmp:
        figure.savefig(tmp, format="png", dpi=dpi)


def append_csv_row(path, fields, row):
    """Appends one row (a header first if the file is new or empty) and syncs it to disk."""
    new = not os.path.exists(path) or os.path.getsize(path) == 0
    with open(path, "a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, lineterminator="\n")
        if new:
            writer.writeheader()
        writer.writerow({field: row[field] for field in fields})
        handle.flush()
        os.fsync(handle.fileno())


def write_csv(path, fields, rows):
    """Writes a whole CSV atomically."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows({field: row[field] for field in fields} for row in rows)
    write_text(path, text.getvalue())


def read_csv(path):
    """The rows of a CSV as dicts of strings ([] if the file is missing)."""
    if not os.path.exists(path):
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def export_atomic(model, path, verbose=False):
    """`model.export(path)` (a TensorFlow SavedModel with a `serve` endpoint), all or nothing.

    The SavedModel is written to a temporary folder next to `path` and renamed into place. A
    previous export at `path` is first renamed aside and deleted after the new one is in
    place, so `path` is at any moment either absent, the old complete export or the new one.
    """
    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    base = os.path.basename(path)
    tmp = tempfile.mkdtemp(prefix=f".{base}.partial-", dir=parent)
    old = None
    try:
        model.export(tmp, format="tf_saved_model", verbose=verbose)
        _modes_of_umask(tmp, directory=True)
        if os.path.lexists(path):
            old = tempfile.mkdtemp(prefix=f".{base}.old-", dir=parent)
            os.replace(path, os.path.join(old, base))
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old is not None and not os.path.lexists(path):
            os.replace(os.path.join(old, base), path)  # put the previous export back
        raise
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(parent)
    return path
