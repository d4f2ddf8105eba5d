"""Labelling and training in the web app (``mmadfer serve --project DIR``, issue 19):

* the project folder's rules (created 0700; a file, or a folder others may write, refused; its class set kept);
* the label API at the HTTP level: spans saved to ``DIR/labels.csv`` before the answer, each bad span refused with
  its reason (unknown class, outside the video, no such face track, empty span, a video changed since labelling),
  overlapping spans listed and kept, undo, the CSV download, and everything there again after a restart;
* "Train on my labels" on a tiny synthetic in-house task: a class without clips fails with the reason, Cancel stops
  a run and removes it, and a finished run is in Runs with its metrics;
* in a real browser (Playwright, headless Chromium): three spans labelled with the keyboard only, exported, in the
  downloaded file and in ``DIR/labels.csv``; the server SIGKILLed and started again on the same project lists all
  three; zero axe-core violations at 1440 and 390 px, with screenshots.
"""
from __future__ import annotations

import csv
import io
import os
import signal
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
from starlette.testclient import TestClient  # noqa: E402

from mmadfer import Recognizer  # noqa: E402
from mmadfer.data.inhouse import INHOUSE_CLASSES, write_inhouse_task  # noqa: E402
from mmadfer.data.labels import read_labels  # noqa: E402
from mmadfer.serve.app import create_app  # noqa: E402
from mmadfer.serve.project import Project, ProjectError  # noqa: E402

from serve_helpers import tiny_checkpoint  # noqa: E402

BASE = "http://127.0.0.1:8765"
CLASSES = INHOUSE_CLASSES  # neutral, confused, engaged: none of them is the checkpoint's


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("serve-label")
    ck = tiny_checkpoint(d / "tiny.safetensors")
    task = write_inhouse_task(d / "inhouse", 3, 3, segment_frames=20, size=32, seed=4)
    return dict(d=d, ck=ck, task=task)


@pytest.fixture(scope="module")
def rec(files):
    return Recognizer.from_checkpoint(files["ck"], backend="torch", device="cpu", detector=None)


def client(rec, project, **kw) -> TestClient:
    return TestClient(create_app(rec, host="127.0.0.1", port=8765, project=project, annotator="ana", **kw),
                      base_url=BASE)


def upload(c, path: Path) -> str:
    r = c.post("/api/jobs", files={"file": (path.name, path.read_bytes(), "video/mp4")})
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    end = time.monotonic() + 120
    while (status := c.get(f"/api/jobs/{job_id}").json()["status"]) != "done":
        assert time.monotonic() < end and status in ("queued", "running"), status
        time.sleep(0.05)
    return job_id


def label(c, job, start, end, name, track=0):
    return c.post("/api/labels", json={"job": job, "track_id": track, "start_s": start, "end_s": end, "label": name})


def test_project_folder_rules(tmp_path):
    made = Project(tmp_path / "new" / "p", classes="engaged, confused,neutral")
    assert made.classes == ("engaged", "confused", "neutral")
    assert (tmp_path / "new" / "p").stat().st_mode & 0o777 == 0o700
    assert Project(made.root).classes == made.classes  # kept; the model's classes do not replace them
    assert Project(made.root, default=("a", "b")).classes == made.classes
    with pytest.raises(ProjectError, match="has the classes engaged,confused,neutral"):
        Project(made.root, classes="a,b")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ProjectError, match="exists and is not a folder"):
        Project(tmp_path / "file")
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    os.chmod(shared, 0o777)
    with pytest.raises(ProjectError, match="other users may write to it"):
        Project(shared)
    for bad, why in (("a,a", "repeat"), ("no_face,b", "reserved"), (",".join("abcdefghij"), "at most 9")):
        with pytest.raises(ProjectError, match=why):
            Project(tmp_path / f"p-{why}", classes=bad)
    assert Project(tmp_path / "default", default=("calm", "joy")).classes == ("calm", "joy")


