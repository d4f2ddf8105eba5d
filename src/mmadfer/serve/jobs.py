"""The Analyze queue: uploaded videos run in the background, a few at a time, with progress, an estimate and cancel.

Each job lives in its own folder ``<data-dir>/jobs/<id>/`` under a generated id; the uploaded file is stored there as
``video`` whatever its name was (the name is only shown), and ``job.json`` records the job, so that a kept data
folder (``--keep``) lists its jobs again at the next start. Everything a job writes, temporaries included, is inside
its folder: deleting the job deletes it all, also after a failure (a full disk included).

A job runs in stages: ``preview`` (only for an upload the browser cannot play: an H.264 copy,
:mod:`~mmadfer.serve.preview`), ``predicting`` (rows appear in :attr:`Job.rows` as they are predicted, and a small
JPEG per face track in ``thumbs/``), then the job is *viewable*: ``timeline.csv`` (the same bytes as ``mmadfer
predict`` writes for the same file and options), ``timeline.json``, ``chart.png``, ``summary.json`` (the numbers of
:func:`mmadfer.predict.summary.summarize`, as in ``summary.csv``) and ``report.html`` (``predict --report``'s page) are
there; then, when asked,
``anonymising`` (``anonymized.mp4``) while the timeline can already be viewed. Cancel is checked at every window and
every frame, so it takes effect within a second; the job shows ``cancelling`` until it has stopped.
"""
from __future__ import annotations

import json
import math
import re
import threading
import time
import unicodedata
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..errors import MmadferError, one_line
from ..io import atomic_path, atomic_write
from ..media.decode import open_video
from ..media.windows import window_spans
from ..predict.anonymize import anonymize_video
from ..predict.engine import Progress
from ..predict.report import write_video_report
from ..predict.summary import summarize
from ..predict.table import write_table
from ..predict.timeline import plot_timeline
from .datadir import JOB_ID, DataDir
from .preview import make_preview, playback
from .rows import json_safe

__all__ = ["Job", "JobQueue", "Cancelled", "JOB_FILES", "STATUSES", "display_name"]

STATUSES = ("queued", "running", "cancelling", "done", "failed", "cancelled")
_FINISHED = ("done", "failed", "cancelled")
#: what a job's folder may serve: URL name -> (file name in the job folder, media type)
JOB_FILES = {
    "video": ("video", None),  # the upload; its media type is sniffed when it arrives
    "preview": ("preview.mp4", "video/mp4"),
    "timeline.csv": ("timeline.csv", "text/csv; charset=utf-8"),
    "timeline.json": ("timeline.json", "application/json"),
    "chart.png": ("chart.png", "image/png"),
    "anonymized.mp4": ("anonymized.mp4", "video/mp4"),
    "report.html": ("report.html", "text/html; charset=utf-8"),  # served sandboxed (REPORT_CSP)
}
_THUMB_SIDE = 96
_MAX_TRACK_NAME = 60


