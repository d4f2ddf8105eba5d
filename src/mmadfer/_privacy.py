"""Library telemetry off, in this process, before any library can start it; library caches kept out of ``$HOME``.

mmadfer promises that nothing leaves the machine and that nothing is written outside the outputs a user names and
mmadfer's own cache. Some dependencies would break that on their own (README, "Privacy", has the audit):

* **OpenVINO's and NNCF's telemetry** (the ``openvino-telemetry`` package: Google Analytics, a client id in
  ``~/intel/openvino_ga_cid`` and a usage counter in ``~/intel/stats``). NNCF starts it when ``nncf`` is imported,
  without an opt-in dialog, so without a consent file it sends; OpenVINO's model converter (``ovc``,
  ``openvino.convert_model``) does the same. Both fall back to a no-op stub when ``openvino_telemetry`` cannot be
  imported, which is what :func:`disable_telemetry` arranges: ``sys.modules['openvino_telemetry'] = None`` makes
  that import fail (a standard Python mechanism), with no file written anywhere. The package's only opt-out writes
  a consent file into ``$HOME``, and its own switch off (``CI=true``) would change other tools' behaviour too.
  If it was imported before mmadfer, its consent check is made to answer "declined" instead.
* **huggingface_hub** (under timm): telemetry and any download only when called, which mmadfer never does; still
  ``HF_HUB_DISABLE_TELEMETRY=1`` and ``HF_HUB_OFFLINE=1``.
* **Selenium Manager** (browser tests): usage statistics and driver downloads unless ``SE_AVOID_STATS`` and
  ``SE_OFFLINE``; **OpenTelemetry** (an API that FastAPI imports): no exporter unless an SDK is configured,
  ``OTEL_SDK_DISABLED=true`` keeps it so; ``DO_NOT_TRACK=1`` for tools that honour the convention.
* **ONNX Runtime** (1.32 on Linux) starts Microsoft's 1DS telemetry with its first session: a device id and an
  event database in ``~/.cache/Microsoft/DeveloperTools/.onnxruntime/``, uploads to
  ``mobile.events.data.microsoft.com`` from C++ (off in CI, which hides it there); ``ORT_DISABLE_TELEMETRY=1`` turns
  it off, read when the runtime starts. On Windows it also logs ETW events: :func:`after_import` turns them off.
* **PyTorch** creates ``$TMPDIR/torchinductor_<user>`` when ``torch._dynamo`` is imported and compiles into it;
  Triton uses ``~/.triton``: both are pointed into mmadfer's cache (``TORCHINDUCTOR_CACHE_DIR``,
  ``TRITON_CACHE_DIR``) unless the user set them.
* **matplotlib** writes its font cache to ``~/.cache/matplotlib`` (or a temporary folder left behind when that is
  not writable): :func:`before_import` points ``MPLCONFIGDIR`` into mmadfer's cache unless the user set it.

:func:`disable_telemetry` is cheap (no heavy import) and idempotent; it runs when ``mmadfer`` is imported, before any
of these libraries can be.
"""
from __future__ import annotations

import os
import sys
from types import ModuleType

from ._cache import default_cache_dir

__all__ = ["disable_telemetry", "before_import", "after_import", "TELEMETRY_ENV"]

#: Environment switches that turn telemetry, usage statistics or downloads off; they are read when the library
#: is imported or when it would send, and this process's (and its children's) values are forced to these.
TELEMETRY_ENV = {
    "ORT_DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "HF_HUB_OFFLINE": "1",
    "SE_AVOID_STATS": "true",
    "SE_OFFLINE": "true",
    "OTEL_SDK_DISABLED": "true",
    "DO_NOT_TRACK": "1",
}

#: Library caches that would land in ``$TMPDIR`` or ``$HOME``, moved into mmadfer's cache. PyTorch creates
#: ``$TMPDIR/torchinductor_<user>`` as soon as ``torch._dynamo`` is imported (torchvision imports it, under timm) and
#: fills it when a model is compiled (``train.compile``); Triton (GPU compiles) uses ``~/.triton``.
_CACHE_ENV = {"TORCHINDUCTOR_CACHE_DIR": "torchinductor", "TRITON_CACHE_DIR": "triton"}

_done = False


def disable_telemetry() -> None:
    """Turn every known library telemetry off in this process and point library caches into mmadfer's cache
    (idempotent; writes no file)."""
    global _done
    if _done:
        return
    os.environ.update(TELEMETRY_ENV)
    cache = default_cache_dir()
    for name, folder in _CACHE_ENV.items():  # a user's own setting stands
        os.environ.setdefault(name, str(cache / folder))
    if sys.modules.get("openvino_telemetry") is None:
        sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]  # NNCF and ovc then use their stubs
    else:  # imported before mmadfer: every consent check answers "declined" (nothing is written or sent)
        _decline(sys.modules["openvino_telemetry"])
    _done = True


def _decline(telemetry: ModuleType) -> None:
    from openvino_telemetry.utils import opt_in_checker

    declined = opt_in_checker.ConsentCheckResult.DECLINED
    opt_in_checker.OptInChecker.check = lambda self, *args, **kwargs: declined
    instance = getattr(telemetry.Telemetry, "_SingletonMetaClass__single_instance", None)
    if instance is not None:
        instance.consent = False


def before_import(name: str) -> None:
    """Called by ``mmadfer._optional.require`` before it imports an optional dependency ``name``."""
    disable_telemetry()
    if name.split(".")[0] == "matplotlib" and "matplotlib" not in sys.modules:
        # its font cache goes to mmadfer's cache, not ~/.cache/matplotlib (a user's own setting stands)
        os.environ.setdefault("MPLCONFIGDIR", str(default_cache_dir() / "matplotlib"))


def after_import(name: str) -> None:
    """Called by ``mmadfer._optional.require`` after it imported ``name``."""
    ort = sys.modules.get("onnxruntime")
    if name.split(".")[0] == "onnxruntime" and ort is not None and hasattr(ort, "disable_telemetry_events"):
        ort.disable_telemetry_events()  # Windows ETW events; a no-op elsewhere
