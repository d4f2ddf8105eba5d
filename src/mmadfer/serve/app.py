"""The web app's routes: the page, the jobs API, the Live WebSocket and the Runs browser.

Every file route looks its file up (a job id in the queue's table, a name in :data:`~mmadfer.serve.jobs.JOB_FILES`,
a run file resolved inside ``--runs``) rather than joining request text into a path, so nothing outside the data and
runs folders can be served. The FastAPI docs pages (which load from CDNs) are off.
"""
from __future__ import annotations

import math
import threading
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, HTTPException, Request, WebSocket
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from .. import __version__
from ..errors import MmadferError
from ..media.decode import open_video
from .jobs import JOB_FILES, DataDir, JobQueue, display_name
from .live import LiveSlot, live_session
from .runs import RunsFolder
from .security import REPORT_CSP, Guard
from .upload import BadUpload, TooLarge, receive_upload

__all__ = ["create_app"]

STATIC = Path(str(resources.files("mmadfer.serve") / "static"))


def create_app(recognizer, *, host: str = "127.0.0.1", port: int = 8765, data: DataDir | None = None,
               token: str | None = None, max_upload_mb: float = 500, workers: int = 1, runs: str | Path | None = None,
               keep_audio: bool = False, extra_hosts: tuple[str, ...] = ()):
    """The ASGI app (guarded by :class:`~mmadfer.serve.security.Guard`) for a loaded :class:`~mmadfer.Recognizer`.

    ``data``: where uploads and results go (default: a new private temporary folder); it is closed (deleted unless
    kept) when the app shuts down. ``runs``: a folder of training/evaluation runs to browse.
    """
    data = data or DataDir()
    _serialise_forward(recognizer)
    queue = JobQueue(recognizer, data, workers=workers, keep_audio=keep_audio)
    runs_folder = RunsFolder(runs) if runs else None
    slot = LiveSlot()
    max_bytes = int(max_upload_mb * 1024 * 1024)

    @asynccontextmanager
    async def lifespan(app):
        try:
            yield
        finally:
            await run_in_threadpool(queue.close)
            data.close()

    app = FastAPI(title="mmadfer", docs_url=None, redoc_url=None, openapi_url=None, swagger_ui_oauth2_redirect_url=None,
                  lifespan=lifespan)
    app.state.queue, app.state.data = queue, data

    @app.get("/", include_in_schema=False)
    def index():
        return FileResponse(STATIC / "index.html", media_type="text/html; charset=utf-8")

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon():
        return FileResponse(STATIC / "favicon.svg", media_type="image/svg+xml")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/api/info")
    def info() -> dict[str, Any]:
        return {"version": __version__, "backend": recognizer.backend, "device": str(recognizer.device),
                "precision": recognizer.precision, "checkpoint": Path(recognizer.source or "model").name,
                "labels": list(recognizer.labels), "window_s": recognizer.window_s,
                "faces": recognizer.detector is not None, "retention": data.retention(),
                "max_upload_mb": max_upload_mb, "runs": runs_folder is not None}

    # -- jobs ----------------------------------------------------------------------------------------------------
    @app.post("/api/jobs", status_code=201)
    async def create_job(request: Request):
        job = queue.new_job(None)
        try:
            filename, fields = await receive_upload(request, job.video, max_bytes)
            job.name = display_name(filename)
            job.anonymize = _flag(fields.get("anonymize"), "anonymize")
            job.stride_s = _seconds(fields.get("stride"), "stride")
            job.window_s = _seconds(fields.get("window"), "window")
            job.media_type = await run_in_threadpool(_probe, job.video, job.name, recognizer.max_side)
        except TooLarge:
            queue.discard(job)
            raise HTTPException(413, f"upload larger than the limit of {max_upload_mb:g} MB (--max-upload-mb)")
        except (BadUpload, ValueError) as e:
            queue.discard(job)
            raise HTTPException(400, str(e))
        except BaseException:
            queue.discard(job)
            raise
        queue.submit(job)
        return job.public()

    @app.get("/api/jobs")
    def list_jobs() -> dict[str, Any]:
        return {"jobs": [j.public() for j in queue.list()]}

    @app.get("/api/jobs/{job_id}")
    def get_job(job_id: str) -> dict[str, Any]:
        return _job(queue, job_id).public()

    @app.post("/api/jobs/{job_id}/cancel")
    def cancel_job(job_id: str) -> dict[str, Any]:
        _job(queue, job_id)
        return queue.cancel(job_id).public()

    @app.delete("/api/jobs/{job_id}")
    def delete_job(job_id: str) -> dict[str, Any]:
        if not queue.delete(job_id):
            raise HTTPException(404, "no such job")
        return {"id": job_id, "deleted": True}

    @app.get("/api/jobs/{job_id}/{name}")
    def job_file(job_id: str, name: str, download: bool = False):
        job = _job(queue, job_id)
        if name not in JOB_FILES:
            raise HTTPException(404, "no such file")
        file, media_type = JOB_FILES[name]
        path = job.folder / file
        if (name != "video" and job.status != "done") or not path.is_file():
            raise HTTPException(404, f"{name} is not available for this job")
        stem = Path(job.name).stem or "video"
        filename = job.name if name == "video" else f"{stem}_{name}"
        return FileResponse(path, media_type=media_type or job.media_type, filename=filename,
                            content_disposition_type="attachment" if download else "inline")

    # -- live ------------------------------------------------------------------------------------------------------
    @app.websocket("/api/live")
    async def live(ws: WebSocket):
        await live_session(ws, recognizer, slot)

    # -- runs ------------------------------------------------------------------------------------------------------
    @app.get("/api/runs")
    def list_runs() -> dict[str, Any]:
        if runs_folder is None:
            return {"runs": [], "enabled": False}
        return {"runs": runs_folder.list(), "enabled": True}

    @app.get("/api/runs/file/{rel:path}")
    def run_file(rel: str):
        if runs_folder is None:
            raise HTTPException(404, "no --runs folder")
        path = runs_folder.file(rel)
        if path is None:
            raise HTTPException(404, "no such file in the runs folder")
        headers = {"content-security-policy": REPORT_CSP} if path.suffix == ".html" else None
        return FileResponse(path, media_type=RunsFolder.media_type(path), headers=headers)

    return Guard(app, host=host, port=port, token=token, extra_hosts=extra_hosts)


