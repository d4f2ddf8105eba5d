"""What the loaded model is: ``/api/info`` (the server and model, for the page's header) and ``/api/model`` (the
model alone: its classes, what it was trained on, whether it is a demo, and the thresholds that turn windows into
``no_face`` and ``uncertain``)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends

from ... import __version__
from ..context import AppContext, context

__all__ = ["router", "model_info"]

router = APIRouter(prefix="/api")


def model_info(ctx: AppContext) -> dict[str, Any]:
    """The model as the page and Live show it: checkpoint, classes, provenance and a banner for demo or synthetic
    models (None for a model trained on recorded real data)."""
    rec = ctx.recognizer
    prov = dict(getattr(rec, "provenance", None) or {})  # TEMP until issue-20core merges
    if prov.get("demo"):
        banner = ("Demo model: trained on synthetic clips, so its labels say nothing about real expressions; "
                  "use a trained checkpoint for real results.")
    elif prov.get("synthetic"):
        banner = "Trained on synthetic data: its labels are not evidence of real expressions."
    elif not prov.get("dataset"):
        banner = "This checkpoint does not record what it was trained on: judge its labels with care."
    else:
        banner = None
    return {"checkpoint": Path(rec.source or "model").name, "dataset": prov.get("dataset"),
            "synthetic": bool(prov.get("synthetic")), "demo": bool(prov.get("demo")),
            "classes": list(rec.labels), "banner": banner}


def thresholds(ctx: AppContext) -> dict[str, Any]:
    return {"min_face_coverage": ctx.min_face_coverage, "min_confidence": ctx.min_confidence}


@router.get("/info")
def info(ctx: AppContext = Depends(context)) -> dict[str, Any]:
    rec = ctx.recognizer
    return {"version": __version__, "backend": rec.backend, "device": str(rec.device), "precision": rec.precision,
            "checkpoint": Path(rec.source or "model").name, "labels": list(rec.labels), "window_s": rec.window_s,
            "faces": rec.detector is not None, "retention": ctx.data.retention(), "max_upload_mb": ctx.max_upload_mb,
            "runs": ctx.runs is not None, "model": model_info(ctx), **thresholds(ctx)}


@router.get("/model")
def model(ctx: AppContext = Depends(context)) -> dict[str, Any]:
    return {**model_info(ctx), **thresholds(ctx), "window_s": ctx.recognizer.window_s}
