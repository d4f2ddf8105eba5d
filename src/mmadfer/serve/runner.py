"""One forward pass at a time: the web app's jobs and Live share one model from several threads, and a runner such as
OpenVINO's keeps a single infer request. Decoding and face detection still overlap; only the model call takes turns.

:func:`serialised` wraps the recognizer's runner in a :class:`SerialRunner` on a shallow copy of the recognizer, so the
caller's :class:`~mmadfer.Recognizer` (and its methods) stay as they were.
"""
from __future__ import annotations

import copy
import threading

__all__ = ["SerialRunner", "serialised"]


class SerialRunner:
    """A runner (:class:`mmadfer.runtime.runner.Runner`) whose calls take turns on one lock; every other attribute
    (``cfg``, ``backend``, ``precision``...) is the wrapped runner's."""

    def __init__(self, runner):
        self.inner = runner
        self.lock = threading.Lock()

    def __call__(self, video, audio):
        with self.lock:
            return self.inner(video, audio)  # logits [B, C]

    def __getattr__(self, name):
        return getattr(self.inner, name)


def serialised(recognizer):
    """A copy of ``recognizer`` whose runner is a :class:`SerialRunner` (the same one if it already has one)."""
    if isinstance(recognizer.runner, SerialRunner):
        return recognizer
    rec = copy.copy(recognizer)
    rec.runner = SerialRunner(recognizer.runner)
    return rec
