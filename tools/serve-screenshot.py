#!/usr/bin/env python3
"""Regenerate docs/img/serve.png: what a new user sees in the web app's Viewer after the README's quick start.

Runs ``mmadfer serve`` on the demo's model (``mmadfer demo`` writes ``mmadfer-demo/demo_model.safetensors`` and
``mmadfer-demo/sample.mp4``), uploads the sample in Debian's headless Chromium (through Playwright, as the browser
tests do), opens it in the Viewer and saves a 1440-wide screenshot.

    .venv/bin/mmadfer demo && .venv/bin/python tools/serve-screenshot.py [--demo mmadfer-demo] [--out docs/img/serve.png]
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--demo", default="mmadfer-demo", help="the folder `mmadfer demo` wrote (default %(default)s)")
    p.add_argument("--out", default="docs/img/serve.png")
    p.add_argument("--at", type=float, default=4.0, help="where to pause the video, in seconds (default %(default)s)")
    args = p.parse_args()
    demo = Path(args.demo)
    model, sample = demo / "demo_model.safetensors", demo / "sample.mp4"
    for f in (model, sample):
        if not f.is_file():
            sys.exit(f"{f}: not found; run `mmadfer demo` first")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        sys.exit("chromium: not found (Debian: apt-get install chromium)")
    server = subprocess.Popen([sys.executable, "-m", "mmadfer.cli", "serve", "-c", str(model), "--port", "0"],
                              stderr=subprocess.PIPE, text=True)
    try:
        url = None
        for line in server.stderr:
            if m := re.match(r"open (http://\S+)", line):
                url = m.group(1)
                break
        if url is None:
            sys.exit("mmadfer serve did not start")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=chromium, args=["--headless=new", "--no-sandbox"])
            page = browser.new_page(viewport={"width": 1440, "height": 1240})
            page.goto(url)
            page.wait_for_selector("body[data-ready=true]")
            page.uncheck("#opt-anon")
            page.fill("#opt-stride", "1")
            page.set_input_files("#files", str(sample))
            page.wait_for_selector("#queue li[data-status=done]", timeout=600_000)
            page.click("#queue li[data-status=done] button.view")
            page.wait_for_function("() => window.__mmadfer.viewer.rows.length > 0 && "
                                   "document.querySelector('#v-video').readyState >= 2")
            page.evaluate("t => { document.querySelector('#v-video').currentTime = t; }", args.at)
            page.wait_for_function("() => !document.querySelector('#v-video').seeking && "
                                   "document.querySelector('#v-video').readyState >= 3")
            page.focus("#v-chart")
            page.wait_for_timeout(1000)  # the player's controls settle
            page.screenshot(path=args.out)
            browser.close()
    finally:
        server.terminate()
        server.wait(30)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
