"""Background preparation: iterate a generator in a worker thread, a bounded queue ahead of its consumer.

The recogniser decodes, detects faces and computes features for the next windows here while the model runs on the
current batch (:meth:`mmadfer.predict.recognizer.Recognizer.iter_video`).
"""
from __future__ import annotations

import queue
import threading
from typing import Any, Iterator

__all__ = ["prefetch"]

_END = object()


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


def prefetch(items: Iterator[Any], depth: int) -> Iterator[Any]:
    """Iterate ``items`` in a worker thread, at most ``depth`` ahead of the consumer; errors re-raise here.

    Stopping early (an exception or ``close()`` in the consumer) stops the worker and closes ``items`` in it, so the
    readers it holds are released before this returns.
    """
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def put(x) -> bool:
        while not stop.is_set():
            try:
                q.put(x, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        try:
            for x in items:
                if not put(x):
                    return
            put(_END)
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, which re-raises it
            put(_Failure(e))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=work, name="mmadfer-prepare", daemon=True)
    worker.start()
    try:
        while True:
            x = q.get()
            if x is _END:
                return
            if isinstance(x, _Failure):
                raise x.error
            yield x
    finally:
        stop.set()
        while worker.is_alive():
            try:
                q.get(timeout=0.05)
            except queue.Empty:
                pass
        worker.join()
