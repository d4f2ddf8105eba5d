"""Every way weights enter or leave an :class:`~mmadfer.MMADFER`, in one place.

Three formats are read:

* **The reference training script's container** (the authors' released DFEW/MAFW checkpoints): a ``torch.save``
  pickle holding ``{'epoch', 'state_dict' ('module.'-prefixed, CUDA tensors), 'best_acc', 'optimizer', 'recorder'}``
  where ``recorder`` is a pickled ``__main__.RecorderMeter`` holding numpy arrays. It is read with PyTorch's
  ``weights_only`` unpickler and an allow-list of exactly the globals that container needs; anything else (for example
  ``os.system``) is refused before any byte of the pickle is executed.
* **MAE pretraining checkpoints** (MAE-Face for vision, AudioMAE for audio): ``{'model': encoder + decoder weights}``.
* **mmadfer's own format**: safetensors weights with the model config and preprocessing profile in the metadata.

Conversions are pure functions ``state_dict -> state_dict`` (timm's ``checkpoint_filter_fn`` pattern), followed by a
strict load that raises :class:`~mmadfer.CheckpointError` listing missing and unexpected keys. Nothing loads half-way.
"""
from __future__ import annotations

import importlib
import json
import math
import os
import re
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from timm.layers import resample_abs_pos_embed

from .checkpoint_checks import check_config, check_finite, check_fits, check_keys, check_zip_sizes
from .config import ModelConfig
from .errors import CheckpointError
from .io import atomic_path, sha256_file
from .model.mmadfer import MMADFER

__all__ = [
    "load_official_checkpoint", "load_encoder_weights", "save_checkpoint", "load_checkpoint", "load_model",
    "convert_official_state_dict", "config_from_official_state_dict", "convert_mae_state_dict", "safe_torch_load",
    "strict_load", "FORMAT_VERSION",
]

FORMAT_VERSION = "mmadfer-1"
Tensors = dict[str, torch.Tensor]


# ---------------------------------------------------------------------------------------------------------------------
# Safe reading of pickled containers
# ---------------------------------------------------------------------------------------------------------------------
class _RecorderMeter:
    """Inert stand-in for the reference's ``__main__.RecorderMeter``: it only receives the pickled attribute dict."""


def _numpy_reconstruct():
    """numpy's array-unpickling helper, found by the name pickles use for it: ``numpy._core.multiarray`` in numpy 2,
    ``numpy.core.multiarray`` in numpy 1 (where ``numpy._core`` does not exist)."""
    for module in ("numpy._core.multiarray", "numpy.core.multiarray"):
        try:
            return getattr(importlib.import_module(module), "_reconstruct")
        except (ImportError, AttributeError):
            continue
    raise ImportError("numpy has no multiarray._reconstruct")  # pragma: no cover


_NUMPY_RECONSTRUCT = _numpy_reconstruct()
#: The only non-torch globals a reference container may name, bound to harmless local objects.
_REFERENCE_GLOBALS = {
    "__main__.RecorderMeter": _RecorderMeter,
    "numpy.core.multiarray._reconstruct": _NUMPY_RECONSTRUCT,  # files saved with numpy 1.x
    "numpy._core.multiarray._reconstruct": _NUMPY_RECONSTRUCT,  # files saved with numpy 2.x
    "numpy.ndarray": np.ndarray,
    "numpy.dtype": np.dtype,
}
#: Types the unpickler must be allowed to *build* (numpy 2 dtype instances are of these classes). They are plain data
#: types, never named as globals in these files, so the pre-scan above is unaffected.
_NUMPY_DTYPE_TYPES = [type(np.dtype(c)) for c in "?bhilqBHILQefdgFDG"]


def _unsafe_globals(path: Path) -> list[str]:
    """Globals the pickle names beyond torch's own safe set, read without executing anything."""
    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except (RuntimeError, ValueError, zipfile.BadZipFile, EOFError, OSError) as e:
        raise CheckpointError(path, f"not a readable PyTorch checkpoint ({type(e).__name__}: {e})") from e


