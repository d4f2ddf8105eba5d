"""The data folder of one ``mmadfer serve`` run and the rule for when its files go, crashes included.

A run **owns** its folder through an exclusive lock on ``<folder>/.owner.lock`` (``flock``), held while the process
lives; the kernel drops it when the process dies, however it dies (SIGKILL, out of memory). So at its next start a
server tells a dead run's leftovers from a live run's files by trying the lock:

* in the default temporary location (``mmadfer-serve-*`` folders of this user in the system's temporary folder), a
  folder whose lock nobody holds belongs to a dead run: the whole folder goes;
* in a ``--data-dir`` (which the new run locks for itself: two live servers never share one), a job folder goes
  unless it is a finished job that a ``--keep`` run kept on purpose (its ``job.json`` says so).

With ``keep`` the leftovers are listed instead of deleted. Every file of a job, its temporaries included, is inside
its job folder, so deleting the folder deletes everything.
"""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
import stat
import tempfile
import uuid
from pathlib import Path

__all__ = ["DataDir", "DataDirError", "dead_run_folders", "temp_root", "OWNER_LOCK", "JOB_ID"]

OWNER_LOCK = ".owner.lock"
_PREFIX = "mmadfer-serve-"
JOB_ID = re.compile(r"[0-9a-f]{32}")
_FINISHED = ("done", "failed", "cancelled")


class DataDirError(Exception):
    """The data folder cannot be owned: another live ``mmadfer serve`` holds it, or its lock cannot be opened."""


def temp_root() -> Path:
    """Where the default private data folders are made (the system's temporary folder)."""
    return Path(tempfile.gettempdir())


def _open_lock(folder: Path) -> int:
    """Open ``folder``'s lock file without following a planted link (``O_NOFOLLOW``), owner-only."""
    return os.open(folder / OWNER_LOCK, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o600)


def _try_lock(fd: int) -> bool:
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            return False
        raise


def _held_by_a_live_run(folder: Path) -> bool:
    """Whether a live process holds ``folder``'s lock (a folder without a lock file is judged by its age elsewhere:
    here it counts as not held)."""
    try:
        fd = _open_lock(folder)
    except OSError:
        return True  # unreadable or a planted link: not ours to judge, leave it
    try:
        return not _try_lock(fd)  # our own probe lock is released when fd closes
    finally:
        os.close(fd)


def _mine(path: Path) -> bool:
    """A real folder (not a link) owned by this user."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid()


def _kept_job(folder: Path) -> bool:
    """A finished job that a ``--keep`` run kept on purpose."""
    try:
        record = json.loads((folder / "job.json").read_text())
    except (OSError, ValueError):
        return False
    # a record without "kept" was written by an older mmadfer, which wrote job.json only for finished jobs: kept
    return isinstance(record, dict) and record.get("kept", True) is True and record.get("status") in _FINISHED


def dead_run_folders(data_dir: Path | None = None) -> list[Path]:
    """What dead server runs left behind: unlocked ``mmadfer-serve-*`` folders in :func:`temp_root`, and in
    ``data_dir`` (whose lock the caller holds) every job folder that is not a kept finished job."""
    found = []
    with os.scandir(temp_root()) as entries:
        for entry in entries:
            path = Path(entry.path)
            if entry.name.startswith(_PREFIX) and _mine(path) and (path / OWNER_LOCK).exists() \
                    and not _held_by_a_live_run(path):
                found.append(path)
    if data_dir is not None and (data_dir / "jobs").is_dir():
        for entry in os.scandir(data_dir / "jobs"):
            path = Path(entry.path)
            if JOB_ID.fullmatch(entry.name) and _mine(path) and not _kept_job(path):
                found.append(path)
    return sorted(found)


class DataDir:
    """The folder that holds uploads and results, owned by this run while it lives.

    ``path`` None: a new private temporary folder (mode 0700) in :func:`temp_root`. At :meth:`close` this run's jobs
    are deleted (and a temporary folder with them) unless ``keep``. Raises :class:`DataDirError` when another live
    server owns ``path``.
    """

    def __init__(self, path: str | os.PathLike | None = None, *, keep: bool = False):
        self.temporary = path is None
        root = Path(tempfile.mkdtemp(prefix=_PREFIX, dir=temp_root())) if path is None else Path(path)
        root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.root = root.resolve()
        try:
            self._lock_fd = _open_lock(self.root)
        except OSError as e:  # ELOOP: a link planted in place of the lock file is never followed
            raise DataDirError(f"{self.root / OWNER_LOCK}: cannot open the lock file ({e.strerror})") from None
        if not _try_lock(self._lock_fd):
            os.close(self._lock_fd)
            raise DataDirError(f"--data-dir {path}: in use by another mmadfer serve (each server needs its own folder)")
        self.jobs = self.root / "jobs"
        self.jobs.mkdir(exist_ok=True, mode=0o700)
        self.keep = keep
        self._created: set[Path] = set()
        self.closed = False

    def new_job_dir(self) -> tuple[str, Path]:
        job_id = uuid.uuid4().hex
        folder = self.jobs / job_id
        folder.mkdir(mode=0o700)
        self._created.add(folder)
        return job_id, folder

    def remove(self, folder: Path) -> None:
        shutil.rmtree(folder, ignore_errors=True)
        self._created.discard(folder)

    def sweep(self) -> list[Path]:
        """Find what dead runs left (:func:`dead_run_folders`) and delete it, unless ``keep`` (then only list it).
        Returns the folders found."""
        found = [p for p in dead_run_folders(self.root) if p != self.root and p not in self._created]
        if not self.keep:
            for path in found:
                shutil.rmtree(path, ignore_errors=True)
        return found

    def retention(self) -> str:
        """One line for the page: where uploads and results are and when they go."""
        if self.keep:
            return (f"Uploads and results stay on this machine in {self.root} and are kept after the server stops; "
                    "delete a job to remove its files.")
        where = f"in {self.root}" if not self.temporary else "in a private folder"
        return (f"Uploads and results stay on this machine, {where}, and are deleted when the server stops (or, "
                "after a crash, when mmadfer serve starts again); delete a job to remove its files sooner.")

    def close(self) -> None:
        """Delete this run's jobs (unless ``keep``) and let the folder go."""
        if self.closed:
            return
        self.closed = True
        if not self.keep:
            for folder in list(self._created):
                self.remove(folder)
            if self.temporary:
                shutil.rmtree(self.root, ignore_errors=True)
        os.close(self._lock_fd)  # the lock goes with it
