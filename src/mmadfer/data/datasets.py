"""Datasets: DFEW, MAFW and other frame-folder datasets, and a team's own videos listed in a CSV.

Indexing and decoding are separate. A dataset is built from a list of
:class:`~mmadfer.data.annotations.ClipRecord` (read from text files only: ``labels`` are known without decoding
anything) and decodes one clip in ``__getitem__``. Every item is a dict::

    video  uint8 [T, 3, S, S]     T = preprocess.num_frames, S = preprocess.img_size (the model divides by 255)
    audio  float32 [1, 512, 128]  normalised Kaldi fbank (mmadfer.media.fbank.audio_features)
    label  int64 scalar tensor
    index  int                    position in the dataset

A clip that cannot be decoded raises :class:`SampleError`, naming the sample's index, its path and the reason. With
``on_bad_sample='skip'`` the clip is logged once and ``__getitem__`` returns None instead; :func:`collate_clips`
drops those from the batch, so one corrupt file never stops a training run.

The on-disk layout is described in :mod:`mmadfer.data.layout`, the index formats in
:mod:`mmadfer.data.annotations`. Typical use::

    train = DFEW("/data/dfew", fold=1, split="train")            # annotations/set_1_train.txt, classes.txt
    test = build_dataset("dfew", "/data/dfew", fold=1, split="test")
    loader = DataLoader(train, batch_size=8, shuffle=True, num_workers=8, collate_fn=collate_clips)
"""
from __future__ import annotations

import logging
import os
import re
import wave
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset
from PIL import Image

from ..config import DFEW_CLASSES, MAFW_CLASSES, PreprocessConfig
from ..errors import MediaError
from .annotations import (
    ClipRecord, read_classes, read_clip_csv, read_dfew_csv, read_mafw_split, read_reference_annotation,
)
from .layout import ANNOTATIONS_DIR, CLASSES_FILE, CLIPS_DIR, FRAME_SUFFIXES
from ..media.sampling import sample_indices
from ..media.transforms import clip_transform
from ..media.wav import read_audio
from ..media.fbank import audio_features
from ..media.decode import read_clip
from ..media.pipeline import prepare_window

__all__ = [
    "SampleError", "ClipDataset", "FrameFolderDataset", "DFEW", "MAFW", "CSVClipDataset", "build_dataset",
    "collate_clips", "AUTHORS_AUDIO_DIRS",
]

logger = logging.getLogger(__name__)

_BAD_SAMPLE_POLICIES = ("raise", "skip")
_FRAME_ORDERS = ("natural", "lexicographic")

#: The authors' audio folders: a frame folder ``X/<frames dir>/<id>`` has its WAV in ``X/<audio dir>/<name>.wav``,
#: where ``name`` is the id as an integer for DFEW (``clip_224x224/00011`` -> ``raw_wav/11.wav``) and the id itself
#: for MAFW (``clips_faces/00031`` -> ``clips_wav/00031.wav``), as their loader finds it.
AUTHORS_AUDIO_DIRS = {"clip_224x224": ("raw_wav", True), "clips_faces": ("clips_wav", False)}

#: Kaldi's analysis window: audio with fewer samples than ``int(rate * 0.025)`` has no fbank frame at all.
_WINDOW_S = 0.025


class SampleError(MediaError):
    """A dataset sample that cannot be loaded. ``index`` is its position in the dataset, ``path`` its file or
    folder and ``reason`` what went wrong (the original exception is chained as ``__cause__``)."""

    def __init__(self, index: int, path: str | os.PathLike | None, reason: str):
        super().__init__(path, reason)
        self.index = index
        self.args = (f"sample {index} ({self.path}): {reason}",)


def _reason(e: BaseException, sample_path: str) -> str:
    """One line for the error, naming the file at fault when it is not the sample's own path (e.g. one frame)."""
    if isinstance(e, MediaError):
        return f"{e.path}: {e.reason}" if e.path and e.path != sample_path else e.reason
    return f"{type(e).__name__}: {e}"