def safe_torch_load(path: str | os.PathLike, allowed: Mapping[str, Any] = _REFERENCE_GLOBALS) -> Any:
    """``torch.load`` on the CPU that never executes code from the file.

    The pickle's globals are listed first; any outside torch's weights-only set and ``allowed`` is refused with a
    :class:`CheckpointError` naming it. The file is then read by the weights-only unpickler with ``allowed`` bound to
    inert local objects.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such file")
    if path.stat().st_size == 0:
        raise CheckpointError(path, "file is empty")
    check_zip_sizes(path)  # before any entry is read: a zip bomb declares gigabytes in a small file
    refused = sorted(set(_unsafe_globals(path)) - set(allowed))
    if refused:
        raise CheckpointError(path, f"refused: the pickle references disallowed global(s) {', '.join(refused)}; "
                                    "it could execute code, so it is not loaded")
    try:
        with torch.serialization.safe_globals([(obj, name) for name, obj in allowed.items()] + _NUMPY_DTYPE_TYPES):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # the weights-only unpickler reports anything unexpected as an error, never runs it
        lines = [ln for ln in str(e).splitlines() if ln.strip()]
        detail = next((ln for ln in lines if "got" in ln or "Unsupported" in ln), lines[0] if lines else "")
        raise CheckpointError(path, f"cannot be read safely ({type(e).__name__}: {detail.strip()})") from e


def _unwrap(obj: Any, path: Path, keys: tuple[str, ...] = ("state_dict", "model", "module")) -> Tensors:
    """Find the tensor dict inside a training container."""
    for k in keys:
        if isinstance(obj, Mapping) and k in obj and isinstance(obj[k], Mapping):
            obj = obj[k]
            break
    if not isinstance(obj, Mapping) or not obj or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(path, "no state dict of tensors found (looked under " + ", ".join(map(repr, keys)) + ")")
    return {k.removeprefix("module."): v for k, v in obj.items()}


# ---------------------------------------------------------------------------------------------------------------------
# Strict loading
# ---------------------------------------------------------------------------------------------------------------------
def strict_load(module: torch.nn.Module, state_dict: Mapping[str, torch.Tensor], path: str | os.PathLike | None,
                *, allow_missing: tuple[str, ...] = ()) -> None:
    """Load ``state_dict`` into ``module``; any missing (not in ``allow_missing``), unexpected or mis-shaped key raises.

    Shapes are checked before anything is copied, so a failed load leaves the module untouched; so are the values
    (NaN or infinite weights are refused, naming the tensor).
    """
    check_finite(state_dict, path)
    check_keys(module.state_dict(), state_dict, path, allow_missing=allow_missing)
    module.load_state_dict(state_dict, strict=False)


# ---------------------------------------------------------------------------------------------------------------------
# The reference implementation's checkpoints
# ---------------------------------------------------------------------------------------------------------------------
#: Reference keys that its forward pass never reads: the encoders' pretraining heads and the temporal layers' second
#: norms (verified against the golden outputs: using them changes the logits).
_OFFICIAL_UNUSED = re.compile(r"^(image_encoder\.head\.|audio_model\.head\.|temporal_net\..*\.fn\.norm2\.)")

_OFFICIAL_RENAMES = [  # (pattern, replacement): the first that matches a reference key renames it
    (r"^image_encoder\.temporal_pre\.(\d+)\.", r"fusion.\1.img_down."),
    (r"^image_encoder\.temporal_pre_norm\.(\d+)\.", r"fusion.\1.img_norm."),
    (r"^image_encoder\.audio_proj_pre\.(\d+)\.0\.", r"fusion.\1.aud_down."),
    (r"^image_encoder\.audio_proj_pre\.(\d+)\.1\.", r"fusion.\1.aud_norm."),
    (r"^image_encoder\.temporal_att_post\.(\d+)\.0\.", r"fusion.\1.img_up."),
    (r"^audio_model\.temporal_att_post\.(\d+)\.0\.", r"fusion.\1.aud_up."),
    (r"^image_encoder\.all_gate\.(\d+)$", r"fusion.\1.img_gate"),
    (r"^audio_model\.all_gate\.(\d+)$", r"fusion.\1.aud_gate"),
    (r"^image_encoder\.learnable_prompts_init$", "vision.prompts"),
    (r"^audio_model\.learnable_prompts_init$", "audio.prompts"),
    (r"^image_encoder\.learnable_prompts_progr\.", "vision.prompt_updates."),
    (r"^audio_model\.learnable_prompts_progr\.", "audio.prompt_updates."),
    (r"^image_encoder\.", "vision."),  # the timm-named encoder weights: cls_token, pos_embed, patch_embed, blocks, norm
    (r"^audio_model\.", "audio."),
    (r"^vision_proj\.", "proj."),
    (r"^our_classifier\.", "head."),
    (r"^temporal_net\.pos_embedding$", "temporal.pos_embed"),
    (r"^temporal_net\.cls_token$", "temporal.cls_token"),
    (r"^temporal_net\.temporal_transformer\.layers\.(\d+)\.0\.fn\.norm\.", r"temporal.layers.\1.attn_norm."),
    (r"^temporal_net\.temporal_transformer\.layers\.(\d+)\.0\.fn\.fn\.to_out\.0\.", r"temporal.layers.\1.attn.to_out."),
    (r"^temporal_net\.temporal_transformer\.layers\.(\d+)\.0\.fn\.fn\.", r"temporal.layers.\1.attn."),
    (r"^temporal_net\.temporal_transformer\.layers\.(\d+)\.1\.fn\.norm\.", r"temporal.layers.\1.mlp_norm."),
    (r"^temporal_net\.temporal_transformer\.layers\.(\d+)\.1\.fn\.fn\.net\.0\.", r"temporal.layers.\1.fc1."),
    (r"^temporal_net\.temporal_transformer\.layers\.(\d+)\.1\.fn\.fn\.net\.3\.", r"temporal.layers.\1.fc2."),
]


def convert_official_state_dict(state_dict: Mapping[str, torch.Tensor]) -> Tensors:
    """Reference key names (with or without ``module.``) to mmadfer's. Pure: the input is not modified."""
    out: Tensors = {}
    for key, value in state_dict.items():
        key = key.removeprefix("module.")
        if _OFFICIAL_UNUSED.match(key):
            continue
        for pattern, repl in _OFFICIAL_RENAMES:
            new, n = re.subn(pattern, repl, key)
            if n:
                key = new
                break
        out[key] = value.float() if value.is_floating_point() else value
    return out


