"""What the commands that run under torchrun (``train``, ``cv``, ``ablate``, ``evaluate``) share.

Each of them joins the torchrun process group (if any), trains or evaluates, and must leave the group however the
run ends; a mistake in the user's input (a bad config, a missing folder, a run folder that already exists) is one
line on stderr and exit code 2, not a traceback. :class:`TrainingSession` is that contract, written once::

    with TrainingSession("cv") as session:
        cfg = config_from_args(args)
        info = session.setup(cfg.train.device)
        ...  # fit(...)
    if session.exit_code:
        return session.exit_code
"""
from __future__ import annotations

import sys
from types import TracebackType

from ..errors import MmadferError
from .. import distributed as D

#: Exceptions that mean "the input is wrong" rather than "the program is wrong": reported in one line, exit code 2.
USER_ERRORS: tuple[type[BaseException], ...] = (MmadferError, ValueError, FileNotFoundError, FileExistsError)


class TrainingSession:
    """Context manager for one training command: joins the process group on :meth:`setup`, always leaves it.

    A :data:`USER_ERRORS` exception raised inside the block is printed as ``mmadfer <command>: <message>`` on stderr
    and swallowed, and :attr:`exit_code` becomes 2; any other exception propagates (after leaving the group).
    """

    def __init__(self, command: str) -> None:
        self.command = command
        self.exit_code: int | None = None

    def setup(self, device: str) -> D.DistInfo:
        """Join the process group (see :func:`mmadfer.distributed.setup`) and return where this process sits."""
        return D.setup(device)

    def __enter__(self) -> TrainingSession:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> bool:
        try:
            if exc is not None and isinstance(exc, USER_ERRORS):
                print(f"mmadfer {self.command}: {exc}", file=sys.stderr)
                self.exit_code = 2
                return True
            return False
        finally:
            D.cleanup()