class ClipDataset(Dataset):
    """Base class: an index of clip records, decoded one at a time with an error policy.

    Subclasses implement :meth:`load`, which returns ``{'video': uint8 [T,3,S,S], 'audio': float32 [1,512,128]}``
    for one record and raises on any problem.
    """

    def __init__(self, records: Sequence[ClipRecord], class_names: Sequence[str], *,
                 preprocess: PreprocessConfig | None = None, train: bool = False, on_bad_sample: str = "raise"):
        if on_bad_sample not in _BAD_SAMPLE_POLICIES:
            raise ValueError(f"on_bad_sample must be one of {_BAD_SAMPLE_POLICIES}, got {on_bad_sample!r}")
        self.records = list(records)
        self.class_names = tuple(class_names)
        self.preprocess = preprocess or PreprocessConfig()
        self.train = bool(train)
        self.on_bad_sample = on_bad_sample
        for r in self.records:
            if not 0 <= r.label < len(self.class_names):
                raise ValueError(f"{r.path}: label {r.label} is out of range for {len(self.class_names)} classes "
                                 f"{list(self.class_names)}")
        self._warned: set[int] = set()

    @property
    def labels(self) -> list[int]:
        """Every sample's label, in order, without decoding anything (for class weights, samplers and metrics)."""
        return [r.label for r in self.records]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.records)

    def load(self, record: ClipRecord) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        index = range(len(self.records))[index]  # IndexError for out-of-range; negative indices normalised
        record = self.records[index]
        try:
            item = self.load(record)
        except Exception as e:  # decoders raise many types (OSError, RuntimeError, av.error.*, MediaError)
            err = SampleError(index, record.path, _reason(e, record.path))
            if self.on_bad_sample == "raise":
                raise err from e
            if index not in self._warned:
                self._warned.add(index)
                logger.warning("skipping bad sample: %s", err)
            return None
        item["label"] = torch.tensor(record.label, dtype=torch.int64)
        item["index"] = index
        return item

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({len(self)} clips, {self.num_classes} classes, "
                f"{'train' if self.train else 'test'}, on_bad_sample={self.on_bad_sample!r})")


def collate_clips(batch: Sequence[dict[str, Any] | None]) -> dict[str, torch.Tensor] | None:
    """Stack dataset items into a batch, dropping the ``None`` of skipped bad samples.

    Returns ``{'video': uint8 [B,T,3,S,S], 'audio': [B,1,512,128], 'label': int64 [B], 'index': int64 [B]}``,
    or None when every sample of the batch was bad (the training loop should skip it).
    """
    items = [b for b in batch if b is not None]
    if not items:
        return None
    return {key: torch.stack([torch.as_tensor(it[key]) for it in items]) for key in items[0]}


