"""Background preparation: iterate a generator in a worker thread, a bounded queue ahead of its consumer.

The recogniser decodes, detects faces and computes features for the next windows here while the model runs on the
current batch (:meth:`mmadfer.predict.recognizer.Recognizer.iter_video`).
"""
from __future__ import annotations

import atexit
import queue
import threading
from typing import Any, Callable, Iterator

__all__ = ["prefetch"]

_END = object()
#: Workers a poll stopped waiting for: they finish their item in the background (see :func:`prefetch`).
_finishing: set[threading.Thread] = set()


@atexit.register
def _join_finishing() -> None:
    """Joined before the interpreter shuts down, so that no worker is still inside a native library (torch, PyAV)
    while it is torn down."""
    for worker in list(_finishing):
        worker.join()


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


def prefetch(items: Iterator[Any], depth: int, *, poll: Callable[[], None] | None = None) -> Iterator[Any]:
    """Iterate ``items`` in a worker thread, at most ``depth`` ahead of the consumer; errors re-raise here.

    Stopping early (an exception or ``close()`` in the consumer) stops the worker and closes ``items`` in it, so the
    readers it holds are released before this returns.

    ``poll()`` is called about every 50 ms while the consumer waits for the next item; an exception it raises ends
    the iteration at once, without waiting for the item being prepared (one window's decoding and face detection
    can take seconds): the worker is told to stop, finishes that item and closes ``items`` in the background. This
    is how the web app's Cancel takes effect within a second.
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
            _finishing.discard(threading.current_thread())

    def get():
        while True:
            try:
                return q.get(timeout=0.05)
            except queue.Empty:
                poll()

    worker = threading.Thread(target=work, name="mmadfer-prepare", daemon=True)
    worker.start()
    polled_out = False
    try:
        while True:
            try:
                x = q.get() if poll is None else get()
            except BaseException:
                polled_out = poll is not None
                raise
            if x is _END:
                return
            if isinstance(x, _Failure):
                raise x.error
            yield x
    finally:
        stop.set()
        if polled_out and worker.is_alive():
            _finishing.add(worker)
        else:
            while worker.is_alive():
                try:
                    q.get(timeout=0.05)
                except queue.Empty:
                    pass
            worker.join()
