"""The training configuration: one YAML file, dotted command-line overrides, and the resolved copy in the run folder.

A config has five parts, each a dataclass; every field has the reference recipe's default (the paper and the
authors' training script)::

    model:  preset (reference | tiny), encoder weights, which parameters train, and any ModelConfig field
            (prompt_mode, fusion, temporal, modality, drop_path_rate, img_size, preprocess: {...}, ...)
    data:   dataset kind and root, fold, loader workers
    optim:  AdamW lr / weight decay / betas, per-epoch cosine schedule, 1-D decay switch, gradient clipping
    train:  epochs, batch size, seed, precision, compile, evaluation and checkpoint cadence
    run_dir: where the run's files go (default ``runs/<dataset>-fold<k>-<time>``)

Overrides use dotted keys and YAML values: ``--set optim.lr=3e-4 --set model.modality=video``. Packaged presets
(``dfew``, ``mafw``, ``synthetic``) can be named instead of a path: ``TrainConfig.preset('synthetic')``.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Sequence

import yaml

from ..config import ModelConfig, PreprocessConfig
from ..io import atomic_write

__all__ = ["TrainConfig", "ModelSection", "DataSection", "OptimSection", "TrainSection", "PRESETS",
           "apply_overrides", "parse_value"]

#: Packaged configs under ``mmadfer/configs/``.
PRESETS = ("dfew", "mafw", "synthetic")
_MODEL_FIELDS = {f.name for f in dataclasses.fields(ModelConfig)} - {"num_classes", "class_names"}


def _check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}, got {value!r}")


def _opt_str(value: Any) -> str | None:
    """Paths may arrive as numbers from YAML (a folder named ``2024``); keep them as text."""
    return None if value is None else os.fspath(value) if isinstance(value, os.PathLike) else str(value)


def _section_from_dict(cls, d: dict[str, Any] | None, where: str):
    d = dict(d or {})
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(f'{where}.{k}' for k in unknown)}; "
                         f"known: {', '.join(sorted(names))}")
    return cls(**d)


#: ``model.trainable`` policies (``adapters`` is the paper's ``reference`` set: prompts, fusion, temporal head).
TRAINABLE = ("reference", "adapters", "temporal", "head", "all")


@dataclass
class ModelSection:
    """The model: a preset architecture plus any :class:`~mmadfer.config.ModelConfig` field as an override.

    ``num_classes`` and ``class_names`` come from the dataset. ``vision_weights``/``audio_weights`` are the public
    MAE-Face / AudioMAE pretraining checkpoints; without them the encoders are random (the run says so loudly).
    ``trainable``: ``reference`` (the paper: prompts, positional embeddings, fusion, temporal head; ``adapters``
    is the same), ``temporal`` (the temporal head and the classifier), ``head`` (the classifier) or ``all``.
    ``init``: a whole checkpoint to start from (``mmadfer train --init``: :mod:`mmadfer.train.init`); its
    architecture and preprocessing then replace the preset's, and ``vision_weights``/``audio_weights`` only serve a
    checkpoint that holds just its trained tensors.
    """

    preset: str = "reference"
    vision_weights: str | None = None
    audio_weights: str | None = None
    trainable: str = "reference"
    init: str | None = None
    arch: dict[str, Any] = field(default_factory=dict)  # ModelConfig overrides; flattened into `model:` in YAML

    def __post_init__(self):
        self.vision_weights, self.audio_weights = _opt_str(self.vision_weights), _opt_str(self.audio_weights)
        self.init = _opt_str(self.init)
        _check_choice("model.preset", self.preset, ("reference", "tiny"))
        _check_choice("model.trainable", self.trainable, TRAINABLE)
        self.trainable = "reference" if self.trainable == "adapters" else self.trainable
        unknown = sorted(set(self.arch) - _MODEL_FIELDS)
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join('model.' + k for k in unknown)}; known: preset, "
                             f"vision_weights, audio_weights, trainable and the ModelConfig fields "
                             f"{', '.join(sorted(_MODEL_FIELDS))}")
        self.model_config(("a", "b"))  # validate the architecture now, not after the data is indexed

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "ModelSection":
        d = dict(d or {})
        own = {k: d.pop(k) for k in ("preset", "vision_weights", "audio_weights", "trainable", "init") if k in d}
        return cls(**own, arch={**d.pop("arch", {}), **d})

    def to_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in ("preset", "vision_weights", "audio_weights", "trainable", "init")}
        return {**d, **copy.deepcopy(self.arch)}

    def model_config(self, class_names: Sequence[str]) -> ModelConfig:
        """The :class:`ModelConfig` for a dataset with ``class_names``. The preprocessing profile follows the
        architecture's ``img_size``, ``num_frames`` and ``audio_frames`` unless ``preprocess`` sets them."""
        arch = copy.deepcopy(self.arch)
        base = ModelConfig.tiny if self.preset == "tiny" else ModelConfig.reference
        proto = base(num_classes=len(class_names), **{k: v for k, v in arch.items() if k != "preprocess"})
        pre = {"img_size": proto.img_size, "num_frames": proto.num_frames, "audio_frames": proto.audio_frames,
               **(arch.pop("preprocess", None) or {})}
        arch["preprocess"] = PreprocessConfig.from_dict(pre)
        return base(num_classes=len(class_names), class_names=tuple(class_names), **arch)


