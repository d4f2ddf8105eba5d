"""The project (``serve --project DIR``): ``/api/project`` (its classes beside the model's), ``/api/labels`` (the
spans of a video, add one, undo, the whole ``labels.csv``) and ``/api/train`` (Train on my labels: start, follow,
cancel). Without a project, ``/api/project`` says so and the rest are 404."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, HTTPException
from fastapi.responses import FileResponse

from ..context import AppContext, context
from ..labelling import LabelError
from ..training import TrainError

__all__ = ["router"]

router = APIRouter(prefix="/api")


def _project(ctx: AppContext = Depends(context)) -> AppContext:
    if ctx.project is None:
        raise HTTPException(404, "no project: start mmadfer serve with --project DIR to label and train")
    return ctx


@router.get("/project")
def project(ctx: AppContext = Depends(context)) -> dict[str, Any]:
    if ctx.project is None:
        return {"open": False}
    model = list(ctx.recognizer.labels)
    shared = [c for c in ctx.project.classes if c in model]
    return {"open": True, "path": str(ctx.project.root), "classes": list(ctx.project.classes),
            "model_classes": model, "shared_classes": shared, "annotator": ctx.labels.annotator,
            "train": ctx.trainer is not None}


@router.get("/labels")
def labels_of(job: str, ctx: AppContext = Depends(_project)) -> dict[str, Any]:
    if ctx.queue.get(job) is None:
        raise HTTPException(404, "no such job")
    return ctx.labels.of(job)


@router.post("/labels", status_code=201)
def add_label(job: str = Body(...), track_id: Any = Body(...), start_s: Any = Body(...), end_s: Any = Body(...),
              label: Any = Body(...), ctx: AppContext = Depends(_project)) -> dict[str, Any]:
    found = ctx.queue.get(job)
    if found is None:
        raise HTTPException(404, "no such job")
    if not found.viewable:
        raise HTTPException(409, f"{found.display_name or found.name}: its timeline is not ready yet")
    try:
        span = ctx.labels.add(found, track_id, start_s, end_s, label)
    except LabelError as e:
        raise HTTPException(e.status, str(e)) from None
    return {"span": span, **ctx.labels.of(job)}


@router.post("/labels/undo")
def undo(ctx: AppContext = Depends(_project)) -> dict[str, Any]:
    return {"undone": ctx.labels.undo()}


@router.get("/labels.csv")
def labels_csv(download: bool = False, ctx: AppContext = Depends(_project)):
    return FileResponse(ctx.labels.csv_path(), media_type="text/csv; charset=utf-8", filename="labels.csv",
                        content_disposition_type="attachment" if download else "inline")


def _trainer(ctx: AppContext = Depends(_project)):
    if ctx.trainer is None:
        raise HTTPException(404, "training is not available with this checkpoint")
    return ctx.trainer


@router.get("/train")
def train_status(trainer=Depends(_trainer)) -> dict[str, Any]:
    return {"job": trainer.job.public() if trainer.job else None}


@router.post("/train", status_code=202)
def train(epochs: int | None = Body(None, embed=True), trainer=Depends(_trainer)) -> dict[str, Any]:
    try:
        return {"job": trainer.start(epochs).public()}
    except TrainError as e:
        raise HTTPException(409, str(e)) from None


@router.post("/train/cancel")
def cancel_training(trainer=Depends(_trainer)) -> dict[str, Any]:
    job = trainer.cancel()
    return {"job": job.public() if job else None}
