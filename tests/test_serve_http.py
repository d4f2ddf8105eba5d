"""The web app's HTTP API and its security and retention rules, at the HTTP level (Starlette's TestClient, no
socket): Host, Origin and token checks, upload limits, non-video uploads, path traversal on every file route,
the CSP, retention of the data folder, the jobs API (its CSV equals ``mmadfer predict``'s) and the Live protocol."""
from __future__ import annotations

import io
import json
import os
import struct
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
from starlette.testclient import TestClient  # noqa: E402
from starlette.websockets import WebSocketDisconnect  # noqa: E402

from mmadfer import Recognizer  # noqa: E402
from mmadfer.serve.app import STATIC, create_app  # noqa: E402
from mmadfer.serve.datadir import DataDir  # noqa: E402
from mmadfer.serve.upload import TooLarge, receive_upload  # noqa: E402

from serve_helpers import tiny_checkpoint  # noqa: E402

BASE = "http://127.0.0.1:8765"
WS = "ws://127.0.0.1:8765/api/live"
SECRET = "top secret, never served"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    from mmadfer.data.synthetic import make_astronaut_video

    d = tmp_path_factory.mktemp("serve-http")
    ck = tiny_checkpoint(d / "tiny.safetensors")
    video = Path(make_astronaut_video(d / "face.mp4", seconds=3.0, fps=8, size=96))
    (d / "secret.txt").write_text(SECRET)
    runs = d / "runs"
    (runs / "run1").mkdir(parents=True)
    (runs / "run1" / "metrics.json").write_text(json.dumps({"uar": 0.5, "per_class": {"calm": 0.25}}))
    (runs / "run1" / "report.html").write_text("<html><body><h1>report</h1></body></html>")
    os.symlink(d / "secret.txt", runs / "run1" / "leak.json")
    return dict(d=d, ck=ck, video=video, runs=runs)


@pytest.fixture(scope="module")
def rec(files):
    return Recognizer.from_checkpoint(files["ck"], backend="torch", device="cpu", detector=None)


def client(rec, files, tmp_path=None, **kw) -> TestClient:
    kw.setdefault("runs", files["runs"])
    kw.setdefault("data", DataDir(tmp_path / "data") if tmp_path else None)
    return TestClient(create_app(rec, host="127.0.0.1", port=8765, **kw), base_url=BASE)


def upload(c, path_or_bytes, name="face.mp4", headers=None, **fields):
    body = path_or_bytes.read_bytes() if isinstance(path_or_bytes, Path) else path_or_bytes
    return c.post("/api/jobs", files={"file": (name, body, "video/mp4")}, data=fields, headers=headers or {})


def wait(c, job_id, timeout=120):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        job = c.get(f"/api/jobs/{job_id}").json()
        if job["status"] not in ("queued", "running", "cancelling"):
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} did not finish")


# ---------------------------------------------------------------------------------------------------------- API
def test_jobs_api_matches_predict(rec, files, tmp_path):
    from mmadfer.cli import main

    with client(rec, files, tmp_path) as c:
        r = upload(c, files["video"], name="my interview.mp4", stride="1", window="2")
        assert r.status_code == 201, r.text
        job = wait(c, r.json()["id"])
        assert job["status"] == "done" and job["progress"] == 1 and job["error"] is None
        assert job["windows_done"] == job["windows_total"] == 3
        csv = c.get(f"/api/jobs/{job['id']}/timeline.csv")
        assert csv.headers["content-type"].startswith("text/csv")
        out = tmp_path / "cli.csv"
        assert main(["predict", str(files["video"]), "-c", str(files["ck"]), "--backend", "torch", "--device", "cpu",
                     "--no-faces", "--stride", "1", "--window", "2", "-o", str(out)]) == 0
        assert csv.content == out.read_bytes()
        doc = c.get(f"/api/jobs/{job['id']}/timeline.json").json()
        assert doc["video"] == "my interview.mp4" and doc["stride_s"] == 1.0 and len(doc["windows"]) == 3
        assert c.get(f"/api/jobs/{job['id']}/chart.png").content[:8] == b"\x89PNG\r\n\x1a\n"
        assert c.get(f"/api/jobs/{job['id']}/anonymized.mp4").status_code == 404  # not asked for
        dl = c.get(f"/api/jobs/{job['id']}/timeline.csv?download=1")
        assert dl.headers["content-disposition"].startswith("attachment")
        assert [j["id"] for j in c.get("/api/jobs").json()["jobs"]] == [job["id"]]


def test_bad_options_are_400(rec, files, tmp_path):
    with client(rec, files, tmp_path) as c:
        for fields in ({"stride": "-1"}, {"window": "abc"}, {"anonymize": "maybe"}):
            r = upload(c, files["video"], **fields)
            assert r.status_code == 400 and list(fields)[0] in r.json()["detail"]
        assert c.post("/api/jobs", data={"stride": "1"}).status_code == 400  # no file
        assert list((tmp_path / "data" / "jobs").iterdir()) == []  # rejected uploads leave nothing


