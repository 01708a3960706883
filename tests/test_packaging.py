"""Packaging: the wheel holds the library only (`keras_langevin` with its `py.typed`, no
`applications`), and CI's lowest environment is the range pyproject.toml declares."""

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


def _lower_bounds():
    """`{name: lowest version}` of every requirement of pyproject.toml with a `>=` bound."""
    import tomllib
    from packaging.requirements import Requirement

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    texts = list(project["dependencies"])
    # The lowest environment installs the test extra (every extra but docs).
    for name, extra in project["optional-dependencies"].items():
        if name != "docs":
            texts += extra
    bounds = {}
    for text in texts:
        requirement = Requirement(text)
        for spec in requirement.specifier:
            if spec.operator == ">=":
                bounds[requirement.name] = spec.version
    return bounds


def test_lowest_constraints_pin_every_declared_lower_bound():
    """CI's lowest environment (.ci/constraints-lowest.txt) is the range pyproject declares:
    each `>=` bound pinned at exactly that version, and no direct dependency pinned elsewhere."""
    pins = {}
    for line in (ROOT / ".ci" / "constraints-lowest.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.strip()] = version.strip()
    from packaging.version import Version

    bounds = _lower_bounds()
    build_tools = {"setuptools"}  # the build backend's bound, not a runtime dependency
    for name, version in bounds.items():
        if name not in build_tools:
            assert name in pins and Version(pins[name]) == Version(version), (name, version)
    assert pins["jaxlib"] == pins["jax"]
