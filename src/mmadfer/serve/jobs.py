"""The Analyze queue: uploaded videos run in the background, a few at a time, with progress and cancel.

Each job lives in its own folder ``<data-dir>/jobs/<id>/`` under a generated id; the uploaded file is stored there as
``video`` whatever its name was (the name is only shown), and ``job.json`` records the finished job, so that a kept
data folder (``--keep``) lists its jobs again at the next start. A finished job holds exactly what ``mmadfer predict``
writes for the same file and options: ``timeline.csv`` (the same bytes: the same :func:`mmadfer.predict.write_table`
on the same :meth:`Recognizer.predict_video` table), ``timeline.json``, ``chart.png`` and, when asked,
``anonymized.mp4``.

:class:`DataDir` owns the data folder and its retention: by default a private temporary folder (mode 0700), removed
when the server stops, unless ``keep``.
"""
from __future__ import annotations

import json
import re
import shutil
import tempfile
import threading
import time
import unicodedata
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import MmadferError, one_line
from ..io import atomic_write
from ..media.decode import open_video
from ..media.windows import window_spans
from ..predict.recognizer import Recognizer
from ..predict.table import write_table
from ..predict.timeline import plot_timeline
from ..predict.anonymize import anonymize_video

__all__ = ["DataDir", "Job", "JobQueue", "JOB_FILES", "STATUSES", "display_name"]

STATUSES = ("queued", "running", "done", "failed", "cancelled")
#: what a job's folder may serve: URL name -> (file name in the job folder, media type)
JOB_FILES = {
    "video": ("video", None),  # the upload; its media type is sniffed when it arrives
    "timeline.csv": ("timeline.csv", "text/csv; charset=utf-8"),
    "timeline.json": ("timeline.json", "application/json"),
    "chart.png": ("chart.png", "image/png"),
    "anonymized.mp4": ("anonymized.mp4", "video/mp4"),
}
_ID = re.compile(r"[0-9a-f]{32}")


