"""Raw videos -> mmadfer's frame-folder layout: face crops as JPEGs plus the original audio as WAV.

The default profile takes one square MTCNN face box per clip (the union of its boxes, squared and clamped), one JPEG
per frame at the native frame rate, and the audio as WAV without resampling. ``profile='mafw-reference'`` instead
reproduces the authors' MAFW preprocessing exactly (a box per frame, their folder layout and annotation format; see
:mod:`mmadfer.data.mafw_reference` and REPRODUCING.md). Both are done in parallel and safely:

* each clip is written so that an interrupted run never leaves a folder that looks finished
  (see :func:`mmadfer.data.layout.write_clip_folder`), and a re-run skips every finished clip;
* a bad input (empty, not media, truncated, no video) is reported and never stops the others; the run's report,
  ``ROOT/prepare_report.csv`` and ``.json`` (file, clip_id, status, reason, face_coverage, fallback, n_frames,
  has_audio), lists every input;
* with a label table, the annotations and ``classes.txt`` that the datasets read are written too.
"""
from __future__ import annotations

import concurrent.futures as cf
import json
import multiprocessing
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ..hardware import usable_cores
from ..io import atomic_write, write_csv
from .annotations import encode_labels, is_video_name, read_label_table, stratified_folds, write_classes
from .labels import Span, check_labels, conflicts, is_label_store, paired_spans, read_labels, video_path
from .layout import (
    CLASSES_FILE, check_clip_id, clip_dir, clip_wav, count_frames, write_clip_folder, write_fold_annotations,
)
from .mafw_reference import (
    faces_dir, faces_wav, reference_crop_box, rewrite_authors_annotations, write_face_frames, write_faces_annotations,
    write_reference_wav,
)
from ..media.detectors import make_detector
from ..media.faces import crop_faces
from ..media.decode import open_video
from ..errors import MmadferError
from ..config import MAFW_CLASSES

__all__ = [
    "PROFILES", "PrepareResult", "PrepareSummary", "find_videos", "assign_clip_ids", "prepare_clip",
    "prepare_mafw_clip", "prepare_videos", "prepare_spans", "span_clip_id",
]

#: ``default``: mmadfer's layout (one square face box per clip, ``clips/<id>/00001.jpg``); ``mafw-reference``: the
#: authors' MAFW preprocessing (per-frame boxes, ``clips_faces/<id>/0.jpg``, ``clips_wav/``; see
#: :mod:`mmadfer.data.mafw_reference`).
PROFILES = ("default", "mafw-reference")

REPORT_FIELDS = ("file", "clip_id", "status", "reason", "face_coverage", "fallback", "n_frames", "has_audio")


@dataclass
class PrepareResult:
    """What happened to one input video. ``status`` is ``ok`` (prepared now), ``skipped`` (finished by an earlier
    run) or ``failed`` (``reason`` says why)."""

    file: str
    clip_id: str
    status: str
    reason: str = ""
    face_coverage: float | None = None
    n_frames: int | None = None
    has_audio: bool | None = None
    fallback: bool | None = None
    fps: float | None = None
    sample_rate: int | None = None
    channels: int | None = None


@dataclass
class PrepareSummary:
    root: Path
    results: list[PrepareResult] = field(default_factory=list)
    annotation_files: list[Path] = field(default_factory=list)
    unlabelled: list[str] = field(default_factory=list)
    label_error: str | None = None  # why no annotations could be written from the label table
    problems: list[str] = field(default_factory=list)  # labelled spans left out, one line each (prepare_spans)
    pairs: dict | None = None  # two annotators' labels on the same spans (prepare_spans): first, second, labels

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def failed(self) -> list[PrepareResult]:
        return [r for r in self.results if r.status == "failed"]

    def line(self) -> str:
        return (f"prepared {self.count('ok')}, skipped {self.count('skipped')} (already done), "
                f"failed {self.count('failed')} of {len(self.results)} videos -> {self.root}")


