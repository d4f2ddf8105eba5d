"""``Train on my labels``: the project's labels fine-tune the server's checkpoint as a background job.

The job runs exactly what ``mmadfer prepare VIDEOS --labels labels.csv --classes ... --folds K`` and ``mmadfer train
--init CK --dataset folder --data ROOT --fold 1`` run: :func:`~mmadfer.data.prepare.prepare_spans`, then
:func:`~mmadfer.train.config.config_from_args` (so the small-data defaults of ``--init``: class-balanced epochs, early
stopping on the validation split, encoders frozen) and :func:`~mmadfer.train.engine.fit`. It runs in a child Python
process (:func:`main`), so that training neither competes with the server's threads for the interpreter nor
outlives a cancel: Cancel ends the child's process group, and a child whose server died stops by itself.

Per run ``<name>`` (a UTC time): ``DIR/datasets/<name>/`` the clips and annotations, with ``train.log`` (the child's
output), ``status.json`` (its stage) and ``result.json`` (its outcome), and ``DIR/runs/<name>/`` the run, which the
Runs workspace lists (epochs as they finish, then the metrics). The split is by video (``--folds`` = the number of
labelled videos, at most 5), so at least two videos need labels.
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Sequence

from ..errors import one_line
from ..hardware import usable_cores
from ..io import atomic_write
from .project import Project

__all__ = ["TrainJob", "Trainer", "TrainError", "main", "MAX_FOLDS"]

#: Folds the labelled videos are split into (fewer with fewer videos; at least 2).
MAX_FOLDS = 5
_STATUSES = ("preparing", "training", "cancelling", "done", "failed", "cancelled")


class TrainError(ValueError):
    """A Train request that cannot start (one already running, no labels): the one-line reason."""


@dataclass
class TrainJob:
    """One ``Train on my labels`` run."""

    name: str
    folder: Path  # DIR/datasets/<name>
    run_dir: Path  # DIR/runs/<name>
    epochs: int | None
    status: str = "preparing"
    error: str | None = None
    started: float = field(default_factory=time.time)
    ended: float | None = None
    proc: subprocess.Popen | None = field(default=None, repr=False)

    def _read(self, name: str) -> dict[str, Any]:
        try:
            doc = json.loads((self.folder / name).read_text())
        except (OSError, ValueError):
            return {}
        return doc if isinstance(doc, dict) else {}

    def epochs_done(self) -> int:
        try:
            with open(self.run_dir / "log.csv", encoding="utf-8") as f:
                return max(0, sum(1 for line in f if line.strip()) - 1)
        except OSError:
            return 0

    def public(self) -> dict[str, Any]:
        status = self._read("status.json")
        epochs = status.get("epochs", self.epochs)
        done = self.epochs_done()
        log = self.folder / "train.log"
        try:
            tail = [line for line in log.read_text(errors="replace").splitlines() if line.strip()][-6:]
        except OSError:
            tail = []
        return {"name": self.name, "status": self.status, "epoch": done, "epochs": epochs,
                "progress": round(min(1.0, done / epochs), 4) if epochs and self.status == "training" else None,
                "clips": status.get("clips"), "left_out": status.get("left_out", []),
                "error": self.error, "elapsed_s": round((self.ended or time.time()) - self.started, 1),
                "run": self.run_dir.name if (self.run_dir / "metrics.json").is_file() else None, "log": tail}


class Trainer:
    """At most one training job at a time for the :class:`~mmadfer.serve.project.Project`, from ``checkpoint``.

    ``faces``: crop faces when preparing (as ``prepare`` does; off when the server detects no faces). ``size``:
    the crop size of the prepared clips. ``overrides``: ``--set`` overrides of the training config (the tests make
    the run small with them). Loader processes are half the usable cores, at most 4 (the server keeps the rest)."""

    def __init__(self, project: Project, checkpoint: str | os.PathLike, *, faces: bool = True, size: int = 224,
                 overrides: Sequence[str] = ()):
        self.project = project
        self.checkpoint = str(Path(checkpoint).resolve())
        self.faces, self.size, self.overrides = faces, size, tuple(overrides)
        self.job: TrainJob | None = None
        self._lock = threading.Lock()

    def start(self, epochs: int | None = None) -> TrainJob:
        if epochs is not None and not (1 <= epochs <= 1000):
            raise TrainError(f"epochs must be 1 to 1000, got {epochs}")
        labels = self.project.labels
        with self._lock:
            if self.job is not None and self.job.status in ("preparing", "training", "cancelling"):
                raise TrainError(f"a training run ({self.job.name}) is already running; cancel it or wait")
            spans = [s for s in labels.spans() if (self.project.root / s.video).is_file()]  # not a deleted video's
            videos = {s.video for s in spans}
            if len(videos) < 2:
                raise TrainError(f"{labels.path}: labels in at least 2 videos are needed (one is held out to test "
                                 f"the run), found {len(videos)}")
            empty = [c for c in self.project.classes if c not in {s.label for s in spans}]
            if empty:
                raise TrainError(f"{labels.path}: class(es) {', '.join(empty)} have no labelled span; label at "
                                 "least one span of every class of the project")
            name = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%d-%H%M%S")
            while (self.project.runs / name).exists() or (self.project.datasets / name).exists():
                name = name.split("_")[0] + f"_{int(time.time() * 1000) % 100000}"
            job = TrainJob(name, self.project.datasets / name, self.project.runs / name, epochs)
            job.folder.mkdir(mode=0o700)
            spec = {"project": str(self.project.root), "classes": list(self.project.classes),
                    "checkpoint": self.checkpoint, "data": str(job.folder), "run": str(job.run_dir),
                    "folds": min(MAX_FOLDS, len(videos)), "faces": self.faces, "size": self.size,
                    "overrides": [f"data.num_workers={min(4, usable_cores() // 2)}", *self.overrides,
                                  *([f"train.epochs={epochs}"] if epochs else [])]}
            with atomic_write(job.folder / "spec.json") as f:
                json.dump(spec, f, indent=1)
            src = str(Path(__file__).resolve().parents[2])  # the folder that holds this mmadfer package
            path = os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)
            command = [sys.executable, "-m", "mmadfer.serve.training", str(job.folder / "spec.json")]
            with open(job.folder / "train.log", "wb") as log:
                job.proc = subprocess.Popen(command,
                                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                            env={**os.environ, "PYTHONPATH": path},
                                            start_new_session=True, cwd=str(self.project.root))
            self.job = job
        threading.Thread(target=self._watch, args=(job,), name="mmadfer-train", daemon=True).start()
        return job

    def _watch(self, job: TrainJob) -> None:
        while job.proc.poll() is None:
            stage = job._read("status.json").get("stage")
            if stage in ("preparing", "training") and job.status in ("preparing", "training"):
                job.status = stage
            time.sleep(0.3)
        result = job._read("result.json")
        with self._lock:
            job.ended = time.time()
            if job.status == "cancelling":
                job.status = "cancelled"
                shutil.rmtree(job.run_dir, ignore_errors=True)  # a cancelled run is not a run
                shutil.rmtree(job.folder, ignore_errors=True)
            elif result.get("status") == "done":
                job.status = "done"
            else:
                job.status = "failed"
                job.error = result.get("error") or f"training stopped (exit status {job.proc.returncode}); see " \
                                                   f"{job.folder / 'train.log'}"
                if not (job.run_dir / "metrics.json").is_file():
                    shutil.rmtree(job.run_dir, ignore_errors=True)

    def cancel(self) -> TrainJob | None:
        """Stop the running job (its process group: the child and any loader workers); its folders are removed."""
        with self._lock:
            job = self.job
            if job is None or job.status not in ("preparing", "training"):
                return job
            job.status = "cancelling"
        _stop(job.proc)
        return job

    def close(self) -> None:
        if self.cancel() is not None and self.job.proc is not None:
            self.job.proc.wait()


def _stop(proc: subprocess.Popen, grace_s: float = 5.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(grace_s)
            return
        except subprocess.TimeoutExpired:
            continue


# -- the child process ----------------------------------------------------------------------------------------------
def _write(folder: Path, name: str, doc: dict[str, Any]) -> None:
    with atomic_write(folder / name) as f:
        json.dump(doc, f, indent=1)


def _exit_with_the_server() -> None:
    """Stop this child when the server that started it is gone (however it died)."""
    parent = os.getppid()

    def watch():
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=watch, daemon=True).start()


def run(spec: dict[str, Any]) -> dict[str, Any]:
    """Prepare the labelled spans and fine-tune: what ``mmadfer prepare --labels`` and ``mmadfer train --init`` do,
    with the spec's folders. Raises ValueError with the reason when there is nothing to train on."""
    from ..data.prepare import prepare_spans
    from ..train.config import config_from_args
    from ..train.engine import fit

    folder = Path(spec["data"])
    _write(folder, "status.json", {"stage": "preparing"})
    labels = Path(spec["project"]) / "labels.csv"
    summary = prepare_spans([], labels, folder, class_names=spec["classes"], folds=spec["folds"], workers=1,
                            size=spec["size"], faces=spec["faces"], progress=False)
    for line in summary.problems:
        print(f"left out: {line}", file=sys.stderr, flush=True)
    if summary.label_error:
        raise ValueError(summary.label_error)
    clips = sum(1 for r in summary.results if r.status != "failed")
    args = SimpleNamespace(config=None, overrides=list(spec["overrides"]), init=spec["checkpoint"], data=str(folder),
                           dataset="folder", fold=1)
    cfg = config_from_args(args)
    _write(folder, "status.json", {"stage": "training", "epochs": cfg.train.epochs, "clips": clips,
                                   "left_out": summary.problems})
    result = fit(dataclasses.replace(cfg, run_dir=spec["run"]))
    return {"status": "done", "run_dir": result["run_dir"], "uar": result["metrics"].get("uar")}


def main(argv: Sequence[str] | None = None) -> int:
    """The child: ``python -m mmadfer.serve.training SPEC.json``; its outcome in ``result.json`` beside the spec."""
    spec_file = Path((argv or sys.argv[1:])[0])
    _exit_with_the_server()
    spec = json.loads(spec_file.read_text())
    try:
        outcome = run(spec)
    except Exception as e:  # noqa: BLE001 - every failure becomes the job's one-line reason
        outcome = {"status": "failed", "error": one_line(e)}
        print(f"error: {outcome['error']}", file=sys.stderr, flush=True)
    _write(spec_file.parent, "result.json", outcome)
    return 0 if outcome["status"] == "done" else 1


if __name__ == "__main__":
    sys.exit(main())
