"""Helpers for the web app tests: a tiny checkpoint, a face video, Chromium's fake camera and microphone files, and
``mmadfer serve`` in a subprocess on a free loopback port."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import wave
from pathlib import Path

import numpy as np

from conftest import open_tiny_model
from mmadfer import save_checkpoint

LABELS = ("calm", "joy", "anger", "grief")
SRC = Path(__file__).resolve().parents[1] / "src"


def tiny_checkpoint(path: Path) -> Path:
    """A tiny random model (fusion gates opened, as in conftest's ``tiny_model``) saved as safetensors."""
    save_checkpoint(open_tiny_model(LABELS), path)
    return path


def demo_checkpoint(path: Path) -> Path:
    """The tiny random model recorded as a demo model (as ``mmadfer demo`` records its own)."""
    from mmadfer.provenance import trained_on

    save_checkpoint(open_tiny_model(LABELS), path, trained_on=trained_on("synthetic", LABELS, demo=True))
    return path


def write_y4m(src_video: Path, dst: Path, size: tuple[int, int] = (320, 240)) -> Path:
    """Chromium's fake camera file: the frames of ``src_video`` as YUV4MPEG2 (4:2:0)."""
    import av

    w, h = size
    with av.open(str(src_video)) as c, open(dst, "wb") as out:
        rate = c.streams.video[0].average_rate
        out.write(f"YUV4MPEG2 W{w} H{h} F{rate.numerator}:{rate.denominator} Ip A1:1 C420jpeg\n".encode())
        for frame in c.decode(video=0):
            planes = frame.reformat(width=w, height=h, format="yuv420p").to_ndarray()  # [H * 3/2, W]
            out.write(b"FRAME\n" + np.ascontiguousarray(planes).tobytes())
    return dst


def write_voice_wav(dst: Path, seconds: float = 4.0, rate: int = 48000) -> Path:
    """Chromium's fake microphone file: a voice-like tone (16-bit mono)."""
    t = np.arange(int(seconds * rate)) / rate
    pitch = 160 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    envelope = 0.5 * (1 + np.sin(2 * np.pi * 3 * t)) ** 2 / 4
    x = envelope * (np.sin(phase) + 0.4 * np.sin(2 * phase) + 0.2 * np.sin(3 * phase))
    pcm = (np.clip(x, -1, 1) * 20000).astype("<i2")
    with wave.open(str(dst), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes(pcm.tobytes())
    return dst


class Server:
    """``mmadfer serve`` in a subprocess; :attr:`url` once it listens, :attr:`data_dir` its data folder."""

    def __init__(self, *args: str, env: dict | None = None, timeout: float = 120):
        env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", **(env or {})}
        self.proc = subprocess.Popen([sys.executable, "-m", "mmadfer.cli", "serve", "--port", "0", *args],
                                     stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
        self.lines: list[str] = []
        self.url = self.data_dir = None
        ready = threading.Event()

        def read():
            for line in self.proc.stderr:
                self.lines.append(line)
                if m := re.match(r"data: (.+) \(", line):
                    self.data_dir = Path(m.group(1))
                if m := re.match(r"open (http://\S+)", line):
                    self.url = m.group(1)
                    ready.set()
            ready.set()

        threading.Thread(target=read, daemon=True).start()
        if not ready.wait(timeout) or self.url is None:
            self.stop()
            raise RuntimeError("mmadfer serve did not start:\n" + "".join(self.lines))
        self.origin = self.url.split("?")[0].rstrip("/")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def artifacts_dir(tmp_path: Path) -> Path:
    """Where screenshots go: ``$MMADFER_TEST_ARTIFACTS`` or the test's temporary folder."""
    folder = Path(os.environ.get("MMADFER_TEST_ARTIFACTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
