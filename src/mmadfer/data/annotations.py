"""Dataset indexes: clip records and the text formats that list them (annotation files, split CSVs, classes).

Indexing is kept apart from decoding: these functions only read text files (no media is opened), so a dataset of
tens of thousands of clips indexes in milliseconds, and its labels are known before any frame is decoded.
"""
from __future__ import annotations

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..config import MAFW_CLASSES
from ..io import atomic_write

__all__ = [
    "ClipRecord", "VIDEO_SUFFIXES", "is_video_name", "read_reference_annotation", "write_reference_annotation", "read_dfew_csv", "read_mafw_split",
    "read_label_table", "encode_labels", "read_clip_csv", "read_classes", "write_classes", "stratified_folds", "grouped_folds",
]

#: File name endings taken as videos when a folder is scanned (``mmadfer prepare``) or a clip is named by file.
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm")


def is_video_name(path: str | os.PathLike) -> bool:
    """Whether ``path`` is named like a video (one of :data:`VIDEO_SUFFIXES`, any case); its content is not read."""
    return Path(path).suffix.lower() in VIDEO_SUFFIXES


@dataclass(frozen=True)
class ClipRecord:
    """One sample of a dataset index.

    ``path`` is a frame folder (frame-folder datasets) or a video file (:class:`~mmadfer.data.datasets.CSVClipDataset`).
    ``num_frames`` is the frame count from the index, or None to count the frames when the clip is loaded.
    ``audio_path`` is None when the dataset locates the audio itself (the WAV beside a frame folder).
    ``start_s``/``end_s`` select a window of a video file; None means its start/end.
    """

    path: str
    num_frames: int | None
    label: int
    audio_path: str | None = None
    start_s: float | None = None
    end_s: float | None = None


def _lines(path: Path) -> Iterable[tuple[int, str]]:
    """Non-empty, non-comment lines of a text file with their 1-based line numbers."""
    if not path.is_file():
        raise FileNotFoundError(f"annotation file not found: {path}")
    with open(path, encoding="utf-8-sig") as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if line and not line.startswith("#"):
                yield n, line


def _resolve(entry: str, root: Path) -> Path:
    """A path from an index: relative paths are under ``root``. An absolute path that does not exist (the authors'
    files carry their own ``/scratch/...`` paths) is looked up as ``root/<its last component>``."""
    p = Path(entry)
    if not p.is_absolute():
        return root / p
    if not p.exists() and (root / p.name).exists():
        return root / p.name
    return p


def read_reference_annotation(path: str | os.PathLike, root: str | os.PathLike | None = None,
                              label_offset: int = 0) -> list[ClipRecord]:
    """Read an annotation file in the reference's format: one clip per line, ``path num_frames label``.

    Labels in these files are 0-based (the authors' ``DFEW_set_1_train.txt`` holds 0..6); ``label_offset`` is
    subtracted from each, for files that count from 1. Relative paths are resolved against ``root`` (default: the
    annotation file's folder). The authors' published files name absolute paths on their cluster; pass
    ``root=<your frame-folder directory>`` and each missing absolute path is looked up there by its folder name.
    """
    path = Path(path)
    base = Path(root) if root is not None else path.parent
    records = []
    for n, line in _lines(path):
        parts = line.split()
        if len(parts) != 3:
            raise ValueError(f"{path}:{n}: expected 'path num_frames label', got {line!r}")
        try:
            num_frames, label = int(parts[1]), int(parts[2]) - label_offset
        except ValueError:
            raise ValueError(f"{path}:{n}: num_frames and label must be integers, got {line!r}") from None
        if label < 0:
            raise ValueError(f"{path}:{n}: negative label {label} (label_offset={label_offset})")
        records.append(ClipRecord(str(_resolve(parts[0], base)), num_frames, label))
    return records


