"""What processing video costs: the evaluation's measured throughput turned into hours of video per hour.

A clip of the evaluation is one model input, i.e. one window of the model's own length (``window_s``, 5.12 s by
default). ``mmadfer predict`` cuts a video into windows of that length every ``stride_s`` seconds (by default the
stride is one window, no overlap), so an hour of video needs ``W`` windows: the count of
:func:`mmadfer.predict.window_spans` for a 3600 s video (703 at the defaults: 703 full windows; the last 0.64 s is
shorter than half a window and dropped). At ``r`` clips per second the model therefore processes
``r * 3600 / W`` hours of video per hour of running time, and at a price of ``p`` per hour of the machine, an hour of
video costs ``p * W / (r * 3600)``.

The measured rate is that of the evaluation: data loading from prepared clips plus the model, with the evaluation's
batch size, device and backend. Predicting on raw video also decodes it and detects faces, so treat the figure as
the model-side capacity (an upper bound for raw footage); ``mmadfer bench`` measures the whole pipeline.
"""
from __future__ import annotations

from typing import Any

__all__ = ["operating_cost", "MODEL_ONLY"]

#: What the evaluation's rate covers (``operating_cost['scope']``): prepared clips through the model, not raw video.
MODEL_ONLY = "model only"


def operating_cost(num_clips: int, seconds: float, *, windows_per_hour: int, window_s: float, stride_s: float,
                   device: str, backend: str, batch_size: int | None = None,
                   price_per_hour: float | None = None, currency: str = "") -> dict[str, Any]:
    """The ``operating_cost`` entry of ``metrics.json`` (see the module docstring for the arithmetic)."""
    if seconds <= 0 or num_clips <= 0 or windows_per_hour <= 0:
        raise ValueError("need a positive number of clips, seconds and windows per hour")
    rate = num_clips / seconds
    hours_per_hour = rate * 3600.0 / windows_per_hour
    out: dict[str, Any] = {
        "clips": int(num_clips), "seconds": float(seconds), "clips_per_s": rate, "device": str(device),
        "backend": backend, "batch_size": batch_size, "window_s": float(window_s), "stride_s": float(stride_s),
        "windows_per_video_hour": int(windows_per_hour), "video_hours_per_hour": hours_per_hour,
        "scope": MODEL_ONLY,  # decoding and face detection are not in this rate (mmadfer bench --what predict is)
    }
    if price_per_hour is not None:
        if price_per_hour < 0:
            raise ValueError(f"--price-per-hour must be >= 0, got {price_per_hour}")
        out["price_per_hour"] = float(price_per_hour)
        out["cost_per_video_hour"] = float(price_per_hour) / hours_per_hour
        out["currency"] = currency
    return out