# -- inputs --------------------------------------------------------------------------------------------------------
def find_videos(inputs: Iterable[str | os.PathLike]) -> list[Path]:
    """Expand files and folders into a sorted, de-duplicated list of files. Folders are searched recursively for
    the endings in :data:`~mmadfer.data.annotations.VIDEO_SUFFIXES`; files named explicitly are taken as they are
    (their content decides whether they are media). A missing input is a FileNotFoundError."""
    found: dict[Path, None] = {}
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.is_file() and is_video_name(f) and not f.name.startswith("."):
                    found.setdefault(f.resolve(), None)
        elif p.exists():
            found.setdefault(p.resolve(), None)
        else:
            raise FileNotFoundError(f"input not found: {p}")
    return list(found)


def assign_clip_ids(videos: Sequence[Path]) -> list[str]:
    """A clip id per video: its file stem with characters other than letters, digits, ``.``, ``_`` and ``-``
    replaced by ``_`` (ids go in whitespace-separated annotation files); repeated stems get ``_2``, ``_3``, ... in
    input order, so the same inputs always map to the same ids. An id that is not a safe folder name (``..`` from
    ``...mp4``) is kept as it is here and rejected per file by :func:`prepare_videos`
    (:func:`~mmadfer.data.layout.check_clip_id`)."""
    ids, seen = [], {}
    for v in videos:
        base = re.sub(r"[^A-Za-z0-9._-]", "_", v.stem) or "clip"
        n = seen.get(base, 0) + 1
        seen[base] = n
        ids.append(base if n == 1 else f"{base}_{n}")
    return ids


# -- one clip (runs in a worker process) ---------------------------------------------------------------------------
_DETECTORS: dict[str, Any] = {}  # one face detector per name and process, created on first use


def _detector(name: str):
    """The face detector named ``name`` (:data:`~mmadfer.media.detectors.DETECTORS`), None for ``'none'``."""
    if name not in _DETECTORS:
        _DETECTORS[name] = make_detector(name)
    return _DETECTORS[name]


def _meta_path(root: Path, clip_id: str) -> Path:
    return clip_dir(root, clip_id).with_name(f"{clip_id}.json")


def _read_whole(video: Path, max_seconds: float | None, start_s: float | None = None, end_s: float | None = None,
                colorspace: str = "tags"):
    """The clip ``[start_s, end_s)`` of ``video`` (default: all of it). A clip is decoded at once, so one longer
    than ``max_seconds`` is refused."""
    with open_video(video, colorspace=colorspace) as reader:
        t0 = start_s or 0.0
        length = (end_s if end_s is not None else (reader.duration_s or 0.0)) - t0
        if max_seconds is not None and length > max_seconds:
            raise ValueError(f"clip is {length:.0f} s long, over the {max_seconds:.0f} s limit for "
                             "one clip; cut it into clips first or raise --max-seconds")
        clip = reader.read(t0, end_s)
    if clip.num_frames == 0:
        raise ValueError("no video frames decoded" + ("" if start_s is None else f" in {t0:g}-{end_s:g}s"))
    return clip