def display_name(name: str | None) -> str:
    """An uploaded file's name, fit to show (never to use as a path): its last component, printable, at most 120
    characters."""
    name = re.split(r"[\\/]", name or "")[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip()
    return name[:120] or "upload"


class Cancelled(Exception):
    """Raised inside a running job when it is cancelled or deleted."""


@dataclass
class Job:
    """One uploaded video and its results."""

    id: str
    name: str
    folder: Path
    display_name: str = ""
    anonymize: bool = False
    stride_s: float | None = None
    window_s: float | None = None
    media_type: str = "application/octet-stream"
    status: str = "queued"
    stage: str = "queued"
    progress: float = 0.0
    windows_done: int = 0
    windows_total: int | None = None
    error: str | None = None
    notes: list[str] = field(default_factory=list)
    created: float = field(default_factory=time.time)
    started: float | None = None
    ended: float | None = None
    viewable: bool = False
    playable: bool = True
    playback_note: str | None = None
    tracks: list[int] = field(default_factory=list)
    track_names: dict[str, str] = field(default_factory=dict)
    kept: bool = False
    rows: list[dict[str, Any]] = field(default_factory=list, repr=False)
    cancel_event: threading.Event = field(default_factory=threading.Event, repr=False)
    deleted: bool = False
    active: bool = False  # a worker is on it (its folder goes when the worker stops)
    predict_estimate_s: float | None = field(default=None, repr=False)
    anonymise_started: float | None = field(default=None, repr=False)
    viewable_progress: float = field(default=1.0, repr=False)
    _summary: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def video(self) -> Path:
        return self.folder / "video"

    _RECORD = ("id", "name", "display_name", "anonymize", "stride_s", "window_s", "media_type", "status", "progress",
               "windows_done", "windows_total", "error", "notes", "created", "started", "ended", "viewable",
               "playable", "playback_note", "tracks", "track_names", "kept")

    def save(self, **final: Any) -> None:
        """Write ``job.json`` beside the results (with ``final`` values), so a kept data folder lists its jobs again
        after a restart."""
        with atomic_write(self.folder / "job.json") as f:
            json.dump({**{k: getattr(self, k) for k in self._RECORD}, **final}, f, indent=1)

    @classmethod
    def load(cls, folder: Path) -> "Job | None":
        try:
            record = json.loads((folder / "job.json").read_text())
            job = cls(folder=folder, **{k: record[k] for k in cls._RECORD if k in record})
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if job.id != folder.name or job.status not in _FINISHED:
            return None
        job.stage = ""
        return job

    def elapsed_s(self) -> float | None:
        if self.started is None:
            return None
        return round((self.ended or time.time()) - self.started, 3)

    def eta_s(self) -> float | None:
        """Seconds left in the running stage: while predicting, until the timeline can be viewed (the prediction
        engine's estimate); while anonymising, until the copy is done (from its pace so far). None when unknown."""
        if self.status != "running":
            return None
        if self.stage == "predicting":
            return None if self.predict_estimate_s is None else round(self.predict_estimate_s, 1)
        if self.stage == "anonymising" and self.anonymise_started is not None:
            share = self.progress - self.viewable_progress
            if share > 0.01:
                spent = time.time() - self.anonymise_started
                return round(spent * (1 - self.progress) / share, 1)
        return None

    def thumbs(self) -> dict[str, str]:
        folder = self.folder / "thumbs"
        return {str(t): f"/api/jobs/{self.id}/thumbs/{t}.jpg" for t in self.tracks
                if t >= 0 and (folder / f"{t}.jpg").is_file()}

    def public(self) -> dict[str, Any]:
        """What ``GET /api/jobs/{id}`` returns (see the serve API in docs/ARCHITECTURE.md)."""
        files: dict[str, Any] = {}
        if not self.deleted:
            for name, (file, _) in JOB_FILES.items():
                if (self.folder / file).is_file() and (name in ("video", "preview") or self.viewable):
                    if name == "anonymized.mp4" and self.status != "done":
                        continue  # complete only at the end (it is published atomically, but say so plainly)
                    files[name] = f"/api/jobs/{self.id}/{name}"
            files["thumbs"] = self.thumbs()
        return {"id": self.id, "name": self.name, "display_name": self.display_name or self.name,
                "status": self.status, "stage": self.stage, "progress": round(self.progress, 4),
                "windows_done": self.windows_done, "windows_total": self.windows_total, "elapsed_s": self.elapsed_s(),
                "eta_s": self.eta_s(), "viewable": self.viewable, "error": self.error, "notes": self.notes,
                "anonymize": self.anonymize, "stride": self.stride_s, "window": self.window_s,
                "created": self.created, "playable": self.playable, "playback_note": self.playback_note,
                "tracks": self.tracks, "track_names": self.track_names, "summary": self.summary(), "files": files}

    def summary(self) -> dict[str, Any] | None:
        """The per-video summary of the finished timeline, from ``summary.json`` (None until viewable)."""
        if self._summary is None and self.viewable:
            try:
                self._summary = json.loads((self.folder / "summary.json").read_text())
            except (OSError, ValueError):
                return None
        return self._summary

    def windows(self, since: int = 0) -> list[dict[str, Any]]:
        """Rows ``since`` on: those predicted so far while running, the finished timeline's afterwards."""
        if self.viewable and not self.rows:  # a kept job of an earlier run: from its timeline.json
            try:
                self.rows = json.loads((self.folder / "timeline.json").read_text())["windows"]
            except (OSError, ValueError, KeyError):
                return []
        return self.rows[max(0, since):]


class JobQueue:
    """Runs jobs on ``workers`` background threads with one shared :class:`~mmadfer.Recognizer`.

    ``keep_audio``: anonymised copies keep the audio track (off by default, as in ``mmadfer predict``).
    """

    def __init__(self, recognizer, data: DataDir, *, workers: int = 1, keep_audio: bool = False):
        self.recognizer = recognizer
        self.data = data
        self.keep_audio = keep_audio
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="mmadfer-job")
        for folder in sorted(data.jobs.iterdir()):  # finished jobs of an earlier run, kept with --keep
            job = Job.load(folder) if JOB_ID.fullmatch(folder.name) else None
            if job is not None:
                self._jobs[job.id] = job

    def new_job(self, name: str | None) -> Job:
        """A job folder to receive an upload; the job is not listed until :meth:`submit`."""
        job_id, folder = self.data.new_job_dir()
        return Job(id=job_id, name=display_name(name), folder=folder, kept=self.data.keep)

    def discard(self, job: Job) -> None:
        """Remove an upload that never became a job (too large, not a video)."""
        self.data.remove(job.folder)

    def submit(self, job: Job) -> Job:
        with self._lock:
            taken = {j.display_name for j in self._jobs.values()}
            job.display_name, n = job.name, 1
            while job.display_name in taken:  # same-name uploads told apart: "clip.mp4 (2)"
                n += 1
                job.display_name = f"{job.name} ({n})"
            self._jobs[job.id] = job
        self._pool.submit(self._run, job)
        return job

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id) if JOB_ID.fullmatch(job_id or "") else None

    def list(self) -> list[Job]:
        return sorted(self._jobs.values(), key=lambda j: j.created)

    def cancel(self, job_id: str) -> Job | None:
        """Ask a queued or running job to stop: a queued one is cancelled at once, a running one shows
        ``cancelling`` until its worker stops (at the next window or frame)."""
        job = self.get(job_id)
        with self._lock:
            if job is not None and job.status in ("queued", "running"):
                job.cancel_event.set()
                job.status = "cancelled" if job.status == "queued" else "cancelling"
                if job.status == "cancelled":
                    job.stage = ""
        return job

    def rename_track(self, job: Job, track: int, name: str) -> Job:
        """Name a face track of ``job`` (an empty name restores the default); stored in ``job.json``."""
        name = "".join(c for c in name if unicodedata.category(c)[0] != "C").strip()[:_MAX_TRACK_NAME]
        if track not in job.tracks:
            raise KeyError(track)
        with self._lock:
            if name:
                job.track_names[str(track)] = name
            else:
                job.track_names.pop(str(track), None)
            if job.status in _FINISHED:
                job.save()
        return job

    def delete(self, job_id: str) -> bool:
        """Cancel the job and remove its folder: at once, or as soon as its worker stops."""
        with self._lock:
            job = self._jobs.pop(job_id, None) if JOB_ID.fullmatch(job_id or "") else None
            if job is None:
                return False
            job.deleted = True
            job.cancel_event.set()
            now = not job.active
        if now:
            self.data.remove(job.folder)
        return True

    def close(self) -> None:
        """Cancel everything and wait for the workers to stop."""
        for job in list(self._jobs.values()):
            job.cancel_event.set()
        self._pool.shutdown(wait=True, cancel_futures=True)

    # -- the work ---------------------------------------------------------------------------------------------------
    def _run(self, job: Job) -> None:
        with self._lock:
            if job.deleted or job.cancel_event.is_set():
                job.status, job.stage = "cancelled", ""
                return
            job.active = True
            job.status, job.started = "running", time.time()
        end: dict[str, Any] = {"status": "done", "error": None}
        try:
            self._work(job)
            end["progress"] = 1.0
        except Cancelled:
            end["status"] = "cancelled"
        except Exception as e:  # noqa: BLE001 - one failed video never stops the queue: its one-line reason
            if isinstance(e, MmadferError) and e.path == str(job.video):
                e = type(e)(job.name, e.reason)  # the user's file name, not the server's storage path
            end.update(status="failed", error=one_line(e, job.name))
        job.ended = time.time()
        if not job.deleted:
            try:
                job.save(**end, stage="")  # on disk before it shows as finished, where the disk allows
            except OSError as e:  # a full disk: the job still ends, and says why it is not recorded
                job.notes.append(f"job.json not written: {e.strerror or e}")
        with self._lock:
            job.stage = ""
            job.status, job.error = end["status"], end["error"]
            job.progress = end.get("progress", job.progress)
            job.active = False
            gone = job.deleted
        if gone:
            self.data.remove(job.folder)

    def _check(self, job: Job) -> None:
        if job.cancel_event.is_set():
            raise Cancelled

    def _work(self, job: Job) -> None:
        rec = self.recognizer
        reader = open_video(job.video, max_side=rec.max_side)
        try:
            duration = reader.duration_s
        finally:
            reader.close()
        window = job.window_s or rec.window_s
        job.windows_total = len(window_spans(duration, window, job.stride_s or window)) if duration else None

        job.playable, reason = playback(job.video)
        if not job.playable:
            job.stage = "preview"
            try:
                make_preview(job.video, job.folder / "preview.mp4", on_frame=lambda t: self._check(job))
                job.playback_note = f"{reason}: showing an H.264 preview made on this machine"
            except Cancelled:
                raise
            except Exception as e:  # noqa: BLE001 - the timeline does not need it
                job.playback_note = f"{reason}, and no preview could be made ({one_line(e)})"

        job.stage = "predicting"
        share = 0.8 if job.anonymize else 1.0  # the anonymised copy takes the rest of the bar
        job.viewable_progress = share
        thumbs = _Thumbs(job.folder / "thumbs")

        def on_window(row: dict[str, Any], prepared: dict[str, Any]) -> None:
            self._check(job)
            tid = int(row.get("track_id", -1))
            if tid not in job.tracks:
                job.tracks.append(tid)
            thumbs.offer(tid, row.get("face_coverage"), prepared.get("video"))
            job.rows.append(json_safe(row))

        def on_progress(p: Progress) -> None:
            self._check(job)
            job.windows_done, job.windows_total = p.windows_done, p.windows_total or job.windows_total
            job.predict_estimate_s = p.estimate_s
            if job.windows_total:
                job.progress = share * min(1.0, job.windows_done / job.windows_total)

        # exactly what `mmadfer predict` does for one file (commands/predict.py _run_batch)
        df = rec.predict_video(job.video, job.window_s, job.stride_s, on_window=on_window, on_progress=on_progress,
                               poll=lambda: self._check(job))
        if not len(df):
            raise ValueError("no windows: the video has no decodable frames")
        thumbs.write()
        write_table(df, job.folder / "timeline.csv")
        df.attrs["video"] = job.name
        write_table(df, job.folder / "timeline.json")
        job.rows = json.loads((job.folder / "timeline.json").read_text())["windows"]  # the final rows
        with atomic_write(job.folder / "summary.json") as f:
            json.dump(json_safe(summarize(df)), f, indent=1)
        try:
            plot_timeline(df, job.folder / "chart.png")
            write_video_report(df, job.folder / "report.html", provenance=rec.provenance, video_name=job.name)
        except ImportError as e:
            job.notes.append(f"no chart.png or report.html: {e}")
        job.viewable = True
        job.progress = share
        if job.anonymize:
            self._check(job)
            job.stage, job.anonymise_started = "anonymising", time.time()

            def on_frame(t: float) -> None:
                self._check(job)
                if duration:
                    job.progress = share + (1 - share) * min(1.0, t / duration)

            anonymize_video(job.video, job.folder / "anonymized.mp4", df, detector=rec.detector,
                            keep_audio=self.keep_audio, max_side=rec.max_side, on_frame=on_frame)


