"""Live: the browser's camera and microphone, streamed over a WebSocket into the rolling buffer of
``mmadfer predict --realtime``.

Protocol (``/api/live``):

* client -> server, first, text: ``{"type": "start", "fps": 8, "sample_rate": 48000, "stride": 1.0}``
  (``sample_rate`` 0: no microphone).
* client -> server, binary: one byte kind, a little-endian float64 media time in seconds since the start, then the
  payload: ``V`` + a JPEG frame, or ``A`` + mono float32 little-endian PCM samples (contiguous chunks).
* client -> server, text: ``{"type": "stop"}`` (or just close).
* server -> client, text: ``{"type": "ready", ...}``, then one ``{"type": "prediction", ...}`` per window and face
  track (the timeline row of :meth:`Recognizer.predict_video` plus ``probs``, ``latency_ms`` and ``skipped``), and
  ``{"type": "error", "message": ...}`` if the model fails.

The frames and samples go into a :class:`mmadfer.media.live.LiveBuffer`, and :func:`mmadfer.predict.realtime.predict_buffer`
(the same loop as ``predict --realtime`` on a camera) predicts a window every stride in a worker thread. Nothing is
written to disk: the buffer keeps only the last window and a little more.
"""
from __future__ import annotations

import asyncio
import io
import json
import math
import struct
import threading
from typing import Any

import numpy as np
from PIL import Image

from ..errors import one_line
from ..media.live import LiveBuffer
from ..predict.realtime import predict_buffer
from .rows import json_safe

__all__ = ["live_session", "LiveSlot"]

_HEADER = struct.Struct("<cd")  # kind, media time (s)


class LiveSlot:
    """Allows one Live session at a time (the camera stream and the model are not shared between tabs)."""

    def __init__(self):
        self._busy = False
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self._busy:
                return False
            self._busy = True
            return True

    def release(self) -> None:
        with self._lock:
            self._busy = False


def _clean(row: dict[str, Any], labels) -> dict[str, Any]:
    """A prediction row as JSON-safe values (NaN becomes null), with its class probabilities gathered."""
    out = json_safe(row)
    out["probs"] = {c: out.get(f"p_{c}") for c in labels}
    return out


def _frame(payload: bytes, max_side: int | None) -> np.ndarray:
    with Image.open(io.BytesIO(payload)) as im:
        im = im.convert("RGB")
        if max_side and max(im.size) > max_side:
            s = max_side / max(im.size)
            im = im.resize((max(2, round(im.width * s)), max(2, round(im.height * s))))
        return np.asarray(im)  # [H, W, 3] uint8


async def live_session(ws, recognizer, slot: LiveSlot, extra: dict[str, Any] | None = None) -> None:
    """Serve one Live WebSocket until the client stops or disconnects; ``extra``: more fields for the ``ready``
    message (the model's description and thresholds)."""
    from starlette.websockets import WebSocketDisconnect

    await ws.accept()
    if not slot.take():
        await ws.send_text(json.dumps({"type": "error", "message": "Live is already running in another tab"}))
        await ws.close(code=1013)
        return
    try:
        await _session(ws, recognizer, extra or {})
    except WebSocketDisconnect:
        pass
    finally:
        slot.release()


async def _session(ws, recognizer, extra: dict[str, Any]) -> None:
    start = json.loads(await ws.receive_text())
    if start.get("type") != "start":
        await ws.close(code=1003)
        return
    fps = min(30.0, max(1.0, float(start.get("fps") or 8)))
    rate = int(start.get("sample_rate") or 0)
    rate = rate if 8000 <= rate <= 192000 else 0
    stride = min(10.0, max(0.25, float(start.get("stride") or 1.0)))
    window = recognizer.window_s
    buf = LiveBuffer("camera")
    buf.fps, buf.sample_rate, buf.has_audio = fps, rate, rate > 0
    keep_s = window + 2 * stride + 1.0
    loop = asyncio.get_running_loop()
    out: asyncio.Queue = asyncio.Queue()

    def work() -> None:
        try:
            for row in predict_buffer(recognizer, buf, window_s=window, stride_s=stride, live=True):
                loop.call_soon_threadsafe(out.put_nowait, {"type": "prediction", **_clean(row, recognizer.labels)})
        except Exception as e:  # noqa: BLE001 - reported to the page
            loop.call_soon_threadsafe(out.put_nowait, {"type": "error", "message": one_line(e, "live")})
        finally:
            loop.call_soon_threadsafe(out.put_nowait, None)

    async def send_all() -> None:
        while (msg := await out.get()) is not None:
            try:
                await ws.send_text(json.dumps(msg))
            except Exception:  # noqa: BLE001 - the client went away; keep draining
                pass

    worker = threading.Thread(target=work, daemon=True, name="mmadfer-live")
    worker.start()
    sender = asyncio.create_task(send_all())
    await ws.send_text(json.dumps({"type": "ready", "window_s": window, "stride_s": stride, "fps": fps,
                                   "sample_rate": rate, "labels": list(recognizer.labels), **extra}))
    try:
        while True:
            msg = await ws.receive()
            if msg["type"] == "websocket.disconnect":
                break
            data = msg.get("bytes")
            if data:
                if len(data) <= _HEADER.size:
                    continue
                kind, t = _HEADER.unpack_from(data)
                if not math.isfinite(t) or t < 0:
                    continue
                payload = data[_HEADER.size:]
                if kind == b"V":
                    try:
                        rgb = _frame(payload, recognizer.max_side)
                    except Exception:  # noqa: BLE001 - a damaged frame is skipped, as a decoder would
                        continue
                    if t > buf.video_head:
                        buf.push_frame(t, rgb)
                        buf.trim(t - keep_s)
                elif kind == b"A" and rate:
                    samples = np.frombuffer(payload[: len(payload) // 4 * 4], dtype="<f4").astype(np.float32)
                    buf.push_audio(t, samples[None, :])
            elif msg.get("text") and json.loads(msg["text"]).get("type") == "stop":
                break
    finally:
        with buf.cond:
            buf.ended = True
            buf.cond.notify_all()
        await asyncio.to_thread(worker.join, 30)
        await sender
    try:
        await ws.close()
    except Exception:  # noqa: BLE001 - already closed by the client
        pass