def write_reference_annotation(path: str | os.PathLike, records: Iterable[ClipRecord],
                               root: str | os.PathLike | None = None) -> None:
    """Write ``records`` in the reference's ``path num_frames label`` format (atomically); paths under ``root`` are
    written relative to it, with forward slashes, so the dataset folder can be moved."""
    lines = []
    for r in records:
        p = Path(r.path)
        if root is not None:
            try:
                p = p.relative_to(root)
            except ValueError:
                pass
        if any(c.isspace() for c in p.as_posix()):
            raise ValueError(f"clip path {p.as_posix()!r} contains whitespace, which the annotation format cannot hold")
        if r.num_frames is None:
            raise ValueError(f"clip {p.as_posix()} has no frame count; the annotation format needs one")
        lines.append(f"{p.as_posix()} {int(r.num_frames)} {int(r.label)}\n")
    with atomic_write(path, "w", encoding="utf-8", newline="") as f:
        f.write("".join(lines))


def _find_clip(clip_root: Path, name: str) -> Path:
    """The frame folder for a clip name: ``name`` itself, or zero-padded to 5 digits (DFEW's ``1`` -> ``00001``)."""
    name = Path(name).stem if is_video_name(name) else name
    candidates = [name] + ([name.zfill(5)] if name.isdigit() else [])
    for c in candidates:
        if (clip_root / c).is_dir():
            return clip_root / c
    return clip_root / candidates[-1]


def read_dfew_csv(csv_path: str | os.PathLike, clip_root: str | os.PathLike, label_offset: int = 1) -> list[ClipRecord]:
    """Read one of DFEW's own split files, ``EmoLabel_DataSplit/{train,test}(single-labeled)/set_<k>.csv``.

    Columns ``video_name,label``; ``video_name`` is the clip number (``1``), whose frame folder under ``clip_root``
    is zero-padded (``clip_224x224/00001``); labels are 1..7 in DFEW's order (happy, sad, neutral, angry, surprise,
    disgust, fear) and become 0..6. Frame counts are taken from the folders when the clips load.
    """
    clip_root = Path(clip_root)
    records = []
    for n, row in _dict_rows(Path(csv_path), required=("video_name", "label")):
        try:
            label = int(float(row["label"])) - label_offset
        except ValueError:
            raise ValueError(f"{csv_path}:{n}: label must be an integer, got {row['label']!r}") from None
        if label < 0:
            raise ValueError(f"{csv_path}:{n}: label {row['label']} below {label_offset} (DFEW labels are 1..7)")
        records.append(ClipRecord(str(_find_clip(clip_root, row["video_name"].strip())), None, label))
    return records


def read_mafw_split(path: str | os.PathLike, clip_root: str | os.PathLike, class_names: Sequence[str] | None = None,
                    label_offset: int | None = None) -> list[ClipRecord]:
    """Read one of MAFW's own split files, ``Train & Test Set/single/no_caption/set_<k>/{train,test}.txt``.

    Assumed format (read flexibly): one clip per line, the clip name (``00025`` or ``00025.mp4``) then its label,
    separated by whitespace or a comma; a first line without digits in its clip name is a header and is skipped. A label is either a class name from
    ``class_names`` (default :data:`mmadfer.config.MAFW_CLASSES`; case-insensitive) or an integer. Integer labels
    are 1-based unless ``label_offset`` says otherwise; with ``label_offset=None`` a file holding a 0 is read as
    0-based. Frame folders are looked up under ``clip_root`` by clip name; frame counts come from the folders.
    """
    path, clip_root = Path(path), Path(clip_root)
    names = [c.lower() for c in (class_names or MAFW_CLASSES)]
    rows = []
    for n, line in _lines(path):
        parts = [p for p in re.split(r"[\s,;]+", line) if p]
        if len(parts) < 2:
            raise ValueError(f"{path}:{n}: expected 'clip_name label', got {line!r}")
        clip, label = parts[0], " ".join(parts[1:]).lower()
        if not rows and not any(ch.isdigit() for ch in clip) and label not in names and not label.isdigit():
            continue  # a header line such as "video label"
        rows.append((n, clip, label))
    ints = [int(lab) for _, _, lab in rows if lab.lstrip("-").isdigit()]
    offset = label_offset if label_offset is not None else (0 if 0 in ints else 1)
    records = []
    for n, clip, label in rows:
        if label in names:
            idx = names.index(label)
        elif label.lstrip("-").isdigit():
            idx = int(label) - offset
        else:
            raise ValueError(f"{path}:{n}: unknown class {label!r}; known: {', '.join(names)}")
        if not 0 <= idx < len(names):
            raise ValueError(f"{path}:{n}: label {label} is out of range for {len(names)} classes (offset {offset})")
        records.append(ClipRecord(str(_find_clip(clip_root, clip)), None, idx))
    return records