def prepare_clip(video: str | os.PathLike, root: str | os.PathLike, clip_id: str, *, size: int = 224,
                 face_crop: str = "union", faces: bool = True, max_seconds: float | None = 600.0,
                 start_s: float | None = None, end_s: float | None = None,
                 detector: str = "mtcnn") -> PrepareResult:
    """Prepare one video into ``ROOT/clips/<clip_id>/`` (JPEG face crops, ``size`` x ``size``, every frame) and
    ``ROOT/clips/<clip_id>.wav`` (all channels at the native rate; empty if the video has no audio), plus a
    ``<clip_id>.json`` with the clip's statistics. Never raises for a bad input: returns a ``failed`` result.

    ``detector`` names the face detector (:data:`~mmadfer.media.detectors.DETECTORS`; default the reference's
    MTCNN on every frame). ``faces=False`` (or ``detector='none'``) skips detection and takes the centre square of
    each frame (for videos that are face crops already). Videos longer than ``max_seconds`` fail, because a clip is decoded whole: cut long recordings into
    clips first (``mmadfer predict`` streams long videos instead). ``start_s``/``end_s`` take only that span of the
    video (a labelled span of a labels file).
    """
    root, video = Path(root), Path(video)
    result = PrepareResult(str(video), clip_id, "failed")
    try:
        clip = _read_whole(video, max_seconds, start_s, end_s)
        det = _detector(detector) if faces else None
        faces = det is not None
        if faces:
            boxes, _ = det.detect(clip.frames)  # one float [k, 4] array per frame
        else:  # no boxes: crop_faces takes the centre square of every frame
            boxes = [np.zeros((0, 4), np.float32)] * clip.num_frames
        crops = crop_faces(clip.frames, boxes, face_crop, size)  # frames uint8 [T, size, size, 3]
        result = PrepareResult(
            str(video), clip_id, "ok", n_frames=int(clip.num_frames),
            face_coverage=round(float(crops.coverage), 4) if faces else None,
            fallback=bool(crops.fallback) if faces else None,
            has_audio=bool(clip.has_audio and clip.waveform.shape[-1] > 0),
            fps=round(float(clip.fps), 4), sample_rate=int(clip.sample_rate), channels=int(clip.waveform.shape[0]),
        )
        with atomic_write(_meta_path(root, clip_id), "w", encoding="utf-8") as f:
            json.dump(asdict(result), f, indent=1)
        write_clip_folder(root, clip_id, crops.frames, clip.waveform if result.has_audio else None,
                          clip.sample_rate)
    except Exception as e:  # one bad file must never stop the run: report it
        result.status = "failed"
        result.reason = e.reason if isinstance(e, MmadferError) else f"{type(e).__name__}: {e}"
    return result


def prepare_mafw_clip(video: str | os.PathLike, root: str | os.PathLike, clip_id: str, *, faces: bool = True,
                      max_seconds: float | None = 600.0, detector: str = "mtcnn", **_) -> PrepareResult:
    """Prepare one video as the authors' ``extract_faces_mfaw.py`` and ``mp42wav.sh`` did: every decoded frame
    cropped with its own box (:func:`~mmadfer.data.mafw_reference.reference_crop_box` of that frame's MTCNN boxes)
    into ``ROOT/clips_faces/<clip_id>/0.jpg ...`` and the audio into ``ROOT/clips_wav/<clip_id>.wav`` (none when the
    video has no audio stream). Frames are decoded with BT.601 whatever the stream's colour tags, as their
    ``cv2.VideoCapture`` did (:mod:`mmadfer.media.decode`). The boxes are kept in ``ROOT/meta/<clip_id>.json``. Never
    raises for a bad input."""
    root, video = Path(root), Path(video)
    result = PrepareResult(str(video), clip_id, "failed")
    try:
        clip = _read_whole(video, max_seconds, colorspace="bt601")  # the authors decoded with OpenCV (<= 4.12)
        T, H, W = clip.frames.shape[:3]
        faces = faces and _detector(detector) is not None
        found = _detector(detector).detect(clip.frames)[0] if faces else [np.zeros((0, 4), np.float32)] * T
        picked = [reference_crop_box(b, W, H) for b in found]
        boxes = [box for box, _ in picked]
        coverage = float(np.mean([len(b) > 0 for b in found]))
        result = PrepareResult(str(video), clip_id, "ok", n_frames=int(T), face_coverage=round(coverage, 4),
                               fallback=all(fb for _, fb in picked), fps=round(float(clip.fps), 4))
        result.has_audio = write_reference_wav(video, faces_wav(root, clip_id))
        if result.has_audio:
            result.sample_rate, result.channels = int(clip.sample_rate), int(clip.waveform.shape[0])
        meta = dict(asdict(result), boxes=[list(b) for b in boxes], no_face=[fb for _, fb in picked],
                    detections=[np.asarray(b, np.float64).round(3).tolist() for b in found])
        with atomic_write(root / "meta" / f"{clip_id}.json", "w", encoding="utf-8") as f:
            json.dump(meta, f)
        write_face_frames(root, clip_id, clip.frames, boxes)
    except Exception as e:  # one bad file must never stop the run: report it
        result.status = "failed"
        result.reason = e.reason if isinstance(e, MmadferError) else f"{type(e).__name__}: {e}"
    return result