def test_label_api_errors_undo_export_and_restart(rec, files, tmp_path):
    project = Project(tmp_path / "proj", classes=CLASSES)
    video = files["task"]["videos"][0]
    with client(rec, project) as c:
        assert c.get("/api/info").json()["project"] is True
        info = c.get("/api/project").json()
        assert info["classes"] == list(CLASSES) and info["shared_classes"] == []  # the model cannot suggest
        job = upload(c, video)
        r = label(c, job, 0.0, 1.0, "neutral")
        assert r.status_code == 201, r.text
        assert [s.label for s in read_labels(project.labels.path)] == ["neutral"]  # on disk before the answer
        for args, status, why in [((0.5, 1.5, "bored"), 400, "unknown class 'bored'"),
                                  ((1.0, 99.0, "neutral"), 400, "ends after the video"),
                                  ((1.0, 1.0, "neutral"), 400, "empty or negative"),
                                  ((-1.0, 1.0, "neutral"), 400, "empty or negative"),
                                  (("a", 1.0, "neutral"), 400, "numbers of seconds")]:
            r = label(c, job, *args)
            assert r.status_code == status and why in r.json()["detail"], (args, r.text)
        r = label(c, job, 0.0, 1.0, "neutral", track=5)
        assert r.status_code == 400 and "no face track 5" in r.json()["detail"]
        assert label(c, "0" * 32, 0.0, 1.0, "neutral").status_code == 404
        # an overlapping span with another label: kept and listed as a contradiction, not merged
        r = label(c, job, 0.5, 1.5, "engaged")
        assert r.status_code == 201
        got = r.json()
        assert [(s["start_s"], s["label"]) for s in got["spans"]] == [(0.0, "neutral"), (0.5, "engaged")]
        assert [k["kind"] for k in got["conflicts"]] == ["contradictory"]
        assert all(s["annotator"] == "ana" for s in got["spans"])
        assert c.post("/api/labels/undo").json() == {"undone": True}
        assert [s["label"] for s in c.get(f"/api/labels?job={job}").json()["spans"]] == ["neutral"]
        assert label(c, job, 1.2, 2.0, "confused").status_code == 201
        exported = c.get("/api/labels.csv?download=1")
        assert exported.status_code == 200 and "attachment" in exported.headers["content-disposition"]
        assert exported.content == project.labels.path.read_bytes()
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        assert [(r["video"], r["track_id"], r["label"]) for r in rows] == [(f"jobs/{job}/video", "0", "neutral"),
                                                                              (f"jobs/{job}/video", "0", "confused")]
        # a video whose bytes changed since it was labelled: refused, nothing written
        stored = project.root / "jobs" / job / "video"
        before = project.labels.path.read_bytes()
        stored.write_bytes(stored.read_bytes() + b"\0")
        r = label(c, job, 2.0, 2.5, "neutral")
        assert r.status_code == 409 and "has changed since it was labelled" in r.json()["detail"]
        assert project.labels.path.read_bytes() == before
    assert stored.is_file()  # a project is not deleted at stop
    # the next start on the same folder: the video, its timeline and its labels are there again
    with client(rec, Project(project.root)) as c:
        jobs = c.get("/api/jobs").json()["jobs"]
        assert [j["id"] for j in jobs] == [job] and jobs[0]["viewable"]
        assert len(c.get(f"/api/jobs/{job}/windows").json()["windows"]) > 0
        assert [s["label"] for s in c.get(f"/api/labels?job={job}").json()["spans"]] == ["neutral", "confused"]
    # without a project the label routes do not exist
    with TestClient(create_app(rec, host="127.0.0.1", port=8765), base_url=BASE) as c:
        assert c.get("/api/project").json() == {"open": False}
        assert c.get("/api/labels.csv").status_code == 404


def _wait_train(c, timeout=240) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        job = c.get("/api/train").json()["job"]
        if job["status"] in ("done", "failed", "cancelled"):
            return job
        time.sleep(0.2)
    raise AssertionError("the training job did not finish")


@pytest.mark.slow
def test_train_on_my_labels(rec, files, tmp_path):
    project = Project(tmp_path / "proj", classes=CLASSES)
    task = files["task"]
    train = {"checkpoint": files["ck"], "faces": False, "size": 32,
             "overrides": ["data.num_workers=0", "train.tensorboard=false", "train.batch_size=4"]}
    spans = read_labels(task["labels"])
    with client(rec, project, train=train) as c:
        assert c.post("/api/train", json={}).status_code == 409  # no labels yet
        jobs = {Path(v).name: upload(c, Path(v)) for v in task["videos"]}

        def add(names):
            for s in spans:
                if s.label in names:
                    assert label(c, jobs[Path(s.video).name], s.start_s, s.end_s, s.label).status_code == 201

        add(CLASSES[:2])  # "engaged" has no span yet: refused, saying so
        r = c.post("/api/train", json={"epochs": 1})
        assert r.status_code == 409 and "engaged have no labelled span" in r.json()["detail"], r.text
        add(CLASSES[2:])
        started = c.post("/api/train", json={"epochs": 1}).json()["job"]
        assert c.post("/api/train", json={"epochs": 1}).status_code == 409  # one at a time
        assert c.post("/api/train/cancel").json()["job"]["status"] == "cancelling"
        assert _wait_train(c)["status"] == "cancelled"
        assert not (project.runs / started["name"]).exists()  # a cancelled run is removed
        r = c.post("/api/train", json={"epochs": 1})
        assert r.status_code == 202 and r.json()["job"]["epochs"] in (1, None)
        done = _wait_train(c)
        assert done["status"] == "done" and done["run"] == done["name"], \
            (project.datasets / done["name"] / "train.log").read_text()
        assert done["epoch"] == 1 and done["clips"] == len(spans)
        runs = {r["name"]: r for r in c.get("/api/runs").json()["runs"]}
        run = runs[done["name"]]
        assert not run["running"] and "uar" in run["metrics"] and run["last_epoch"]["epoch"] == 1
        import json

        metrics = json.loads((project.runs / done["name"] / "metrics.json").read_text())
        assert metrics["training"]["init"]["head"]["new"] == list(CLASSES)  # train --init's head rebuild
        assert metrics["training"]["balanced"] is True  # and its small-data defaults