def config_from_official_state_dict(sd: Mapping[str, torch.Tensor], **overrides: Any) -> ModelConfig:
    """Infer the architecture (classes, image size, frames, widths) from a converted state dict's tensor shapes."""
    embed_dim = sd["vision.cls_token"].shape[-1]
    patch = sd["vision.patch_embed.proj.weight"].shape[-1]
    depth = 1 + max(int(k.split(".")[2]) for k in sd if k.startswith("vision.blocks."))
    num_prompts = sd["vision.prompts"].shape[0] if "vision.prompts" in sd else 0
    progressive = "vision.prompt_updates.0" in sd
    per_group = sd["vision.prompt_updates.0"].shape[0] if progressive else max(num_prompts, 1)
    grid = math.isqrt(sd["vision.pos_embed"].shape[1] - 1 - num_prompts)
    audio_patches = sd["audio.pos_embed"].shape[1] - 1 - num_prompts
    mel_bins = 128
    temporal_dim = sd["proj.weight"].shape[0]
    kw: dict[str, Any] = dict(
        num_classes=sd["head.weight"].shape[0],
        img_size=grid * patch,
        patch_size=patch,
        embed_dim=embed_dim,
        depth=depth,
        num_heads=embed_dim // 64,
        audio_frames=audio_patches // (mel_bins // patch) * patch,
        audio_mel_bins=mel_bins,
        prompt_mode="progressive" if progressive else ("static" if num_prompts else "none"),
        num_prompts=num_prompts or 6,
        prompts_per_group=per_group,
        fusion="fusion.0.img_gate" in sd,
        fusion_dim=sd["fusion.0.img_down.weight"].shape[0] if "fusion.0.img_down.weight" in sd else 128,
        temporal_dim=temporal_dim,
        temporal_depth=1 + max(int(k.split(".")[2]) for k in sd if k.startswith("temporal.layers.")),
        temporal_heads=temporal_dim // 64,
        temporal_head_dim=64,
        temporal_mlp_dim=sd["temporal.layers.0.fc1.weight"].shape[0],
        num_frames=sd["temporal.pos_embed"].shape[1] - 1,
    )
    kw.update(overrides)
    return ModelConfig.reference(**kw)


