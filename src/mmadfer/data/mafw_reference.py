"""The authors' MAFW preprocessing, reproduced: per-frame face crops, their WAVs and their annotation files.

The released MAFW checkpoints of MMA-DFER were trained and tested on what three scripts of the authors' repository
wrote (katerynaCh/MMA-DFER at 4b8891a); ``mmadfer prepare --profile mafw-reference`` rebuilds the same layout::

    ROOT/clips_faces/<id>/0.jpg, 1.jpg, ...   one crop per decoded frame, unpadded names    (extract_faces_mfaw.py)
    ROOT/clips_wav/<id>.wav                   every channel, native rate, 16-bit PCM         (mp42wav.sh: ffmpeg -i)
    ROOT/annotations/MAFW_set_<k>_<split>_faces.txt   "<abs path> <file count - 1> <label>"  (process_ann_mfaw.py)

Their crop of one frame (:func:`reference_crop_box`) differs from mmadfer's default ``union`` crop (one square box
per clip, :func:`mmadfer.media.faces.union_square_box`): each frame gets its own box, the union of that frame's MTCNN
boxes, rounded, with only x1 and y1 clamped at 0, widened on its shorter side by ``diff // 2`` on each side (so an
odd difference leaves it one pixel short of square) and cut by numpy slicing (which is what clamps x2 and y2, and
clamps again the x1/y1 that the widening made negative). A frame without a face gets the centred square of side
``2 * (min(H // 2, W // 2) // 2)``. Every crop keeps its own size; the loader resizes each to 224.
"""
from __future__ import annotations

import os
import wave
from pathlib import Path
from typing import Iterable, Sequence

import av
import numpy as np
from PIL import Image

from ..errors import MediaError
from ..io import atomic_path, atomic_write
from .annotations import ClipRecord, write_reference_annotation
from .layout import check_clip_id, remove_inside
from ..media.decode import open_media

__all__ = [
    "FACES_DIR", "WAV_DIR", "JPEG_QUALITY", "reference_crop_box", "faces_dir", "faces_wav", "write_face_frames",
    "write_reference_wav", "faces_annotation_entry", "rewrite_authors_annotations", "write_faces_annotations",
]

FACES_DIR = "clips_faces"
WAV_DIR = "clips_wav"
#: OpenCV's ``cv2.imwrite`` default JPEG quality (4:2:0 chroma, as PIL's default at this quality).
JPEG_QUALITY = 95


