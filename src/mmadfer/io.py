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

from .text import terminal_text

__all__ = ["atomic_write", "atomic_path", "publish", "write_csv", "write_frame_csv", "frame_csv_text", "read_frame_csv", "read_csv", "csv_cell",
           "sha256_file", "file_lock", "remove_stale_temporaries", "name_max", "FORMULA_TRIGGERS"]

#: First characters that make a spreadsheet (Excel, LibreOffice, Google Sheets) read a cell as a formula; OWASP's
#: "CSV injection" guidance: such a cell gets a leading ``'``. A leading ``'`` is escaped too, so that
#: :func:`read_csv` can remove exactly one and give the text back.
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "'")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
#: Characters :func:`atomic_path` adds to a name for its temporary: ``.`` + ``.`` + 8 random + ``.tmp`` or a suffix.
_TEMP_EXTRA = 10


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed over ``path`` (atomic on POSIX).

    Readers never see a half-written file: an interrupted write leaves the old file (or none) in place.
    The temporary is named ``.<name>.<8 random characters><suffix>``, with ``<name>`` cut short where the whole
    would pass the file system's limit on a name (NAME_MAX, 255 bytes on most), so any name that fits there can
    be written. The data is flushed to disk (fsync) before the rename, so a file under its final name is always
    complete, even after a power cut.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = suffix or ".tmp"
    fd, tmp = tempfile.mkstemp(prefix=f".{_temp_stem(path, suffix)}.", suffix=suffix, dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        with contextlib.suppress(OSError), open(tmp, "rb") as f:
            os.fsync(f.fileno())
        publish(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def name_max(folder: str | os.PathLike) -> int:
    """The longest file name (in bytes) the file system of ``folder`` (or of its nearest existing parent) allows:
    NAME_MAX, 255 on most; 255 where it cannot be asked."""
    folder = Path(folder).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        return 255


def _temp_stem(path: Path, suffix: str) -> str:
    """``path``'s name, cut (at a byte, losslessly for undecodable names) so that its temporary's name fits."""
    raw = os.fsencode(path.name)
    room = name_max(path.parent) - _TEMP_EXTRA - len(os.fsencode(suffix))
    if len(raw) <= room:
        return path.name
    raw = raw[:max(room, 1)]
    while raw and (raw[-1] & 0xC0) == 0x80:  # never end inside a UTF-8 character
        raw = raw[:-1]
    return os.fsdecode(raw[:-1] if raw and raw[-1] >= 0xC0 else raw)


def remove_stale_temporaries(path: str | os.PathLike, before: float) -> list[Path]:
    """Remove what an interrupted :func:`atomic_path` for ``path`` left beside it (a process killed mid-write):
    files named as it names them (``.<name>.<8 random characters><suffix>``) and last modified before ``before``
    (a time: e.g. when this process started, so another process's write in progress is left alone). Returns the
    removed paths. Nothing else is touched: only this temporary-name pattern, only beside ``path``; or, when
    ``path`` is a folder of our outputs (face crops), every temporary of that pattern in it."""
    path = Path(path)
    if path.is_dir():
        folder, stems = path, ".+"
    else:
        folder = path.parent
        stems = "|".join(re.escape(_temp_stem(path, s)) for s in {".tmp", path.suffix or ".tmp"})
    pattern = re.compile(r"\.(" + stems + r")\.[a-z0-9_]{8}(\.[A-Za-z0-9]+)?")
    removed = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(folder):
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


def csv_cell(value: Any) -> Any:
    """A value as a CSV cell safe to open in a spreadsheet: text starting with one of :data:`FORMULA_TRIGGERS`
    gets a leading ``'`` (OWASP, CSV injection), so ``=HYPERLINK(...)`` in a class or file name stays text. Numbers,
    and text that is a plain decimal number (``-0.5``, ``+3e-2``), are left as they are. Control characters (a
    bare carriage return would end a CSV row early) and undecodable bytes of a file name are written as ``\\xNN``
    (:func:`mmadfer.text.terminal_text`); where a file name must survive exactly, its bytes go in a column of their
    own (``predict/shard.py``)."""
    if not isinstance(value, str):
        return value
    if value.startswith(FORMULA_TRIGGERS) and not _NUMBER.fullmatch(value):
        value = "'" + value
    return terminal_text(value)


def uncsv_cell(value: str) -> str:
    """Undo :func:`csv_cell`'s formula escape (one leading ``'``)."""
    return value[1:] if value.startswith("'") else value


def read_csv(path: str | os.PathLike) -> list[dict[str, str]]:
    """Rows of a CSV written by :func:`write_csv`, as dicts of text, with the formula escape undone."""
    with open(path, newline="", encoding="utf-8") as f:
        return [{uncsv_cell(k): uncsv_cell(v) if isinstance(v, str) else v for k, v in row.items()}
                for row in csv.DictReader(f)]


def write_csv(path: str | os.PathLike, columns: Sequence[str], rows: Iterable[Mapping[str, Any] | Sequence[Any]], *,
              ignore_extra: bool = False) -> Path:
    """Write a header of ``columns`` and ``rows`` (dicts keyed by column, or sequences in column order) as UTF-8 CSV
    with ``\\n`` line ends, atomically: a reader, or a kill, never sees half a file. ``ignore_extra``: dict keys
    beyond ``columns`` are left out instead of raising. Every cell goes through :func:`csv_cell`."""
    buf = io.StringIO()
    rows = [{csv_cell(k): csv_cell(v) for k, v in r.items()} if isinstance(r, Mapping) else [csv_cell(v) for v in r]
            for r in rows]
    columns = [csv_cell(c) for c in columns]
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


def frame_csv_text(frame, **to_csv) -> str:
    """A pandas DataFrame as CSV text (``to_csv``'s options, ``\\n`` line ends), its text cells, index and header
    through :func:`csv_cell`, as :func:`write_csv` writes them."""
    from pandas.api.types import is_numeric_dtype

    frame = frame.copy()
    for c in frame.columns:
        if not is_numeric_dtype(frame[c]):
            frame[c] = frame[c].map(csv_cell)
    frame.columns = [csv_cell(c) for c in frame.columns]
    if not is_numeric_dtype(frame.index):
        frame.index = frame.index.map(csv_cell)
    return frame.to_csv(lineterminator="\n", **to_csv)


def write_frame_csv(frame, path: str | os.PathLike, **to_csv) -> Path:
    """Write :func:`frame_csv_text` atomically."""
    with atomic_write(path, "w", encoding="utf-8", newline="") as f:
        f.write(frame_csv_text(frame, **to_csv))
    return Path(path)


def read_frame_csv(path: str | os.PathLike, **read_csv):
    """A CSV that :func:`write_frame_csv` wrote, as a DataFrame (``pandas.read_csv`` options), with
    :func:`csv_cell`'s escape undone in its text cells and header."""
    import pandas as pd
    from pandas.api.types import is_numeric_dtype

    frame = pd.read_csv(path, **read_csv)
    frame.columns = [uncsv_cell(c) for c in frame.columns]
    for c in frame.columns:
        if not is_numeric_dtype(frame[c]):
            frame[c] = frame[c].map(lambda v: uncsv_cell(v) if isinstance(v, str) else v)
    return frame


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
    racing it for the file names. A symbolic link at ``path`` is refused (``O_NOFOLLOW``), never followed. Where
    ``fcntl`` is missing (Windows) the block runs unlocked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    try:  # never through a symbolic link: one planted at the lock's name would make us create its target
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0), 0o600)
    except OSError as e:
        if os.path.islink(path):
            raise OSError(e.errno, f"{path}: lock file is a symbolic link; refusing to follow it (remove it)") from None
        raise
    with os.fdopen(fd, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