def load_official_checkpoint(path: str | os.PathLike, *, map_location: str | torch.device = "cpu",
                             **config_overrides: Any) -> MMADFER:
    """Load a checkpoint written by the reference training script (the authors' released DFEW / MAFW models).

    Works on a CPU-only machine and never executes code from the file. The number of classes and the image size are
    inferred from the tensor shapes; the preprocessing profile is the reference one. Returns the model in eval mode.
    """
    path = Path(path)
    raw = _unwrap(safe_torch_load(path), path)
    sd = convert_official_state_dict(raw)
    try:
        cfg = config_from_official_state_dict(sd, **config_overrides)
    except (KeyError, ValueError) as e:
        raise CheckpointError(path, f"not an MMA-DFER reference checkpoint (cannot infer the architecture: {e})") from e
    check_config(cfg, path)  # sizes inferred from key names are bounded before anything is built
    model = MMADFER(cfg)
    strict_load(model, sd, path)
    model.source = {"format": "official", "path": str(path)}
    return model.to(map_location).eval()


# ---------------------------------------------------------------------------------------------------------------------
# MAE pretraining checkpoints (MAE-Face, AudioMAE)
# ---------------------------------------------------------------------------------------------------------------------
_MAE_DROP = re.compile(r"^(decoder|mask_token|head\.|fc_norm\.|head_dist)")