def _finished(root: Path, clip_id: str, profile: str = "default") -> bool:
    if profile == "mafw-reference":
        return faces_dir(root, clip_id).is_dir()  # renamed into place last; a clip without audio has no WAV
    return clip_dir(root, clip_id).is_dir() and clip_wav(root, clip_id).is_file()


def _skipped(root: Path, video: Path, clip_id: str, profile: str = "default") -> PrepareResult:
    """The result for a clip finished by an earlier run, with its statistics from its ``<clip_id>.json``."""
    result = PrepareResult(str(video), clip_id, "skipped")
    mafw = profile == "mafw-reference"
    try:
        meta = json.loads((root / "meta" / f"{clip_id}.json" if mafw else _meta_path(root, clip_id)).read_text())
        for key in ("face_coverage", "n_frames", "has_audio", "fallback", "fps", "sample_rate", "channels"):
            setattr(result, key, meta.get(key))
    except (OSError, ValueError):
        result.n_frames = count_frames(faces_dir(root, clip_id) if mafw else clip_dir(root, clip_id))
    return result


def _init_worker(threads: int) -> None:
    torch.set_num_threads(max(1, threads))


def _run_parallel(jobs: list[tuple[Path, str, dict]], kw: dict, workers: int, progress,
                  job=prepare_clip) -> dict[str, PrepareResult]:
    """Run :func:`prepare_clip` over ``jobs`` in ``workers`` spawned processes. If a worker dies (a crash in native
    code), the unfinished clips are retried once in a fresh pool, then reported as failed."""
    results: dict[str, PrepareResult] = {}
    threads = max(1, usable_cores() // workers)
    pending = jobs
    for attempt in range(2):
        ctx = multiprocessing.get_context("spawn")
        with cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(threads,)) as pool:
            futures = {pool.submit(job, video, clip_id=cid, **kw, **own): (video, cid) for video, cid, own in pending}
            for fut in cf.as_completed(futures):
                video, cid = futures[fut]
                try:
                    results[cid] = fut.result()
                except cf.process.BrokenProcessPool:
                    continue
                progress.update(1)
        pending = [(v, c, o) for v, c, o in pending if c not in results]
        if not pending:
            break
    for video, cid, _ in pending:
        results[cid] = PrepareResult(str(video), cid, "failed", "the worker process crashed while decoding this file")
        progress.update(1)
    return results


# -- the whole run ---------------------------------------------------------------------------------------------------
def _prepare_all(root: Path, jobs: Sequence[tuple[Path, str, dict]], kw: dict, workers: int, progress: bool,
                 profile: str = "default") -> dict[str, PrepareResult]:
    """Prepare ``(video, clip_id, own options)`` jobs: unsafe ids fail, finished clips are skipped, the rest run
    in this process or ``workers`` processes. Returns the results by clip id."""
    results: dict[str, PrepareResult] = {}
    todo = []
    for video, cid, own in jobs:
        try:
            check_clip_id(cid)  # '...mp4' -> '..': its folder would be ROOT itself
        except ValueError as e:
            results[cid] = PrepareResult(str(video), cid, "failed", str(e))
            continue
        if _finished(root, cid, profile):
            results[cid] = _skipped(root, video, cid, profile)
        else:
            todo.append((video, cid, own))
    job = prepare_mafw_clip if profile == "mafw-reference" else prepare_clip
    with tqdm(total=len(todo), desc="prepare", unit="clip", disable=not progress or not todo) as bar:
        if workers <= 1 or len(todo) <= 1:
            for video, cid, own in todo:
                bar.set_postfix_str(video.name, refresh=False)
                results[cid] = job(video, clip_id=cid, **kw, **own)
                bar.update(1)
        else:
            results.update(_run_parallel(todo, kw, min(workers, len(todo)), bar, job))
    return results