def _serialise_forward(recognizer) -> None:
    """Let one forward pass run at a time: jobs and Live share the recognizer from several threads, and a runner
    such as OpenVINO's keeps a single infer request. Decoding and face detection still overlap."""
    if getattr(recognizer.predict_batch, "_serialised", False):
        return
    lock = threading.Lock()
    forward = recognizer.predict_batch

    def predict_batch(video, audio):
        with lock:
            return forward(video, audio)

    predict_batch._serialised = True
    recognizer.predict_batch = predict_batch


def _job(queue: JobQueue, job_id: str):
    job = queue.get(job_id)
    if job is None:
        raise HTTPException(404, "no such job")
    return job


def _flag(value: str | None, name: str) -> bool:
    if value is None or value == "":
        return False
    v = value.strip().lower()
    if v in ("true", "1", "yes", "on"):
        return True
    if v in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"{name} must be true or false, got {value!r}")


def _seconds(value: str | None, name: str) -> float | None:
    if value is None or value.strip() == "":
        return None
    try:
        s = float(value)
    except ValueError:
        raise ValueError(f"{name} must be a number of seconds, got {value!r}") from None
    if not math.isfinite(s) or s <= 0 or s > 3600:
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return s


def _probe(path: Path, name: str, max_side: int | None) -> str:
    """Check that the upload is a video mmadfer can read (the reader's own :class:`MediaError` reason, under the
    user's file name) and return its media type for the browser."""
    try:
        open_video(path, max_side=max_side).close()
    except MmadferError as e:
        raise ValueError(f"{name}: {e.reason}") from None
    with open(path, "rb") as f:
        head = f.read(12)
    if head[4:8] == b"ftyp":
        return "video/quicktime" if head[8:10] == b"qt" else "video/mp4"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "video/webm"
    if head[:4] == b"RIFF":
        return "video/x-msvideo"
    return "application/octet-stream"