def convert_mae_state_dict(state_dict: Mapping[str, torch.Tensor], encoder: torch.nn.Module,
                           path: str | os.PathLike | None = None, *, in_chans: int) -> Tensors:
    """An MAE checkpoint's encoder weights, fitted to a :class:`PromptedViT` (pure; ``encoder`` is only read).

    Drops the MAE decoder, mask token and any classification head; checks the patch embedding's input channels (3 for
    faces, 1 for fbanks) so that a swapped file is caught; resamples the positional embedding to the encoder's grid
    and appends the encoder's current (new, randomly initialised) prompt positions.
    """
    sd = {k.removeprefix("module.").removeprefix("encoder."): v for k, v in state_dict.items()}
    sd = {k: v.float() for k, v in sd.items() if not _MAE_DROP.match(k)}
    w = sd.get("patch_embed.proj.weight")
    if w is None:
        raise CheckpointError(path, "no 'patch_embed.proj.weight': not a ViT/MAE encoder checkpoint")
    if w.shape[1] != in_chans:
        kind = {3: "an RGB (vision) encoder", 1: "a 1-channel (audio fbank) encoder"}
        raise CheckpointError(path, f"patch embedding takes {w.shape[1]} input channel(s), expected {in_chans}: "
                                    f"this is {kind.get(w.shape[1], 'another encoder')}, not "
                                    f"{kind.get(in_chans, 'the expected one')} — were vision and audio swapped?")
    target = encoder.pos_embed
    if "pos_embed" in sd:
        new_grid = tuple(encoder.grid_size)
        pe = sd["pos_embed"]
        n_old = pe.shape[1] - 1
        # Pretrained grids share the encoder's width (square for faces; 8 mel columns for AudioMAE's 1024×128 input).
        old_w = math.isqrt(n_old) if new_grid[0] == new_grid[1] else new_grid[1]
        if n_old % old_w:
            raise CheckpointError(path, f"positional embedding of {n_old} patches does not fit a grid of width {old_w}")
        # antialias=False: a plain bicubic interpolation, like F.interpolate in the MAE code bases.
        pe = resample_abs_pos_embed(pe, new_size=list(new_grid), old_size=[n_old // old_w, old_w],
                                    num_prefix_tokens=1, interpolation="bicubic", antialias=False)
        n_prompts = target.shape[1] - pe.shape[1]
        sd["pos_embed"] = torch.cat([pe, target.detach()[:, target.shape[1] - n_prompts:].cpu()], dim=1)
    return sd


def load_encoder_weights(model: MMADFER, vision: str | os.PathLike | None = None,
                         audio: str | os.PathLike | None = None) -> MMADFER:
    """Initialise the frozen encoders from MAE pretraining checkpoints (MAE-Face for ``vision``, AudioMAE for ``audio``).

    Each file must hold an encoder's patch embedding, CLS token, positional embedding, blocks and final norm (a
    ``{'model': ...}`` MAE container, a plain state dict or a safetensors file); anything missing or left over raises.
    The prompts, prompt positions, fusion and head keep their fresh initialisation. Records the sources (path and
    SHA-256) on ``model.encoder_sources`` so that :func:`save_checkpoint` can store only the trained tensors.
    """
    sources = dict(getattr(model, "encoder_sources", {}) or {})
    for name, path in (("vision", vision), ("audio", audio)):
        if path is not None:
            _load_encoder(model, name, Path(path))
            sources[name] = {"path": str(Path(path).resolve()), "sha256": sha256_file(path)}
    model.encoder_sources = sources
    return model


def _load_encoder(model: MMADFER, name: str, path: Path) -> None:
    """Load one MAE encoder file into ``model.<name>`` (strict; prompts keep their initialisation)."""
    encoder = getattr(model, name)
    if encoder is None:
        raise CheckpointError(path, f"the model has no {name} encoder (modality={model.cfg.modality!r})")
    sd = convert_mae_state_dict(_read_state_dict(path), encoder, path, in_chans=3 if name == "vision" else 1)
    strict_load(encoder, sd, path, allow_missing=("prompts", "prompt_updates"))


def _read_state_dict(path: Path) -> Tensors:
    if path.suffix == ".safetensors":
        return _read_safetensors(path)[0]
    return _unwrap(safe_torch_load(path, allowed={}), path)


# ---------------------------------------------------------------------------------------------------------------------
# mmadfer's own format
# ---------------------------------------------------------------------------------------------------------------------
def save_checkpoint(model: MMADFER, path: str | os.PathLike, *, include_frozen: bool | None = None,
                    extra: Mapping[str, Any] | None = None, trained_on: Mapping[str, Any] | None = None) -> Path:
    """Write ``model`` as a self-describing safetensors file (atomically: temporary file, then rename).

    The metadata carries the full :class:`ModelConfig` (preprocessing profile included) and ``extra`` (any JSON-able
    values, e.g. training metrics). ``include_frozen=None`` stores only the trained tensors when the encoders came
    from public pretraining files (:func:`load_encoder_weights`), whose paths and hashes are recorded so
    :func:`load_checkpoint` can rebuild the model; otherwise every tensor is stored. ``trained_on``: what the model
    was trained on (:func:`mmadfer.provenance.trained_on`; default: the record of the checkpoint ``model`` was loaded
    from, if any), read back by :func:`mmadfer.provenance.read_provenance`.
    """
    sources = getattr(model, "encoder_sources", None) or {}
    needed = {"av": {"vision", "audio"}, "video": {"vision"}, "audio": {"audio"}}[model.cfg.modality]
    if include_frozen is None:
        include_frozen = not needed.issubset(sources) or model.trainable_policy != "reference"
    tensors = {n: t.detach().cpu().contiguous() for n, t in model.state_dict().items()
               if include_frozen or n in model.trainable_parameters()}
    meta = {
        "format": FORMAT_VERSION,
        "config": json.dumps(model.cfg.to_dict()),
        "complete": json.dumps(bool(include_frozen)),
        "encoder_sources": json.dumps(sources),
        "extra": json.dumps(dict(extra or {})),
    }
    record = trained_on if trained_on is not None else getattr(model, "trained_on", None)
    if record is not None:
        meta["trained_on"] = json.dumps(dict(record))
    path = Path(path)
    with atomic_path(path, suffix=".safetensors") as tmp:
        save_file(tensors, str(tmp), metadata=meta)
    return path


def _read_safetensors(path: Path, *, tensors: bool = True) -> tuple[Tensors, dict[str, str]]:
    """The tensors (unless ``tensors=False``: metadata only, without reading the weights) and the raw metadata."""
    if not path.is_file():
        raise CheckpointError(path, "no such file")
    try:
        with safe_open(str(path), framework="pt") as f:
            return ({k: f.get_tensor(k) for k in f.keys()} if tensors else {}), dict(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(path, f"corrupt or truncated safetensors file ({e})") from e


def _decode_metadata(meta: Mapping[str, str], path: Path) -> dict[str, Any]:
    if meta.get("format") != FORMAT_VERSION:
        raise CheckpointError(path, f"not an mmadfer checkpoint (format {meta.get('format')!r}, "
                                    f"expected {FORMAT_VERSION!r})")
    try:
        out = {k: json.loads(meta[k]) for k in ("config", "complete", "encoder_sources", "extra")}
        out["trained_on"] = json.loads(meta["trained_on"]) if "trained_on" in meta else None  # older files: none
        return out
    except (KeyError, json.JSONDecodeError) as e:
        raise CheckpointError(path, f"damaged metadata ({e})") from e


def read_checkpoint_metadata(path: str | os.PathLike) -> dict[str, Any]:
    """The decoded metadata of an mmadfer checkpoint: ``config`` (dict), ``complete``, ``encoder_sources``, ``extra``,
    ``trained_on`` (None when not recorded)."""
    path = Path(path)
    return _decode_metadata(_read_safetensors(path, tensors=False)[1], path)


def load_checkpoint(path: str | os.PathLike, *, vision: str | os.PathLike | None = None,
                    audio: str | os.PathLike | None = None, map_location: str | torch.device = "cpu") -> MMADFER:
    """Load a checkpoint written by :func:`save_checkpoint`, in eval mode.

    A checkpoint that holds only the trained tensors needs the public encoder files: ``vision``/``audio`` if given,
    otherwise the paths recorded at save time (their SHA-256 must match).
    """
    path = Path(path)
    tensors, raw_meta = _read_safetensors(path)
    meta = _decode_metadata(raw_meta, path)
    try:
        cfg = ModelConfig.from_dict(meta["config"])
    except (TypeError, ValueError) as e:
        raise CheckpointError(path, f"invalid model config in metadata ({e})") from e
    check_config(cfg, path)  # the metadata is bounded and matched against the tensors before the model is built
    check_fits(cfg, tensors, path, complete=bool(meta["complete"]))
    model = MMADFER(cfg)
    if not meta["complete"]:
        recorded = meta["encoder_sources"]
        given = {"vision": vision, "audio": audio}
        for name in ("vision", "audio"):
            if getattr(model, name) is None:
                continue
            src = given[name] or recorded.get(name, {}).get("path")
            if src is None or not Path(src).is_file():
                raise CheckpointError(path, f"holds only the trained tensors; pass {name}=<the {name} encoder "
                                            f"checkpoint> (recorded: {src})")
            want = recorded.get(name, {}).get("sha256")
            if want and given[name] is None and sha256_file(Path(src)) != want:
                raise CheckpointError(path, f"the recorded {name} encoder {src} has changed (SHA-256 mismatch)")
            _load_encoder(model, name, Path(src))  # the sources recorded below stand: no second hash of the file
        strict_load(model, tensors, path, allow_missing=tuple(
            n for n in model.state_dict() if n not in model.trainable_parameters()))
    else:
        strict_load(model, tensors, path)
    model.encoder_sources = meta["encoder_sources"]
    model.trained_on = meta["trained_on"]
    model.source = {"format": FORMAT_VERSION, "path": str(path), "extra": meta["extra"]}
    return model.to(map_location).eval()


def load_model(path: str | os.PathLike, **kw: Any) -> MMADFER:
    """Load any checkpoint mmadfer understands: its own safetensors, or the reference's ``.pth`` container."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "no such file")
    with open(path, "rb") as f:
        head = f.read(4)
    if head == b"PK\x03\x04" or path.suffix in (".pth", ".pt", ".tar"):
        return load_official_checkpoint(path, **kw)  # keyword arguments: map_location and config overrides
    return load_checkpoint(path, **kw)  # keyword arguments: vision, audio, map_location
