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
    """The model as the page and Live show it: checkpoint, classes, its provenance
    (:attr:`mmadfer.Recognizer.provenance`: ``dataset``, ``synthetic``, ``demo``, ``recorded``, ``note``) and
    ``banner``: the provenance's sentence when the labels cannot be trusted as they are (a demo or synthetic model,
    or training data not recorded), else None."""
    rec = ctx.recognizer
    prov = rec.provenance
    doubtful = prov["synthetic"] or prov["demo"] or not prov["recorded"]
    return {"checkpoint": Path(rec.source or "model").name, "dataset": prov["dataset"],
            "synthetic": prov["synthetic"], "demo": prov["demo"], "recorded": prov["recorded"], "note": prov["note"],
            "classes": list(rec.labels), "banner": prov["note"][:1].upper() + prov["note"][1:] if doubtful else None}


def thresholds(ctx: AppContext) -> dict[str, Any]:
    """The thresholds that label windows ``no_face`` and ``uncertain`` (None: off)."""
    return {"min_face_coverage": ctx.recognizer.min_face_coverage, "min_confidence": ctx.recognizer.min_confidence}


@router.get("/info")
def info(ctx: AppContext = Depends(context)) -> dict[str, Any]:
    rec = ctx.recognizer
    return {"version": __version__, "backend": rec.backend, "device": str(rec.device), "precision": rec.precision,
            "checkpoint": Path(rec.source or "model").name, "labels": list(rec.labels), "window_s": rec.window_s,
            "faces": rec.detector is not None, "retention": ctx.data.retention(), "max_upload_mb": ctx.max_upload_mb,
            "runs": ctx.runs is not None, "project": ctx.project is not None, "model": model_info(ctx), **thresholds(ctx)}


@router.get("/model")
def model(ctx: AppContext = Depends(context)) -> dict[str, Any]:
    return {**model_info(ctx), **thresholds(ctx), "window_s": ctx.recognizer.window_s}