def prepare_videos(inputs: Iterable[str | os.PathLike], out: str | os.PathLike, *, labels: str | os.PathLike | None = None,
                   folds: int | None = None, workers: int = 1, size: int = 224, face_crop: str = "union",
                   faces: bool = True, detector: str = "mtcnn", max_seconds: float | None = 600.0, seed: int = 0,
                   progress: bool = True, profile: str = "default",
                   annotations: Sequence[str | os.PathLike] = ()) -> PrepareSummary:
    """Prepare every video in ``inputs`` (files and folders) into mmadfer's layout under ``out``.

    Finished clips are skipped, the others prepared by ``workers`` processes (``<= 1``: in this process), and
    ``out/prepare_report.{csv,json}`` lists every input. With ``labels`` (a ``video,label`` CSV; a video is matched
    by its path, else its file name, else its stem), ``out/classes.txt`` and ``out/annotations/`` are written for
    every prepared, labelled clip: ``set_<k>_{train,test}.txt`` for ``folds >= 2`` (stratified, seeded), else
    ``all.txt``. See :func:`prepare_clip` for the other options.

    ``profile='mafw-reference'`` reproduces the authors' MAFW preprocessing instead (:func:`prepare_mafw_clip`;
    ``size`` and ``face_crop`` do not apply): ``clips_faces/``, ``clips_wav/``, and their annotation format
    (``<abs path> <file count - 1> <label>``): ``annotations`` (the authors' ``MAFW_set_<k>_<split>[_faces].txt``
    files) are rewritten for the new crops as their ``process_ann_mfaw.py`` did, and a label table (names or
    indices of :data:`mmadfer.config.MAFW_CLASSES`) gives ``MAFW_set_<k>_{train,test}_faces.txt`` (or
    ``MAFW_all_faces.txt``).

    A labels file of time spans (:mod:`mmadfer.data.labels`, a header with ``start_s`` and ``end_s``) is cut into
    one clip per span instead: :func:`prepare_spans`.
    """
    if face_crop not in ("union", "track"):
        raise ValueError(f"face_crop must be 'union' or 'track', got {face_crop!r}")
    if profile not in PROFILES:
        raise ValueError(f"profile must be one of {PROFILES}, got {profile!r}")
    if annotations and profile != "mafw-reference":
        raise ValueError("annotations (the authors' MAFW files) apply to profile 'mafw-reference' only")
    if labels is not None and profile == "default" and Path(labels).is_file() and is_label_store(labels):
        return prepare_spans(inputs, labels, out, folds=folds, workers=workers, size=size, face_crop=face_crop,
                             faces=faces, max_seconds=max_seconds, seed=seed, progress=progress, detector=detector)
    root = Path(out)
    videos = find_videos(inputs)
    ids = assign_clip_ids(videos)
    label_rows = read_label_table(labels) if labels is not None else None  # fail early on a bad CSV
    root.mkdir(parents=True, exist_ok=True)

    kw = dict(root=root, size=size, face_crop=face_crop, faces=faces, detector=detector, max_seconds=max_seconds)
    results = _prepare_all(root, [(video, cid, {}) for video, cid in zip(videos, ids)], kw, workers, progress,
                           profile)

    summary = PrepareSummary(root, [results[cid] for cid in ids])
    if annotations:
        summary.annotation_files += rewrite_authors_annotations(root, annotations)
    if label_rows is not None:
        _write_labels(summary, videos, ids, label_rows, labels, folds, seed, profile)
    _write_report(summary)
    return summary


def span_clip_id(span: Span) -> str:
    """A clip id for a labelled span: ``[<folder>_]<video stem>_t<track>_<start ms>-<end ms>`` (safe characters
    only). The video's folder is part of the name when the labels file names one, so that videos of one name in
    several folders (the web app's ``jobs/<id>/video``) give clips that say which video they came from."""
    video = Path(span.video)
    parent = video.parent.name if video.parent.name not in ("", ".", "..") else ""
    base = re.sub(r"[^A-Za-z0-9._-]", "_", f"{parent}_{video.stem}" if parent else video.stem) or "clip"
    track = re.sub(r"[^A-Za-z0-9._-]", "_", span.track_id or "0")
    return f"{base}_t{track}_{round(span.start_s * 1000):07d}-{round(span.end_s * 1000):07d}"