def test_cancel_and_delete(rec, files, tmp_path):
    with client(rec, files, tmp_path) as c:
        ids = [upload(c, files["video"], stride="0.25", window="2").json()["id"] for _ in range(3)]
        c.post(f"/api/jobs/{ids[2]}/cancel")  # queued behind the others: one worker
        assert wait(c, ids[2])["status"] == "cancelled"
        assert wait(c, ids[0])["status"] == "done"
        folder = tmp_path / "data" / "jobs" / ids[0]
        assert (folder / "timeline.csv").is_file()
        assert c.delete(f"/api/jobs/{ids[0]}").json() == {"id": ids[0], "deleted": True}
        assert not folder.exists()
        assert c.get(f"/api/jobs/{ids[0]}").status_code == 404
        assert c.get(f"/api/jobs/{ids[0]}/timeline.csv").status_code == 404
        assert c.delete(f"/api/jobs/{ids[0]}").status_code == 404
        c.delete(f"/api/jobs/{ids[1]}")  # deleted while queued or running: its folder goes when it stops
        end = time.monotonic() + 60
        while (tmp_path / "data" / "jobs" / ids[1]).exists() and time.monotonic() < end:
            time.sleep(0.1)
        assert not (tmp_path / "data" / "jobs" / ids[1]).exists()


# ----------------------------------------------------------------------------------------------------- security
def test_host_header_must_be_the_bound_address(rec, files):
    with client(rec, files) as c:
        for host in ("127.0.0.1:8765", "localhost:8765"):
            assert c.get("/api/info", headers={"host": host}).status_code == 200
        for host in ("evil.example:8765", "127.0.0.1:9999", "attacker.test", ""):
            for method, path in (("GET", "/"), ("GET", "/api/info"), ("GET", "/static/app.js"),
                                 ("POST", "/api/jobs"), ("GET", "/api/jobs")):
                r = c.request(method, path, headers={"host": host})
                assert r.status_code == 403, (host, path)
        with pytest.raises(WebSocketDisconnect):
            with c.websocket_connect(WS, headers={"host": "evil.example:8765"}) as ws:
                ws.receive_text()


def test_cross_origin_state_changes_refused(rec, files, tmp_path):
    with client(rec, files, tmp_path) as c:
        job = upload(c, files["video"], headers={"origin": BASE, "sec-fetch-site": "same-origin"})
        assert job.status_code == 201
        job_id = job.json()["id"]
        for headers in ({"origin": "http://evil.example"}, {"sec-fetch-site": "cross-site"},
                        {"origin": "null"}, {"origin": "http://127.0.0.1:9999"}):
            assert upload(c, files["video"], headers=headers).status_code == 403
            assert c.delete(f"/api/jobs/{job_id}", headers=headers).status_code == 403
            assert c.post(f"/api/jobs/{job_id}/cancel", headers=headers).status_code == 403
        with pytest.raises(WebSocketDisconnect):
            with c.websocket_connect(WS, headers={"origin": "http://evil.example"}) as ws:
                ws.receive_text()
        assert c.get(f"/api/jobs/{job_id}").status_code == 200  # still there


