"""Analyze and the Viewer: upload a video (``POST /api/jobs``), follow it (``GET /api/jobs[/{id}]``, its windows as
they are predicted), cancel, delete, name its face tracks, and fetch its files.

Every file route looks its file up (a job id in the queue's table, a name in :data:`~mmadfer.serve.jobs.JOB_FILES`,
a track number) rather than joining request text into a path, so nothing outside the job's folder can be served.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
from fastapi import APIRouter, Body, Depends, HTTPException, Request
from fastapi.responses import FileResponse
from starlette.concurrency import run_in_threadpool

from ...errors import MmadferError
from ...media.decode import open_video
from ...predict.smoothing import smooth_labels
from ..context import AppContext, context
from ..jobs import JOB_FILES, Job, display_name
from ..security import REPORT_CSP
from ..upload import BadUpload, TooLarge, receive_upload

__all__ = ["router"]

router = APIRouter(prefix="/api/jobs")


def _job(job_id: str, ctx: AppContext = Depends(context)) -> Job:
    job = ctx.queue.get(job_id)
    if job is None:
        raise HTTPException(404, "no such job")
    return job


@router.post("", status_code=201)
async def create_job(request: Request, ctx: AppContext = Depends(context)) -> dict[str, Any]:
    queue, rec = ctx.queue, ctx.recognizer
    job = queue.new_job(None)
    try:
        filename, fields = await receive_upload(request, job.video, ctx.max_bytes)
        job.name = display_name(filename)
        job.anonymize = _flag(fields.get("anonymize"), "anonymize")
        job.stride_s = _seconds(fields.get("stride"), "stride")
        job.window_s = _seconds(fields.get("window"), "window")
        job.media_type = await run_in_threadpool(_probe, job.video, job.name, rec.max_side)
    except TooLarge:
        queue.discard(job)
        raise HTTPException(413, f"upload larger than the limit of {ctx.max_upload_mb:g} MB (--max-upload-mb)")
    except (BadUpload, ValueError) as e:
        queue.discard(job)
        raise HTTPException(400, str(e))
    except OSError as e:  # a full disk: nothing of the upload is kept
        queue.discard(job)
        raise HTTPException(507, f"{job.name if job.name != 'upload' else 'the upload'}: cannot be stored on this "
                                 f"machine ({e.strerror or e})")
    except BaseException:
        queue.discard(job)
        raise
    queue.submit(job)
    return job.public()


@router.get("")
def list_jobs(ctx: AppContext = Depends(context)) -> dict[str, Any]:
    return {"jobs": [j.public() for j in ctx.queue.list()]}


@router.get("/{job_id}")
def get_job(job: Job = Depends(_job)) -> dict[str, Any]:
    return job.public()


@router.get("/{job_id}/windows")
def windows(since: int = 0, smooth: float | None = None, job: Job = Depends(_job),
            ctx: AppContext = Depends(context)) -> dict[str, Any]:
    """The timeline rows from ``since`` on: while the job runs, those predicted so far. ``smooth`` (seconds): each
    row also gets ``label_smoothed`` (:func:`mmadfer.predict.smoothing.smooth_labels` over all rows so far); the
    raw columns are unchanged."""
    labels = list(ctx.recognizer.labels)
    rows = job.windows(0)
    if smooth is not None:
        if not (math.isfinite(smooth) and smooth > 0):
            raise HTTPException(400, f"smooth must be a positive number of seconds, got {smooth!r}")
        table = pd.DataFrame(rows)
        table.attrs["labels"] = labels
        smoothed = smooth_labels(table, smooth, min_confidence=ctx.recognizer.min_confidence) if rows else []
        rows = [{**row, "label_smoothed": s} for row, s in zip(rows, smoothed)]
    rows = rows[max(0, since):]
    return {"windows": rows, "next": max(0, since) + len(rows), "labels": labels,
            "done": job.viewable or job.status in ("done", "failed", "cancelled")}


@router.post("/{job_id}/cancel")
def cancel_job(job: Job = Depends(_job), ctx: AppContext = Depends(context)) -> dict[str, Any]:
    return ctx.queue.cancel(job.id).public()


@router.delete("/{job_id}")
def delete_job(job_id: str, ctx: AppContext = Depends(context)) -> dict[str, Any]:
    if not ctx.queue.delete(job_id):
        raise HTTPException(404, "no such job")
    return {"id": job_id, "deleted": True}


@router.put("/{job_id}/tracks/{track}")
def rename_track(track: int, name: str = Body(..., embed=True, max_length=200), job: Job = Depends(_job),
                 ctx: AppContext = Depends(context)) -> dict[str, Any]:
    try:
        return ctx.queue.rename_track(job, track, name).public()
    except KeyError:
        raise HTTPException(404, f"no face track {track} in this job") from None


@router.get("/{job_id}/thumbs/{track}.jpg")
def thumbnail(track: int, job: Job = Depends(_job)):
    path = job.folder / "thumbs" / f"{track}.jpg"
    if track < 0 or track not in job.tracks or not path.is_file():
        raise HTTPException(404, "no thumbnail for this track")
    return FileResponse(path, media_type="image/jpeg")


@router.get("/{job_id}/{name}")
def job_file(name: str, download: bool = False, job: Job = Depends(_job)):
    if name not in JOB_FILES or name not in job.public()["files"]:
        raise HTTPException(404, f"{name} is not available for this job")
    file, media_type = JOB_FILES[name]
    stem = Path(job.name).stem or "video"
    filename = job.name if name == "video" else f"{stem}_{name}" if name != "preview" else f"{stem}_preview.mp4"
    headers = {"content-security-policy": REPORT_CSP} if name == "report.html" else None
    return FileResponse(job.folder / file, media_type=media_type or job.media_type, filename=filename,
                        content_disposition_type="attachment" if download else "inline", headers=headers)


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