def _select_spans(spans: list[Span], source, problems: list[str]) -> tuple[list[Span], dict | None]:
    """The spans to train on: contradictory spans of one annotator are left out (both), and where two annotators
    labelled the same span the first annotator's is kept when they agree and both are left out when they do not;
    their labels on the shared spans are returned (``first``, ``second``, ``labels``: pairs) for the agreement
    (:func:`mmadfer.evaluation.agreement.cohen_kappa`). Every span left out gets a line in ``problems``."""
    dropped: set[int] = set()
    for c in conflicts(spans):
        if c.kind == "contradictory":
            problems.append(c.line(source) + ": both left out")
            dropped.update((id(c.a), id(c.b)))
    annotators = sorted({s.annotator for s in spans}, key=lambda a: (-sum(s.annotator == a for s in spans), a))
    shared = None
    if len(annotators) >= 2:
        first, second = annotators[:2]
        pairs = [(a, b) for a, b in paired_spans(spans, first, second)
                 if id(a) not in dropped and id(b) not in dropped]
        if pairs:
            shared = {"first": first, "second": second, "labels": [[a.label, b.label] for a, b in pairs]}
        for a, b in pairs:
            dropped.add(id(b))  # one clip per span
            if a.label != b.label:
                dropped.add(id(a))
                problems.append(f"{source}:{a.line}/{b.line}: {first} says {a.label!r}, {second} says {b.label!r} "
                                f"for {a.video} {a.start_s:g}-{a.end_s:g}s: left out")
    return [s for s in spans if id(s) not in dropped], shared


def prepare_spans(inputs: Iterable[str | os.PathLike], labels: str | os.PathLike, out: str | os.PathLike, *,
                  class_names: Sequence[str] | None = None, folds: int | None = None, workers: int = 1,
                  size: int = 224, face_crop: str = "union", faces: bool = True, max_seconds: float | None = 600.0,
                  seed: int = 0, progress: bool = True, detector: str = "mtcnn") -> PrepareSummary:
    """Cut the labelled spans of a labels file (:mod:`mmadfer.data.labels`) into clips under ``out``, one clip per
    span (:func:`prepare_clip` with the span's times; ids from :func:`span_clip_id`), and write the annotations.

    A span's video is the labels file's ``video`` (relative to the labels file) or, when that is not there, the
    input video of the same file name. Spans are checked first (:func:`~mmadfer.data.labels.check_labels`: missing
    or changed video, outside the video, unknown class when ``class_names`` is given); a bad span, and spans that
    contradict each other, are left out with one line each in ``summary.problems`` and the others are prepared.
    The split is by video (:func:`~mmadfer.data.annotations.grouped_folds`): ``folds >= 2`` writes
    ``set_<k>_{train,test}.txt`` and, from 3 folds, ``set_<k>_val.txt`` (the next fold's videos, held out of
    training for early stopping); otherwise ``all.txt``. Two annotators' labels on the same spans are in
    ``summary.pairs`` (``mmadfer prepare`` writes their Cohen's kappa to ``agreement.json``).
    """
    root = Path(out)
    spans = read_labels(labels)
    by_name = {}
    for v in find_videos(inputs):
        by_name.setdefault(v.name, v)
    located = []
    for span in spans:
        path = video_path(span, labels)
        if not path.is_file() and Path(span.video).name in by_name:
            path = by_name[Path(span.video).name]
        located.append(Span(**{**span.__dict__, "video": str(path)}))
    checked = check_labels(located, labels, class_names=class_names)
    problems = [message for _, message in checked]
    bad = {id(span) for span, _ in checked}
    usable = [s for s in located if id(s) not in bad]
    selected, pairs = _select_spans(usable, labels, problems)
    root.mkdir(parents=True, exist_ok=True)
    ids, seen = [], {}
    for s in selected:
        cid = span_clip_id(s)
        seen[cid] = seen.get(cid, 0) + 1
        ids.append(cid if seen[cid] == 1 else f"{cid}_{seen[cid]}")
    kw = dict(root=root, size=size, face_crop=face_crop, faces=faces, detector=detector, max_seconds=max_seconds)
    results = _prepare_all(root, [(Path(s.video), cid, {"start_s": s.start_s, "end_s": s.end_s})
                                  for s, cid in zip(selected, ids)], kw, workers, progress)
    summary = PrepareSummary(root, [results[cid] for cid in ids], problems=problems, pairs=pairs)
    names = tuple(class_names) if class_names is not None else tuple(sorted({s.label for s in selected}))
    index = {n: i for i, n in enumerate(names)}
    kept = [(s, cid) for s, cid, r in zip(selected, ids, summary.results) if r.status != "failed"]
    entries = [(cid, count_frames(clip_dir(root, cid)), index[s.label]) for s, cid in kept]
    empty = [n for n in names if n not in {s.label for s, _ in kept}]
    if not entries:
        summary.label_error = f"{labels}: no labelled span could be prepared; no annotations written"
    elif empty:
        summary.label_error = f"{labels}: class(es) {', '.join(empty)} have no clip; no annotations written"
    else:
        try:
            summary.annotation_files = write_fold_annotations(root, entries, folds, seed,
                                                              groups=[s.video for s, _ in kept], validation=True)
            write_classes(root / CLASSES_FILE, names)
        except ValueError as e:  # e.g. fewer videos than folds
            summary.label_error = f"{labels}: {e}; no annotations written"
    _write_report(summary)
    return summary


