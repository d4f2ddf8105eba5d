"""What ``backend='auto'`` runs a checkpoint with on a CPU: the fastest path on this machine that keeps predictions.

Which path is fastest depends on the CPU: OpenVINO int8 wins with AVX-512 VNNI, but on an AVX2-only CPU it can be
slower than PyTorch fp32 while ONNX Runtime int8 is the fastest. So ``auto`` measures instead of assuming
(:func:`choose`):

1. **Memory.** A conversion whose estimated peak (:func:`estimate_conversion`) exceeds :func:`memory_bound`
   (``min(4 GiB, half the available RAM)``) is skipped, with a line saying why; with none left, PyTorch runs.
2. **Pay-off.** With no decision cached yet and a job of known size (``job_windows``), the job's PyTorch time
   (windows × PyTorch's time per clip, estimated from the parameter count: :func:`estimate_torch_s`, so that
   nothing extra runs) is weighed against the conversions' estimated cost plus the job's time on int8
   (:func:`pays_off`); when converting would not pay off, the job runs in PyTorch now and nothing is decided.
3. **Measurement.** Each remaining candidate is converted (once, into the conversion cache, where its top-1
   agreement with PyTorch on held-out clips is measured and stored: :mod:`mmadfer.runtime.cache`), warmed up and
   timed on one clip; :func:`decide` keeps the fastest whose agreement meets :data:`AGREEMENT_BAR`, PyTorch when
   none is faster (so ``auto`` is never slower than PyTorch, nor less faithful than the bar).
4. **Cache.** The decision is written (atomically) as JSON in the conversion cache, keyed by the checkpoint's
   SHA-256 and this CPU's model, ISA flags and cores (:func:`mmadfer.hardware.cpu_signature`): a different CPU
   decides again.

The choice and the timings are printed in one line on stderr.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from .._memory import release_freed
from ..errors import CheckpointError
from ..export.verify import random_inputs
from ..hardware import cpu_signature
from ..io import atomic_write, sha256_file
from .cache import default_cache_dir
from .runner import Runner

__all__ = ["AGREEMENT_BAR", "MEMORY_BOUND", "Choice", "decide", "memory_bound", "estimate_conversion",
           "estimate_torch_s", "pays_off", "time_clip", "decision_path", "agreement_of", "ran_with", "choose"]

#: The top-1 agreement with PyTorch on held-out clips an int8 path needs for ``auto`` to pick it.
AGREEMENT_BAR = 0.99
#: The most memory ``auto`` lets an automatic conversion take (also at most half the available RAM).
MEMORY_BOUND = 4 * 2**30
#: Conversion cost per backend as ``(seconds per million parameters, peak bytes per parameter byte, base bytes)``.
#: Measured on the reference model (179 M parameters, 0.71 GB of fp32 weights) on an AVX2-only AMD EPYC with 2
#: threads. ONNX Runtime int8 (``mmadfer.export.onnx.int8_onnx``: export to a file, the model's weights released once
#: traced, quantised file to file) peaked at 3.65 GiB RSS (``ru_maxrss``, 2026-12-01, BENCHMARKS.md; 4.33 GiB before,
#: when the graph went through bytes in memory), 0.9 GiB of it imports (torch's libraries), and took 137 s. OpenVINO
#: int8 (export + NNCF calibration) peaked at 8.5 GB and took about 250 s (issue 11's figure; 1160 s on a machine
#: loaded 4x over). The agreement check after a conversion is added by :func:`estimate_conversion`.
CONVERSION_COST = {"onnx-int8": (0.77, 4.2, 0.9 * 2**30), "openvino-int8": (1.4, 10.6, 0.9 * 2**30)}
#: PyTorch fp32 seconds per clip and parameter on a CPU: the reference model (179 M parameters) took 3.7 s per clip
#: on 2 cores of a Zen 4 CPU (BENCHMARKS.md), 5.2 s on a Zen 3 (issue 11); the faster figure is used.
TORCH_S_PER_PARAM = 3.7 / 178.5e6
#: Before any int8 path has been timed, the job's int8 time is guessed as this fraction of PyTorch's: the worst
#: int8 ratio measured (ONNX Runtime int8 on an AVX2-only CPU, 2.9 s against 5.2 s), so the pay-off is not
#: overestimated.
INT8_TIME_GUESS = 0.56


@dataclass
class Choice:
    """What ``auto`` chose: ``backend``, the ``runner`` (already loaded), why (``reason``: the line printed), the
    seconds per clip measured (``timings``) and each int8 path's top-1 agreement (``agreement``)."""

    backend: str
    runner: Runner
    reason: str
    timings: dict[str, float] = field(default_factory=dict)
    agreement: dict[str, float] = field(default_factory=dict)


