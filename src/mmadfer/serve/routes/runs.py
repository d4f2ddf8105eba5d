"""Runs: ``/api/runs`` (the training and evaluation runs under ``--runs``) and their files, read-only
(:class:`~mmadfer.serve.runs.RunsFolder` decides what may be served)."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import FileResponse

from ..context import AppContext, context
from ..runs import RunsFolder
from ..security import REPORT_CSP

__all__ = ["router"]

router = APIRouter(prefix="/api/runs")


@router.get("")
def list_runs(ctx: AppContext = Depends(context)) -> dict[str, Any]:
    if ctx.runs is None:
        return {"runs": [], "enabled": False}
    return {"runs": ctx.runs.list(), "enabled": True}


@router.get("/file/{rel:path}")
def run_file(rel: str, ctx: AppContext = Depends(context)):
    if ctx.runs is None:
        raise HTTPException(404, "no --runs folder")
    path = ctx.runs.file(rel)
    if path is None:
        raise HTTPException(404, "no such file in the runs folder")
    headers = {"content-security-policy": REPORT_CSP} if path.suffix == ".html" else None
    return FileResponse(path, media_type=RunsFolder.media_type(path), headers=headers)
