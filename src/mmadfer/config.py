"""Configuration dataclasses: the model's architecture and the preprocessing profile it expects.

Both accept plain dicts (``ModelConfig.from_dict``) so they round-trip through JSON, YAML and checkpoint
metadata. Every size that the reference hard-codes (16 frames, 768 dims, 12 blocks, 6 prompts, a 128-d
fusion bottleneck) is a field here.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ModelConfig", "PreprocessConfig", "PROMPT_MODES", "TEMPORAL_MODES", "MODALITIES", "AUDIO_PROFILES",
           "NO_FACE", "UNCERTAIN", "RESERVED_LABELS", "DEFAULT_MIN_FACE_COVERAGE"]

PROMPT_MODES = ("progressive", "static", "none")
TEMPORAL_MODES = ("transformer", "mean")
MODALITIES = ("av", "video", "audio")
AUDIO_PROFILES = ("reference", "16k-mono")

#: The label of a timeline window without enough face to read an expression from (its probabilities are kept).
NO_FACE = "no_face"
#: The label of a window whose top probability is below ``--min-confidence`` (its probabilities are kept).
UNCERTAIN = "uncertain"
#: Labels a prediction may carry that are not classes: no checkpoint class may be named so.
RESERVED_LABELS = (NO_FACE, UNCERTAIN)
#: A window is labelled only if a face was found in at least this fraction of its sampled frames (8 of 16): the
#: same majority rule by which a person counts as a face track of the window (``predict.prepare.MIN_TRACK_PRESENCE``).
#: Below it the crop the model saw shows mostly background, and its label would describe no one.
DEFAULT_MIN_FACE_COVERAGE = 0.5


def _from_dict(cls, d: dict[str, Any] | Any):
    if isinstance(d, cls):
        return d
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(d) - names
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown field(s) {sorted(unknown)}; known: {sorted(names)}")
    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
    return cls(**kw)


@dataclass
class PreprocessConfig:
    """How raw media becomes model input. Saved in every checkpoint; inference uses the checkpoint's profile.

    ``audio_profile='reference'`` takes the first channel at its native rate, as the authors' code did (needed to
    reproduce the released checkpoints). ``'16k-mono'`` downmixes and resamples to 16 kHz, AudioMAE's own rate.
    """

    audio_profile: str = "reference"
    num_frames: int = 16
    img_size: int = 224
    audio_frames: int = 512  # fbank frames at a 10 ms shift: 5.12 s
    num_mel_bins: int = 128
    fbank_mean: float = -4.2677393
    fbank_std: float = 4.5689974
    face_crop: str = "union"  # "union" (reference: one box per clip) or "track" (smoothed per-frame box)

    def __post_init__(self):
        if self.audio_profile not in AUDIO_PROFILES:
            raise ValueError(f"audio_profile must be one of {AUDIO_PROFILES}, got {self.audio_profile!r}")
        if self.face_crop not in ("union", "track"):
            raise ValueError(f"face_crop must be 'union' or 'track', got {self.face_crop!r}")

    @property
    def window_s(self) -> float:
        """Seconds of audio one model input covers (512 frames × 10 ms = 5.12 s)."""
        return self.audio_frames * 0.01

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PreprocessConfig":
        return _from_dict(cls, d)


@dataclass
class ModelConfig:
    """Architecture of :class:`mmadfer.MMADFER`. ``reference()`` is the paper's model; ``tiny()`` is for tests."""

    num_classes: int = 7
    class_names: tuple[str, ...] | None = None
    # --- encoders (both ViT; vision = MAE-Face, audio = AudioMAE) ---
    img_size: int = 224
    num_frames: int = 16
    patch_size: int = 16
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    drop_path_rate: float = 0.1
    audio_frames: int = 512
    audio_mel_bins: int = 128
    # --- prompts ---
    prompt_mode: str = "progressive"  # progressive | static | none
    num_prompts: int = 6
    prompts_per_group: int = 3  # `n_progr` in the reference: one update group every depth*group/num_prompts blocks
    # --- fusion bottleneck ---
    fusion: bool = True
    fusion_dim: int = 128
    # --- temporal head ---
    temporal: str = "transformer"  # transformer | mean
    temporal_dim: int = 512
    temporal_depth: int = 1
    temporal_heads: int = 8
    temporal_head_dim: int = 64
    temporal_mlp_dim: int = 1024
    # --- which signals ---
    modality: str = "av"  # av | video | audio
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    # --- confidence: probabilities are softmax(logits / temperature); `mmadfer calibrate` fits it (1.0: as trained) ---
    temperature: float = 1.0

    def __post_init__(self):
        if isinstance(self.preprocess, dict):
            self.preprocess = PreprocessConfig.from_dict(self.preprocess)
        if self.class_names is not None:
            self.class_names = tuple(self.class_names)
            if len(self.class_names) != self.num_classes:
                raise ValueError(f"class_names has {len(self.class_names)} names for num_classes={self.num_classes}")
        if not (isinstance(self.temperature, (int, float)) and 0 < self.temperature < float("inf")):
            raise ValueError(f"temperature must be a finite number > 0, got {self.temperature!r}")
        for name, value, allowed in (
            ("prompt_mode", self.prompt_mode, PROMPT_MODES),
            ("temporal", self.temporal, TEMPORAL_MODES),
            ("modality", self.modality, MODALITIES),
        ):
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
        if self.img_size % self.patch_size:
            raise ValueError(f"img_size {self.img_size} is not a multiple of patch_size {self.patch_size}")
        if self.prompt_mode != "none":
            if self.num_prompts < 1 or self.num_prompts % self.prompts_per_group:
                raise ValueError("num_prompts must be a positive multiple of prompts_per_group")
            if self.depth % self.num_groups:
                raise ValueError(f"depth {self.depth} is not divisible by {self.num_groups} prompt groups")

    # -- derived sizes -------------------------------------------------------------------------
    @property
    def num_groups(self) -> int:
        return self.num_prompts // self.prompts_per_group

    @property
    def n_prompt_tokens(self) -> int:
        return 0 if self.prompt_mode == "none" else self.num_prompts

    @property
    def vision_grid(self) -> tuple[int, int]:
        return (self.img_size // self.patch_size,) * 2

    @property
    def audio_grid(self) -> tuple[int, int]:
        return (self.audio_frames // self.patch_size, self.audio_mel_bins // self.patch_size)

    @property
    def labels(self) -> tuple[str, ...]:
        if self.class_names is not None:
            return self.class_names
        if self.num_classes == 7:
            return DFEW_CLASSES
        if self.num_classes == 11:
            return MAFW_CLASSES
        return tuple(f"class{i}" for i in range(self.num_classes))

    # -- constructors ---------------------------------------------------------------------------
    @classmethod
    def reference(cls, num_classes: int = 7, img_size: int = 224, **overrides: Any) -> "ModelConfig":
        """The paper's model: two ViT-B/16 encoders, 6 progressive prompts, 128-d fusion, 1 temporal layer."""
        pre = overrides.pop("preprocess", None) or PreprocessConfig(img_size=img_size)
        return cls(num_classes=num_classes, img_size=img_size, preprocess=pre, **overrides)

    @classmethod
    def tiny(cls, num_classes: int = 7, **overrides: Any) -> "ModelConfig":
        """A model of a few hundred thousand parameters that runs in milliseconds on a CPU, for tests and demos."""
        kw: dict[str, Any] = dict(
            num_classes=num_classes, img_size=32, num_frames=16, patch_size=16, embed_dim=64, depth=2, num_heads=2,
            drop_path_rate=0.0, num_prompts=2, prompts_per_group=2, fusion_dim=16, temporal_dim=64,
            temporal_heads=2, temporal_head_dim=32, temporal_mlp_dim=128,
        )
        kw.update(overrides)
        kw.setdefault("preprocess", PreprocessConfig(img_size=kw["img_size"], num_frames=kw["num_frames"]))
        return cls(**kw)

    def replace(self, **changes: Any) -> "ModelConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        if d["class_names"] is not None:
            d["class_names"] = list(d["class_names"])
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        return _from_dict(cls, d)


#: DFEW's 7 classes, in the order of its label indices (1..7 in the annotation files, 0..6 here).
DFEW_CLASSES = ("happy", "sad", "neutral", "angry", "surprise", "disgust", "fear")
#: MAFW's 11 classes, in the order of its label indices.
MAFW_CLASSES = (
    "anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise",
    "contempt", "anxiety", "helplessness", "disappointment",
)
