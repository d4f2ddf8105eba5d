"""Live: ``/api/live``, the browser's camera and microphone over a WebSocket (protocol in :mod:`mmadfer.serve.live`)."""
from __future__ import annotations

from fastapi import APIRouter, WebSocket

from ..live import live_session
from .model import model_info, thresholds

__all__ = ["router"]

router = APIRouter()


@router.websocket("/api/live")
async def live(ws: WebSocket):
    ctx = ws.app.state.context
    await live_session(ws, ctx.recognizer, ctx.slot, extra={"model": model_info(ctx), **thresholds(ctx)})
