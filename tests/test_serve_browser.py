"""The web app in a real browser (headless Chromium driven by Playwright): the Analyze flow, the Viewer (chart,
seek, CSV download equal to ``mmadfer predict``'s, anonymised view), Live with Chromium's fake camera and microphone,
and Runs. Every request the page makes must go to the server itself. Each workspace leaves a screenshot in
``$MMADFER_TEST_ARTIFACTS`` (default: the test's temporary folder)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
sync_api = pytest.importorskip("playwright.sync_api")

from serve_helpers import LABELS, Server, artifacts_dir, tiny_checkpoint, write_voice_wav, write_y4m  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (CI installs Debian's)")]
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-default-apps", "--disable-domain-reliability", "--metrics-recording-only",
                 "--no-pings", "--disable-features=MediaRouter,OptimizationHints,Translate",
                 "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
                 "--autoplay-policy=no-user-gesture-required"]


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    from mmadfer.data.synthetic import make_astronaut_video
    from mmadfer.metrics import classification_metrics, write_evaluation
    from mmadfer.train.logger import RunLogger

    d = tmp_path_factory.mktemp("serve-browser")
    ck = tiny_checkpoint(d / "tiny.safetensors")
    video = Path(make_astronaut_video(d / "interview.mp4", seconds=6.0, fps=10, size=160))
    runs = d / "runs"
    log = RunLogger(runs / "tiny-run", tensorboard=False)
    for epoch, (loss, uar) in enumerate([(1.3, 0.3), (1.1, 0.4), (0.9, 0.5)], 1):
        log.epoch({"epoch": epoch, "train_loss": loss, "train_acc": uar + 0.05, "test_uar": uar, "test_war": uar + 0.1,
                   "lr": 1e-4}, epoch)
    log.close()
    metrics = classification_metrics([0, 1, 2, 3, 0, 1, 2, 3], [0, 1, 2, 0, 0, 2, 2, 3], list(LABELS))
    write_evaluation(runs / "tiny-run" / "eval", metrics)  # metrics.json, confusion.png, ... as `evaluate` writes
    y4m = write_y4m(video, d / "face.y4m")
    wav = write_voice_wav(d / "voice.wav")
    server = Server("-c", str(ck), "--backend", "torch", "--device", "cpu", "--runs", str(runs), "--max-upload-mb", "20")
    requests: list[str] = []
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(d / "profile"), executable_path=CHROMIUM, headless=True, accept_downloads=True,
            viewport={"width": 1280, "height": 900},
            args=CHROMIUM_ARGS + [f"--use-file-for-fake-video-capture={y4m}", f"--use-file-for-fake-audio-capture={wav}"])
        context.on("request", lambda r: requests.append(r.url))
        page = context.new_page()
        page.on("websocket", lambda ws: requests.append(ws.url))
        page.goto(server.origin + "/")
        page.wait_for_selector("body[data-ready=true]", timeout=30_000)
        try:
            yield dict(page=page, server=server, video=video, ck=ck, d=d, requests=requests,
                       shots=artifacts_dir(d))
        finally:
            context.close()
            server.stop()


def test_analyze_and_viewer(env, tmp_path):
    page = env["page"]
    # header and retention line
    assert page.text_content("#m-backend").startswith("torch")
    assert page.text_content("#m-checkpoint") == "tiny.safetensors"
    assert "deleted when the server stops" in page.text_content("#retention")
    # Analyze: upload a real face video with an anonymised copy and a 2 s stride, wait for done
    page.check("#opt-anon")
    page.fill("#opt-stride", "2")
    page.set_input_files("#files", str(env["video"]))
    page.wait_for_selector("#queue li[data-status=done]", timeout=120_000)
    assert "2/2 windows" in page.text_content("#queue li[data-status=done] .status")
    # a file that is not a video is refused with the reason mmadfer predict gives
    page.set_input_files("#files", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not a video"}])
    page.wait_for_selector("#queue li.upload .error")
    assert page.text_content("#queue li.upload .error").startswith("notes.txt: not a media file FFmpeg can read")
    page.screenshot(path=str(env["shots"] / "serve-analyze.png"))
    # Viewer: the chart has drawn (many coloured pixels)
    page.click("#queue li[data-status=done] button.primary")
    page.wait_for_function("() => document.querySelector('#v-video').readyState >= 1")
    page.wait_for_function("() => document.querySelector('#v-chart').dataset.t1 > 0")
    coloured = page.evaluate("""() => {
        const c = document.querySelector('#v-chart');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let n = 0;
        for (let i = 0; i < d.length; i += 4) if (Math.max(d[i], d[i + 1], d[i + 2]) - Math.min(d[i], d[i + 1], d[i + 2]) > 60) n++;
        return n / (c.width * c.height);
    }""")
    assert coloured > 0.1, coloured
    # clicking the chart at t seeks the video to t
    geo = page.evaluate("() => { const c = document.querySelector('#v-chart'); const r = c.getBoundingClientRect();"
                        " return {x: r.x, y: r.y, left: +c.dataset.left, right: +c.dataset.right, t1: +c.dataset.t1}; }")
    for t in (3.5, 1.25):
        x = geo["x"] + geo["left"] + t / geo["t1"] * (geo["right"] - geo["left"])
        page.mouse.click(x, geo["y"] + 40)
        page.wait_for_function("() => !document.querySelector('#v-video').seeking")
        assert abs(page.evaluate("() => document.querySelector('#v-video').currentTime") - t) < 0.1
    page.screenshot(path=str(env["shots"] / "serve-viewer.png"))
    # the downloaded CSV is byte-for-byte what `mmadfer predict` writes for the same file and options
    with page.expect_download() as dl:
        page.click("#v-downloads a[data-file='timeline.csv']")
    served = Path(dl.value.path()).read_bytes()
    assert served == _cli_csv(env["video"], env["ck"], tmp_path, "--stride", "2")
    # the anonymised view: the video's source becomes the anonymised MP4, which plays
    page.check("#v-anon")
    page.wait_for_function("() => document.querySelector('#v-video').currentSrc.endsWith('/anonymized.mp4')")
    page.evaluate("() => document.querySelector('#v-video').play()")
    page.wait_for_function("() => document.querySelector('#v-video').currentTime > 0.3 && "
                           "document.querySelector('#v-video').videoWidth > 0", timeout=20_000)
    page.evaluate("() => document.querySelector('#v-video').pause()")
    page.screenshot(path=str(env["shots"] / "serve-viewer-anonymized.png"))


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


def test_live_fake_camera(env):
    page = env["page"]
    page.click(".tabs button[data-tab=live]")
    page.fill("#l-stride", "1")
    page.click("#l-start")
    page.wait_for_function("() => window.__mmadfer.live.predictions >= 3", timeout=90_000)
    assert page.text_content("#l-label") in ("calm", "joy", "anger", "grief")
    assert "latency" in page.text_content("#l-meta")
    assert page.evaluate("() => window.__mmadfer.live.tracks()") == ["live", "live"]  # camera and microphone
    page.screenshot(path=str(env["shots"] / "serve-live.png"))
    page.click("#l-stop")
    # Stop releases the camera and the microphone
    assert page.evaluate("() => window.__mmadfer.live.tracks()") == ["ended", "ended"]
    assert page.evaluate("() => document.querySelector('#l-video').srcObject") is None


def test_runs(env):
    page = env["page"]
    page.click(".tabs button[data-tab=runs]")
    page.wait_for_selector("article.run[data-run='tiny-run'] img")
    assert "test_uar" in page.text_content("article.run[data-run='tiny-run']")
    evaluation = page.locator("article.run[data-run='tiny-run/eval']")
    assert "uar" in evaluation.text_content()
    assert evaluation.locator("img[alt='confusion.png']").count() == 1
    page.wait_for_function("() => [...document.querySelectorAll('article.run img')].every(i => i.naturalWidth > 0)")
    page.screenshot(path=str(env["shots"] / "serve-runs.png"), full_page=True)


def test_requests_stay_on_the_server(env):
    """Everything the page loaded (scripts, styles, media, API calls, the Live WebSocket) came from the server."""
    origin = env["server"].origin
    requests = env["requests"]
    assert any(u.startswith(origin + "/static/app.js") for u in requests)
    assert any(u.startswith(origin.replace("http://", "ws://") + "/api/live") for u in requests)
    outside = [u for u in requests if not (u.startswith(origin + "/") or
                                           u.startswith(origin.replace("http://", "ws://") + "/"))]
    assert outside == []


def test_data_dir_deleted_at_stop(env):
    server = env["server"]
    assert server.data_dir is not None and server.data_dir.is_dir()
    assert server.data_dir.stat().st_mode & 0o077 == 0  # private to its owner
    server.stop()
    assert not server.data_dir.exists()
