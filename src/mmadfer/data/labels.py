"""The labels store: time spans of videos labelled by people, in one CSV, with undo.

This is the file that ``mmadfer prepare VIDEOS --labels labels.csv`` cuts into a dataset, and the one the web
app's labelling will write. One row per labelled span::

    video,video_sha256,track_id,start_s,end_s,label,annotator,created
    interviews/a.mp4,9f2c...,0,12.5,15.0,confused,ana,2026-12-07T08:00:00+00:00

* ``video``: the file, relative to the CSV's folder (or absolute); ``video_sha256`` the SHA-256 of its bytes when
  it was labelled, so a video changed or replaced since then is detected (:func:`check_labels`);
* ``track_id``: the face track the span is about (``0`` for a single face; empty: the whole frame);
* ``start_s``/``end_s``: seconds, ``end_s > start_s``; ``label``: a class name of the project; ``annotator``: who;
  ``created``: an ISO 8601 time.

:class:`LabelStore` writes the file atomically (a reader or a kill never sees half a file) and keeps each replaced
version in ``<file>.history/``, so :meth:`LabelStore.undo` restores the previous one. Spans that overlap on the same
video and track are *reported* by :func:`conflicts` (``contradictory`` when one annotator gave them different
labels, ``overlap`` when the same), never merged: what people labelled is kept as they labelled it. Spans of
*different* annotators on the same span are agreement data (:func:`paired_spans`, Cohen's kappa in
:mod:`mmadfer.evaluation.agreement`).
"""
from __future__ import annotations

import csv
import datetime
import os
import re
import shutil
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Iterable, Sequence

from ..io import atomic_write, sha256_file
from ..media.probe import probe_duration

__all__ = ["LABEL_COLUMNS", "RESERVED", "Span", "Conflict", "LabelStore", "is_label_store", "read_labels", "write_labels",
           "check_labels", "conflicts", "paired_spans", "video_path", "now"]

#: The columns of a labels file, in order.
LABEL_COLUMNS = ("video", "video_sha256", "track_id", "start_s", "end_s", "label", "annotator", "created")
_REQUIRED = ("video", "start_s", "end_s", "label")
#: Labels a timeline writes itself (no face found; below --min-confidence): never class names.
RESERVED = ("no_face", "uncertain")
#: Versions kept in ``<file>.history/`` for undo.
HISTORY = 100


@dataclass(frozen=True)
class Span:
    """One labelled span. ``line`` is its line in the file it was read from (0 for a new span)."""

    video: str
    start_s: float
    end_s: float
    label: str
    track_id: str = "0"
    annotator: str = ""
    created: str = ""
    video_sha256: str = ""
    line: int = 0

    def row(self) -> dict[str, str]:
        d = asdict(self)
        d.pop("line")
        return {k: (f"{d[k]:.3f}".rstrip("0").rstrip(".") if k in ("start_s", "end_s") else str(d[k]))
                for k in LABEL_COLUMNS}


@dataclass(frozen=True)
class Conflict:
    """Two spans of one video and track that overlap: ``kind`` is ``contradictory`` (one annotator, different
    labels) or ``overlap`` (one annotator, the same label)."""

    kind: str
    a: Span
    b: Span

    def line(self, source: str | os.PathLike = "") -> str:
        return (f"{source}:{self.a.line}/{self.b.line}: {self.kind} spans on {self.a.video} track {self.a.track_id}: "
                f"{self.a.start_s:g}-{self.a.end_s:g}s {self.a.label!r} and {self.b.start_s:g}-{self.b.end_s:g}s "
                f"{self.b.label!r} ({self.a.annotator or 'no annotator'})")


def now() -> str:
    """The current time as ISO 8601 in UTC, to the second (the ``created`` column)."""
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()


