"""Small file-system helpers shared by every writer in the package."""
from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import os
import re
import tempfile
from pathlib import Path
from typing import IO, Any, Iterable, Iterator, Mapping, Sequence

__all__ = ["atomic_write", "atomic_path", "publish", "write_csv", "sha256_file", "file_lock", "remove_stale_temporaries"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed over ``path`` (atomic on POSIX).

    Readers never see a half-written file: an interrupted write leaves the old file (or none) in place.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix or ".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        publish(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def remove_stale_temporaries(path: str | os.PathLike, before: float) -> list[Path]:
    """Remove what an interrupted :func:`atomic_path` for ``path`` left beside it (a process killed mid-write):
    files named as it names them (``.<name>.<8 random characters><suffix>``) and last modified before ``before``
    (a time: e.g. when this process started, so another process's write in progress is left alone). Returns the
    removed paths. Nothing else is touched: only this temporary-name pattern, only beside ``path``."""
    path = Path(path)
    pattern = re.compile(r"\." + re.escape(path.name) + r"\.[a-z0-9_]{8}(\.[A-Za-z0-9]+)?")
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(path.parent):
            if pattern.fullmatch(entry.name) and entry.is_file(follow_symlinks=False) \
                    and entry.stat(follow_symlinks=False).st_mtime < before:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    return removed


def publish(tmp: str | os.PathLike, path: str | os.PathLike) -> None:
    """Move a finished temporary file over ``path`` (atomic on POSIX) with the usual permissions: temporary files
    are made owner-only (mkstemp), and some writers (safetensors) recreate a file owner-only, so they are set after
    writing."""
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **open_kw) -> Iterator[IO]:
    """Open a temporary file for writing; it replaces ``path`` only if the block finishes without error."""
    with atomic_path(path) as tmp, open(tmp, mode, **open_kw) as f:
        yield f
        f.flush()
        os.fsync(f.fileno())


def write_csv(path: str | os.PathLike, columns: Sequence[str], rows: Iterable[Mapping[str, Any] | Sequence[Any]], *,
              ignore_extra: bool = False) -> Path:
    """Write a header of ``columns`` and ``rows`` (dicts keyed by column, or sequences in column order) as UTF-8 CSV
    with ``\\n`` line ends, atomically: a reader, or a kill, never sees half a file. ``ignore_extra``: dict keys
    beyond ``columns`` are left out instead of raising."""
    buf = io.StringIO()
    rows = list(rows)
    if rows and not isinstance(rows[0], Mapping):
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(columns)
    else:
        w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n",
                           extrasaction="ignore" if ignore_extra else "raise")
        w.writeheader()
    w.writerows(rows)
    with atomic_write(path, "w", encoding="utf-8", newline="") as f:
        f.write(buf.getvalue())
    return Path(path)


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks (checkpoints are hundreds of MB)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@contextlib.contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) for the block: processes that convert the same
    checkpoint into the same cache take turns, so the second finds the first's result instead of redoing it and
    racing it for the file names. Where ``fcntl`` is missing (Windows) the block runs unlocked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
