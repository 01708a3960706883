"""The wheel holds the library only: `keras_langevin` with its `py.typed`, no `applications`."""

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_the_library_only(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    (wheel,) = tmp_path.glob("keras_langevin-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    packages = {
        name.split("/")[0]
        for name in names
        if not name.split("/")[0].endswith((".dist-info", ".data"))
    }
    assert packages == {"keras_langevin"}, packages
    assert "keras_langevin/__init__.py" in names
    assert "keras_langevin/py.typed" in names
