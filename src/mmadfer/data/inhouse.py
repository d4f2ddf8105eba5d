"""A synthetic "in-house" task: longer videos holding several labelled spans, a class set of its own, and a labels
file in the labels-store format (:mod:`mmadfer.data.labels`), as a team's own footage would come after labelling.

Each video is a run of segments rendered by :func:`~mmadfer.data.synthetic.render_clip` (a cartoon face and a voice,
``segment_frames`` frames at 25 fps each); each segment is one span of the labels file. The in-house classes are
named after what a PoC team might look for, and map onto the synthetic pairs::

    in-house class   synthetic class(es)          needs
    neutral          calm-low, calm-high          the face
    confused         animated-low                 the face and the voice
    engaged          animated-high                the face and the voice

so a model trained on :func:`~mmadfer.data.synthetic.write_synthetic_dataset` (the "different task" a released
checkpoint stands for) knows the cues but not these classes, and :data:`BASE_TO_INHOUSE` is the class-mapping file
``mmadfer evaluate --compare`` takes to compare that base model on the in-house classes. With ``second_annotator``
a second annotator labels every span too, disagreeing on a seeded ``disagree`` fraction of them (for Cohen's kappa).
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..io import sha256_file, write_csv
from ..media.encode import write_video
from .labels import Span, now, write_labels
from .synthetic import SYNTH_CLASSES, render_clip

__all__ = ["INHOUSE_CLASSES", "BASE_TO_INHOUSE", "write_inhouse_task"]

INHOUSE_CLASSES = ("neutral", "confused", "engaged")
#: How the synthetic task's classes correspond to the in-house ones (``base,new`` rows of a class-mapping file).
BASE_TO_INHOUSE = {"calm-low": "neutral", "calm-high": "neutral", "animated-low": "confused",
                   "animated-high": "engaged"}
_SOURCES = {"neutral": (0, 1), "confused": (2,), "engaged": (3,)}


def write_inhouse_task(out: str | os.PathLike, num_videos: int = 6, spans_per_video: int = 6, *,
                       segment_frames: int = 24, size: int = 64, seed: int = 0, second_annotator: bool = False,
                       disagree: float = 0.15) -> dict:
    """Write ``OUT/videos/inhouse_<i>.mp4``, ``OUT/labels.csv`` (one span per segment, annotator ``a``; with
    ``second_annotator`` also annotator ``b``) and ``OUT/class_map.csv`` (:data:`BASE_TO_INHOUSE`). The classes
    cycle through the segments of all videos, so each class gets about the same number of spans. Returns
    ``{'videos': [...], 'labels': path, 'class_map': path, 'spans': n}``."""
    if num_videos < 1 or spans_per_video < 1:
        raise ValueError("need at least one video and one span per video")
    root = Path(out)
    rng = np.random.default_rng(seed)
    spans, videos, k = [], [], 0
    fps = 25.0
    for v in range(num_videos):
        frames, audio = [], []
        labels = []
        for j in range(spans_per_video):
            name = INHOUSE_CLASSES[k % len(INHOUSE_CLASSES)]
            k += 1
            source = _SOURCES[name][int(rng.integers(len(_SOURCES[name])))]
            clip = render_clip(source, num_frames=segment_frames, size=size, seed=(seed, 1000 + v, j))
            frames.append(clip.frames)
            audio.append(clip.waveform)
            labels.append(name)
        path = root / "videos" / f"inhouse_{v:03d}.mp4"
        write_video(path, np.concatenate(frames), fps, np.concatenate(audio, axis=1), clip.sample_rate)
        digest = sha256_file(path)
        videos.append(path)
        seg = segment_frames / fps
        for j, name in enumerate(labels):
            span = dict(video=f"videos/{path.name}", start_s=round(j * seg, 3), end_s=round((j + 1) * seg, 3),
                        track_id="0", created=now(), video_sha256=digest)
            spans.append(Span(label=name, annotator="a", **span))
            if second_annotator:
                other = name
                if rng.random() < disagree:
                    other = INHOUSE_CLASSES[(INHOUSE_CLASSES.index(name) + 1) % len(INHOUSE_CLASSES)]
                spans.append(Span(label=other, annotator="b", **span))
    labels_path = write_labels(root / "labels.csv", spans)
    class_map = write_csv(root / "class_map.csv", ["base", "new"], sorted(BASE_TO_INHOUSE.items(),
                                                                           key=lambda kv: SYNTH_CLASSES.index(kv[0])))
    return {"videos": videos, "labels": labels_path, "class_map": class_map, "spans": len(spans)}