def _dict_rows(path: Path, required: Sequence[str]) -> Iterable[tuple[int, dict[str, str]]]:
    """Rows of a CSV with a header, keys lower-cased and stripped; a clear error for a missing file or column."""
    if not path.is_file():
        raise FileNotFoundError(f"CSV file not found: {path}")
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        fields = [(k or "").strip().lower() for k in (reader.fieldnames or [])]
        missing = [c for c in required if c not in fields]
        if missing:
            raise ValueError(f"{path}: missing column(s) {missing}; the header has {fields or 'no columns'}")
        for row in reader:
            clean = {(k or "").strip().lower(): (v or "").strip() for k, v in row.items() if k is not None}
            if any(clean.values()):
                yield reader.line_num, clean


def read_label_table(csv_path: str | os.PathLike, root: str | os.PathLike | None = None) -> list[dict]:
    """Read a ``video,label[,start,end]`` CSV into dicts ``{video: Path, label: str, start_s, end_s, line}``.

    Video paths are resolved against ``root`` (default: the CSV's folder); ``start``/``end`` are seconds, empty
    meaning the video's start/end.
    """
    csv_path = Path(csv_path)
    base = Path(root) if root is not None else csv_path.parent
    rows = []
    for n, row in _dict_rows(csv_path, required=("video", "label")):
        if not row["video"] or not row["label"]:
            raise ValueError(f"{csv_path}:{n}: empty 'video' or 'label'")
        times = {}
        for key in ("start", "end"):
            value = row.get(key, "")
            try:
                times[key] = float(value) if value else None
            except ValueError:
                raise ValueError(f"{csv_path}:{n}: '{key}' must be a number of seconds, got {value!r}") from None
        if times["start"] is not None and times["end"] is not None and times["end"] <= times["start"]:
            raise ValueError(f"{csv_path}:{n}: end {times['end']} is not after start {times['start']}")
        rows.append(dict(video=_resolve(row["video"], base), label=row["label"], start_s=times["start"],
                         end_s=times["end"], line=n))
    return rows


def encode_labels(rows: Sequence[dict], class_names: Sequence[str] | None = None,
                  source: str | os.PathLike = "") -> tuple[list[int], tuple[str, ...]]:
    """Label strings of :func:`read_label_table` rows -> ``(label indices, class_names)``.

    Labels are class names or integers. Without ``class_names`` the classes are the sorted unique labels, or
    ``class0..classN`` when every label is an integer. With ``class_names``, a label is looked up by name first,
    then as an integer index. An unknown label is a ValueError naming ``source`` and the line.
    """
    if class_names is None:
        if all(r["label"].isdigit() for r in rows):
            class_names = tuple(f"class{i}" for i in range(max((int(r["label"]) for r in rows), default=-1) + 1))
        else:
            class_names = tuple(sorted({r["label"] for r in rows}))
    class_names = tuple(class_names)
    index = {name: i for i, name in enumerate(class_names)}
    labels = []
    for r in rows:
        label = index.get(r["label"])
        if label is None and r["label"].isdigit() and int(r["label"]) < len(class_names):
            label = int(r["label"])
        if label is None:
            raise ValueError(f"{source}:{r['line']}: unknown label {r['label']!r}; classes are {list(class_names)}")
        labels.append(label)
    return labels, class_names


