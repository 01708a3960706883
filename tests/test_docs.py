"""The documentation is code: every ```python block of README.md and docs/**/*.md runs, and the
API reference documents every public name.

Each block runs alone in a fresh Python process (cwd a temporary directory, the repository on
the path), so a renamed argument or a removed name breaks the test. Blocks that are not meant to
run use other fences (```bash, ```text). The blocks run on every backend the suite runs on; a
block that needs one backend says so in its first line, e.g. `# backend: tensorflow`.
"""

import os
import pathlib
import re
import subprocess
import sys

import keras
import pytest

import keras_langevin
from keras_langevin import sampling

ROOT = pathlib.Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
BLOCK = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
ANY_PYTHON_FENCE = re.compile(r"^[ \t]*```\s*(python|py|pycon)\b", re.MULTILINE)
BACKEND_LINE = re.compile(r"# backends?: *([\w, ]+)")
LINK = re.compile(r"\]\((?!https?:|mailto:|#)([^)\s#]+)(?:#[^)\s]*)?\)")
DIRECTIVE = re.compile(r"^::: ([\w.]+)[ \t]*$", re.MULTILINE)
TIMEOUT_S = 600


def _blocks(page):
    text = page.read_text(encoding="utf-8")
    for match in BLOCK.finditer(text):
        yield text.count("\n", 0, match.start()) + 1, match.group(1)


def _cases():
    for page in PAGES:
        for line, code in _blocks(page):
            yield pytest.param(code, id=f"{page.relative_to(ROOT)}:{line}")


def test_every_python_fence_is_a_runnable_block():
    """A python fence that the runner would not pick up (indented, or `py`) runs nowhere."""
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        fences = ANY_PYTHON_FENCE.findall(text)
        assert len(fences) == len(list(_blocks(page))), (
            f"{page.relative_to(ROOT)}: write runnable examples as ```python at the start of "
            "a line, and the rest with another fence (```bash, ```text)"
        )
    assert list(_blocks(ROOT / "README.md")), "the README's example was not found"


@pytest.mark.multibackend
@pytest.mark.parametrize("code", list(_cases()))
def test_code_block_runs(code, tmp_path):
    wanted = BACKEND_LINE.fullmatch(code.split("\n", 1)[0].strip())
    if wanted and keras.backend.backend() not in re.split(r"[, ]+", wanted.group(1).strip()):
        pytest.skip(f"the block runs on {wanted.group(1)} only")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    script = tmp_path / "block.py"
    script.write_text(code, encoding="utf-8")
    completed = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]


def test_readme_quotes_the_ci_test_commands():
    """The README's test command is what CI runs: every pytest command of .ci/test is in it
    (`bash .ci/pytest ARGS` is `python -m pytest ARGS` that also fails when nothing ran)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    script = (ROOT / ".ci" / "test").read_text(encoding="utf-8").splitlines()
    commands = [
        line.replace("bash .ci/pytest ", "python -m pytest ")
        for line in script
        if line.startswith(("python ", "bash .ci/pytest ", "KERAS_BACKEND="))
    ]
    assert commands, ".ci/test runs no pytest command"
    for command in commands:
        assert f" {command}" in readme or f"&& {command}" in readme, command


def test_readme_links_resolve():
    """The README's relative links (into docs/, which GitHub renders) point at existing files;
    mkdocs checks the links between docs pages, not the README's."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = LINK.findall(readme)
    assert any(target.startswith("docs/") for target in targets)
    missing = sorted({target for target in targets if not (ROOT / target).exists()})
    assert not missing, missing


def _documented():
    names = set()
    for page in sorted((ROOT / "docs" / "api").glob("*.md")):
        names.update(DIRECTIVE.findall(page.read_text(encoding="utf-8")))
    return names


def test_api_reference_documents_every_public_name():
    documented = _documented()
    public = {f"keras_langevin.{name}" for name in keras_langevin.__all__}
    public |= {f"keras_langevin.sampling.{name}" for name in sampling.__all__}
    missing = sorted(public - documented)
    assert not missing, f"add `::: NAME` to a page under docs/api/ for: {missing}"
    unknown = sorted(d for d in documented if not d.startswith("keras_langevin"))
    assert not unknown, unknown
