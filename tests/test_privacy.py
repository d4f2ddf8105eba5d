"""Privacy by default, proven by attempts rather than failures: every first-use path runs with an empty mmadfer cache,
a fresh ``HOME`` and a fresh temporary folder while a recording network guard (``netguard``: Python audit hooks, so an
attempt a library catches and swallows is still seen) watches; the test fails on any name resolution, internet
socket, connection or send, and on any file left in ``HOME`` or the temporary folder. One path also runs in a network
namespace with no network at all (``unshare -n``), in a fresh interpreter, so that what happens at import is seen
too. ``CI`` is unset: OpenVINO's telemetry switches itself off when it is set, which would hide it."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import torch

import netguard
from mmadfer import MMADFER, ModelConfig, save_checkpoint
from mmadfer.cli import main
from mmadfer.data.synthetic import make_astronaut_video, write_synthetic_dataset

ROOT = Path(__file__).resolve().parents[1]


def _listing(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")} if folder.exists() else set()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """What the paths read, made before anything is watched: a talking-face video, a tiny checkpoint and a small
    synthetic dataset."""
    folder = tmp_path_factory.mktemp("inputs")
    video = Path(make_astronaut_video(folder / "person.mp4", seconds=4.0, fps=12, size=160))
    torch.manual_seed(0)
    checkpoint = save_checkpoint(MMADFER(ModelConfig.tiny(num_classes=4)), folder / "tiny.safetensors")
    data = folder / "synth"
    write_synthetic_dataset(data, 20, size=32, raw=False)
    return {"folder": folder, "video": video, "checkpoint": checkpoint, "data": data}


@dataclass
class World:
    home: Path
    tmp: Path
    cache: Path
    work: Path
    out: Path
    recorder: netguard.NetRecorder

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "CI" and not k.startswith("MMADFER_")}
        env.update(HOME=str(self.home), TMPDIR=str(self.tmp), MMADFER_CACHE=str(self.cache),
                   PYTHONPATH=os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")]))
        for name in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR", "MPLCONFIGDIR"):  # as a fresh shell has them
            env.pop(name, None)
        return env


@pytest.fixture
def world(tmp_path, monkeypatch, inputs):
    """A fresh HOME, temporary folder, empty mmadfer cache and working folder; network attempts recorded. After the
    test: nothing recorded, HOME and the temporary folder empty, the inputs untouched."""
    w = World(*(tmp_path / n for n in ("home", "tmp", "cache", "work", "out")),
              recorder=netguard.install(tmp_path / "children.log"))
    for d in (w.home, w.tmp, w.work):
        d.mkdir()
    monkeypatch.setenv("HOME", str(w.home))
    monkeypatch.setenv("TMPDIR", str(w.tmp))
    monkeypatch.setenv("MMADFER_CACHE", str(w.cache))
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", None)  # tempfile caches the folder it chose first
    monkeypatch.chdir(w.work)
    before = _listing(inputs["folder"])
    with w.recorder.recording():
        yield w
    assert not w.recorder.all_attempts(), "network attempts:\n" + w.recorder.report()
    assert _listing(w.home) == set(), "written into HOME"
    assert _listing(w.tmp) == set(), "left in the temporary folder"
    assert _listing(w.work) == set(), "written into the current folder"
    assert _listing(inputs["folder"]) == before, "written beside the inputs"


def test_guard_records_attempts_that_a_library_swallows():
    recorder = netguard.install()
    with recorder.recording():
        try:  # what telemetry does: try, fail quietly, carry on
            socket.getaddrinfo("example.com", 80)
        except OSError:
            pass
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.sendto(b"x", ("192.0.2.1", 9))  # TEST-NET-1: never routed
        except OSError:
            pass
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))  # the loopback is this machine
        a, b = socket.socketpair()  # AF_UNIX
        a.close(), b.close()
        socket.getaddrinfo("localhost", 80)
    found = [a["what"] for a in recorder.all_attempts()]
    assert found == ["name resolution 'example.com' port 80", "sendto to ('192.0.2.1', 9)"], found
    assert any(frame.startswith(__file__) for frame in recorder.all_attempts()[0]["stack"])  # where it came from


def test_guard_sees_attempts_of_forked_children(tmp_path):
    import multiprocessing

    recorder = netguard.install(tmp_path / "children.log")

    def resolve():
        try:
            socket.gethostbyname("example.org")
        except OSError:
            pass

    with recorder.recording():
        p = multiprocessing.get_context("fork").Process(target=resolve)
        p.start()
        p.join(30)
    assert [a["what"] for a in recorder.all_attempts()] == ["gethostbyname 'example.org'"]
    assert recorder.all_attempts()[0]["pid"] == p.pid


def test_telemetry_is_off_before_openvino_or_nncf_start():
    import mmadfer._privacy as privacy

    assert sys.modules.get("openvino_telemetry", "absent") is None  # NNCF and ovc fall back to their stubs
    assert os.environ["HF_HUB_DISABLE_TELEMETRY"] == "1" and os.environ["HF_HUB_OFFLINE"] == "1"
    privacy.disable_telemetry()  # idempotent
    pytest.importorskip("nncf")
    from nncf.telemetry import wrapper

    # NNCF took its "openvino_telemetry not installed" branch: no Telemetry object was ever made (it would have
    # written ~/intel/openvino_ga_cid), and its no-op stub is in place
    assert not hasattr(wrapper, "Telemetry") and type(wrapper.telemetry).__name__ == "MagicMock"


@pytest.mark.slow
def test_predict_with_the_default_backend(world, inputs):
    """The first CPU predict with the default backend: a short job runs in PyTorch at once (converting would not
    pay off), and a job of unknown length (the Python API) converts the checkpoint into the empty cache, measures
    each path and caches the decision; both with no network attempt and nothing written outside the cache."""
    video, checkpoint = inputs["video"], inputs["checkpoint"]
    assert main(["predict", str(video), "--checkpoint", str(checkpoint), "--output", str(world.out), "--plot"]) == 0
    assert _listing(world.out) == {"person.csv", "person.png"}
    df = pd.read_csv(world.out / "person.csv")
    assert len(df) == 1 and df.face_coverage.iloc[0] == 1.0
    assert not any(world.cache.rglob("*.xml")) and not any(world.cache.rglob("*.onnx"))  # short job: no conversion

    from mmadfer import Recognizer

    rec = Recognizer.from_checkpoint(checkpoint)  # backend 'auto' on the CPU, job length unknown: converts
    assert len(rec.predict_video(video)) == 1
    assert any(world.cache.rglob("*.xml")) or any(world.cache.rglob("*.onnx"))  # converted, into the cache only
    assert any(world.cache.rglob("auto/*.json"))  # the measured decision, kept beside the conversions

    # asking for more writes exactly that, and still nothing else
    faces, anon = world.out / "faces", world.out / "shared.mp4"
    assert main(["predict", str(video), "-c", str(checkpoint), "-o", str(world.out), "--format", "json",
                 "--save-faces", str(faces), "--anonymize", str(anon)]) == 0
    assert _listing(world.out) == {"person.csv", "person.png", "person.json", "faces", "faces/person",
                                   "faces/person/00000.000s.jpg", "shared.mp4"}


@pytest.mark.slow
def test_export_onnx_int8_and_openvino(world, inputs):
    pytest.importorskip("onnxruntime")
    ck = str(inputs["checkpoint"])
    assert main(["export", ck, "--onnx", str(world.out / "m.onnx"), "--int8", "--verify", "2"]) == 0
    assert _listing(world.out) == {"m.onnx", "m.int8.onnx"} or _listing(world.out) == {"m.onnx"}
    pytest.importorskip("nncf")
    assert main(["export", ck, "--openvino", str(world.out / "m.xml"), "--verify", "2"]) == 0
    assert {"m.xml", "m.bin"} <= _listing(world.out)


@pytest.mark.slow
def test_train_and_evaluate(world, inputs):
    run = world.out / "run"
    assert main(["train", "--config", "synthetic", "--data", str(inputs["data"]), "--out", str(run), "--epochs", "1",
                 "--num-workers", "0", "--set", "train.tensorboard=true"]) == 0
    assert (run / "final.safetensors").is_file() and list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert main(["evaluate", "--checkpoint", str(run / "final.safetensors"), "--data", str(inputs["data"]),
                 "--dataset", "folder", "--fold", "1", "--out", str(world.out / "eval"), "--num-workers", "0"]) == 0
    assert (world.out / "eval" / "metrics.json").is_file()
    # the adaptation loop's other commands: a paired comparison and a learning curve
    ck = str(run / "final.safetensors")
    assert main(["evaluate", "--compare", ck, ck, "--dataset", "folder", "--data", str(inputs["data"]), "--fold", "1",
                 "--bootstrap", "50", "--num-workers", "0", "--out", str(world.out / "compare")]) == 0
    assert (world.out / "compare" / "report.html").is_file()
    assert main(["learning-curve", "--config", "synthetic", "--dataset", "folder", "--data", str(inputs["data"]),
                 "--fold", "1", "--init", ck, "--sizes", "1", "--repeats", "1", "--epochs", "1", "--num-workers", "0",
                 "--set", "train.tensorboard=false", "--out", str(world.out / "curve")]) == 0
    assert (world.out / "curve" / "learning_curve.csv").is_file()


@pytest.mark.slow
def test_distill_and_fast_detection(world, inputs):
    pytest.importorskip("facenet_pytorch")
    video, ck = str(inputs["video"]), str(inputs["checkpoint"])
    assert main(["predict", video, "-c", ck, "--detector", "mtcnn-fast", "-o", str(world.out / "timeline")]) == 0
    assert _listing(world.out / "timeline") == {"person.csv"}
    student = world.out / "student.safetensors"
    assert main(["distill", "--teacher", ck, "--videos", video, "--detector", "mtcnn-fast", "--student", "vit-tiny",
                 "--set", "img_size=32", "--epochs", "1", "--heldout", "0", "--backend", "torch", "--device", "cpu",
                 "--out", str(student)]) == 0
    report = (world.out / "student.safetensors.distill" / "report.txt").read_text()
    assert student.is_file() and "held-out: none (one video, or --heldout 0)" in report  # nothing held out: said


@pytest.mark.slow
def test_prepare_with_faces(world, inputs):
    pytest.importorskip("facenet_pytorch")
    assert main(["prepare", str(inputs["video"]), "--out", str(world.out / "ds"), "--size", "64",
                 "--workers", "1"]) == 0
    assert len(list((world.out / "ds" / "clips" / "person").glob("*.jpg"))) == 48


@pytest.mark.slow
def test_demo(world):
    pytest.importorskip("skimage")
    demo = world.out / "demo"
    assert main(["demo", "--out", str(demo), "--seconds", "6", "--quick", "--device", "cpu"]) == 0
    assert {"sample.mp4", "sample_timeline.csv", "sample_timeline.png", "sample_anonymized.mp4"} <= _listing(demo)


def _unshare_works() -> str | None:
    if shutil.which("unshare") is None:
        return "no unshare command"
    try:
        done = subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unshare -n failed: {e}"
    return None if done.returncode == 0 else f"this machine does not allow unshare -n ({done.stderr.decode().strip()})"


@pytest.mark.slow
def test_predict_in_a_fresh_interpreter_without_any_network(world, inputs):
    """A fresh interpreter (what runs at import is seen too) in a network namespace with no network at all, the
    guard recording from its first line; HOME and the temporary folder fresh and left empty."""
    reason = _unshare_works()
    if reason:
        pytest.skip(reason)
    log = world.out.parent / "unshared.log"
    code = netguard.child_prelude(log) + (
        "from mmadfer.cli import main; "
        f"sys.exit(main(['predict', {str(inputs['video'])!r}, '-c', {str(inputs['checkpoint'])!r}, "
        f"'-o', {str(world.out)!r}]))")
    done = subprocess.run(["unshare", "-n", sys.executable, "-c", code], env=world.env(), cwd=world.work,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _listing(world.out) == {"person.csv"}
    assert world.cache.is_dir()  # the conversion went there
    child = netguard.NetRecorder(log)
    assert not child.all_attempts(), "network attempts in the child:\n" + child.report()


@pytest.mark.slow
def test_telemetry_imported_before_mmadfer_is_declined(world):
    """Someone imported openvino_telemetry before mmadfer (a fresh interpreter): its consent check answers
    "declined", so NNCF's telemetry neither writes its client id nor sends."""
    pytest.importorskip("nncf")
    log = world.out.parent / "early.log"
    code = netguard.child_prelude(log) + (
        "import openvino_telemetry, mmadfer, nncf\n"
        "from nncf.telemetry import wrapper\n"
        "assert wrapper.telemetry._impl.consent is False, 'consent'\n"
        "wrapper.telemetry.send_event('nncf', 'test', 'label')\n")
    done = subprocess.run([sys.executable, "-c", code], env=world.env(), cwd=world.work, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    child = netguard.NetRecorder(log)
    assert not child.all_attempts(), "network attempts in the child:\n" + child.report()


def test_serve_project_labels(world, inputs):
    """``serve --project``: an upload, its timeline, a label saved and exported, all inside the project folder."""
    pytest.importorskip("fastapi")
    import time

    from starlette.testclient import TestClient

    from mmadfer import Recognizer
    from mmadfer.serve.app import create_app
    from mmadfer.serve.project import Project

    rec = Recognizer.from_checkpoint(inputs["checkpoint"], backend="torch", device="cpu", detector=None)
    project = Project(world.out / "project", classes="engaged,neutral")
    with TestClient(create_app(rec, project=project), base_url="http://127.0.0.1:8765") as c:
        job = c.post("/api/jobs", files={"file": ("person.mp4", inputs["video"].read_bytes(), "video/mp4")}).json()
        while c.get(f"/api/jobs/{job['id']}").json()["status"] in ("queued", "running"):
            time.sleep(0.05)
        r = c.post("/api/labels", json={"job": job["id"], "track_id": 0, "start_s": 0, "end_s": 1, "label": "engaged"})
        assert r.status_code == 201, r.text
        assert c.get("/api/labels.csv?download=1").text.count("engaged") == 1
    assert (project.root / "labels.csv").is_file()