def reference_crop_box(boxes: np.ndarray | Sequence[Sequence[float]], width: int, height: int
                       ) -> tuple[tuple[int, int, int, int], bool]:
    """The pixels ``extract_faces_mfaw.py`` keeps of one ``height x width`` frame, from that frame's detections.

    ``boxes``: float ``[k, 4]`` (x1, y1, x2, y2) MTCNN boxes of the frame, ``k = 0`` when no face was found.
    Returns ``((x1, y1, x2, y2), fallback)``: the rectangle ``frame[y1:y2, x1:x2]`` that the authors' numpy slicing
    selects (inside the frame; possibly empty for a box wholly outside it), and whether it is the no-face centre
    square. Rounding is Python's ``round`` (half to even), as theirs.
    """
    b = np.asarray(boxes, np.float64).reshape(-1, 4)
    if len(b) == 0:
        ss = min(height // 2, width // 2)
        rows = slice(height // 2 - ss // 2, height // 2 + ss // 2)
        cols = slice(width // 2 - ss // 2, width // 2 + ss // 2)
        fallback = True
    else:
        x1, y1 = int(np.round(b[:, 0].min())), int(np.round(b[:, 1].min()))
        x2, y2 = int(np.round(b[:, 2].max())), int(np.round(b[:, 3].max()))
        x1, y1 = max(0, x1), max(0, y1)
        box_h, box_w = y2 - y1, x2 - x1  # their script calls these w and h
        if box_h > box_w:
            diff = box_h - box_w
            x1, x2 = x1 - diff // 2, x2 + diff // 2
        elif box_w > box_h:
            diff = box_w - box_h
            y1, y2 = y1 - diff // 2, y2 + diff // 2
        rows, cols = slice(max(0, y1), y2), slice(max(0, x1), x2)
        fallback = False
    r0, r1, _ = rows.indices(height)  # Python slicing: clamps to the frame, negative stops count from the end
    c0, c1, _ = cols.indices(width)
    return (c0, r0, max(c0, c1), max(r0, r1)), fallback


def faces_dir(root: str | os.PathLike, clip_id: str) -> Path:
    """``ROOT/clips_faces/<clip_id>``."""
    return Path(root) / FACES_DIR / check_clip_id(clip_id)


def faces_wav(root: str | os.PathLike, clip_id: str) -> Path:
    """``ROOT/clips_wav/<clip_id>.wav``."""
    return Path(root) / WAV_DIR / f"{check_clip_id(clip_id)}.wav"


def write_face_frames(root: str | os.PathLike, clip_id: str, frames: np.ndarray,
                      boxes: Sequence[tuple[int, int, int, int]], quality: int = JPEG_QUALITY) -> Path:
    """Write ``frames[t][y1:y2, x1:x2]`` (uint8 RGB ``[T, H, W, 3]``) as ``0.jpg, 1.jpg, ...`` into
    ``ROOT/clips_faces/<clip_id>/``. Written into ``<clip_id>.tmp/`` and renamed last, so an interrupted run never
    leaves a folder that looks finished; a finished folder is replaced. Raises ValueError for an empty crop (the
    authors' ``cv2.imwrite`` fails there too)."""
    final = faces_dir(root, clip_id)
    parent = final.parent
    tmp = final.with_name(final.name + ".tmp")
    parent.mkdir(parents=True, exist_ok=True)
    remove_inside(tmp, parent)
    tmp.mkdir()
    try:
        for t, (frame, (x1, y1, x2, y2)) in enumerate(zip(frames, boxes)):
            if x2 <= x1 or y2 <= y1:
                raise ValueError(f"frame {t}: empty face crop {(x1, y1, x2, y2)}")
            Image.fromarray(np.ascontiguousarray(frame[y1:y2, x1:x2])).save(tmp / f"{t}.jpg", quality=quality)
    except BaseException:
        remove_inside(tmp, parent)
        raise
    remove_inside(final, parent)
    os.replace(tmp, final)
    return final


def write_reference_wav(video: str | os.PathLike, path: str | os.PathLike) -> bool:
    """What ``ffmpeg -i VIDEO OUT.wav`` writes: the first audio stream, every channel, native rate, 16-bit PCM.

    Decoded with PyAV and converted to signed 16-bit by FFmpeg's own resampler (libswresample, as the ffmpeg
    command does), then written with the stdlib ``wave`` module, atomically. Returns False, writing nothing, when
    the video has no audio stream (ffmpeg then fails and the authors' loader uses silence).
    """
    video = os.fspath(video)
    container = open_media(video)
    try:
        if not container.streams.audio:
            return False
        stream = container.streams.audio[0]
        ctx = stream.codec_context
        rate, layout = int(ctx.sample_rate), ctx.layout
        resampler = av.AudioResampler(format="s16", layout=layout, rate=rate)
        chunks = []
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))  # packed s16: [1, N * C] interleaved
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        except av.error.FFmpegError as e:
            raise MediaError(video, f"corrupt audio ({getattr(e, 'strerror', None) or e})") from None
        channels = int(layout.nb_channels)
    finally:
        container.close()
    pcm = np.concatenate(chunks).astype("<i2") if chunks else np.zeros(0, "<i2")
    with atomic_path(path, suffix=".wav") as tmp:
        with wave.open(os.fspath(tmp), "wb") as f:
            f.setnchannels(channels)
            f.setsampwidth(2)
            f.setframerate(rate)
            f.writeframes(pcm.tobytes())
    return True


def faces_annotation_entry(root: str | os.PathLike, clip_id: str, label: int | str) -> str | None:
    """One line of ``process_ann_mfaw.py``'s output, ``<absolute clip folder> <entries - 1> <label>``, or None when
    the clip has no folder (their script skips it)."""
    folder = faces_dir(root, clip_id)
    if not folder.is_dir():
        return None
    return f"{folder.resolve().as_posix()} {len(os.listdir(folder)) - 1} {label}\n"


def rewrite_authors_annotations(root: str | os.PathLike, sources: Iterable[str | os.PathLike]) -> list[Path]:
    """Redo ``process_ann_mfaw.py`` for our crops: each of the authors' MAFW annotation files (``MAFW_set_1_test.txt``
    or their shipped ``MAFW_set_1_test_faces.txt``; lines ``path num_frames label``) becomes
    ``ROOT/annotations/MAFW_set_1_test_faces.txt``, its paths pointing at ``ROOT/clips_faces/<last path part>`` and
    its counts recomputed as the file count minus 1. Clips without a folder are left out, as theirs. Returns the
    files written."""
    written = []
    for src in sources:
        src = Path(src)
        lines = []
        for n, line in enumerate(src.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 3:
                raise ValueError(f"{src}:{n}: expected 'path num_frames label', got {line!r}")
            entry = faces_annotation_entry(root, parts[0].rstrip("/").split("/")[-1], parts[2])
            if entry is not None:
                lines.append(entry)
        stem = src.stem[: -len("_faces")] if src.stem.endswith("_faces") else src.stem
        out = Path(root) / "annotations" / f"{stem}_faces.txt"
        with atomic_write(out, "w", encoding="utf-8", newline="") as f:
            f.write("".join(lines))
        written.append(out)
    return written


def write_faces_annotations(root: str | os.PathLike, entries: Sequence[tuple[str, int]], folds: list[int] | None,
                            num_folds: int | None) -> list[Path]:
    """Annotation files in the authors' MAFW format for clips ``(clip_id, label)`` of a label table:
    ``MAFW_set_<k>_{train,test}_faces.txt`` for the given fold of each clip, else one ``MAFW_all_faces.txt``."""
    root = Path(root)
    records = [ClipRecord(str(faces_dir(root, cid).resolve()), len(os.listdir(faces_dir(root, cid))) - 1, label)
               for cid, label in entries]
    out_dir = root / "annotations"
    if not num_folds or folds is None:
        write_reference_annotation(out_dir / "MAFW_all_faces.txt", records)
        return [out_dir / "MAFW_all_faces.txt"]
    written = []
    for k in range(num_folds):
        for split, keep in (("train", lambda f: f != k), ("test", lambda f: f == k)):
            path = out_dir / f"MAFW_set_{k + 1}_{split}_faces.txt"
            write_reference_annotation(path, [r for r, f in zip(records, folds) if keep(f)])
            written.append(path)
    return written