def _natural_key(name: str) -> list:
    """Sort key that orders ``2.jpg`` before ``10.jpg`` (MAFW's face crops are numbered without padding)."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _decode_frame(path: str) -> np.ndarray:
    """One image file as uint8 ``[H, W, 3]`` RGB. PIL decodes exactly as the reference loader did."""
    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (OSError, ValueError, SyntaxError) as e:  # PIL's errors for truncated / unidentified / corrupt images
        raise MediaError(path, f"cannot decode image ({e})") from e


def _resize_frame(frame: np.ndarray, size: int) -> np.ndarray:
    """One ``[H, W, 3]`` frame resized straight to ``size x size`` with PIL's bilinear filter, the reference loader's
    ``GroupResize`` (unchanged if it has that size already)."""
    if frame.shape[:2] == (size, size):
        return frame
    return np.asarray(Image.fromarray(frame).resize((size, size), Image.BILINEAR))


def _stack_frames(frames: list[np.ndarray], size: int | None = None) -> torch.Tensor:
    """Frames ``[H, W, 3]`` -> uint8 ``[T, 3, H, W]``. With ``size``, or when the frames differ in size (per-frame
    face crops, as MAFW's), each frame is first resized once, straight to ``size x size`` (PIL bilinear, as the
    reference), so that one crop and flip can apply to the whole clip and no frame is resampled twice."""
    if size is None and any(f.shape[:2] != frames[0].shape[:2] for f in frames):
        raise ValueError("frames of different sizes need a size to be resized to")
    if size is not None:
        frames = [_resize_frame(f, size) for f in frames]
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).contiguous()


def _audio_samples(path: Path) -> tuple[int, int]:
    """``(samples per channel, sample rate)`` of an audio file: from the header of a PCM WAV, else by decoding it."""
    try:
        with wave.open(os.fspath(path), "rb") as f:
            return f.getnframes(), f.getframerate()
    except (wave.Error, EOFError):  # not plain PCM WAV (float, extensible, another format): decode it
        waveform, rate = read_audio(path)
        return waveform.shape[-1], rate


class FrameFolderDataset(ClipDataset):
    """Clips stored as folders of face-crop images plus a WAV per clip: the layout of DFEW, MAFW and
    ``mmadfer prepare``.

    Only the sampled frames are decoded. The frame count comes from the record (the annotation's ``num_frames``,
    capped at the number of images present) or, when the record has none, from the folder.

    Frame order (``frame_order``): ``'natural'`` (``2.jpg`` before ``10.jpg``) or ``'lexicographic'``, the plain
    string sort of the reference loader (``glob`` + ``sort()``: ``0, 1, 10, 100, 101, ..., 2``). They differ only for
    unpadded numbers (the authors' MAFW crops); mmadfer's own layout pads names (``00001.jpg``), so both agree there.
    The default (None) is natural here; :class:`DFEW` and :class:`MAFW` use the reference's order under the
    ``'reference'`` preprocessing profile, because the released checkpoints were trained and tested that way.

    Resize: at test time each sampled frame is resized once, straight to ``img_size`` with PIL's bilinear filter
    (the reference's ``GroupResize``); frames of differing sizes (per-frame face crops) are resized so in training
    too, before the augmentation.

    Audio: ``record.audio_path`` if set; with ``audio_root``, the same relative path (relative to ``root``, else the
    folder name) plus ``.wav`` under ``audio_root`` (a numeric folder name also matches its unpadded number: DFEW's
    ``00001`` -> ``1.wav``); else ``<folder>.wav`` beside the folder (mmadfer's layout) or, for the authors'
    layouts, ``raw_wav/<int id>.wav`` beside ``clip_224x224/`` and ``clips_wav/<id>.wav`` beside ``clips_faces/``
    (:data:`AUTHORS_AUDIO_DIRS`). A WAV with no samples, or fewer than one 25 ms window, is a silent clip (all-zero
    fbank; the reference loader raises there). A missing WAV is an error unless ``allow_missing_audio``, which then
    uses silence (what the reference did for MAFW). Neither passes silently: :meth:`audio_report` counts them, warns
    with the count, and the evaluation writes the counts into ``metrics.json``.
    """

    def __init__(self, records: Sequence[ClipRecord], class_names: Sequence[str], *,
                 preprocess: PreprocessConfig | None = None, train: bool = False, on_bad_sample: str = "raise",
                 root: str | os.PathLike | None = None, audio_root: str | os.PathLike | None = None,
                 allow_missing_audio: bool = False, frame_order: str | None = None, transform=None,
                 augment: str = "reference"):
        super().__init__(records, class_names, preprocess=preprocess, train=train, on_bad_sample=on_bad_sample)
        frame_order = self._default_frame_order() if frame_order is None else frame_order
        if frame_order not in _FRAME_ORDERS:
            raise ValueError(f"frame_order must be one of {_FRAME_ORDERS}, got {frame_order!r}")
        self.root = None if root is None else Path(root)
        self.audio_root = None if audio_root is None else Path(audio_root)
        self.allow_missing_audio = allow_missing_audio
        self.frame_order = frame_order
        size = self.preprocess.img_size
        self.transform = transform or clip_transform(size, self.train, augment)
        self._audio_report: dict[str, Any] | None = None

    def _default_frame_order(self) -> str:
        return "natural"

    # -- construction from the canonical layout --------------------------------------------------------
    @classmethod
    def from_layout(cls, root: str | os.PathLike, fold: int | None = None, split: str = "all", *,
                    annotation_dir: str | os.PathLike | None = None, class_names: Sequence[str] | None = None,
                    train: bool | None = None, **kw) -> "FrameFolderDataset":
        """Open a dataset in mmadfer's layout: ``annotations/set_<fold>_<split>.txt`` (or ``<split>.txt`` when
        ``fold`` is None, e.g. ``all.txt`` from ``mmadfer prepare``) and ``classes.txt``. ``train`` defaults to
        ``split == 'train'``."""
        root = Path(root)
        ann_dir = Path(annotation_dir) if annotation_dir is not None else root / ANNOTATIONS_DIR
        name = f"{split}.txt" if fold is None else f"set_{fold}_{split}.txt"
        records = read_reference_annotation(ann_dir / name, root=root)
        names = class_names or _classes_file(root) or _numbered_classes(records)
        return cls(records, names, train=split == "train" if train is None else train, root=root, **kw)

    # -- loading ----------------------------------------------------------------------------------------
    def frame_files(self, folder: Path) -> list[str]:
        """The folder's frame images in frame order."""
        try:
            names = [e.name for e in os.scandir(folder) if e.name.lower().endswith(FRAME_SUFFIXES) and e.is_file()]
        except FileNotFoundError:
            raise MediaError(folder, "frame folder not found") from None
        except NotADirectoryError:
            raise MediaError(folder, "not a folder of frames") from None
        if not names:
            raise MediaError(folder, f"no frame images ({', '.join(FRAME_SUFFIXES)}) in the folder")
        names.sort(key=_natural_key if self.frame_order == "natural" else None)
        return [os.path.join(folder, n) for n in names]

    def audio_candidates(self, record: ClipRecord) -> list[Path]:
        """Where the clip's WAV may be, in the order looked up (see the class docstring)."""
        if record.audio_path:
            return [Path(record.audio_path)]
        folder = Path(record.path)
        if self.audio_root is not None:
            rel = folder.name
            if self.root is not None:
                try:
                    rel = folder.relative_to(self.root).as_posix()
                except ValueError:
                    pass
            candidates = [self.audio_root / f"{rel}.wav", self.audio_root / f"{folder.name}.wav"]
            if folder.name.isdigit():
                candidates.append(self.audio_root / f"{int(folder.name)}.wav")
            return candidates
        candidates = [folder.with_name(folder.name + ".wav")]
        authors = AUTHORS_AUDIO_DIRS.get(folder.parent.name)
        if authors is not None:
            audio_dir, as_int = authors
            name = str(int(folder.name)) if as_int and folder.name.isdigit() else folder.name
            candidates.append(folder.parent.with_name(audio_dir) / f"{name}.wav")
        return candidates

    def audio_path(self, record: ClipRecord) -> Path:
        """Where the clip's WAV is expected (the first candidate that exists, else the first candidate)."""
        candidates = self.audio_candidates(record)
        return next((c for c in candidates if c.is_file()), candidates[0])

    def load(self, record: ClipRecord) -> dict[str, torch.Tensor]:
        cfg = self.preprocess
        files = self.frame_files(Path(record.path))
        n = min(record.num_frames, len(files)) if record.num_frames else len(files)
        indices = sample_indices(n, cfg.num_frames, train=self.train)
        decoded = {i: _decode_frame(files[i]) for i in sorted(set(indices))}  # only the sampled frames
        frames = [decoded[i] for i in indices]
        mixed = any(f.shape[:2] != frames[0].shape[:2] for f in frames)
        video = _stack_frames(frames, cfg.img_size if (mixed or not self.train) else None)
        video = self.transform(video)  # uint8 [T, 3, S, S]

        wav = self.audio_path(record)
        if wav.is_file():
            waveform, sample_rate = read_audio(wav)  # float32 [C, N], Hz
            audio = audio_features(waveform, sample_rate, cfg)
        elif self.allow_missing_audio:
            audio = audio_features(None, None, cfg)
        else:
            tried = " or ".join(map(str, self.audio_candidates(record)))
            raise MediaError(wav, f"audio file not found (looked for {tried}; pass allow_missing_audio=True to "
                                  "treat the clip as silent)")
        return {"video": video, "audio": audio}  # audio: float32 [1, 512, 128]

    def audio_report(self) -> dict[str, Any]:
        """Count the clips whose audio the model will hear as silence: ``audio_missing`` (no WAV found) and
        ``audio_too_short`` (fewer samples than one 25 ms window, including empty WAVs), with their paths under
        ``*_clips``. Reads only WAV headers; computed once, and logged as one warning with the counts when any.
        The evaluation writes it into ``metrics.json``."""
        if self._audio_report is None:
            missing, short = [], []
            for record in self.records:
                wav = self.audio_path(record)
                if not wav.is_file():
                    missing.append(record.path)
                    continue
                try:
                    samples, rate = _audio_samples(wav)
                except MediaError:
                    continue  # undecodable: load() reports it as a bad sample
                if samples < int(rate * _WINDOW_S) or samples == 0:
                    short.append(record.path)
            self._audio_report = {"audio_missing": len(missing), "audio_too_short": len(short),
                                  "audio_missing_clips": missing, "audio_too_short_clips": short}
            if missing or short:
                logger.warning("%s: %d of %d clips have no audio file and %d have audio shorter than one 25 ms "
                               "window; the model hears silence for them%s", type(self).__name__, len(missing),
                               len(self.records), len(short),
                               "" if self.allow_missing_audio or not missing else
                               " (missing audio is an error: allow_missing_audio=False)")
        return self._audio_report


def _classes_file(root: Path) -> tuple[str, ...] | None:
    path = root / CLASSES_FILE
    return read_classes(path) if path.is_file() else None


def _numbered_classes(records: Sequence[ClipRecord]) -> tuple[str, ...]:
    return tuple(f"class{i}" for i in range(max((r.label for r in records), default=-1) + 1))


def _first_existing(paths: Sequence[Path]) -> Path | None:
    return next((p for p in paths if p.exists()), None)


class _BenchmarkDataset(FrameFolderDataset):
    """DFEW and MAFW: a fold's train or test split, found in mmadfer's layout, the authors' annotation files, or the
    dataset's own split files. Looked up, in order, under ``annotation_dir`` (if given) else ``ROOT/annotations``
    and ``ROOT``:

    1. ``set_<fold>_<split>.txt`` (mmadfer's layout; paths relative to ROOT),
    2. ``<NAME>_set_<fold>_<split>.txt`` / ``<NAME>_set_<fold>_<split>_faces.txt`` (the authors' files; their
       absolute paths are re-rooted under ``clip_root`` by folder name),
    3. the dataset's own split files (see the subclass).

    Class names come from ``class_names``, else ``ROOT/classes.txt``, else the dataset's standard classes.
    ``clip_root`` (the folder holding one frame folder per clip) defaults to the first of ``ROOT/clips`` and the
    dataset's usual folder names that exists.
    """

    NAME = ""
    CLASSES: tuple[str, ...] = ()
    CLIP_DIRS: tuple[str, ...] = (CLIPS_DIR,)

    def __init__(self, root: str | os.PathLike, fold: int = 1, split: str = "train", *, train: bool | None = None,
                 preprocess: PreprocessConfig | None = None, annotation_dir: str | os.PathLike | None = None,
                 clip_root: str | os.PathLike | None = None, class_names: Sequence[str] | None = None,
                 on_bad_sample: str = "raise", **kw):
        if split not in ("train", "test"):
            raise ValueError(f"split must be 'train' or 'test', got {split!r}")
        if fold is None or not 1 <= int(fold) <= 5:
            raise ValueError(f"{self.NAME} has folds 1..5, got fold={fold}")
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"{self.NAME} root folder not found: {root}")
        self.fold, self.split = int(fold), split
        if clip_root is None:
            clip_root = _first_existing([root / d for d in self.CLIP_DIRS]) or root / CLIPS_DIR
        self.clip_root = Path(clip_root)
        records, self.annotation_file = self._find_records(root, annotation_dir)
        names = class_names or _classes_file(root) or self.CLASSES
        super().__init__(records, names, preprocess=preprocess, train=split == "train" if train is None else train,
                         on_bad_sample=on_bad_sample, root=root, **kw)

    def _default_frame_order(self) -> str:
        """The authors' plain string sort under the reference profile (their checkpoints saw frames that way)."""
        return "lexicographic" if self.preprocess.audio_profile == "reference" else "natural"

    def _find_records(self, root: Path, annotation_dir) -> tuple[list[ClipRecord], Path]:
        dirs = [Path(annotation_dir)] if annotation_dir is not None else [root / ANNOTATIONS_DIR, root]
        f, s = self.fold, self.split
        tried = []
        for d in dirs:
            for name in (f"set_{f}_{s}.txt", f"{self.NAME}_set_{f}_{s}.txt", f"{self.NAME}_set_{f}_{s}_faces.txt"):
                path = d / name
                tried.append(path)
                if path.is_file():
                    base = root if name.startswith("set_") else self.clip_root
                    return read_reference_annotation(path, root=base), path
        for d in dirs:
            for path in self._official_files(d):
                tried.append(path)
                if path.is_file():
                    return self._read_official(path), path
        raise FileNotFoundError(f"no {self.NAME} annotation for fold {f} split '{s}'; looked for:\n  "
                                + "\n  ".join(map(str, tried)))

    def _official_files(self, d: Path) -> list[Path]:
        raise NotImplementedError

    def _read_official(self, path: Path) -> list[ClipRecord]:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(fold={self.fold}, split={self.split!r}, {len(self)} clips, from {self.annotation_file})"


class DFEW(_BenchmarkDataset):
    """DFEW (7 classes, 5 folds). Besides the layouts of :class:`_BenchmarkDataset`, reads DFEW's own
    ``EmoLabel_DataSplit/<split>(single-labeled)/set_<fold>.csv`` (labels 1..7) with frames from
    ``Clip/clip_224x224/<00001>/``. DFEW ships no audio: the authors extracted each video's WAV with ``mp42wav.sh``
    (``ffmpeg -i``: native rate and channels) into ``raw_wav/<int id>.wav`` beside ``clip_224x224/``, where it is
    found by default (also ``<folder>.wav`` beside the frame folder, or under ``audio_root``)."""

    NAME = "DFEW"
    CLASSES = DFEW_CLASSES
    CLIP_DIRS = (CLIPS_DIR, "Clip/clip_224x224", "clip_224x224")

    def _official_files(self, d: Path) -> list[Path]:
        return [d / "EmoLabel_DataSplit" / f"{self.split}(single-labeled)" / f"set_{self.fold}.csv"]

    def _read_official(self, path: Path) -> list[ClipRecord]:
        return read_dfew_csv(path, self.clip_root)


class MAFW(_BenchmarkDataset):
    """MAFW (11 classes, 5 folds). Besides the layouts of :class:`_BenchmarkDataset`, reads MAFW's own
    ``Train & Test Set/single/no_caption/set_<fold>/<split>.txt`` (see :func:`read_mafw_split`) with face-crop
    folders under ``clip_root`` (default ``clips_faces/``, the authors' layout, whose WAVs ``clips_wav/<id>.wav`` are
    found by default). Clips whose WAV is missing are silent unless ``allow_missing_audio=False``, as in the
    reference (MAFW has clips without usable audio); :meth:`audio_report` counts them."""

    NAME = "MAFW"
    CLASSES = MAFW_CLASSES
    CLIP_DIRS = (CLIPS_DIR, "clips_faces", "data/faces")

    def __init__(self, root, fold: int = 1, split: str = "train", *, allow_missing_audio: bool = True, **kw):
        super().__init__(root, fold, split, allow_missing_audio=allow_missing_audio, **kw)

    def _official_files(self, d: Path) -> list[Path]:
        rel = Path("Train & Test Set") / "single" / "no_caption" / f"set_{self.fold}" / f"{self.split}.txt"
        return [d / rel, d / "MAFW" / rel]

    def _read_official(self, path: Path) -> list[ClipRecord]:
        return read_mafw_split(path, self.clip_root, class_names=self.CLASSES)


class CSVClipDataset(ClipDataset):
    """A team's own videos listed in a CSV with columns ``video,label[,start,end]`` (see
    :func:`~mmadfer.data.annotations.read_clip_csv`; paths relative to ``root``, default the CSV's folder).

    Each item decodes ``[start, end)`` of the video with :func:`mmadfer.media.decode.read_clip` and builds the
    model inputs with :func:`mmadfer.media.pipeline.prepare_window`, the path ``mmadfer predict`` uses: frame
    sampling, face crops with ``detector`` (a :class:`mmadfer.media.faces.FaceDetector`; without one the videos
    are taken to be face crops already and only resized), the resize to ``img_size`` and the audio fbank. In
    training mode the :class:`~mmadfer.media.transforms.TrainTransform` is then applied to the resized crops, as the
    reference applies it to DFEW's 224 px crops.
    """

    def __init__(self, csv_path: str | os.PathLike, preprocess: PreprocessConfig | None = None, train: bool = False,
                 detector=None, root: str | os.PathLike | None = None, class_names: Sequence[str] | None = None,
                 on_bad_sample: str = "raise", augment: str = "reference"):
        self.csv_path = Path(csv_path)
        records, names = read_clip_csv(self.csv_path, root=root, class_names=class_names)
        super().__init__(records, names, preprocess=preprocess, train=train, on_bad_sample=on_bad_sample)
        self.detector = detector
        self.augment = clip_transform(self.preprocess.img_size, True, augment) \
            if self.train and augment != "none" else None

    def load(self, record: ClipRecord) -> dict[str, torch.Tensor]:
        if not os.path.isfile(record.path):
            raise MediaError(record.path, "video file not found")
        clip = read_clip(record.path, start_s=record.start_s or 0.0, end_s=record.end_s)
        window = prepare_window(clip, self.preprocess, detector=self.detector, train=self.train)
        video = window["video"]  # uint8 [T, 3, S, S]
        if self.augment is not None:
            video = self.augment(video)
        return {"video": video, "audio": window["audio"]}


_KINDS = ("dfew", "mafw", "folder", "csv")


def build_dataset(kind: str, root_or_csv: str | os.PathLike, *, fold: int | None = 1, split: str = "train",
                  train: bool | None = None, preprocess: PreprocessConfig | None = None,
                  on_bad_sample: str = "raise", **kw) -> ClipDataset:
    """The dataset factory used by the trainer and evaluator.

    ``kind``: ``'dfew'`` / ``'mafw'`` (``root``, ``fold`` 1..5, ``split`` train|test), ``'folder'`` (any dataset in
    mmadfer's layout, e.g. from ``mmadfer prepare``: ``annotations/set_<fold>_<split>.txt``, or
    ``annotations/<split>.txt`` with ``fold=None``) or ``'csv'`` (a ``video,label[,start,end]`` file; ``fold`` and
    ``split`` are ignored except that ``split='train'`` selects training mode). ``train`` defaults to
    ``split == 'train'``. Other keyword arguments go to the dataset class.
    """
    kind = kind.lower()
    train = split == "train" if train is None else train
    common = dict(train=train, preprocess=preprocess, on_bad_sample=on_bad_sample)
    if kind == "dfew":
        return DFEW(root_or_csv, fold, split, **common, **kw)
    if kind == "mafw":
        return MAFW(root_or_csv, fold, split, **common, **kw)
    if kind == "folder":
        return FrameFolderDataset.from_layout(root_or_csv, fold, split, **common, **kw)
    if kind == "csv":
        return CSVClipDataset(root_or_csv, **common, **kw)
    raise ValueError(f"unknown dataset kind {kind!r}; choose one of {_KINDS}")