def read_clip_csv(csv_path: str | os.PathLike, root: str | os.PathLike | None = None,
                  class_names: Sequence[str] | None = None) -> tuple[list[ClipRecord], tuple[str, ...]]:
    """Index a team's own videos from a ``video,label[,start,end]`` CSV; returns ``(records, class_names)``
    (classes as in :func:`encode_labels`)."""
    rows = read_label_table(csv_path, root)
    if not rows:
        raise ValueError(f"{csv_path}: no clips listed")
    labels, class_names = encode_labels(rows, class_names, csv_path)
    records = [ClipRecord(str(r["video"]), None, label, start_s=r["start_s"], end_s=r["end_s"])
               for r, label in zip(rows, labels)]
    return records, class_names


def read_classes(path: str | os.PathLike) -> tuple[str, ...]:
    """Class names from a ``classes.txt`` (one per line, in label order)."""
    names = tuple(line for _, line in _lines(Path(path)))
    if not names:
        raise ValueError(f"{path}: no class names")
    return names


def write_classes(path: str | os.PathLike, names: Sequence[str]) -> None:
    with atomic_write(path, "w", encoding="utf-8", newline="") as f:
        f.write("".join(f"{n}\n" for n in names))


def stratified_folds(labels: Sequence[int], num_folds: int, seed: int = 0) -> list[int]:
    """Assign each item a fold in ``0..num_folds-1`` so that every fold holds about the same number of items of
    each class (members of each class are shuffled with ``seed`` and dealt round-robin, continuing across classes)."""
    if num_folds < 2:
        raise ValueError(f"num_folds must be at least 2, got {num_folds}")
    if len(labels) < num_folds:
        raise ValueError(f"cannot split {len(labels)} clips into {num_folds} folds")
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    folds = np.empty(len(labels), dtype=np.int64)
    dealt = 0
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        folds[members] = (dealt + np.arange(len(members))) % num_folds
        dealt += len(members)
    return folds.tolist()


def grouped_folds(labels: Sequence[int], groups: Sequence[str], num_folds: int, seed: int = 0) -> list[int]:
    """Like :func:`stratified_folds`, but every member of a group (the clips cut from one video) gets the same
    fold, so no video is in both the training and the test split of any fold. Groups are shuffled with ``seed`` and
    dealt, largest first, to the fold holding the fewest clips of the group's most common class (then the fewest
    clips), which keeps the folds about equal in size and class mix."""
    if num_folds < 2:
        raise ValueError(f"num_folds must be at least 2, got {num_folds}")
    if len(labels) != len(groups):
        raise ValueError(f"{len(labels)} labels but {len(groups)} groups")
    names = sorted(set(groups))
    if len(names) < num_folds:
        raise ValueError(f"cannot split {len(names)} videos into {num_folds} folds (splits are by video)")
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    groups = np.asarray(groups, dtype=object)
    members = {g: np.flatnonzero(groups == g) for g in names}
    order = [names[i] for i in rng.permutation(len(names))]
    order.sort(key=lambda g: -len(members[g]))  # stable: equal sizes keep the seeded order
    num_classes = int(labels.max()) + 1 if len(labels) else 0
    per_class = np.zeros((num_folds, num_classes), dtype=np.int64)
    folds = np.empty(len(labels), dtype=np.int64)
    for g in order:
        counts = np.bincount(labels[members[g]], minlength=num_classes)
        main = int(counts.argmax())
        k = min(range(num_folds), key=lambda f: (per_class[f, main], per_class[f].sum()))
        folds[members[g]] = k
        per_class[k] += counts
    return folds.tolist()