# -- in a real browser -------------------------------------------------------------------------------------------------
PROJECT_CLASSES = ("joy", "calm", "grief", "anger")  # the model's classes, in another order: it can suggest


def _saved(page) -> list[tuple[float, float, str]]:
    return page.evaluate("() => window.__mmadfer.label.spans.map(s => [s.start_s, s.end_s, s.label])")


@pytest.mark.slow
def test_keyboard_labelling_export_and_sigkill(tmp_path):
    """Three spans labelled with the keyboard only (in/out keys, a class key, next most uncertain + Enter for the
    model's suggestion), an error and an undo on the way, the export equal to DIR/labels.csv; then the server is
    SIGKILLed, started again on the project, and all three labels are there."""
    sync_api = pytest.importorskip("playwright.sync_api")
    from browser_helpers import CHROMIUM, CHROMIUM_ARGS, WIDE, check_page, tab_to
    from mmadfer.data.synthetic import make_astronaut_video
    from serve_helpers import Server, artifacts_dir, demo_checkpoint

    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (CI installs Debian's)")
    ck = demo_checkpoint(tmp_path / "tiny.safetensors")
    video = Path(make_astronaut_video(tmp_path / "interview.mp4", seconds=6.0, fps=8, size=128))
    project = tmp_path / "project"
    args = ("-c", str(ck), "--backend", "torch", "--device", "cpu", "--project", str(project), "--annotator", "tester")
    server = Server(*args, "--classes", ",".join(PROJECT_CLASSES))
    shots = artifacts_dir(tmp_path)
    requests, errors = [], []
    try:
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            context = browser.new_context(viewport=WIDE, accept_downloads=True)
            context.on("request", lambda r: requests.append(r.url))
            page = context.new_page()
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server.origin + "/")
            page.wait_for_selector("body[data-ready=true]", timeout=30_000)
            page.fill("#opt-stride", "1")
            page.fill("#opt-window", "2")
            page.uncheck("#opt-anon")
            page.set_input_files("#files", str(video))
            page.wait_for_selector("#queue li[data-status=done]", timeout=120_000)
            # to the Viewer and its chart by keyboard
            page.focus("#tab-analyze")
            page.keyboard.press("ArrowRight")
            page.wait_for_function("() => window.__mmadfer.label.job && window.__mmadfer.viewer.rows.length === 6")
            assert page.is_visible("#lb") and page.text_content("#lb-classes").count("joy") == 1
            tab_to(page, "#v-chart")
            page.wait_for_function("() => document.querySelector('#v-video').readyState >= 2")

            def key(*keys):
                for k in keys:
                    page.keyboard.press(k)
                page.wait_for_function("() => !document.querySelector('#v-video').seeking")

            key("Home", "i", "ArrowRight", "o")
            assert page.text_content("#lb-span") == "in 0.00 s, out 1.00 s"
            assert page.text_content("#lb-suggest").startswith("Model suggests ")
            key("1")  # joy
            page.wait_for_function("() => window.__mmadfer.label.spans.length === 1")
            assert page.text_content("#lb-status").startswith("Saved to labels.csv: 0.00–1.00 s joy")
            key("3")  # no out point yet (in moved to 1.00): refused, nothing saved
            assert "set the in and out points" in page.text_content("#lb-status")
            key("ArrowRight", "o", "2")  # 1–2 s calm
            page.wait_for_function("() => window.__mmadfer.label.spans.length === 2")
            # next most uncertain: an unlabelled face window, its class pre-selected as the model's suggestion
            key("n")
            status = page.text_content("#lb-status")
            assert status.startswith("Most uncertain unlabelled window: ") and "top probability" in status
            chosen = page.evaluate("() => [window.__mmadfer.label.in, window.__mmadfer.label.out]")
            rows = page.evaluate("() => window.__mmadfer.viewer.rows")
            open_rows = [r for r in rows if r["start_s"] >= 2.0]  # windows clear of the spans 0–1 and 1–2 s
            least = min(open_rows, key=lambda r: (r["confidence"], r["start_s"]))
            assert chosen == [least["start_s"], least["end_s"]], (chosen, least)
            suggested = page.evaluate("() => window.__mmadfer.label.suggested")
            assert suggested in PROJECT_CLASSES and page.get_attribute(
                f"#lb-classes button[data-class='{suggested}']", "class") == "suggested"
            assert page.text_content("#lb-suggest").startswith(f"Model suggests {suggested} (")
            page.focus("#v-chart")
            key("Enter")
            page.wait_for_function("() => window.__mmadfer.label.spans.length === 3")
            # a contradictory span is kept, marked and listed; Ctrl+Z takes it back
            key("Home", "i", "ArrowRight", "o", "4")
            page.wait_for_function("() => window.__mmadfer.label.spans.length === 4")
            assert page.is_visible("#lb-conflicts") and "contradict" in page.text_content("#lb-conflicts")
            assert page.locator("#lb-spans tr.conflict").count() == 2
            assert "! contradicts" in page.text_content("#lb-spans")
            check_page(page, shots, "label")
            page.focus("#v-chart")
            key("Control+z")
            page.wait_for_function("() => window.__mmadfer.label.spans.length === 3")
            assert page.is_hidden("#lb-conflicts") and "Undone" in page.text_content("#lb-status")
            # the mouse: a drag on the face's lane selects a span (nothing saved until a class key)
            geo = page.evaluate("() => { const c = document.querySelector('#v-chart'); const r = c.getBoundingClientRect();"
                                " return {x: r.x, y: r.y, left: +c.dataset.left, right: +c.dataset.right,"
                                " t1: +c.dataset.t1}; }")
            x = lambda t: geo["x"] + geo["left"] + t / geo["t1"] * (geo["right"] - geo["left"])  # noqa: E731
            page.mouse.move(x(3.0), geo["y"] + 60)
            page.mouse.down()
            page.mouse.move(x(3.5), geo["y"] + 60)
            page.mouse.move(x(4.0), geo["y"] + 60)
            page.mouse.up()
            dragged = page.evaluate("() => [window.__mmadfer.label.in, window.__mmadfer.label.out]")
            assert dragged == pytest.approx([3.0, 4.0], abs=0.05) and len(_saved(page)) == 3
            labels = project / "labels.csv"
            want = [(0.0, 1.0, "joy"), (1.0, 2.0, "calm"), (least["start_s"], least["end_s"], suggested)]
            assert [(s.start_s, s.end_s, s.label) for s in read_labels(labels)] == want
            assert {s.annotator for s in read_labels(labels)} == {"tester"}
            # export by keyboard: the downloaded file is DIR/labels.csv
            tab_to(page, "#lb-export")
            with page.expect_download() as dl:
                page.keyboard.press("Enter")
            assert dl.value.suggested_filename == "labels.csv"
            assert Path(dl.value.path()).read_bytes() == labels.read_bytes()
            # the Runs workspace of a project: Train on my labels
            page.click("#tab-runs")
            page.wait_for_selector("#r-train:not([hidden])")
            tab_to(page, "#r-train-start")
            page.keyboard.press("Enter")  # one labelled video: refused with the reason
            page.wait_for_function("() => document.querySelector('#r-train-status').textContent"
                                   ".startsWith('Not started')")
            assert "at least 2 videos" in page.text_content("#r-train-status")
            check_page(page, shots, "train")
            # SIGKILL: nothing to clean up, nothing lost; the next start lists the video and its three labels
            server.proc.send_signal(signal.SIGKILL)
            server.proc.wait(30)
            assert [(s.start_s, s.end_s, s.label) for s in read_labels(labels)] == want
            server = Server(*args)
            page.goto(server.origin + "/")
            page.wait_for_selector("body[data-ready=true]", timeout=30_000)
            page.click("#tab-viewer")
            page.wait_for_function("() => window.__mmadfer.label.spans.length === 3")
            assert [tuple(s) for s in _saved(page)] == want
            assert page.locator("#lb-spans tbody tr").count() == 3
            assert errors == []
            outside = [u for u in requests if not u.startswith(("http://127.0.0.1", "data:", "blob:"))]
            assert outside == []
            browser.close()
    finally:
        server.stop()
    assert (project / "jobs").is_dir() and labels.is_file()  # a project is kept at stop


def test_serve_command_refuses_a_bad_project(files, tmp_path, capsys):
    from mmadfer.cli import main

    (tmp_path / "file").write_text("x")
    serve = ["serve", "-c", str(files["ck"]), "--backend", "torch", "--device", "cpu", "--port", "0", "--no-faces"]
    assert main([*serve, "--project", str(tmp_path / "file")]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err
    assert main([*serve, "--classes", "a,b"]) == 2
    assert "--classes sets a project's classes: it needs --project DIR" in capsys.readouterr().err
    assert main([*serve, "--project", str(tmp_path / "p"), "--runs", str(tmp_path)]) == 2
    assert "drop --data-dir and --runs" in capsys.readouterr().err
    assert not (tmp_path / "p").exists()