def display_name(name: str | None) -> str:
    """An uploaded file's name, fit to show (never to use as a path): its last component, printable, at most 120
    characters."""
    name = re.split(r"[\\/]", name or "")[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip()
    return name[:120] or "upload"


class DataDir:
    """The folder that holds uploads and results, and the rule for when it goes.

    ``path`` None: a new private temporary folder (mode 0700). At :meth:`close` the jobs of this session are deleted
    (and a temporary folder with them) unless ``keep``.
    """

    def __init__(self, path: str | Path | None = None, *, keep: bool = False):
        self.temporary = path is None
        self.root = Path(tempfile.mkdtemp(prefix="mmadfer-serve-")) if path is None else Path(path)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.root = self.root.resolve()
        self.jobs = self.root / "jobs"
        self.jobs.mkdir(exist_ok=True, mode=0o700)
        self.keep = keep
        self._created: set[Path] = set()

    def new_job_dir(self) -> tuple[str, Path]:
        job_id = uuid.uuid4().hex
        folder = self.jobs / job_id
        folder.mkdir(mode=0o700)
        self._created.add(folder)
        return job_id, folder

    def remove(self, folder: Path) -> None:
        shutil.rmtree(folder, ignore_errors=True)
        self._created.discard(folder)

    def retention(self) -> str:
        """One line for the page: where uploads and results are and when they go."""
        if self.keep:
            return (f"Uploads and results stay on this machine in {self.root} and are kept after the server stops; "
                    "delete a job to remove its files.")
        if not self.temporary:
            return (f"Uploads and results stay on this machine in {self.root} and are deleted when the server stops; "
                    "delete a job to remove its files sooner.")
        return ("Uploads and results stay on this machine, in a private folder that is deleted when the server "
                "stops; delete a job to remove its files sooner.")

    def close(self) -> None:
        if self.keep:
            return
        for folder in list(self._created):
            self.remove(folder)
        if self.temporary:
            shutil.rmtree(self.root, ignore_errors=True)


class Cancelled(Exception):
    """Raised inside a running job when it is cancelled or deleted."""


@dataclass
class Job:
    """One uploaded video and its results."""

    id: str
    name: str
    folder: Path
    anonymize: bool = False
    stride_s: float | None = None
    window_s: float | None = None
    media_type: str = "application/octet-stream"
    status: str = "queued"
    stage: str = ""
    progress: float = 0.0
    windows_done: int = 0
    windows_total: int | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    created: float = field(default_factory=time.time)
    cancel_event: threading.Event = field(default_factory=threading.Event, repr=False)
    deleted: bool = False

    @property
    def video(self) -> Path:
        return self.folder / "video"

    _RECORD = ("id", "name", "anonymize", "stride_s", "window_s", "media_type", "status", "progress", "windows_done",
               "windows_total", "error", "notes", "created")

    def save(self, **final: Any) -> None:
        """Write ``job.json`` beside the results (with ``final`` values), so a kept data folder lists its jobs again
        after a restart."""
        with atomic_write(self.folder / "job.json") as f:
            json.dump({**{k: getattr(self, k) for k in self._RECORD}, **final}, f, indent=1)

    @classmethod
    def load(cls, folder: Path) -> "Job | None":
        try:
            record = json.loads((folder / "job.json").read_text())
            job = cls(folder=folder, **{k: record[k] for k in cls._RECORD})
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return job if job.id == folder.name and job.status in STATUSES else None

    def public(self) -> dict[str, Any]:
        """What ``GET /api/jobs/{id}`` returns."""
        files = [name for name, (file, _) in JOB_FILES.items() if (self.folder / file).is_file()] \
            if self.status == "done" else []
        return {"id": self.id, "name": self.name, "status": self.status, "stage": self.stage,
                "progress": round(self.progress, 4), "windows_done": self.windows_done,
                "windows_total": self.windows_total, "error": self.error, "notes": self.notes,
                "anonymize": self.anonymize, "stride": self.stride_s, "window": self.window_s,
                "created": self.created, "files": {name: f"/api/jobs/{self.id}/{name}" for name in files}}


class JobQueue:
    """Runs jobs on ``workers`` background threads with one shared :class:`~mmadfer.Recognizer`.

    ``keep_audio``: anonymised copies keep the audio track (off by default, as in ``mmadfer predict``).
    """

    def __init__(self, recognizer: Recognizer, data: DataDir, *, workers: int = 1, keep_audio: bool = False):
        self.recognizer = recognizer
        self.data = data
        self.keep_audio = keep_audio
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="mmadfer-job")
        for folder in sorted(data.jobs.iterdir()):  # finished jobs of an earlier session, kept with --keep
            job = Job.load(folder) if _ID.fullmatch(folder.name) else None
            if job is not None and job.status in ("done", "failed", "cancelled"):
                self._jobs[job.id] = job

    def new_job(self, name: str | None) -> Job:
        """A job folder to receive an upload; the job is not listed until :meth:`submit`."""
        job_id, folder = self.data.new_job_dir()
        return Job(id=job_id, name=display_name(name), folder=folder)

    def discard(self, job: Job) -> None:
        """Remove an upload that never became a job (too large, not a video)."""
        self.data.remove(job.folder)

    def submit(self, job: Job) -> Job:
        with self._lock:
            self._jobs[job.id] = job
        self._pool.submit(self._run, job)
        return job

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id) if _ID.fullmatch(job_id or "") else None

    def list(self) -> list[Job]:
        return sorted(self._jobs.values(), key=lambda j: j.created)

    def cancel(self, job_id: str) -> Job | None:
        job = self.get(job_id)
        if job is not None and job.status in ("queued", "running"):
            job.cancel_event.set()
            if job.status == "queued":
                job.status = "cancelled"
        return job

    def delete(self, job_id: str) -> bool:
        """Cancel the job and remove its folder (at once, or as soon as a running job stops)."""
        with self._lock:
            job = self._jobs.pop(job_id, None) if _ID.fullmatch(job_id or "") else None
        if job is None:
            return False
        job.deleted = True
        job.cancel_event.set()
        if job.status != "running":
            self.data.remove(job.folder)
        return True

    def close(self) -> None:
        """Cancel everything and wait for the workers to stop."""
        for job in list(self._jobs.values()):
            job.cancel_event.set()
        self._pool.shutdown(wait=True, cancel_futures=True)

    # -- the work ---------------------------------------------------------------------------------------------------
    def _run(self, job: Job) -> None:
        if job.cancel_event.is_set():
            job.status = "cancelled"
            if job.deleted:
                self.data.remove(job.folder)
            return
        job.status, job.stage = "running", "predicting"
        end: dict[str, Any] = {"status": "done", "progress": 1.0, "error": None}
        try:
            self._predict(self.recognizer, job)
        except Cancelled:
            end = {"status": "cancelled", "progress": job.progress, "error": None}
        except Exception as e:  # noqa: BLE001 - one failed video never stops the queue: its one-line reason
            if isinstance(e, MmadferError) and e.path == str(job.video):
                e = type(e)(job.name, e.reason)  # the user's file name, not the server's storage path
            end = {"status": "failed", "progress": job.progress, "error": one_line(e, job.name)}
        finally:
            if job.deleted:
                self.data.remove(job.folder)
        if not job.deleted:
            job.save(**end)  # on disk before it shows as finished
        job.stage = ""
        job.status, job.progress, job.error = end["status"], end["progress"], end["error"]

    def _predict(self, rec: Recognizer, job: Job) -> None:
        window = job.window_s or rec.window_s
        reader = open_video(job.video, max_side=rec.max_side)
        try:
            duration = reader.duration_s
        finally:
            reader.close()
        job.windows_total = len(window_spans(duration, window, job.stride_s or window)) if duration else None
        share = 0.8 if job.anonymize else 1.0  # the anonymised copy takes the rest of the bar
        seen: set[float] = set()

        def on_window(row: dict[str, Any], prepared: dict[str, Any]) -> None:
            if job.cancel_event.is_set():
                raise Cancelled
            seen.add(row["start_s"])
            job.windows_done = len(seen)
            if job.windows_total:
                job.progress = share * min(1.0, job.windows_done / job.windows_total)

        # exactly what `mmadfer predict` does for one file (commands/predict.py _run_batch)
        df = rec.predict_video(job.video, job.window_s, job.stride_s, on_window=on_window)
        if not len(df):
            raise ValueError("no windows: the video has no decodable frames")
        write_table(df, job.folder / "timeline.csv")
        df.attrs["video"] = job.name
        write_table(df, job.folder / "timeline.json")
        try:
            plot_timeline(df, job.folder / "chart.png")
        except ImportError as e:
            job.notes.append(f"no chart.png: {e}")
        if job.anonymize:
            if job.cancel_event.is_set():
                raise Cancelled

            job.stage = "anonymising"
            anonymize_video(job.video, job.folder / "anonymized.mp4", df, detector=rec.detector,
                            keep_audio=self.keep_audio, max_side=rec.max_side)