def _write_labels(summary: PrepareSummary, videos: Sequence[Path], ids: Sequence[str], rows: list[dict],
                  source, folds: int | None, seed: int, profile: str = "default") -> None:
    mafw = profile == "mafw-reference"
    indices, class_names = encode_labels(rows, MAFW_CLASSES if mafw else None, source)
    by_path = {Path(r["video"]).resolve(): i for r, i in zip(rows, indices)}
    by_name = {Path(r["video"]).name: i for r, i in zip(rows, indices)}
    by_stem = {Path(r["video"]).stem: i for r, i in zip(rows, indices)}
    entries = []
    for video, cid, res in zip(videos, ids, summary.results):
        label = by_path.get(video, by_name.get(video.name, by_stem.get(video.stem)))
        if label is None:
            summary.unlabelled.append(str(video))
        elif res.status != "failed":
            entries.append((cid, 0 if mafw else count_frames(clip_dir(summary.root, cid)), label))
    if not entries:
        summary.label_error = f"{source}: none of the prepared videos has a label there; no annotations written"
        return
    try:
        if mafw:
            split = stratified_folds([e[2] for e in entries], folds, seed) if folds and folds >= 2 else None
            summary.annotation_files += write_faces_annotations(
                summary.root, [(cid, label) for cid, _, label in entries], split, folds)
            return
        summary.annotation_files = write_fold_annotations(summary.root, entries, folds, seed)
    except ValueError as e:  # e.g. fewer labelled clips than folds
        summary.label_error = f"{source}: {e}; no annotations written"
        return
    write_classes(summary.root / CLASSES_FILE, class_names)


def _write_report(summary: PrepareSummary) -> None:
    rows = [{k: ("" if getattr(r, k) is None else getattr(r, k)) for k in REPORT_FIELDS} for r in summary.results]
    write_csv(summary.root / "prepare_report.csv", REPORT_FIELDS, rows)
    report = {
        "summary": {s: summary.count(s) for s in ("ok", "skipped", "failed")},
        "unlabelled": summary.unlabelled,
        "label_error": summary.label_error,
        "problems": summary.problems,
        "annotator_pairs": summary.pairs,
        "annotations": [str(p) for p in summary.annotation_files],
        "clips": [asdict(r) for r in summary.results],
    }
    with atomic_write(summary.root / "prepare_report.json", "w", encoding="utf-8") as f:
        json.dump(report, f, indent=1)
