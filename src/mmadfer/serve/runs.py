"""The Runs workspace: the training and evaluation run folders under ``--runs``, read-only.

A run folder is one that holds what ``mmadfer train`` or ``mmadfer evaluate`` writes (``log.csv``,
``curves.png``, ``metrics.json``, ``confusion.png``, ``report.html``...), at most two levels down (so
``runs/cv/fold1`` is found). Files are served only from inside the folder, after resolving links, and only of the
kinds listed in :data:`SERVED`.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd

from ..evaluation.glossary import metric_rows, verdict

__all__ = ["RunsFolder", "SERVED"]

#: file kinds a run may serve, with their media types
SERVED = {".png": "image/png", ".json": "application/json", ".csv": "text/csv; charset=utf-8",
          ".md": "text/markdown; charset=utf-8", ".txt": "text/plain; charset=utf-8",
          ".yaml": "text/plain; charset=utf-8", ".html": "text/html; charset=utf-8"}
_MARKERS = ("metrics.json", "log.csv", "curves.png", "confusion.png", "report.html", "summary.csv")
_DEPTH = 2


class RunsFolder:
    """The folder given to ``--runs``."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise ValueError(f"--runs {root}: not a folder")

    def list(self) -> list[dict[str, Any]]:
        """Each run: ``name`` (its path under the root), ``metrics`` (numbers of ``metrics.json``), ``last_epoch``
        (the last row of ``log.csv``), ``metrics_explained`` (the headline metrics with their one-line meaning and
        chance level, :func:`mmadfer.evaluation.glossary.metric_rows`; ``label`` is the metric's short name),
        ``verdict`` (:func:`mmadfer.evaluation.glossary.verdict`'s sentences as one line, None without metrics;
        ``verdict_lines`` the list), ``images``, ``tables`` and ``report`` (URLs, percent-encoded: a folder may be
        named with ``#``, ``?`` or ``%``), ``modified`` (the newest file's time) and ``running`` (a training run
        without its final ``metrics.json`` yet: still running, or stopped before the end, as ``modified`` tells)."""
        runs = []
        for folder in self._folders():
            files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in SERVED)
            names = {p.name for p in files}
            if not names & set(_MARKERS):
                continue
            rel = folder.relative_to(self.root).as_posix()
            url = lambda p: "/api/runs/file/" + quote((folder / p.name).relative_to(self.root).as_posix())  # noqa: E731
            training = "log.csv" in names and "metrics.json" not in names
            doc = _read_json(folder / "metrics.json")
            explained, lines = _explain(doc)
            runs.append({
                "name": rel if rel != "." else self.root.name,
                "metrics": _numbers(doc),
                "metrics_explained": explained,
                "verdict": " ".join(lines) or None,
                "verdict_lines": lines,
                "last_epoch": _last_row(folder / "log.csv"),
                "images": [{"name": p.name, "url": url(p)} for p in files if p.suffix == ".png"],
                "tables": [{"name": p.name, "url": url(p)} for p in files if p.suffix in (".csv", ".json", ".md")],
                "report": url(folder / "report.html") if "report.html" in names else None,
                "modified": max(p.stat().st_mtime for p in files),
                "running": training,
            })
        return sorted(runs, key=lambda r: r["modified"], reverse=True)

    def _folders(self):
        yield self.root
        level = [self.root]
        for _ in range(_DEPTH):
            level = [d for p in level for d in sorted(p.iterdir()) if d.is_dir() and not d.name.startswith(".")]
            yield from level

    def file(self, rel: str) -> Path | None:
        """The file ``rel`` inside the root, or None (outside it, hidden, missing or not a served kind)."""
        if "\x00" in rel:
            return None
        path = (self.root / rel).resolve()
        if not path.is_relative_to(self.root) or path == self.root:
            return None
        if any(part.startswith(".") for part in path.relative_to(self.root).parts):
            return None
        if path.suffix not in SERVED or not path.is_file():
            return None
        return path

    @staticmethod
    def media_type(path: Path) -> str:
        return SERVED[path.suffix]


def _read_json(path: Path) -> dict[str, Any]:
    """A ``metrics.json`` as a dict ({} when missing, half-written or not an object)."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _explain(doc: dict[str, Any]) -> tuple[list[dict[str, Any]], list[str]]:
    """The glossary's rows and verdict for a ``metrics.json``; nothing for one not in the evaluation's format (a
    run folder may hold any JSON under that name)."""
    if not doc:
        return [], []
    try:
        return [{**row, "label": row["name"]} for row in metric_rows(doc)], verdict(doc)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        return [], []


def _numbers(doc: dict[str, Any]) -> dict[str, float]:
    """The scalar numbers of a ``metrics.json`` (nested keys joined with '/'), or {}."""
    out: dict[str, float] = {}

    def walk(prefix: str, value: Any, depth: int) -> None:
        if isinstance(value, bool):
            return
        if isinstance(value, (int, float)) and math.isfinite(value):
            out[prefix] = value
        elif isinstance(value, dict) and depth < 2:
            for k, v in value.items():
                walk(f"{prefix}/{k}" if prefix else str(k), v, depth + 1)

    walk("", doc, 0)
    return dict(list(out.items())[:40])


def _last_row(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None

    try:
        df = pd.read_csv(path)
    except Exception:  # noqa: BLE001 - a half-written log shows as nothing
        return None
    if not len(df):
        return None
    row = df.iloc[-1].to_dict()
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else (v.item() if hasattr(v, "item") else v))
            for k, v in row.items()}