class _Thumbs:
    """One small JPEG per face track: the middle frame of the crop the model saw in the track's window with the most
    face coverage. Written when a track first appears (so it shows while the job runs) and at the end."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.best: dict[int, tuple[float, np.ndarray]] = {}

    def offer(self, track: int, coverage: float | None, video) -> None:
        if track < 0 or video is None:
            return  # no face found: the whole frame was used, nothing to show as a face
        coverage = float(coverage) if coverage is not None and math.isfinite(coverage) else 0.0
        first = track not in self.best
        if first or coverage > self.best[track][0]:
            frames = np.asarray(video)  # [T, 3, S, S]
            frame = frames[len(frames) // 2].transpose(1, 2, 0)  # [S, S, 3]
            if frame.dtype != np.uint8:
                frame = (np.clip(frame, 0, 1) * 255).round().astype(np.uint8)
            self.best[track] = (coverage, np.ascontiguousarray(frame))
        if first:
            self._save(track)

    def _save(self, track: int) -> None:
        self.folder.mkdir(exist_ok=True, mode=0o700)
        image = Image.fromarray(self.best[track][1])
        image.thumbnail((_THUMB_SIDE, _THUMB_SIDE))
        with atomic_path(self.folder / f"{track}.jpg", suffix=".jpg") as tmp:
            image.save(tmp, format="JPEG", quality=85)

    def write(self) -> None:
        for track in self.best:
            self._save(track)
