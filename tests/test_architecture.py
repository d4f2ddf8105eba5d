"""docs/ARCHITECTURE.md names every file of the package, so the map cannot go stale silently: a new module without
its line on that page fails here (its path relative to ``src/mmadfer``, e.g. ``predict/archive.py``, in backticks)."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "mmadfer"
DOC = ROOT / "docs" / "ARCHITECTURE.md"
#: Package data that is not code (training presets); ``configs/<name>.yaml`` covers them.
DATA_SUFFIXES = {".yaml"}


def package_files(root: Path = PACKAGE) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts and p.suffix not in DATA_SUFFIXES
                  and p.suffix != ".pyc")


def missing_from(doc: str, files: list[str]) -> list[str]:
    named = set(re.findall(r"`([^`\s]+)`", doc))
    return [f for f in files if f not in named]


def test_every_package_file_is_on_the_architecture_page():
    files = package_files()
    assert "predict/archive.py" in files and "serve/static/app.js" in files
    missing = missing_from(DOC.read_text(), files)
    assert not missing, "add a line for each to docs/ARCHITECTURE.md (and a layer in tests/test_imports.py):\n" + \
        "\n".join(missing)


def test_a_removed_line_is_caught():
    doc = DOC.read_text()
    line = next(x for x in doc.splitlines() if x.startswith("| `predict/archive.py` |"))
    assert missing_from(doc.replace(line + "\n", ""), package_files()) == ["predict/archive.py"]