def is_label_store(path: str | os.PathLike) -> bool:
    """Whether a CSV is a labels file (its header has ``start_s`` and ``end_s``) rather than a ``video,label``
    table of whole clips."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        header = [h.strip().lower() for h in next(csv.reader(f), [])]
    return "start_s" in header and "end_s" in header


def read_labels(path: str | os.PathLike) -> list[Span]:
    """Read a labels file. A malformed row is a ValueError naming the file, the line and the reason."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"labels file not found: {path}")
    spans = []
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        fields = [(k or "").strip().lower() for k in (reader.fieldnames or [])]
        missing = [c for c in _REQUIRED if c not in fields]
        if missing:
            raise ValueError(f"{path}: missing column(s) {', '.join(missing)}; a labels file has "
                             f"{', '.join(LABEL_COLUMNS)}")
        for row in reader:
            row = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items() if k is not None}
            if not any(row.values()):
                continue
            n = reader.line_num
            try:
                start, end = float(row["start_s"]), float(row["end_s"])
            except ValueError:
                raise ValueError(f"{path}:{n}: start_s and end_s must be numbers of seconds, got "
                                 f"{row['start_s']!r} and {row['end_s']!r}") from None
            if not row["video"] or not row["label"]:
                raise ValueError(f"{path}:{n}: empty 'video' or 'label'")
            if not (start >= 0 and end > start):
                raise ValueError(f"{path}:{n}: the span {start:g}-{end:g}s is empty or negative (need 0 <= start_s "
                                 "< end_s)")
            spans.append(Span(row["video"], start, end, row["label"], row.get("track_id", "0") or "0",
                              row.get("annotator", ""), row.get("created", ""), row.get("video_sha256", ""), n))
    return spans