@dataclass
class DataSection:
    """Where the clips come from and how they are loaded.

    ``dataset``: ``dfew`` / ``mafw`` (a benchmark root, ``fold`` 1..5), ``folder`` (mmadfer's layout, e.g. from
    ``mmadfer prepare`` or ``mmadfer synth``), ``csv`` (``root`` is the training CSV, ``test_csv`` the held-out
    one) or ``synthetic`` (the set of ``mmadfer synth``, written to ``root`` — default ``<run_dir>/synthetic-data``
    — when it is not there yet: ``synth_clips`` clips of ``synth_size`` pixels). ``options`` go to the dataset class
    (e.g. ``audio_root``, ``clip_root``, ``allow_missing_audio``). ``on_bad_sample: skip`` logs an undecodable clip
    and trains on; ``raise`` stops. ``pin_memory: null`` pins on a GPU.
    """

    dataset: str = "dfew"
    root: str | None = None
    test_csv: str | None = None
    fold: int | None = 1
    synth_clips: int = 96
    synth_size: int = 32
    on_bad_sample: str = "skip"
    num_workers: int = 8
    pin_memory: bool | None = None
    persistent_workers: bool = True
    prefetch_factor: int = 4
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        self.root, self.test_csv = _opt_str(self.root), _opt_str(self.test_csv)
        _check_choice("data.dataset", self.dataset, ("dfew", "mafw", "folder", "csv", "synthetic"))
        _check_choice("data.on_bad_sample", self.on_bad_sample, ("skip", "raise"))
        if self.num_workers < 0:
            raise ValueError(f"data.num_workers must be >= 0, got {self.num_workers}")
        if self.prefetch_factor < 1:
            raise ValueError(f"data.prefetch_factor must be >= 1, got {self.prefetch_factor}")


@dataclass
class OptimSection:
    """AdamW with a per-epoch schedule (the reference: lr 1e-4, weight decay 1e-2, cosine over all epochs).

    ``decay_1d: false`` exempts biases, norms, prompts, positional embeddings and CLS tokens from weight decay
    (:meth:`MMADFER.no_weight_decay`); the reference decays everything. ``scheduler``: ``cosine``
    (``CosineAnnealingLR(T_max=epochs)``, stepped once per epoch) or ``constant``. ``clip_grad_norm: null`` = off.
    """

    lr: float = 1e-4
    weight_decay: float = 1e-2
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    decay_1d: bool = True
    scheduler: str = "cosine"
    min_lr: float = 0.0
    clip_grad_norm: float | None = None

    def __post_init__(self):
        self.betas = tuple(float(b) for b in self.betas)
        _check_choice("optim.scheduler", self.scheduler, ("cosine", "constant"))
        if self.lr <= 0:
            raise ValueError(f"optim.lr must be positive, got {self.lr}")


