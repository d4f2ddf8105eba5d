"""What the web app's routes share: the loaded model, the job queue, the data and runs folders and the serve options,
reached in a route through the :func:`context` dependency."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from starlette.requests import HTTPConnection

from .datadir import DataDir
from .jobs import JobQueue
from .live import LiveSlot
from .runs import RunsFolder

__all__ = ["AppContext", "context"]


@dataclass
class AppContext:
    recognizer: Any
    queue: JobQueue
    data: DataDir
    runs: RunsFolder | None
    slot: LiveSlot
    max_upload_mb: float

    @property
    def max_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)


def context(conn: HTTPConnection) -> AppContext:
    """The app's :class:`AppContext` (a FastAPI dependency)."""
    return conn.app.state.context
