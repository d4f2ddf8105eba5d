"""The web app in a real browser (headless Chromium driven by Playwright), on real-codec videos made here:

* Analyze → Viewer by keyboard only (a real "Choose videos" button, View, seeking with the chart's arrow keys, Delete
  with its confirmation), on a video whose face leaves half-way: the no-face windows read "no face" in the chart's
  readout, the table of windows and the overlay, while faces carry their track numbers in boxes over the video;
* the hover readout (every value at the hovered time), the demo-model banner, the summary, the CSV download equal to
  ``mmadfer predict``'s;
* a long job: its windows in the Viewer before it ends, focus kept across queue refreshes, cancel shown as
  "cancelling" at once and stopping the job before its last window;
* Live with Chromium's fake camera (first no face, then a face) and microphone; Runs in plain words;
* on every workspace (and report.html): zero axe-core violations, no horizontal overflow at 390×844, and screenshots
  at 1440×900 and 390×844 in ``$MMADFER_TEST_ARTIFACTS`` (default: the test's temporary folder).

Every request the page makes must go to the server itself. One server and one browser for the module.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
sync_api = pytest.importorskip("playwright.sync_api")

from browser_helpers import CHROMIUM, CHROMIUM_ARGS, WIDE, axe_violations, check_page, tab_to, wait_until  # noqa: E402
from serve_helpers import LABELS, Server, artifacts_dir, demo_checkpoint, write_voice_wav, write_y4m  # noqa: E402

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (CI installs Debian's)")]
MEDIA_ARGS = ["--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
              "--autoplay-policy=no-user-gesture-required"]


def _face_then_blank(path: Path, face_s: float, blank_s: float, *, blank_first: bool = False, fps: int = 10,
                     size: int = 160) -> Path:
    """An H.264/AAC mp4: the astronaut's face for ``face_s`` seconds and a plain backdrop (no face) for
    ``blank_s`` (before the face with ``blank_first``), with a voice-like track throughout."""
    import av

    from mmadfer.data.synthetic import make_astronaut_video
    from mmadfer.media.encode import write_video

    face = Path(make_astronaut_video(path.with_name("face-" + path.name), seconds=face_s, fps=fps, size=size,
                                     audio=False))
    with av.open(str(face)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    yy, xx = np.mgrid[0:size, 0:size]
    backdrop = np.stack([90 + 60 * xx / size, 110 + 40 * yy / size, np.full_like(xx, 140.0)], -1).astype(np.uint8)
    blank = [backdrop] * round(blank_s * fps)
    frames = blank + frames if blank_first else frames + blank
    rate = 16000
    t = np.arange(int(len(frames) / fps * rate)) / rate
    voice = 0.3 * np.sin(2 * np.pi * (150 + 30 * np.sin(2 * np.pi * 0.5 * t)) * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    return Path(write_video(path, np.stack(frames), fps, voice.astype(np.float32), rate))


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from mmadfer.metrics import classification_metrics, write_evaluation
    from mmadfer.train.logger import RunLogger

    d = tmp_path_factory.mktemp("serve-browser")
    ck = demo_checkpoint(d / "tiny.safetensors")
    half = _face_then_blank(d / "interview.mp4", 4.0, 4.0)  # face for 4 s, then no face for 4 s
    long = _face_then_blank(d / "long.mp4", 30.0, 0.0, fps=4, size=96)  # many windows, for streaming and cancel
    camera = _face_then_blank(d / "camera.mp4", 6.0, 6.0, blank_first=True, fps=8)
    runs = d / "runs"
    log = RunLogger(runs / "tiny-run", tensorboard=False)
    for epoch, (loss, uar) in enumerate([(1.3, 0.3), (1.1, 0.4), (0.9, 0.5)], 1):
        log.epoch({"epoch": epoch, "train_loss": loss, "train_acc": uar + 0.05, "test_uar": uar, "test_war": uar + 0.1,
                   "lr": 1e-4}, epoch)
    log.close()
    metrics = classification_metrics([0, 1, 2, 3, 0, 1, 2, 3], [0, 1, 2, 0, 0, 2, 2, 3], list(LABELS))
    write_evaluation(runs / "tiny-run" / "eval", metrics)  # metrics.json, confusion.png, ... as `evaluate` writes
    y4m = write_y4m(camera, d / "camera.y4m")
    wav = write_voice_wav(d / "voice.wav")
    server = Server("-c", str(ck), "--backend", "torch", "--device", "cpu", "--runs", str(runs), "--max-upload-mb", "20")
    requests: list[str] = []
    errors: list[str] = []
    choosers: list = []  # file choosers the page opened
    try:  # the server stops however the browser's start goes
        with sync_api.sync_playwright() as p:
            context = p.chromium.launch_persistent_context(
                str(d / "profile"), executable_path=CHROMIUM, headless=True, accept_downloads=True, viewport=WIDE,
                args=CHROMIUM_ARGS + MEDIA_ARGS + [f"--use-file-for-fake-video-capture={y4m}",
                                                   f"--use-file-for-fake-audio-capture={wav}"])
            context.on("request", lambda r: requests.append(r.url))
            page = context.new_page()
            page.on("websocket", lambda ws: requests.append(ws.url))
            page.on("pageerror", lambda e: errors.append(str(e)))
            # Intercept file choosers for the whole session: `expect_file_chooser` switches interception on only as
            # the key is pressed, a race Chromium can lose (the native dialog opens unseen; puppeteer#6040).
            page.on("filechooser", lambda chooser: choosers.append(chooser))
            page.goto(server.origin + "/")
            page.wait_for_selector("body[data-ready=true]", timeout=30_000)
            try:
                yield dict(page=page, context=context, server=server, half=half, long=long, ck=ck, d=d,
                           requests=requests, errors=errors, choosers=choosers, shots=artifacts_dir(d))
            finally:
                context.close()
    finally:
        server.stop()


# -- helpers -------------------------------------------------------------------------------------------------------
def check_workspace(env, name: str) -> None:
    """Zero axe violations and screenshots at both sizes; no horizontal overflow on the phone."""
    check_page(env["page"], env["shots"], name)


def job(env, job_id: str) -> dict:
    return env["page"].evaluate("id => fetch('/api/jobs/' + id).then(r => r.json())", job_id)


# -- tests ---------------------------------------------------------------------------------------------------------
def test_header_and_analyze(env):
    page = env["page"]
    assert page.text_content("#m-backend").startswith("torch")
    assert page.text_content("#m-checkpoint") == "tiny.safetensors"
    assert "deleted when the server stops" in page.text_content("#retention")
    assert page.locator("h1").count() == 1
    # a demo model says so in the header, the Viewer and Live
    for banner in ("#model-banner", "#viewer [data-banner]", "#live [data-banner]"):
        assert page.text_content(banner).startswith("Demo model"), banner
    assert page.is_visible("#model-banner")
    # the workspaces are WAI-ARIA tabs: arrow keys move the selection and the focus, one tab in the Tab order
    page.focus("#tab-analyze")
    page.keyboard.press("ArrowRight")
    assert page.evaluate("() => [document.activeElement.id, document.activeElement.getAttribute('aria-selected'),"
                         " document.querySelector('#viewer').hidden, document.querySelector('#analyze').hidden]") == \
        ["tab-viewer", "true", False, True]
    assert page.evaluate("() => [...document.querySelectorAll('[role=tab]')].map(t => t.tabIndex)") == [-1, 0, -1, -1]
    page.keyboard.press("End")
    assert page.evaluate("() => document.activeElement.id") == "tab-runs"
    page.keyboard.press("Home")
    assert page.evaluate("() => document.activeElement.id") == "tab-analyze"
    # a file that is not a video is refused with the reason mmadfer predict gives
    page.set_input_files("#files", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not a video"}])
    page.wait_for_selector("#queue li.upload .error")
    assert page.text_content("#queue li.upload .error").startswith("notes.txt: not a media file FFmpeg can read")
    check_workspace(env, "analyze")
    page.click("#queue li.upload button")  # dismiss


def test_keyboard_upload_view_seek_delete(env, tmp_path):
    page = env["page"]
    page.locator("#tab-analyze").focus()
    # options and upload by keyboard: the stride and window fields, then the real "Choose videos" button
    tab_to(page, "#opt-stride")
    page.keyboard.type("2")
    tab_to(page, "#opt-window")
    page.keyboard.type("2")
    tab_to(page, "#choose", back=True)
    env["choosers"].clear()
    page.keyboard.press("Enter")
    wait_until(page, lambda: env["choosers"], "Enter on 'Choose videos' opened no file chooser")
    env["choosers"][0].set_files(str(env["half"]))
    page.wait_for_selector("#queue li[data-status=done]", timeout=120_000)
    li = page.locator("#queue li[data-status=done]")
    job_id = li.get_attribute("data-id")
    assert "4/4 windows" in li.locator(".status").text_content()
    # View by keyboard: focus lands on the chart, a slider that seeks with the arrow keys
    tab_to(page, f"#queue li[data-id='{job_id}'] button.view")
    page.keyboard.press("Enter")
    page.wait_for_function("() => document.activeElement.id === 'v-chart' && window.__mmadfer.viewer.rows.length === 4")
    page.wait_for_function("() => document.querySelector('#v-video').readyState >= 2")
    page.keyboard.press("Home")
    page.keyboard.press("ArrowRight")  # one stride: 2 s
    page.wait_for_function("() => !document.querySelector('#v-video').seeking")
    assert abs(page.evaluate("() => document.querySelector('#v-video').currentTime") - 2.0) < 0.1
    readout = page.text_content("#v-readout")
    assert readout.startswith("2.0 s") and "no face" not in readout and all(f"{c} " in readout for c in LABELS)
    # a face: its box over the video, with its track's name (track number)
    page.wait_for_selector("#v-overlay .box .tag")
    assert page.text_content("#v-overlay .box .tag").startswith("face 0")
    box = page.locator("#v-overlay .box").bounding_box()
    frame = page.locator("#v-video").bounding_box()
    assert frame["x"] <= box["x"] and box["x"] + box["width"] <= frame["x"] + frame["width"] + 1
    # the track's thumbnail beside its lane, and its name, which can be changed
    page.wait_for_function("() => document.querySelector('.head img')?.naturalWidth > 0")
    page.fill(".head input[data-track='0']", "Eileen")
    page.press(".head input[data-track='0']", "Enter")
    page.wait_for_function("() => document.querySelector('#v-overlay .box .tag').textContent.startsWith('Eileen')")
    page.wait_for_function("id => fetch('/api/jobs/' + id).then(r => r.json()).then(j => j.track_names['0'] === 'Eileen')",
                           arg=job_id)
    page.focus("#v-chart")
    # the face leaves at 4 s: "no face" in the readout, the overlay and the table; never a label there
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    page.wait_for_function("() => !document.querySelector('#v-video').seeking")
    assert page.evaluate("() => document.querySelector('#v-video').currentTime") >= 6.0 - 0.1
    assert "no face" in page.text_content("#v-readout")
    assert page.text_content("#v-overlay .tag.nf") == "no face"
    assert page.locator("#v-overlay .box").count() == 0
    assert page.get_attribute("#v-chart", "aria-valuetext").count("no face") >= 1
    cells = page.locator("#v-table tbody tr td:nth-child(4)").all_text_contents()
    assert cells[:2] != ["no face", "no face"] and cells[2:] == ["no face", "no face"], cells
    # hover: every value at the hovered time
    geo = page.evaluate("() => { const c = document.querySelector('#v-chart'); const r = c.getBoundingClientRect();"
                        " return {x: r.x, y: r.y, left: +c.dataset.left, right: +c.dataset.right, t1: +c.dataset.t1}; }")
    x = geo["x"] + geo["left"] + 1.0 / geo["t1"] * (geo["right"] - geo["left"])
    page.mouse.move(x, geo["y"] + 60)
    hovered = page.text_content("#v-readout")
    assert hovered.startswith("1.0 s") and all(f"{c} " in hovered for c in LABELS) and "confidence" in hovered
    page.mouse.move(0, 0)
    # smoothing: the strip shows the server's smoothed labels (predict/smoothing.py); the probabilities stay raw
    raw = page.evaluate("() => window.__mmadfer.viewer.rows.map(r => r.p_calm)")
    page.select_option("#v-smooth", "3")
    page.wait_for_function("() => window.__mmadfer.viewer.rows.every(r => 'label_smoothed' in r)")
    assert page.evaluate("() => window.__mmadfer.viewer.rows.map(r => r.p_calm)") == raw
    assert page.evaluate("() => window.__mmadfer.viewer.rows.map(r => r.label_smoothed)")[2:] == ["no_face", "no_face"]
    page.focus("#v-chart")
    page.keyboard.press("Home")
    page.wait_for_function("() => document.querySelector('#v-readout').textContent.startsWith('0.0 s')")
    assert "smoothed over 3 s: " in page.text_content("#v-readout")
    page.keyboard.press("End")
    page.select_option("#v-smooth", "0")
    # the summary says how much of the video had a face
    summary = page.text_content("#v-summary")
    assert "face found" in summary and "50%" in summary
    # the downloaded CSV is byte-for-byte what `mmadfer predict` writes for the same file and options
    with page.expect_download() as dl:
        page.click("#v-downloads a[data-file='timeline.csv']")
    assert Path(dl.value.path()).read_bytes() == _cli_csv(env["half"], env["ck"], tmp_path, "--stride", "2",
                                                           "--window", "2")
    check_workspace(env, "viewer")
    # the one-page report of this video: no accessibility violations either
    report = page.get_attribute("#v-downloads a[data-file='report.html']", "href").split("?")[0]
    html = page.evaluate("url => fetch(url).then(r => r.text())", report)
    other = env["context"].new_page()
    try:
        other.set_content(html)
        assert axe_violations(other) == [], "report.html"
    finally:
        other.close()
    # delete by keyboard, after a confirmation that defaults to keeping it
    tab_to(page, "#v-delete", back=True)
    page.keyboard.press("Enter")
    page.wait_for_selector("#confirm[open]")
    assert page.evaluate("() => document.activeElement.id") == "confirm-no"
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    page.wait_for_function("id => !document.querySelector(`#queue li[data-id='${id}']`)", arg=job_id)
    assert job(env, job_id).get("detail") == "no such job"
    assert page.evaluate("() => document.activeElement !== document.body")


def _cli_csv(video: Path, ck: Path, tmp_path: Path, *options: str) -> bytes:
    """``mmadfer predict`` in this process, on one thread like the server, as the user would run it."""
    import torch

    from mmadfer.cli import main

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = tmp_path / "cli.csv"
        assert main(["predict", str(video), "-c", str(ck), "--backend", "torch", "--device", "cpu", "-o", str(out),
                     *options]) == 0
    finally:
        torch.set_num_threads(threads)
    return out.read_bytes()


def test_windows_stream_focus_stays_and_cancel(env):
    page = env["page"]
    page.click("#tab-analyze")
    page.fill("#opt-stride", "0.25")
    page.fill("#opt-window", "1")
    page.uncheck("#opt-anon")
    page.set_input_files("#files", str(env["long"]))
    li = page.locator("#queue li[data-status=running]")
    li.wait_for(timeout=60_000)
    job_id = li.get_attribute("data-id")
    # the queue refreshes (every 0.7 s) without taking the focus away
    li.locator("button.cancel").focus()
    page.wait_for_function("id => fetch('/api/jobs/' + id).then(r => r.json()).then(j => j.windows_done > 0)",
                           arg=job_id, timeout=60_000)
    first = job(env, job_id)["windows_done"]
    page.wait_for_function("([id, n]) => fetch('/api/jobs/' + id).then(r => r.json()).then(j => j.windows_done > n)",
                           arg=[job_id, first], timeout=60_000)
    assert page.evaluate("id => document.activeElement.matches(`#queue li[data-id='${id}'] button.cancel`)", job_id)
    # windows are in the Viewer before the job ends
    page.wait_for_function("id => /windows/.test(document.querySelector(`#queue li[data-id='${id}'] .line`).textContent)",
                           arg=job_id)
    page.screenshot(path=str(env["shots"] / "serve-analyze-running-1440.png"))
    li.locator("button.view").click()
    page.wait_for_function("() => window.__mmadfer.viewer.rows.length > 0")
    seen = page.evaluate("() => window.__mmadfer.viewer.rows.length")
    state = job(env, job_id)
    assert state["status"] == "running" and seen < state["windows_total"], (seen, state)
    # cancel: "cancelling" at once, then cancelled before the last window
    page.click("#tab-analyze")
    li = page.locator(f"#queue li[data-id='{job_id}']")
    clicked = time.monotonic()
    li.locator("button.cancel").click()
    assert li.get_attribute("data-status") == "cancelling"
    page.wait_for_selector(f"#queue li[data-id='{job_id}'][data-status=cancelled]", timeout=30_000)
    print(f"cancel: 'cancelled' shown {time.monotonic() - clicked:.2f} s after the click (measured, not asserted)")
    state = job(env, job_id)
    assert state["windows_done"] < state["windows_total"], state


def test_live_fake_camera(env):
    page = env["page"]
    page.click("#tab-live")
    assert page.is_visible("#live [data-banner]")
    page.fill("#l-stride", "1")
    page.click("#l-start")
    # the fake camera starts without a face: "no face", no confidence
    page.wait_for_function("() => window.__mmadfer.live.last && window.__mmadfer.live.last.label === 'no_face'",
                           timeout=60_000)
    assert page.text_content("#l-label") == "no face"
    assert page.text_content("#l-overlay .tag.nf") == "no face"
    assert page.evaluate("() => window.__mmadfer.live.tracks()") == ["live", "live"]  # camera and microphone
    page.wait_for_function("() => window.__mmadfer.live.last.label !== 'no_face'", timeout=60_000)
    assert page.text_content("#l-label") in LABELS
    assert "latency" in page.text_content("#l-meta") and "confidence" in page.text_content("#l-meta")
    check_workspace(env, "live")
    page.click("#l-stop")
    # Stop releases the camera and the microphone
    assert page.evaluate("() => window.__mmadfer.live.tracks()") == ["ended", "ended"]
    assert page.evaluate("() => document.querySelector('#l-video').srcObject") is None


def test_runs_and_report(env):
    page = env["page"]
    page.click("#tab-runs")
    page.wait_for_selector("article.run[data-run='tiny-run'] img")
    assert "test_uar" in page.text_content("article.run[data-run='tiny-run']")
    evaluation = page.locator("article.run[data-run='tiny-run/eval']")
    assert "uar" in evaluation.text_content().lower()
    assert evaluation.locator("img[alt='tiny-run/eval: confusion.png']").count() == 1
    page.wait_for_function("() => [...document.querySelectorAll('article.run img')].every(i => i.naturalWidth > 0)")
    check_workspace(env, "runs")


def test_requests_stay_on_the_server(env):
    """Everything the page loaded (scripts, styles, media, API calls, the Live WebSocket) came from the server, and no
    script failed."""
    origin = env["server"].origin
    requests = env["requests"]
    assert any(u.startswith(origin + "/static/app.js") for u in requests)
    assert any(u.startswith(origin + "/static/js/chart.js") for u in requests)
    assert any(u.startswith(origin.replace("http://", "ws://") + "/api/live") for u in requests)
    outside = [u for u in requests if not (u.startswith(origin + "/") or
                                           u.startswith(origin.replace("http://", "ws://") + "/"))]
    assert outside == []
    assert env["errors"] == []


def test_data_dir_deleted_at_stop(env):
    server = env["server"]
    assert server.data_dir is not None and server.data_dir.is_dir()
    assert server.data_dir.stat().st_mode & 0o077 == 0  # private to its owner
    server.stop()
    assert not server.data_dir.exists()
