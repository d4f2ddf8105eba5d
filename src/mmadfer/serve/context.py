"""What the web app's routes share: the loaded model, the job queue, the data and runs folders, the project (its
labels and trainer) and the serve options, reached in a route through the :func:`context` dependency."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import HTTPConnection

from .datadir import DataDir
from .jobs import JobQueue
from .labelling import ProjectLabels
from .live import LiveSlot
from .project import Project
from .runs import RunsFolder
from .training import Trainer

__all__ = ["AppContext", "context"]


@dataclass
class AppContext:
    recognizer: Any
    queue: JobQueue
    data: DataDir
    runs: RunsFolder | None
    slot: LiveSlot
    max_upload_mb: float
    project: Project | None = None
    labels: ProjectLabels | None = None
    trainer: Trainer | None = None

    @property
    def max_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


def context(conn: HTTPConnection) -> AppContext:
    """The app's :class:`AppContext` (a FastAPI dependency)."""
    return conn.app.state.context
