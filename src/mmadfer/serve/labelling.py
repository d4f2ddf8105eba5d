"""Labelling in the Viewer: the project's labels of one video, and the checks a new span passes before it is saved.

Every change goes through the project's :class:`~mmadfer.data.labels.LabelStore` (the whole file written atomically,
the previous version kept for undo), under one lock, and is on disk before the request answers: the page shows a
span as saved only then, so a killed server loses no saved label. A new span is refused with one line saying why
when its class is not the project's, it lies outside the video, its face track is not the video's, or the video has
changed since it was labelled (its SHA-256, :func:`~mmadfer.data.labels.check_labels`). Overlapping spans are kept
as they are and reported (:func:`~mmadfer.data.labels.conflicts`), never merged.
"""
from __future__ import annotations

import math
import threading
from typing import Any

from ..data.labels import Span, check_labels, conflicts, write_labels
from ..io import sha256_file
from .jobs import Job
from .project import Project

__all__ = ["ProjectLabels", "LabelError"]


class LabelError(ValueError):
    """A span that cannot be saved: ``status`` is the HTTP status that says why (400 bad span, 409 changed video)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


class ProjectLabels:
    """The labels of a :class:`~mmadfer.serve.project.Project`, as the web app reads and changes them."""

    def __init__(self, project: Project, annotator: str = ""):
        self.project = project
        self.store = project.labels
        self.annotator = annotator
        self._lock = threading.Lock()
        self._hashes: dict[str, tuple[tuple[int, int], str]] = {}

    def _sha256(self, job: Job) -> str:
        """The video's SHA-256, computed again only when its size or time changed."""
        st = job.video.stat()
        key = (st.st_size, st.st_mtime_ns)
        cached = self._hashes.get(job.id)
        if cached is None or cached[0] != key:
            cached = (key, sha256_file(job.video))
            self._hashes[job.id] = cached
        return cached[1]

    def of(self, job_id: str) -> dict[str, Any]:
        """The spans of one video (each with ``id``, its line in the file) and the conflicts among them (``a``,
        ``b``: span ids; ``kind``; ``line``: the sentence)."""
        key = Project.video_key(job_id)
        with self._lock:
            spans = [s for s in self.store.spans() if s.video == key]
        found = conflicts(spans)
        return {"spans": [_public(s) for s in spans],
                "conflicts": [{"kind": c.kind, "a": c.a.line, "b": c.b.line, "line": _sentence(c)} for c in found],
                "count": len(spans)}

    def add(self, job: Job, track_id: Any, start_s: Any, end_s: Any, label: Any) -> dict[str, Any]:
        """Save one span of ``job``'s video, after the checks; returns it as stored."""
        classes = self.project.classes
        if not isinstance(label, str) or label not in classes:
            raise LabelError(f"unknown class {label!r}; the project's classes are {', '.join(classes)}")
        try:
            start, end = float(start_s), float(end_s)
        except (TypeError, ValueError):
            raise LabelError(f"start_s and end_s must be numbers of seconds, got {start_s!r} and {end_s!r}") from None
        if not (math.isfinite(start) and math.isfinite(end) and 0 <= start < end):
            raise LabelError(f"the span {start:g}-{end:g} s is empty or negative (need 0 <= start_s < end_s)")
        try:
            track = int(track_id)
        except (TypeError, ValueError):
            raise LabelError(f"track_id must be a face track number, got {track_id!r}") from None
        faces = sorted(t for t in job.tracks if t >= 0)
        if (faces and track not in faces) or (not faces and track != 0):
            known = ", ".join(map(str, faces)) if faces else "0 only"
            raise LabelError(f"{job.display_name or job.name} has no face track {track}; its tracks are {known}")
        key = Project.video_key(job.id)
        name = job.display_name or job.name
        with self._lock:
            digest = self._sha256(job)
            earlier = [s for s in self.store.spans() if s.video == key]
            if any(s.video_sha256 and s.video_sha256 != digest for s in earlier):
                raise LabelError(f"{name} has changed since it was labelled (its SHA-256 differs from the labels'); "
                                 "its labels no longer match its frames", 409)
            span = Span(key, start, end, label, str(track), self.annotator, video_sha256=digest)
            problems = check_labels([span], self.store.path, class_names=classes)
            if problems:
                raise LabelError(f"{name}: " + problems[0][1].split(": ", 1)[-1])
            stored = self.store.add(span)[0]
        return _public(stored)

    def undo(self) -> bool:
        """Restore the labels file as it was before the last change (an add or an undo-able change)."""
        with self._lock:
            return self.store.undo()

    def csv_path(self):
        """The labels file, written (header only) if there is none yet, for download."""
        with self._lock:
            if not self.store.path.is_file():
                write_labels(self.store.path, [])
        return self.store.path


def _public(span: Span) -> dict[str, Any]:
    return {"id": span.line, "track_id": span.track_id, "start_s": span.start_s, "end_s": span.end_s,
            "label": span.label, "annotator": span.annotator, "created": span.created}


def _sentence(c) -> str:
    what = "contradict each other" if c.kind == "contradictory" else "overlap"
    return (f"face {c.a.track_id}: {c.a.start_s:g}–{c.a.end_s:g} s {c.a.label!r} and {c.b.start_s:g}–{c.b.end_s:g} s "
            f"{c.b.label!r} {what} (kept as labelled, not merged)")
