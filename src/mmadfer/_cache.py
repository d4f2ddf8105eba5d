"""Where mmadfer keeps what it may keep between runs: ``$MMADFER_CACHE``, else ``~/.cache/mmadfer``.

A base-layer module (no heavy imports) so that the converters (:mod:`mmadfer.export`) and the privacy switches
(:mod:`mmadfer._privacy`, which points library caches here) read one rule.
"""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["default_cache_dir"]


def default_cache_dir() -> Path:
    """Where converted models are kept: ``$MMADFER_CACHE``, else ``~/.cache/mmadfer``."""
    return Path(os.environ.get("MMADFER_CACHE") or Path.home() / ".cache" / "mmadfer")