def test_token_required_beyond_loopback(rec, files):
    token = "t0ken-for-tests"
    app = create_app(rec, host="0.0.0.0", port=8765, token=token)
    with TestClient(app, base_url="http://0.0.0.0:8765") as c:
        for path in ("/", "/api/info", "/static/app.js", "/api/jobs"):
            assert c.get(path).status_code == 401
            assert c.get(path, headers={"authorization": "Bearer wrong"}).status_code == 401
            assert c.get(path, headers={"authorization": f"Bearer {token}"}).status_code == 200
        assert c.get("/?token=wrong").status_code == 401
        r = c.get(f"//evil.example/?token={token}", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/"  # never a redirect off this server
        r = c.get(f"/?token={token}", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/"
        assert "HttpOnly" in r.headers["set-cookie"] and "SameSite=Strict" in r.headers["set-cookie"]
        assert c.get("/api/info").status_code == 200  # the cookie now
        c.cookies.clear()
        assert c.get("/api/info").status_code == 401
        with pytest.raises(WebSocketDisconnect):
            with c.websocket_connect("ws://0.0.0.0:8765/api/live") as ws:
                ws.receive_text()


def test_upload_over_the_limit_is_413(rec, files, tmp_path):
    with client(rec, files, tmp_path, max_upload_mb=0.01) as c:
        r = upload(c, b"\0" * 20_000)
        assert r.status_code == 413 and "0.01 MB" in r.json()["detail"]
        assert list((tmp_path / "data" / "jobs").iterdir()) == []


def test_upload_limit_enforced_while_streaming(tmp_path):
    """A body without Content-Length stops being read at the first chunk past the limit."""
    import asyncio

    pulled = []

    class Body:
        headers = {"content-type": "multipart/form-data; boundary=b"}

        async def stream(self):
            yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.mp4"\r\n\r\n'
            for i in range(100):
                pulled.append(i)
                yield b"\0" * 65536

    with pytest.raises(TooLarge):
        asyncio.run(receive_upload(Body(), tmp_path / "video", max_bytes=1_000_000))
    assert len(pulled) == 16  # 1 MB of 6.5 MB read


def test_non_video_upload_is_400_with_the_reason(rec, files, tmp_path, capsys):
    from mmadfer.cli import main

    bad = tmp_path / "people.csv"
    bad.write_bytes(b"name,age\nada,36\n")
    assert main(["predict", str(bad), "-c", str(files["ck"]), "--backend", "torch", "--device", "cpu",
                 "--no-faces", "-o", str(tmp_path / "out")]) == 1
    cli_line = next(line for line in capsys.readouterr().err.splitlines() if line.startswith(str(bad)))
    with client(rec, files, tmp_path) as c:
        r = upload(c, bad, name="people.csv")
        assert r.status_code == 400
        assert r.json()["detail"].startswith("people.csv: not a media file FFmpeg can read")
        assert r.json()["detail"] == cli_line.replace(str(bad), "people.csv")  # the CLI's reason, the user's name
        r = upload(c, b"", name="empty.mp4")
        assert r.status_code == 400 and r.json()["detail"] == "empty.mp4: file is empty (0 bytes)"
        assert list((tmp_path / "data" / "jobs").iterdir()) == []


def test_file_names_never_become_paths(rec, files, tmp_path):
    with client(rec, files, tmp_path) as c:
        r = upload(c, files["video"], name="../../escape.mp4")
        assert r.status_code == 201 and r.json()["name"] == "escape.mp4"
        wait(c, r.json()["id"])
        stored = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
        job = r.json()["id"]
        assert stored == ["data", "data/.owner.lock", "data/jobs", f"data/jobs/{job}", f"data/jobs/{job}/chart.png",
                          f"data/jobs/{job}/job.json", f"data/jobs/{job}/report.html", f"data/jobs/{job}/summary.json",
                          f"data/jobs/{job}/timeline.csv",
                          f"data/jobs/{job}/timeline.json", f"data/jobs/{job}/video"]


TRAVERSALS = [
    "/api/jobs/{id}/..%2f..%2f..%2fsecret.txt", "/api/jobs/{id}/%2e%2e%2f%2e%2e%2f%2e%2e%2fsecret.txt",
    "/api/jobs/{id}/../../../secret.txt", "/api/jobs/..%2f..%2f..%2f/timeline.csv", "/api/jobs/{id}/video/..%2f..",
    "/api/jobs/{id}%2f..%2f..%2f..%2fsecret.txt/video", "/api/jobs/{id}/%2e%2e", "/api/jobs/{id}/timeline.csv%00",
    "/static/..%2f..%2f..%2fsecret.txt", "/static/%2e%2e/app.py", "/static/../app.py", "/static//etc/passwd",
    "/api/runs/file/..%2fsecret.txt", "/api/runs/file/%2e%2e/secret.txt", "/api/runs/file/../secret.txt",
    "/api/runs/file/run1/..%2f..%2fsecret.txt", "/api/runs/file//etc/passwd", "/api/runs/file/%2fetc%2fpasswd",
    "/api/runs/file/run1/leak.json", "/api/runs/file/run1", "/api/runs/file/run1%00.json",
]


def test_path_traversal_is_refused(rec, files, tmp_path):
    """Every file route (job files, static files, run files), with plain, encoded and double-dot paths, links and
    NUL bytes: never the secret next to the folders, nor /etc/passwd, nor the package's source."""
    with client(rec, files, tmp_path) as c:
        job = upload(c, files["video"]).json()["id"]
        wait(c, job)
        assert c.get(f"/api/jobs/{job}/timeline.csv").status_code == 200
        for path in TRAVERSALS:
            r = c.get(path.replace("{id}", job))
            assert r.status_code in (400, 403, 404), (path, r.status_code)
            assert SECRET not in r.text and "root:" not in r.text and "def " not in r.text


def test_runs_files(rec, files):
    with client(rec, files) as c:
        runs = c.get("/api/runs").json()["runs"]
        assert [r["name"] for r in runs] == ["run1"]
        assert runs[0]["metrics"] == {"uar": 0.5, "per_class/calm": 0.25}
        assert runs[0]["report"] == "/api/runs/file/run1/report.html"
        r = c.get(runs[0]["report"])
        assert r.status_code == 200 and "sandbox" in r.headers["content-security-policy"]
        assert c.get("/api/runs/file/run1/metrics.json").json()["uar"] == 0.5


def test_csp_and_no_outside_resources(rec, files):
    with client(rec, files) as c:
        for path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"):
            assert c.get(path).status_code == 404
        page = c.get("/")
        csp = page.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp and "unsafe" not in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        for f in STATIC.iterdir():
            text = f.read_text(encoding="utf-8")
            assert "https://" not in text and "http://" not in text.replace("http://www.w3.org/2000/svg", ""), f
            assert c.get("/" if f.name == "index.html" else f"/static/{f.name}").status_code == 200
        assert "<script>" not in page.text and " style=" not in page.text  # nothing inline for the CSP to block


def test_retention(rec, files, tmp_path):
    data = DataDir()
    assert data.root.stat().st_mode & 0o777 == 0o700
    with TestClient(create_app(rec, data=data), base_url=BASE) as c:
        wait(c, upload(c, files["video"]).json()["id"])
        assert any(data.jobs.iterdir())
        assert "deleted when the server stops" in c.get("/api/info").json()["retention"]
    assert not data.root.exists()
    kept = DataDir(tmp_path / "kept", keep=True)
    with TestClient(create_app(rec, data=kept), base_url=BASE) as c:
        job = upload(c, files["video"]).json()["id"]
        wait(c, job)
        assert "kept after the server stops" in c.get("/api/info").json()["retention"]
        csv = c.get(f"/api/jobs/{job}/timeline.csv").content
    assert (kept.jobs / job / "timeline.csv").is_file()
    # the next server on the kept folder lists the job again, serves it, and can delete it
    with TestClient(create_app(rec, data=DataDir(tmp_path / "kept")), base_url=BASE) as c:
        assert [j["id"] for j in c.get("/api/jobs").json()["jobs"]] == [job]
        assert c.get(f"/api/jobs/{job}").json()["status"] == "done"
        assert c.get(f"/api/jobs/{job}/timeline.csv").content == csv
        assert c.delete(f"/api/jobs/{job}").status_code == 200
    assert list(kept.jobs.iterdir()) == []


# ---------------------------------------------------------------------------------------------------------- Live
def test_live_protocol(rec, files):
    """Frames and audio over the WebSocket come back as predictions every stride, as with predict --realtime."""
    from PIL import Image

    with client(rec, files) as c, c.websocket_connect(WS, headers={"origin": BASE}) as ws:
        ws.send_text(json.dumps({"type": "start", "fps": 5, "sample_rate": 16000, "stride": 1}))
        ready = json.loads(ws.receive_text())
        assert ready["type"] == "ready" and ready["window_s"] == rec.window_s
        assert ready["model"]["classes"] == list(rec.labels) and ready["min_face_coverage"] == rec.min_face_coverage
        rng = np.random.default_rng(0)

        def send(frames):
            for i in frames:  # 5 fps, with 0.2 s of audio per frame
                t = i / 5
                buf = io.BytesIO()
                Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(buf, format="JPEG")
                ws.send_bytes(struct.pack("<cd", b"V", t) + buf.getvalue())
                ws.send_bytes(struct.pack("<cd", b"A", t) + (0.1 * rng.standard_normal(3200)).astype("<f4").tobytes())

        # media up to 5.4 s, 6.4 s, 7.4 s: each time one more window is complete (and the stream is not so far
        # ahead of the model that the buffer would skip windows, as it does for a camera it cannot keep up with)
        got = []
        for frames in (range(0, 28), range(28, 33), range(33, 38)):
            send(frames)
            msg = json.loads(ws.receive_text())
            assert msg["type"] == "prediction", msg
            got.append(msg)
        assert [round(m["end_s"], 2) for m in got] == [5.12, 6.12, 7.12]
        assert all(m["latency_ms"] >= 0 and m["has_audio"] and m["label"] in rec.labels for m in got)
        assert abs(sum(got[0]["probs"].values()) - 1) < 1e-4
        ws.send_text(json.dumps({"type": "stop"}))


# ------------------------------------------------------------------------------------------------------- command
@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_serve_command_token(files, monkeypatch, capsys, host):
    """``mmadfer serve`` prints a token and requires it exactly when it listens beyond loopback."""
    import uvicorn

    from mmadfer.cli import main

    served = {}

    def run(self, sockets=None):
        served["app"], served["port"] = self.config.app, sockets[0].getsockname()[1]

    monkeypatch.setattr(uvicorn.Server, "run", run)
    assert main(["serve", "-c", str(files["ck"]), "--backend", "torch", "--device", "cpu", "--no-faces",
                 "--host", host, "--port", "0"]) == 0
    err = capsys.readouterr().err
    url = next(line.split()[1] for line in err.splitlines() if line.startswith("open "))
    base = f"http://{host}:{served['port']}"
    with TestClient(served["app"], base_url=base) as c:
        if host == "127.0.0.1":
            assert url == base + "/" and served["app"].state.guard.token is None
            assert c.get("/api/info").status_code == 200
        else:
            token = served["app"].state.guard.token
            assert token and url == f"{base}/?token={token}" and "access token" in err
            assert c.get("/api/info").status_code == 401
            assert c.get(url).status_code == 200  # the printed address sets the cookie and redirects to the page
            assert c.get("/api/info").status_code == 200


# ------------------------------------------------------------------------------- retention after crashes (issue 22)
def test_dead_runs_are_found_by_their_lock(tmp_path, monkeypatch):
    """A run owns its folder through a lock held while it lives: an unlocked ``mmadfer-serve-*`` temp folder and the
    unfinished or unkept job folders of a ``--data-dir`` are a dead run's; a live run's folder and kept finished
    jobs are not. ``keep`` lists instead of deleting; a second server on the same folder and a planted link are
    refused."""
    from mmadfer.serve import datadir
    from mmadfer.serve.datadir import OWNER_LOCK, DataDirError

    temp = tmp_path / "tmp"
    temp.mkdir()
    monkeypatch.setattr(datadir, "temp_root", lambda: temp)
    live = DataDir()  # a live run in the temp location
    dead = temp / "mmadfer-serve-dead1234"
    (dead / "jobs" / ("a" * 32)).mkdir(parents=True)
    (dead / OWNER_LOCK).touch()  # its process died: nobody holds the lock
    (temp / "mmadfer-serve-old").mkdir()  # not made by a locking run: left alone
    folder = tmp_path / "data"
    (folder / "jobs").mkdir(parents=True)
    jobs = {name: folder / "jobs" / (c * 32) for name, c in (("running", "b"), ("kept", "c"), ("unkept", "d"))}
    for name, path in jobs.items():
        path.mkdir()
        (path / "video").write_bytes(b"upload")
    (jobs["kept"] / "job.json").write_text(json.dumps({"status": "done", "kept": True}))
    (jobs["unkept"] / "job.json").write_text(json.dumps({"status": "done", "kept": False}))

    keeping = DataDir(folder, keep=True)
    assert keeping.sweep() == sorted([dead, jobs["running"], jobs["unkept"]])  # listed, not deleted
    assert dead.exists() and jobs["running"].exists()
    with pytest.raises(DataDirError, match="in use by another mmadfer serve"):
        DataDir(folder)
    keeping.close()
    data = DataDir(folder)
    assert data.sweep() == sorted([dead, jobs["running"], jobs["unkept"]])
    assert not dead.exists() and not jobs["running"].exists() and not jobs["unkept"].exists()
    assert jobs["kept"].exists() and live.root.exists() and (temp / "mmadfer-serve-old").exists()
    data.close()
    live.close()
    assert not live.root.exists()

    planted = tmp_path / "planted"
    planted.mkdir()
    os.symlink(tmp_path / "target", planted / OWNER_LOCK)
    with pytest.raises(DataDirError, match="cannot open the lock file"):
        DataDir(planted)
    assert not (tmp_path / "target").exists()  # never followed


def test_disk_full_job_fails_and_delete_removes_it(rec, files, tmp_path, monkeypatch):
    """A write that raises ENOSPC (results, and then job.json too) ends the job as ``failed`` with the reason, and
    DELETE removes every file of it."""
    import errno

    from mmadfer.serve import jobs

    def full(df, path, *a, **kw):
        Path(path).write_bytes(b"half a tim")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    def save(self, **final):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    class FullDisk:
        def __init__(self, *a, **kw):
            pass

        def write(self, data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def close(self):
            pass

    from mmadfer.serve import upload as upload_module

    with client(rec, files, tmp_path) as c, monkeypatch.context() as m:
        m.setattr(upload_module, "open", FullDisk, raising=False)
        r = upload(c, files["video"])
        assert r.status_code == 507 and "No space left on device" in r.json()["detail"]
        assert list((tmp_path / "data" / "jobs").iterdir()) == []
    monkeypatch.setattr(jobs, "write_table", full)
    monkeypatch.setattr(jobs.Job, "save", save)
    with client(rec, files, tmp_path) as c:
        job = wait(c, upload(c, files["video"]).json()["id"])
        assert job["status"] == "failed" and "No space left on device" in job["error"]
        assert job["error"].startswith("face.mp4: ")
        folder = tmp_path / "data" / "jobs" / job["id"]
        assert (folder / "video").is_file()
        assert c.delete(f"/api/jobs/{job['id']}").json()["deleted"]
        assert not folder.exists()


@pytest.mark.parametrize("stop", ["cancel", "shutdown"])
def test_cancel_stops_the_anonymiser_at_the_next_frame(rec, files, tmp_path, monkeypatch, stop):
    """Cancel (or the server stopping, as on Ctrl-C) during the anonymised copy: the job shows ``cancelling`` and
    the copy stops at the next frame (the anonymiser's per-frame hook), leaving no file or temporary; the timeline
    was viewable before the copy began."""
    import threading

    from mmadfer.serve import jobs

    real = jobs.anonymize_video
    seen = {}

    def spy(*args, on_frame, **kw):
        def hook(t):
            seen["calls"] = seen.get("calls", 0) + 1
            if seen["calls"] == 3:
                queue = seen["app"].state.context.queue
                job_id = next(iter(queue._jobs))
                seen["during"] = seen["client"].get(f"/api/jobs/{job_id}").json()
                if stop == "cancel":
                    seen["cancel"] = seen["client"].post(f"/api/jobs/{job_id}/cancel").json()
                else:  # what the app's shutdown does (it waits for this worker, so from another thread)
                    threading.Thread(target=queue.close).start()
                    assert queue.get(job_id).cancel_event.wait(30)
                    seen["cancel"] = {"status": "cancelling"}
            on_frame(t)

        return real(*args, on_frame=hook, **kw)

    monkeypatch.setattr(jobs, "anonymize_video", spy)
    app = create_app(rec, data=DataDir(tmp_path / "data"))
    with TestClient(app, base_url=BASE) as c:
        seen.update(app=app, client=c)
        job_id = upload(c, files["video"], anonymize="true").json()["id"]
        if stop == "shutdown":
            app.state.context.queue._pool.shutdown(wait=True)  # the worker has stopped
            job = app.state.context.queue.get(job_id).public()
        else:
            job = wait(c, job_id)
        left = sorted(p.name for p in (tmp_path / "data" / "jobs" / job_id).iterdir())
    if stop == "shutdown":
        assert not (tmp_path / "data" / "jobs" / job_id).exists()  # the stopped server deleted it
    assert left == ["chart.png", "job.json", "report.html", "summary.json", "timeline.csv", "timeline.json",
                    "video"]  # no half copy, no temporary
    assert seen["calls"] == 3  # the frame after the cancel was never made
    during = seen["during"]
    assert during["status"] == "running" and during["stage"] == "anonymising" and during["viewable"]
    assert "timeline.csv" in during["files"] and "anonymized.mp4" not in during["files"]
    assert seen["cancel"]["status"] == "cancelling"
    assert job["status"] == "cancelled" and job["stage"] == ""


def test_beyond_loopback_accepts_own_names_only(rec, files):
    """``--host 0.0.0.0``: the machine's own names and addresses (and ``--allowed-host``) pass, foreign Host headers
    do not; the token landing redirects only to an encoded path of this server."""
    import socket

    from mmadfer.serve.security import Guard, same_origin_path

    guard = Guard(host="0.0.0.0", port=8765, token="t", allowed_hosts=("mmadfer.lab.example",))
    own = ["127.0.0.1:8765", "localhost:8765", "[::1]:8765", f"{socket.gethostname()}:8765",
           "mmadfer.lab.example:8765", "0.0.0.0:8765"]
    try:  # this machine's LAN address, if it has one (a UDP connect sends nothing)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))
            own.append(f"{s.getsockname()[0]}:8765")
    except OSError:
        pass
    for host in own:
        assert guard.host_ok(host), host
    for host in ("evil.example:8765", "203.0.113.5:8765", "127.0.0.1:9999", "localhost", "", "[::1", "a:b:c"):
        assert not guard.host_ok(host), host
    assert not Guard(host="127.0.0.1", port=8765).host_ok(f"{socket.gethostname()}.invalid:8765")
    assert same_origin_path("/\\evil.com") == "/%5Cevil.com"
    assert same_origin_path("//evil.com/x") == "/"
    token = "t0ken"
    with TestClient(create_app(rec, host="0.0.0.0", port=8765, token=token), base_url="http://0.0.0.0:8765") as c:
        for host in ("127.0.0.1:8765", "localhost:8765"):
            headers = {"host": host, "authorization": f"Bearer {token}"}
            assert c.get("/api/info", headers=headers).status_code == 200
        assert c.get("/api/info", headers={"host": "evil.example:8765",
                                            "authorization": f"Bearer {token}"}).status_code == 403
        for path in (f"/%5Cevil.com?token={token}", f"/%5C%5Cevil.com/?token={token}", f"/?token={token}&a=%5C"):
            r = c.get(path, follow_redirects=False)
            location = r.headers.get("location", "/")
            assert location.startswith("/") and not location.startswith(("//", "/\\")), (path, location)


def test_runs_links_are_encoded(rec, tmp_path):
    runs = tmp_path / "runs"
    odd = runs / "a #1 ?x %20"
    odd.mkdir(parents=True)
    per_class = [{"class": c, "support": 10, "recall": r, "precision": 0.5} for c, r in zip("abcd", (1, 1, 0, 0))]
    metrics = {"uar": 0.5, "war": 0.5, "ece": 0.1, "per_class": per_class, "num_clips": 40}
    (odd / "metrics.json").write_text(json.dumps(metrics))
    (odd / "log.csv").write_text("epoch,loss\n1,0.5\n")
    training = runs / "training"
    training.mkdir()
    (training / "log.csv").write_text("epoch,loss\n1,0.5\n")
    with TestClient(create_app(rec, runs=runs), base_url=BASE) as c:
        listed = {r["name"]: r for r in c.get("/api/runs").json()["runs"]}
        assert listed["a #1 ?x %20"]["running"] is False and listed["training"]["running"] is True
        from mmadfer.evaluation.glossary import metric_rows, verdict

        explained = listed["a #1 ?x %20"]["metrics_explained"]
        assert [r["key"] for r in explained] == ["uar", "war", "ece"] and explained[0]["chance"] == 0.25
        assert explained == [{**r, "label": r["name"]} for r in metric_rows(metrics)] and explained[0]["meaning"]
        assert listed["a #1 ?x %20"]["verdict"] == " ".join(verdict(metrics))
        assert listed["training"]["metrics_explained"] == [] and listed["training"]["verdict"] is None
        url = next(t["url"] for t in listed["a #1 ?x %20"]["tables"] if t["name"] == "metrics.json")
        assert "#" not in url and "?" not in url and " " not in url

    async def fetch():  # httpx's own ASGI transport decodes the path once, as a server does (TestClient: twice)
        import httpx

        transport = httpx.ASGITransport(app=create_app(rec, runs=runs, data=data))
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as ac:
            return (await ac.get(url)).json()

    import asyncio

    data = DataDir(tmp_path / "data")
    assert asyncio.run(fetch()) == metrics
    data.close()


@pytest.mark.slow
def test_sigkilled_serve_leaves_nothing_after_the_next_start(files, tmp_path):
    """``mmadfer serve`` killed with SIGKILL while it holds an upload: its folder survives the crash (nothing can run
    in a killed process), and the next start deletes it, in the default temporary location and in a ``--data-dir``;
    with ``--keep`` the next start lists what it found instead."""
    import signal

    import httpx

    from serve_helpers import Server

    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {"TMPDIR": str(temp)}
    common = ["-c", str(files["ck"]), "--backend", "torch", "--device", "cpu", "--no-faces"]

    def crash(*args):
        server = Server(*common, *args, env=env)
        r = httpx.post(server.origin + "/api/jobs", files={"file": ("face.mp4", files["video"].read_bytes())},
                       data={"stride": "0.25", "window": "2"}, headers={"origin": server.origin}, timeout=60)
        assert r.status_code == 201, r.text
        folder = server.data_dir / "jobs" / r.json()["id"]
        assert (folder / "video").is_file()
        server.proc.send_signal(signal.SIGKILL)
        server.proc.wait()
        return server, folder

    first, first_job = crash()  # the default private temporary folder
    assert first.data_dir.parent == temp and first_job.exists()
    second, second_job = crash("--data-dir", str(tmp_path / "data"), "--keep")
    assert f"  {first.data_dir}\n" in second.lines and first_job.exists()  # --keep: listed, kept
    third = Server(*common, "--data-dir", str(tmp_path / "data"), env=env)  # the same folder again
    try:
        assert "deleted what killed server runs left: 2 folder(s)" in "".join(third.lines)
        assert not first.data_dir.exists() and not second_job.exists()
    finally:
        third.stop()
    assert list(temp.iterdir()) == [] and list((tmp_path / "data" / "jobs").iterdir()) == []


# --------------------------------------------------------------------------------------------- issue 20: the jobs API
class _Gate:
    """A runner that lets the first forward pass through and holds the next ones until :attr:`go` is set."""

    def __init__(self, inner):
        self.inner, self.calls, self.go = inner, 0, __import__("threading").Event()

    def __call__(self, video, audio):
        self.calls += 1
        if self.calls > 1:
            self.go.wait(120)
        return self.inner(video, audio)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@__import__("contextlib").contextmanager
def _opens(event):
    """Set ``event`` on the way out, also when an assertion fails (so a held worker never blocks the shutdown)."""
    try:
        yield
    finally:
        event.set()


def test_windows_stream_while_running_and_cancel_shows_cancelling(rec, files, tmp_path):
    """Rows can be read as they are predicted (before the job ends), with stage and elapsed time; a cancel shows
    ``cancelling`` until the worker stops; same-name uploads get numbered display names."""
    import copy

    gated = copy.copy(rec)
    gated.runner, gated.batch_size = _Gate(rec.runner), 1
    with client(gated, files, tmp_path) as c, _opens(gated.runner.go):
        job_id = upload(c, files["video"], name="clip.mp4", stride="0.5", window="2").json()["id"]
        end = time.monotonic() + 120
        while not (job := c.get(f"/api/jobs/{job_id}").json())["windows_done"] and time.monotonic() < end:
            time.sleep(0.05)
        rows = c.get(f"/api/jobs/{job_id}/windows").json()
        assert job["status"] == "running" and job["stage"] == "predicting" and not job["viewable"]
        assert job["windows_done"] == 1 and job["windows_total"] == 5 and job["elapsed_s"] >= 0
        assert job["eta_s"] >= 0  # the engine's estimate of the time until the timeline can be viewed
        assert set(job["files"]) == {"video", "thumbs"}  # the upload plays while the rest is predicted
        assert rows["next"] == 1 and not rows["done"] and rows["labels"] == list(rec.labels)
        first = rows["windows"][0]
        assert first["start_s"] == 0 and first["label"] in rec.labels and first["box_x0"] is None
        assert c.get(f"/api/jobs/{job_id}/windows?since=1").json()["windows"] == []
        second = upload(c, files["video"], name="clip.mp4", stride="0.5", window="2").json()
        assert (job["display_name"], second["display_name"]) == ("clip.mp4", "clip.mp4 (2)")
        assert c.post(f"/api/jobs/{job_id}/cancel").json()["status"] == "cancelling"
        assert c.get(f"/api/jobs/{job_id}").json()["status"] == "cancelling"
        gated.runner.go.set()
        job = wait(c, job_id)
        assert job["status"] == "cancelled" and job["eta_s"] is None and job["windows_done"] < 5
        done = wait(c, second["id"])
        rows = c.get(f"/api/jobs/{second['id']}/windows").json()
        assert rows["done"] and rows["windows"] == c.get(f"/api/jobs/{second['id']}/timeline.json").json()["windows"]
        smoothed = c.get(f"/api/jobs/{second['id']}/windows?smooth=3&since=1").json()["windows"]
        raw = rows["windows"]
        assert len(raw) == 5
        assert [{k: v for k, v in r.items() if k != "label_smoothed"} for r in smoothed] == raw[1:]
        from mmadfer.predict.smoothing import smooth_labels

        table = __import__("pandas").DataFrame(raw)
        table.attrs["labels"] = list(rec.labels)
        assert [r["label_smoothed"] for r in smoothed] == list(smooth_labels(table, 3))[1:]
        assert c.get(f"/api/jobs/{job_id}/windows?smooth=0").status_code == 400
        summary = done["summary"]
        assert summary["windows"] == 5 and summary["dominant_label"] in rec.labels and summary["face_found_pct"] is None
        report = c.get(done["files"]["report.html"])
        assert report.status_code == 200 and "sandbox" in report.headers["content-security-policy"]


def test_tracks_thumbnails_and_names(rec, files, tmp_path):
    """With a face detector: the face track gets a small JPEG from the job's video and a box per window; it can be
    renamed (stored in job.json); both go with the job."""
    import copy

    from PIL import Image

    from mmadfer.media.faces import FaceDetector

    faces = copy.copy(rec)
    faces.detector = FaceDetector("cpu")
    with client(faces, files, tmp_path) as c:
        job = wait(c, upload(c, files["video"], window="2", stride="1").json()["id"])
        assert job["status"] == "done" and job["tracks"] == [0], job
        thumb = c.get(job["files"]["thumbs"]["0"])
        assert thumb.headers["content-type"] == "image/jpeg"
        assert max(Image.open(io.BytesIO(thumb.content)).size) <= 96
        rows = c.get(f"/api/jobs/{job['id']}/windows").json()["windows"]
        assert all(0 <= r["box_x0"] < r["box_x1"] <= 1 and r["face_coverage"] > 0.5 for r in rows)
        url = f"/api/jobs/{job['id']}/tracks/0"
        assert c.put(url, json={"name": "Ada\x1b[31m"}).json()["track_names"] == {"0": "Ada[31m"}
        assert json.loads((tmp_path / "data" / "jobs" / job["id"] / "job.json").read_text())["track_names"] == \
            {"0": "Ada[31m"}
        assert c.put(f"/api/jobs/{job['id']}/tracks/7", json={"name": "x"}).status_code == 404
        assert c.put(url, json={"name": "x"}, headers={"origin": "http://evil.example"}).status_code == 403
        assert c.put(url, json={"name": ""}).json()["track_names"] == {}
        assert c.get(f"/api/jobs/{job['id']}/thumbs/..%2f..%2fjob.json").status_code in (404, 422)
        c.delete(f"/api/jobs/{job['id']}")
        assert not (tmp_path / "data" / "jobs" / job["id"]).exists()


def test_unplayable_upload_gets_an_h264_preview(rec, files, tmp_path):
    """A HEVC ``.mov`` (what phones record; Chromium cannot play it) gets a playable H.264 preview, made locally and
    deleted with the job; an H.264 upload needs none."""
    import av

    mov = tmp_path / "phone.mov"
    with av.open(str(files["video"])) as src, av.open(str(mov), "w") as out:
        vs = out.add_stream("libx265", rate=8, options={"log-level": "error"})
        vs.width, vs.height, vs.pix_fmt = 96, 96, "yuv420p"
        for frame in src.decode(video=0):
            out.mux(vs.encode(frame.reformat(format="yuv420p")))
        out.mux(vs.encode())
    with client(rec, files, tmp_path) as c:
        job = wait(c, upload(c, mov, name="phone.mov").json()["id"])
        assert job["status"] == "done" and not job["playable"] and "hevc" in job["playback_note"]
        preview = c.get(job["files"]["preview"])
        assert preview.headers["content-type"] == "video/mp4"
        (tmp_path / "p.mp4").write_bytes(preview.content)
        with av.open(str(tmp_path / "p.mp4")) as p:
            assert p.streams.video[0].codec_context.name == "h264" and p.streams.video[0].frames == 24
        plain = wait(c, upload(c, files["video"]).json()["id"])
        assert plain["playable"] and plain["playback_note"] is None and "preview" not in plain["files"]
        c.delete(f"/api/jobs/{job['id']}")
        assert not (tmp_path / "data" / "jobs" / job["id"]).exists()


def test_model_info_says_what_the_model_is(rec, files):
    with client(rec, files) as c:
        info = c.get("/api/info").json()
        model = c.get("/api/model").json()
    assert info["model"] == {k: model[k] for k in info["model"]}
    assert model["classes"] == list(rec.labels) and model["min_face_coverage"] == rec.min_face_coverage
    assert model["min_confidence"] is None and model["window_s"] == rec.window_s
    assert model["recorded"] is False and model["banner"].startswith("Training data not recorded")
