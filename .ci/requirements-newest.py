"""Prints the requirements of the newest leg of .ci/matrix, one a line: every dependency that
`pip install -e ".[test]"` asks for (the project's own extras expanded), with keras and
tensorflow replaced by their nightly builds. Run with any Python 3.11+ (tomllib only)."""

import re
from pathlib import Path

import tomllib

NIGHTLY = {"keras": "keras-nightly>=3.16.0.dev0", "tensorflow": "tf-nightly>=2.23.0.dev0"}

project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
project = project["project"]
extras = project["optional-dependencies"]


def expand(texts, seen):
    """The requirements of `texts`, a self-reference `name[a,b]` replaced by extras a and b."""
    out = []
    for text in texts:
        name, extra = re.match(r"\s*([A-Za-z0-9_.-]+)\s*(?:\[([^\]]*)\])?", text).groups()
        if name != project["name"]:
            out.append(NIGHTLY.get(name.lower(), text))
            continue
        for one in (extra or "").split(","):
            if one.strip() and one.strip() not in seen:
                seen.add(one.strip())
                out += expand(extras[one.strip()], seen)
    return out


for line in dict.fromkeys(expand(project["dependencies"] + extras["test"], {"test"})):
    print(line)