@dataclass
class TrainSection:
    """The loop. ``precision``: ``auto`` (bf16 autocast on a GPU, fp32 on the CPU), ``bf16`` or ``fp32``.
    ``compile``: ``auto`` (``torch.compile`` on a GPU, where its compilation pays for itself within the first epoch
    (BENCHMARKS.md); eager on the CPU), ``true``, ``false`` or ``regional``
    (each repeated layer compiled on its own, :func:`mmadfer.accel.compile_regions`: a fraction of the compile
    time; ``--set train.compile=regional``).
    ``eval_every``: evaluate on the test split every N epochs (0: only after the final epoch, as the paper reports).
    ``checkpoint_every_steps``: also save a resumable state every N steps inside an epoch (0: only at epoch ends).
    ``keep_states``: how many resumable states to keep.
    ``balanced``: draw each epoch's clips class-balanced (every class equally often, with replacement; the epoch
    keeps the training split's size) instead of a shuffle: a few hundred labelled clips are rarely balanced.
    ``early_stopping``: with a validation split (``set_<k>_val.txt``, written by ``prepare --labels`` from 3 folds)
    evaluate it after every epoch, stop after this many epochs without a better validation UAR, and keep the best
    epoch's weights (0: off, the paper's final epoch)."""

    epochs: int = 25
    batch_size: int = 8
    eval_batch_size: int | None = None
    seed: int = 1
    precision: str = "auto"
    compile: bool | str = "auto"
    device: str = "auto"
    label_smoothing: float = 0.0
    eval_every: int = 0
    checkpoint_every_steps: int = 0
    keep_states: int = 2
    log_every: int = 10
    tensorboard: bool = True
    balanced: bool = False
    early_stopping: int = 0

    def __post_init__(self):
        _check_choice("train.precision", self.precision, ("auto", "bf16", "fp32"))
        _check_choice("train.compile", self.compile, ("auto", True, False, "regional"))
        if self.seed < 0:
            raise ValueError(f"train.seed must be >= 0, got {self.seed}")
        if self.early_stopping < 0:
            raise ValueError(f"train.early_stopping must be >= 0 (epochs of patience), got {self.early_stopping}")
        for name in ("epochs", "batch_size", "keep_states", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be >= 1, got {getattr(self, name)}")


#: Fields that may change when a run is resumed: they do not change what is computed, only how fast or where.
RUNTIME_FIELDS = frozenset({
    "run_dir", "data.num_workers", "data.pin_memory", "data.persistent_workers", "data.prefetch_factor",
    "train.compile", "train.device", "train.eval_batch_size", "train.checkpoint_every_steps", "train.keep_states",
    "train.log_every", "train.tensorboard", "train.eval_every",
})


@dataclass
class TrainConfig:
    """Everything a training run needs. Build with :meth:`from_yaml`, :meth:`preset` or :meth:`from_dict`."""

    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    optim: OptimSection = field(default_factory=OptimSection)
    train: TrainSection = field(default_factory=TrainSection)
    run_dir: str | None = None

    # -- construction -------------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "TrainConfig":
        d = dict(d or {})
        unknown = sorted(set(d) - {"model", "data", "optim", "train", "run_dir"})
        if unknown:
            raise ValueError(f"unknown top-level key(s) {unknown}; known: model, data, optim, train, run_dir")
        return cls(model=ModelSection.from_dict(d.get("model")),
                   data=_section_from_dict(DataSection, d.get("data"), "data"),
                   optim=_section_from_dict(OptimSection, d.get("optim"), "optim"),
                   train=_section_from_dict(TrainSection, d.get("train"), "train"),
                   run_dir=None if d.get("run_dir") is None else str(d["run_dir"]))

    @classmethod
    def from_yaml(cls, path: str | os.PathLike | None = None, overrides: Iterable[str] = ()) -> "TrainConfig":
        """Read a YAML file (or a preset name, see :data:`PRESETS`; None = the reference defaults) and apply
        ``overrides`` (``"section.key=value"`` strings)."""
        d = read_yaml(path) if path is not None else {}
        return cls.from_dict(apply_overrides(d, overrides))

    @classmethod
    def preset(cls, name: str, overrides: Iterable[str] = ()) -> "TrainConfig":
        """A packaged config by name: ``dfew``, ``mafw`` (the paper's recipe) or ``synthetic`` (tiny, CPU-fast)."""
        _check_choice("preset", name, PRESETS)
        return cls.from_yaml(name, overrides)

    # -- output -------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = {k: dataclasses.asdict(getattr(self, k)) for k in ("data", "optim", "train")}
        d["optim"]["betas"] = list(self.optim.betas)
        return {"model": self.model.to_dict(), **d, "run_dir": self.run_dir}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the resolved config as YAML (atomically); ``TrainConfig.from_yaml(path)`` reads it back."""
        with atomic_write(path, "w", encoding="utf-8") as f:
            f.write(self.to_yaml())
        return Path(path)

    def replace(self, overrides: Iterable[str]) -> "TrainConfig":
        """A copy with dotted overrides applied."""
        return TrainConfig.from_dict(apply_overrides(self.to_dict(), overrides))

    def differences(self, other: "TrainConfig", ignore: frozenset[str] = RUNTIME_FIELDS) -> list[str]:
        """Dotted keys whose values differ between two configs (``ignore`` skips fields that may change on resume)."""
        a, b = _flatten(self.to_dict()), _flatten(other.to_dict())
        return sorted(k for k in set(a) | set(b) if k not in ignore and a.get(k) != b.get(k))


def read_yaml(path_or_preset: str | os.PathLike) -> dict[str, Any]:
    """A YAML mapping from a file, or from a packaged preset when ``path_or_preset`` is a preset name."""
    name = os.fspath(path_or_preset)
    if name in PRESETS and not Path(name).exists():
        text = resources.files("mmadfer").joinpath("configs", f"{name}.yaml").read_text(encoding="utf-8")
        source = f"preset {name!r}"
    else:
        path = Path(name)
        if not path.is_file():
            raise FileNotFoundError(f"config not found: {path} (or name a preset: {', '.join(PRESETS)})")
        text, source = path.read_text(encoding="utf-8"), str(path)
    try:
        d = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ValueError(f"{source}: invalid YAML ({e})") from None
    if d is None:
        return {}
    if not isinstance(d, dict):
        raise ValueError(f"{source}: expected a mapping at the top level, got {type(d).__name__}")
    return d


def parse_value(text: str) -> Any:
    """A command-line value as YAML (``3``, ``true``, ``null``, ``[1, 2]``), also reading ``3e-4`` as a number
    (plain YAML 1.1 reads it as a string)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str) and not text.strip().startswith(("'", '"')):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def apply_overrides(d: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of ``d`` with each ``"a.b.c=value"`` applied (intermediate mappings are created)."""
    d = copy.deepcopy(d)
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ValueError(f"override {item!r} is not of the form section.key=value (e.g. optim.lr=3e-4)")
        *parents, leaf = key.split(".")
        node = d
        for i, part in enumerate(parents):
            child = node.setdefault(part, {})
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ValueError(f"override {item!r}: {'.'.join(parents[:i + 1])} is not a section")
            node = child
        node[leaf] = parse_value(text)
    return d


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


# -- command-line glue shared by `mmadfer train`, `cv` and `ablate` ------------------------------------------------------
def add_config_arguments(parser, *, fold: bool = True) -> None:
    """The config flags: ``--config``, ``--set`` and shortcuts for the most used keys (they win over ``--set``)."""
    parser.add_argument("--config", default=None, metavar="YAML|PRESET",
                        help=f"a YAML config or a packaged preset ({', '.join(PRESETS)}); default: the reference "
                             "recipe (for --resume: the run folder's config.yaml)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set optim.lr=3e-4 --set model.modality=video (repeatable)")
    g = parser.add_argument_group("shortcuts for common keys")
    g.add_argument("--data", metavar="ROOT", help="dataset root, or the training CSV for --dataset csv (data.root)")
    g.add_argument("--dataset", choices=("dfew", "mafw", "folder", "csv", "synthetic"), help="data.dataset")
    if fold:
        g.add_argument("--fold", type=int, help="data.fold (1..5)")
    g.add_argument("--test-csv", metavar="CSV", help="held-out clips for --dataset csv (data.test_csv)")
    g.add_argument("--vision-weights", metavar="PATH", help="MAE-Face pretraining checkpoint (model.vision_weights)")
    g.add_argument("--audio-weights", metavar="PATH", help="AudioMAE pretraining checkpoint (model.audio_weights)")
    g.add_argument("--init", metavar="CK", help="start from this whole checkpoint (the authors' .pth or an mmadfer "
                   ".safetensors; model.init): its architecture, preprocessing and weights, the classifier rebuilt "
                   "for the data's classes. Also sets the defaults for a few hundred clips: --trainable adapters, "
                   f"class-balanced epochs (train.balanced) and early stopping after {INIT_PATIENCE} epochs without "
                   "a better validation UAR (train.early_stopping), each overridable")
    g.add_argument("--trainable", choices=("adapters", "temporal", "head", "all"),
                   help="model.trainable: adapters (the paper's set: prompts, positional embeddings, fusion, "
                        "temporal head, classifier), temporal (temporal head and classifier), head (classifier "
                        "only) or all")
    g.add_argument("--epochs", type=int, help="train.epochs")
    g.add_argument("--batch-size", type=int, help="train.batch_size (per process)")
    g.add_argument("--lr", type=float, help="optim.lr")
    g.add_argument("--seed", type=int, help="train.seed")
    g.add_argument("--precision", help="train.precision: auto (bf16 on a GPU, fp32 on the CPU), fp32, bf16, fp8, fp8t")
    g.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the model (train.compile; default auto: on a GPU)")
    g.add_argument("--device", help="train.device: auto, cpu, cuda, cuda:1")
    g.add_argument("--num-workers", type=int, help="data loader worker processes (data.num_workers)")


_SHORTCUTS = {"data": "data.root", "dataset": "data.dataset", "fold": "data.fold", "test_csv": "data.test_csv",
              "vision_weights": "model.vision_weights", "audio_weights": "model.audio_weights",
              "epochs": "train.epochs", "batch_size": "train.batch_size", "lr": "optim.lr", "seed": "train.seed",
              "precision": "train.precision", "compile": "train.compile", "device": "train.device",
              "num_workers": "data.num_workers", "init": "model.init", "trainable": "model.trainable"}
#: Epochs without a better validation UAR before a ``--init`` run stops (``train.early_stopping``).
INIT_PATIENCE = 5
#: What ``--init`` sets before the config's own overrides (which win): fine-tuning defaults for few clips.
INIT_DEFAULTS = ("model.trainable=reference", "train.balanced=true", f"train.early_stopping={INIT_PATIENCE}")


def config_from_args(args, base: str | os.PathLike | None = None) -> TrainConfig:
    """Build the :class:`TrainConfig` of a command line: ``--config`` (else ``base``, else the defaults), then
    ``--set`` overrides, then the shortcut flags. ``--init`` first applies :data:`INIT_DEFAULTS`."""
    overrides = (list(INIT_DEFAULTS) if getattr(args, "init", None) else []) + list(args.overrides)
    for attr, key in _SHORTCUTS.items():
        value = getattr(args, attr, None)
        if value is not None:
            overrides.append(f"{key}={_quote(value)}")
    return TrainConfig.from_yaml(args.config or base, overrides)


def _quote(value: Any) -> str:
    """A value as YAML text that :func:`parse_value` reads back unchanged (paths stay strings)."""
    if isinstance(value, (bool, int, float)):
        return yaml.safe_dump(value).splitlines()[0]
    return yaml.safe_dump(str(value), default_style='"').strip()