def write_labels(path: str | os.PathLike, spans: Iterable[Span]) -> Path:
    """Write ``spans`` as a labels file, atomically (sorted by video, track, start, annotator)."""
    rows = sorted(spans, key=lambda s: (s.video, s.track_id, s.start_s, s.end_s, s.annotator))
    with atomic_write(path, "w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=LABEL_COLUMNS, lineterminator="\n")
        w.writeheader()
        w.writerows(s.row() for s in rows)
    return Path(path)


def video_path(span: Span, labels_file: str | os.PathLike) -> Path:
    """The video file of a span: its ``video`` resolved against the labels file's folder."""
    p = Path(span.video)
    return p if p.is_absolute() else Path(labels_file).resolve().parent / p


class LabelStore:
    """A labels file with undo. Every change writes the whole file atomically after moving the current version
    into ``<file>.history/`` (the newest :data:`HISTORY` versions are kept); :meth:`undo` brings the newest back.

    ``add`` fills in what a new span lacks: the video's SHA-256 (when the file exists) and ``created``."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.history = self.path.with_name(self.path.name + ".history")

    def spans(self) -> list[Span]:
        return read_labels(self.path) if self.path.is_file() else []

    def _versions(self) -> list[Path]:
        if not self.history.is_dir():
            return []
        return sorted((p for p in self.history.iterdir() if re.fullmatch(r"\d{6}\.csv", p.name)),
                      key=lambda p: int(p.stem))

    def _save(self, spans: Sequence[Span]) -> None:
        if not self.path.is_file():  # a new file: its empty version is what the first undo restores
            write_labels(self.path, [])
        if self.path.is_file():
            versions = self._versions()
            n = int(versions[-1].stem) + 1 if versions else 1
            self.history.mkdir(parents=True, exist_ok=True)
            with atomic_write(self.history / f"{n:06d}.csv", "wb") as f, open(self.path, "rb") as src:
                shutil.copyfileobj(src, f)
            for old in versions[: max(0, len(versions) + 1 - HISTORY)]:
                old.unlink()
        write_labels(self.path, spans)

    def add(self, *spans: Span) -> list[Span]:
        """Append ``spans`` (hash and time filled in); returns them as stored."""
        base = self.path.resolve().parent
        done = []
        for s in spans:
            video = Path(s.video)
            full = video if video.is_absolute() else base / video
            digest = s.video_sha256 or (sha256_file(full) if full.is_file() else "")
            done.append(replace(s, video_sha256=digest, created=s.created or now(), line=0))
        self._save(self.spans() + done)
        return done

    def remove(self, span: Span) -> None:
        """Remove the stored span equal to ``span`` (ignoring ``line``); a KeyError if there is none."""
        key = replace(span, line=0)
        kept = [s for s in self.spans() if replace(s, line=0) != key]
        if len(kept) == len(self.spans()):
            raise KeyError(f"{self.path}: no such span {span.video} {span.start_s:g}-{span.end_s:g}s")
        self._save(kept)

    def undo(self) -> bool:
        """Restore the version before the last change; False when there is nothing to undo."""
        versions = self._versions()
        if not versions:
            return False
        with atomic_write(self.path, "wb") as f, open(versions[-1], "rb") as src:
            shutil.copyfileobj(src, f)
        versions[-1].unlink()
        return True


def check_labels(spans: Sequence[Span], labels_file: str | os.PathLike, *,
                 class_names: Sequence[str] | None = None,
                 tolerance_s: float = 0.05) -> list[tuple[Span, str]]:
    """``(span, message)`` per problem (empty when all is well); each message is one line naming the labels file,
    the span's line and the reason: a video that
    is missing, or whose content changed since it was labelled (its SHA-256 differs from ``video_sha256``), a span
    that ends after the video (beyond ``tolerance_s``), a label outside ``class_names`` or a :data:`RESERVED` one.
    Nothing is changed."""
    errors: list[tuple[Span, str]] = []
    hashes: dict[Path, str] = {}
    durations: dict[Path, float | None] = {}
    known = set(class_names) if class_names is not None else None
    for s in spans:
        where = f"{labels_file}:{s.line}"
        path = video_path(s, labels_file)
        if not path.is_file():
            errors.append((s, f"{where}: video {path} is missing"))
            continue
        if s.video_sha256:
            if path not in hashes:
                hashes[path] = sha256_file(path)
            if hashes[path] != s.video_sha256:
                errors.append((s, f"{where}: video {path} has changed since it was labelled (SHA-256 differs)"))
                continue
        if path not in durations:
            try:
                durations[path] = probe_duration(path)
            except Exception as e:  # noqa: BLE001 - an unreadable video is reported, not raised
                durations[path] = None
                errors.append((s, f"{where}: video {path} cannot be read ({e})"))
                continue
        duration = durations[path]
        if duration and s.end_s > duration + tolerance_s:  # 0: the container does not say
            errors.append((s, f"{where}: span {s.start_s:g}-{s.end_s:g}s ends after the video ({duration:.2f}s)"))
        if s.label in RESERVED:
            errors.append((s, f"{where}: {s.label!r} is a reserved label (timelines use it), not a class name"))
        elif known is not None and s.label not in known:
            errors.append((s, f"{where}: unknown class {s.label!r}; the classes are {', '.join(class_names)}"))
    return errors


def _overlap(a: Span, b: Span) -> float:
    return max(0.0, min(a.end_s, b.end_s) - max(a.start_s, b.start_s))


def _groups(spans: Sequence[Span]) -> dict[tuple[str, str], list[Span]]:
    groups: dict[tuple[str, str], list[Span]] = {}
    for s in spans:
        groups.setdefault((s.video, s.track_id), []).append(s)
    return groups


def conflicts(spans: Sequence[Span]) -> list[Conflict]:
    """Pairs of spans of one annotator on the same video and track that overlap in time."""
    found = []
    for group in _groups(spans).values():
        group = sorted(group, key=lambda s: (s.start_s, s.end_s))
        for i, a in enumerate(group):
            for b in group[i + 1:]:
                if b.start_s >= a.end_s:
                    break
                if a.annotator == b.annotator and _overlap(a, b) > 0:
                    found.append(Conflict("contradictory" if a.label != b.label else "overlap", a, b))
    return found


def paired_spans(spans: Sequence[Span], first: str, second: str, *,
                 min_iou: float = 0.5) -> list[tuple[Span, Span]]:
    """Spans of annotator ``first`` matched to spans of ``second`` on the same video and track whose time overlap
    is at least ``min_iou`` of their union (each span matched at most once, best overlap first)."""
    pairs = []
    for group in _groups(spans).values():
        a_spans = [s for s in group if s.annotator == first]
        b_spans = [s for s in group if s.annotator == second]
        candidates = []
        for a in a_spans:
            for b in b_spans:
                inter = _overlap(a, b)
                union = max(a.end_s, b.end_s) - min(a.start_s, b.start_s)
                if union > 0 and inter / union >= min_iou:
                    candidates.append((inter / union, a, b))
        used_a, used_b = set(), set()
        for _, a, b in sorted(candidates, key=lambda t: -t[0]):
            if id(a) not in used_a and id(b) not in used_b:
                used_a.add(id(a))
                used_b.add(id(b))
                pairs.append((a, b))
    return sorted(pairs, key=lambda p: (p[0].video, p[0].track_id, p[0].start_s))
