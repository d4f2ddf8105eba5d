"""A labelling project (``mmadfer serve --project DIR``): one private folder that keeps a team's videos, their
timelines, the labels people give them and the runs trained on those labels, across server restarts::

    DIR/project.json        the project's class set (its own; it may differ from the checkpoint's)
    DIR/jobs/<id>/          each video and its results (the data folder of :class:`~mmadfer.serve.datadir.DataDir`,
                            kept: nothing of a project is deleted when the server stops)
    DIR/labels.csv          the labels (:class:`~mmadfer.data.labels.LabelStore`; ``labels.csv.history/`` for undo)
    DIR/datasets/<run>/     the clips ``Train on my labels`` cut from the labels (``prepare --labels``)
    DIR/runs/<run>/         the runs it trained (``train --init``), shown in the Runs workspace

The folder is created owner-only (mode 0700); an existing path that is not a folder, or a folder that others may
write to, is refused (another user could plant videos or labels there).
"""
from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Sequence

from ..data.labels import RESERVED, LabelStore, now
from ..io import atomic_write

__all__ = ["Project", "ProjectError", "MAX_CLASSES", "parse_classes"]

#: Classes a project may have: each gets a number key (1..9) in the Viewer.
MAX_CLASSES = 9
_FILE = "project.json"


class ProjectError(ValueError):
    """The project folder cannot be used: a one-line reason naming it."""


def parse_classes(text: str | Sequence[str]) -> tuple[str, ...]:
    """Class names from ``a,b,c`` (or a sequence): stripped, non-empty, unique, printable, not a reserved label
    (``no_face``, ``uncertain``), at most :data:`MAX_CLASSES`. A ValueError says which rule a name breaks."""
    names = [n.strip() for n in (text.split(",") if isinstance(text, str) else text)]
    names = [n for n in names if n]
    if not names:
        raise ValueError("no class names (give them as a,b,c)")
    if len(names) > MAX_CLASSES:
        raise ValueError(f"{len(names)} classes: a project has at most {MAX_CLASSES} (one number key each)")
    for n in names:
        if n in RESERVED:
            raise ValueError(f"{n!r} is a reserved label (timelines use it), not a class name")
        if not n.isprintable() or len(n) > 60:
            raise ValueError(f"class name {n!r} must be printable and at most 60 characters")
    if len(set(names)) != len(names):
        raise ValueError(f"class names repeat: {', '.join(names)}")
    return tuple(names)


class Project:
    """The project folder ``root``, created (0700) with ``classes`` if new (else those of the model: ``default``).

    An existing project keeps its classes: ``classes`` that differ from them are a :class:`ProjectError` (changing
    the class set would leave the labels meaning something else)."""

    def __init__(self, root: str | os.PathLike, *, classes: Sequence[str] | None = None,
                 default: Sequence[str] = ()):
        path = Path(root)
        try:
            st = os.stat(path)
        except FileNotFoundError:
            st = None
        if st is not None:
            if not stat.S_ISDIR(st.st_mode):
                raise ProjectError(f"--project {root}: exists and is not a folder")
            if st.st_mode & 0o022:
                mode = stat.S_IMODE(st.st_mode)
                raise ProjectError(f"--project {root}: other users may write to it (mode {mode:o}); make it private "
                                   "(chmod 700) or choose another folder")
        else:
            path.mkdir(parents=True, mode=0o700)
            os.chmod(path, 0o700)  # whatever the umask
        self.root = path.resolve()
        self.file = self.root / _FILE
        try:
            wanted = parse_classes(classes) if classes is not None else None
        except ValueError as e:
            raise ProjectError(f"--classes: {e}") from None
        if self.file.is_file():
            try:
                record = json.loads(self.file.read_text())
                self.classes = parse_classes(record["classes"])
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise ProjectError(f"{self.file}: not a project file ({e})") from None
            if wanted is not None and wanted != self.classes:
                raise ProjectError(f"--classes {','.join(wanted)}: the project {root} has the classes "
                                   f"{','.join(self.classes)} (its labels use them); start a new project for others")
        else:
            try:
                self.classes = wanted if wanted is not None else parse_classes(default)
            except ValueError as e:
                raise ProjectError(f"--project {root}: the checkpoint's classes cannot be a project's ({e}); "
                                   "give --classes") from None
            with atomic_write(self.file) as f:
                json.dump({"classes": list(self.classes), "created": now()}, f, indent=1)
        self.labels = LabelStore(self.root / "labels.csv")
        self.runs = self.root / "runs"
        self.datasets = self.root / "datasets"
        for folder in (self.runs, self.datasets):
            folder.mkdir(exist_ok=True, mode=0o700)

    @staticmethod
    def video_key(job_id: str) -> str:
        """A job's video as the labels file names it: relative to the project folder."""
        return f"jobs/{job_id}/video"