def decide(timings: dict[str, float], agreement: dict[str, float], bar: float = AGREEMENT_BAR) -> str:
    """The fastest backend of ``timings`` (seconds per clip; must include ``'torch'``) whose ``agreement`` meets
    ``bar`` (torch needs none); ties go to torch."""
    ok = {b: t for b, t in timings.items() if b == "torch" or agreement.get(b, 0.0) >= bar}
    return min(ok, key=lambda b: (ok[b], b != "torch"))


def memory_bound(limit: int = MEMORY_BOUND) -> int:
    """Bytes an automatic conversion may take: ``min(limit, half the available RAM)``."""
    available = None
    try:
        import psutil

        available = psutil.virtual_memory().available
    except ImportError:
        try:
            with open("/proc/meminfo") as f:
                info = dict(line.split(":", 1) for line in f)
            available = int(info["MemAvailable"].split()[0]) * 1024
        except (OSError, KeyError, ValueError):
            pass
    return limit if available is None else min(limit, available // 2)


def estimate_conversion(backend: str, num_params: int, torch_s: float, heldout_clips: int | None = None
                        ) -> tuple[float, int]:
    """``(seconds, peak bytes)`` a conversion of a model with ``num_params`` fp32 parameters is expected to take,
    including its agreement check (``heldout_clips`` clips at ``torch_s`` in PyTorch plus about as much in int8)."""
    from ..export.calibration import HELDOUT_CLIPS

    s_per_mparam, per_byte, base = CONVERSION_COST[backend]
    clips = HELDOUT_CLIPS if heldout_clips is None else heldout_clips
    seconds = s_per_mparam * num_params / 1e6 + clips * torch_s * (1 + INT8_TIME_GUESS)
    return seconds, int(base + per_byte * 4 * num_params)


def estimate_torch_s(num_params: int) -> float:
    """Seconds PyTorch is expected to take per clip for a model of ``num_params`` parameters on a CPU, before
    anything is run: :data:`TORCH_S_PER_PARAM` per parameter (the faster of the CPUs measured, so that a job's
    PyTorch time, and with it the pay-off of converting, is not overestimated)."""
    return TORCH_S_PER_PARAM * num_params


def pays_off(job_windows: int, torch_s: float, conversion_s: float, int8_s: float | None = None) -> bool:
    """Whether converting first finishes a job of ``job_windows`` clips sooner than PyTorch alone would."""
    int8_s = INT8_TIME_GUESS * torch_s if int8_s is None else int8_s
    return conversion_s + job_windows * int8_s < job_windows * torch_s


def time_clip(backend: str, runner: Runner, inputs: tuple[Any, Any]) -> float:
    """Seconds ``runner`` takes for one clip, after one warm-up run."""
    runner(*inputs)
    start = time.perf_counter()
    runner(*inputs)
    return time.perf_counter() - start


def decision_path(checkpoint: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where the decision for ``checkpoint`` on this CPU is kept: ``<cache>/auto/<name>-<key>.json``, keyed by the
    checkpoint's SHA-256 and :func:`~mmadfer.hardware.cpu_signature`."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise CheckpointError(checkpoint, "no such file")
    tag = json.dumps({"sha256": sha256_file(checkpoint), "cpu": cpu_signature()}, sort_keys=True)
    key = hashlib.sha256(tag.encode()).hexdigest()[:16]
    return Path(cache_dir or default_cache_dir()) / "auto" / f"{checkpoint.stem}-{key}.json"


def agreement_of(runner: Runner) -> dict[str, Any] | None:
    """The top-1 agreement a converted model's runner was measured at (``runner.agreement``, set by
    :func:`mmadfer.runtime.load.load_runner` from the cache entry), or None when none was measured."""
    found = getattr(runner, "agreement", None)
    return found if isinstance(found, dict) else None


def ran_with(runner: Runner) -> str:
    """What runs, in words: ``'onnx int8 (top-1 agreement with PyTorch 100.0% on 64 held-out clips)'``."""
    found = agreement_of(runner)
    text = f"{runner.backend} {runner.precision}"
    if found is not None:
        text += f" (top-1 agreement with PyTorch {100 * found['top1_agreement']:.1f}% on {found['num_clips']} " \
                "held-out clips)"
    elif runner.backend != "torch":
        text += " (agreement with PyTorch not measured: an exported file run as it is)"
    return text


def _log(line: str) -> None:
    print(f"mmadfer: {line}", file=sys.stderr, flush=True)


def _summary(timings: dict[str, float], agreement: dict[str, dict], first: str) -> str:
    order = [first, *sorted((b for b in timings if b != first), key=timings.get)]
    times = ", ".join(f"{b} {timings[b]:.2f} s" for b in order)
    agree = "; ".join(f"{b} agreement {100 * a['top1_agreement']:.1f}% on {a['num_clips']} held-out clips"
                      for b, a in agreement.items())
    return f"({times} per clip{'; ' + agree if agree else ''})"


def choose(checkpoint: str | os.PathLike, load: Callable[[str], Runner], candidates: Sequence[str], *,
           cache_dir: str | os.PathLike | None = None, job_windows: int | None = None,
           measure: Callable[[str, Runner, tuple[Any, Any]], float] = time_clip,
           memory: int | None = None, log: Callable[[str], None] = _log) -> Choice:
    """Choose among ``candidates`` (int8 backends) and torch for ``checkpoint`` on this CPU (see the module doc).

    ``load(backend)`` returns a backend's runner (converting once, into the cache); ``measure(backend, runner,
    inputs)`` its seconds per clip (default :func:`time_clip`); ``memory``: the conversion memory bound in bytes
    (default :func:`memory_bound`); ``job_windows``: the clips the job will run (None: unknown, conversion is
    assumed to pay off); ``log``: where the one-line explanations go (stderr).
    """
    target = decision_path(checkpoint, cache_dir)
    cached = _read_decision(target, candidates)
    if cached is not None:
        runner = load(cached["backend"])
        found = agreement_of(runner)
        if cached["backend"] == "torch" or (found and found["top1_agreement"] >= AGREEMENT_BAR):
            summary = _summary(cached["timings"], cached["agreement"], cached["backend"])
            line = f"backend auto -> {cached['backend']} {summary}, decided earlier on this CPU"
            log(line)
            return Choice(cached["backend"], runner, line, cached["timings"], cached["agreement"])

    torch_runner = load("torch")
    num_params = sum(p.numel() for p in torch_runner.net.parameters()) if hasattr(torch_runner, "net") else 0
    torch_guess = estimate_torch_s(num_params)  # nothing is run before a conversion is known to be worth it
    bound = memory_bound() if memory is None else memory
    convertible, cost = [], 0.0
    for backend in candidates:
        seconds, peak = estimate_conversion(backend, num_params, torch_guess)
        if peak > bound:
            log(f"backend auto skips {backend}: converting this model needs about {peak / 2**30:.1f} GiB, over the "
                f"{bound / 2**30:.1f} GiB bound for automatic conversions (min(4 GiB, half the available RAM)); "
                f"convert it yourself with --backend {backend} on a machine with more memory")
            continue
        convertible.append(backend)
        cost += seconds
    if not convertible:
        line = "backend auto -> torch: no int8 conversion to try"
        log(line)
        return Choice("torch", torch_runner, line)
    if job_windows is not None and not pays_off(job_windows, torch_guess, cost):
        line = (f"backend auto -> torch for now: {job_windows} clips take about {job_windows * torch_guess:.0f} s in "
                f"PyTorch (about {torch_guess:.2f} s per clip), less than converting for {', '.join(convertible)} "
                f"first (about {cost:.0f} s); a longer job converts")
        log(line)
        return Choice("torch", torch_runner, line)

    inputs = random_inputs(torch_runner.cfg, 1, seed=7)
    timings = {"torch": measure("torch", torch_runner, inputs)}
    # The PyTorch model is let go while converting (the conversion builds its own copy) so the process holds one
    # copy of the weights at a time and stays within the bound; it is loaded again if it wins.
    del torch_runner
    release_freed()
    runners: dict[str, Runner] = {}
    agreement: dict[str, dict] = {}
    for backend in convertible:
        try:
            runner = load(backend)
        except Exception as e:  # a failed conversion leaves the other paths
            warnings.warn(f"{backend} conversion of {checkpoint} failed ({' '.join(str(e).split())}); backend auto "
                          "skips it", stacklevel=3)
            continue
        found = agreement_of(runner)
        if found is None:
            log(f"backend auto skips {backend}: no measured agreement with PyTorch")
            continue
        runners[backend], agreement[backend] = runner, found
        timings[backend] = measure(backend, runner, inputs)
    top1 = {b: a["top1_agreement"] for b, a in agreement.items()}
    best = decide(timings, top1)
    line = f"backend auto -> {best} {_summary(timings, agreement, best)}"
    below = [b for b, a in top1.items() if a < AGREEMENT_BAR and timings[b] < timings[best]]
    if below:
        line += (f"; {', '.join(below)} would be faster but agrees with PyTorch on fewer than "
                 f"{100 * AGREEMENT_BAR:.0f}% of held-out clips, so it is not used")
    log(line)
    with atomic_write(target) as f:
        json.dump({"backend": best, "timings": timings, "agreement": agreement, "cpu": cpu_signature(),
                   "checkpoint": os.fspath(checkpoint)}, f, indent=1)
    chosen = runners.pop(best, None)
    runners.clear()  # the runners not chosen go before PyTorch is loaded again
    return Choice(best, chosen if chosen is not None else load("torch"), line, timings, agreement)


def _read_decision(path: Path, candidates: Sequence[str]) -> dict[str, Any] | None:
    """A cached decision still valid for these candidates, or None."""
    try:
        found = json.loads(path.read_text())
        if found["backend"] in (*candidates, "torch") and isinstance(found["timings"], dict):
            found.setdefault("agreement", {})
            return found
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None
