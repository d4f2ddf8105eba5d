"""mmadfer's on-disk dataset layout: where clips, audio, annotations and class names go, and how a clip is written.

Written by ``mmadfer synth`` and ``mmadfer prepare``; read by :class:`~mmadfer.data.datasets.DFEW`,
:class:`~mmadfer.data.datasets.MAFW` and :class:`~mmadfer.data.datasets.FrameFolderDataset`::

    ROOT/clips/<clip_id>/00001.jpg ...       face crops, one JPEG per frame, in name order
    ROOT/clips/<clip_id>.wav                 the clip's audio (native rate and channels; no samples = silent clip)
    ROOT/annotations/set_<k>_train.txt       fold k's training clips, k = 1..5   } the reference's format,
    ROOT/annotations/set_<k>_test.txt        fold k's test clips                 } "clips/<clip_id> num_frames label"
    ROOT/annotations/all.txt                 every clip (when no folds were made)
    ROOT/classes.txt                         one class name per line, in label order

Annotation files use the reference's format, and frames are JPEG folders as DFEW's ``clip_224x224``; the authors'
own layouts (``raw_wav/`` and ``clips_wav/`` beside the frame folders) are read by the datasets as they are, and
``mmadfer prepare --profile mafw-reference`` writes theirs (:mod:`mmadfer.data.mafw_reference`).
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from .annotations import ClipRecord, grouped_folds, stratified_folds, write_reference_annotation
from ..media.wav import write_wav

__all__ = [
    "CLIPS_DIR", "ANNOTATIONS_DIR", "CLASSES_FILE", "FRAME_SUFFIXES", "check_clip_id", "clip_dir", "clip_wav",
    "count_frames", "remove_inside", "write_clip_folder", "write_fold_annotations",
]

CLIPS_DIR = "clips"
ANNOTATIONS_DIR = "annotations"
CLASSES_FILE = "classes.txt"
#: File endings taken as frames inside a frame folder.
FRAME_SUFFIXES = (".jpg", ".jpeg", ".png")


def check_clip_id(clip_id: str) -> str:
    """Return ``clip_id`` if it names one entry inside a folder, else raise ValueError: an empty name, ``.``,
    ``..`` (or any name of dots only), or one holding a path separator or NUL would put the clip's files, and what
    a re-run replaces, outside ``ROOT/clips/``."""
    bad = (not clip_id or set(clip_id) <= {"."} or any(c in clip_id for c in ("/", "\\", "\0"))
           or (os.altsep and os.altsep in clip_id))
    if bad:
        raise ValueError(f"unsafe clip name {clip_id!r}: a clip name must be a plain file name, not empty, '.', '..' "
                         "or holding a path separator (rename the file)")
    return clip_id


def clip_dir(root: str | os.PathLike, clip_id: str) -> Path:
    """``ROOT/clips/<clip_id>``: the folder of a clip's JPEG frames (ValueError for an unsafe ``clip_id``)."""
    return Path(root) / CLIPS_DIR / check_clip_id(clip_id)


def clip_wav(root: str | os.PathLike, clip_id: str) -> Path:
    """``ROOT/clips/<clip_id>.wav``: a clip's audio, beside its frame folder."""
    return Path(root) / CLIPS_DIR / f"{check_clip_id(clip_id)}.wav"


def remove_inside(path: str | os.PathLike, folder: str | os.PathLike) -> None:
    """Delete ``path`` (a tree, a file or a link; nothing if absent) only if it lies strictly inside ``folder``.
    Anything else (the folder itself, a parent, a sibling; a link is removed, never followed) is a ValueError and
    nothing is deleted."""
    path, folder = Path(path), Path(folder).resolve()
    target = path.parent.resolve() / path.name  # the entry itself, not where a link leads
    if path.name in ("", ".", "..") or folder not in target.parents:
        raise ValueError(f"refusing to delete {path}: it is not inside {folder}")
    if target.is_symlink() or target.is_file():
        target.unlink()
    elif target.exists():
        shutil.rmtree(target)


def count_frames(folder: str | os.PathLike) -> int:
    """Number of frame images in a frame folder."""
    return sum(1 for e in os.scandir(folder) if e.name.lower().endswith(FRAME_SUFFIXES))


def write_clip_folder(root: str | os.PathLike, clip_id: str, frames, waveform: np.ndarray | None,
                      sample_rate: int, *, quality: int = 95) -> Path:
    """Write one clip: frames uint8 ``[T, H, W, 3]`` (an array or an iterable of ``[H, W, 3]``) as
    ``00001.jpg ...`` and ``waveform`` ``[C, N]`` as the WAV (``None``: an empty WAV, a silent clip).

    An interrupted write never looks finished: the WAV is written first (atomically), then the frames into
    ``<clip_id>.tmp/``, which is renamed to ``<clip_id>/`` last. A finished folder is replaced. Returns the folder.
    """
    final = clip_dir(root, clip_id)
    clips = final.parent
    tmp = final.with_name(final.name + ".tmp")
    remove_inside(tmp, clips)  # left over from an interrupted run
    write_wav(clip_wav(root, clip_id), np.zeros((1, 0)) if waveform is None else waveform, sample_rate or 16000)
    tmp.mkdir(parents=True)
    n = 0
    for n, frame in enumerate(frames, 1):
        Image.fromarray(np.asarray(frame)).save(tmp / f"{n:05d}.jpg", quality=quality)
    if n == 0:
        remove_inside(tmp, clips)
        raise ValueError(f"clip {clip_id}: no frames to write")
    remove_inside(final, clips)
    os.replace(tmp, final)
    return final


def write_fold_annotations(root: str | os.PathLike, entries: Sequence[tuple[str, int, int]],
                           num_folds: int | None = 5, seed: int = 0, *, groups: Sequence[str] | None = None,
                           validation: bool = False) -> list[Path]:
    """Write ``ROOT/annotations`` for clips ``(clip_id, num_frames, label)``.

    With ``num_folds >= 2``: ``set_<k>_train.txt`` / ``set_<k>_test.txt`` for k = 1..num_folds, a stratified
    split in which every clip is tested exactly once. Otherwise a single ``all.txt``. With ``groups`` (one name per
    clip, e.g. its source video) the split is by group (:func:`~mmadfer.data.annotations.grouped_folds`): a video's
    clips are all in one fold. With ``validation`` (and ``num_folds >= 3``) fold k's training clips lose the next
    fold's (``k mod num_folds + 1``), which become ``set_<k>_val.txt``: the split early stopping watches, never the
    test. Returns the files written.
    """
    root = Path(root)
    records = [ClipRecord(str(clip_dir(root, cid)), n, label) for cid, n, label in entries]
    out_dir = root / ANNOTATIONS_DIR
    if not num_folds or num_folds < 2:
        write_reference_annotation(out_dir / "all.txt", records, root)
        return [out_dir / "all.txt"]
    labels = [r.label for r in records]
    folds = grouped_folds(labels, groups, num_folds, seed) if groups is not None \
        else stratified_folds(labels, num_folds, seed)
    validation = validation and num_folds >= 3
    written = []
    for k in range(num_folds):
        val = (k + 1) % num_folds if validation else None
        splits = [("train", lambda f: f != k and f != val), ("test", lambda f: f == k)]
        if validation:
            splits.append(("val", lambda f: f == val))
        for split, in_split in splits:
            path = out_dir / f"set_{k + 1}_{split}.txt"
            write_reference_annotation(path, [r for r, f in zip(records, folds) if in_split(f)], root)
            written.append(path)
    return written
