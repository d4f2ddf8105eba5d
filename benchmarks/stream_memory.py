"""Stream an hour of video through ``open_video(...).windows`` and show that memory stays within a fixed budget.

    python -m benchmarks.stream_memory                      # 60 min, 64x64 @ 5 fps, 8 kHz audio
    python -m benchmarks.stream_memory --minutes 120 --features   # a two-hour film, with fbank per window

The synthetic video is written with PyAV into a temporary folder, streamed (never held in memory), then decoded in
5.12 s windows. It reports the peak resident-memory growth (sampled after every window), the peak of Python-tracked
allocations, and decode speed; it exits 1 if the peak growth exceeds ``--budget-mb``.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import tracemalloc

import numpy as np

from mmadfer.config import PreprocessConfig
from mmadfer.media.decode import open_video, write_video
from mmadfer.media.fbank import audio_features


def rss_bytes() -> int:
    """Current resident set size (Linux /proc); elsewhere the lifetime peak, which is an upper bound."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024


def synthetic_video(path: str, minutes: float, fps: float, size: int, sample_rate: int) -> None:
    n = int(minutes * 60 * fps)

    def frames():
        img = np.zeros((size, size, 3), np.uint8)
        for i in range(n):
            img[:] = i % 251
            img[(i * 3) % size, :, 1] = 255  # a moving line, so frames differ
            yield img

    def audio():
        for k in range(int(minutes * 60)):
            t = (np.arange(sample_rate) + k * sample_rate) / sample_rate
            yield (0.3 * np.sin(2 * np.pi * (200 + 5 * (k % 60)) * t)).astype(np.float32)[None]

    write_video(path, frames(), fps, audio(), sample_rate)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument("--fps", type=float, default=5.0)
    p.add_argument("--size", type=int, default=64, help="frame side in pixels")
    p.add_argument("--sample-rate", type=int, default=8000)
    p.add_argument("--window", type=float, default=5.12, help="window length in seconds")
    p.add_argument("--stride", type=float, default=None, help="window stride (default: the window length)")
    p.add_argument("--features", action="store_true", help="also compute the fbank of every window")
    p.add_argument("--budget-mb", type=float, default=64.0, help="allowed peak RSS growth while streaming")
    args = p.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "long.mp4")
        t0 = time.perf_counter()
        synthetic_video(path, args.minutes, args.fps, args.size, args.sample_rate)
        write_s = time.perf_counter() - t0
        n_frames = int(args.minutes * 60 * args.fps)
        whole_mb = (n_frames * args.size * args.size * 3 + args.minutes * 60 * args.sample_rate * 4) / 2**20
        print(f"wrote {args.minutes:g} min ({n_frames} frames {args.size}x{args.size}, {args.sample_rate} Hz audio, "
              f"{os.path.getsize(path) / 2**20:.1f} MB file, {whole_mb:.0f} MB decoded) in {write_s:.1f}s")

        cfg = PreprocessConfig()
        start = rss_bytes()
        tracemalloc.start()
        windows = frames = 0
        trace: list[int] = []  # RSS after each window
        t0 = time.perf_counter()
        with open_video(path) as reader:
            for clip in reader.windows(args.window, args.stride):
                if args.features:
                    audio_features(clip.waveform, clip.sample_rate, cfg)
                windows += 1
                frames += clip.num_frames
                trace.append(rss_bytes())
        secs = time.perf_counter() - t0
        traced = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()

    print(f"streamed {windows} windows / {frames} frames in {secs:.1f}s "
          f"({args.minutes * 60 / secs:.0f}x real time, {frames / secs:.0f} frames/s)")
    # One-off costs (decoder and FFT set-up, allocator pools) land in the first windows; a leak would keep growing.
    warm = trace[min(len(trace) - 1, 10)]
    peak, drift = max(trace) - start, max(trace) - warm
    marks = [trace[int(q * (len(trace) - 1))] for q in (0.0, 0.25, 0.5, 0.75, 1.0)]
    print("RSS over the stream (MB above start, at 0/25/50/75/100 %): "
          + " ".join(f"{(m - start) / 2**20:.1f}" for m in marks))
    print(f"peak RSS growth {peak / 2**20:.1f} MB (after warm-up: {drift / 2**20:.1f} MB), peak traced allocations "
          f"{traced / 2**20:.1f} MB (budget {args.budget_mb:g} MB; the whole file decoded would be {whole_mb:.0f} MB)")
    ok = peak <= args.budget_mb * 2**20 and frames == n_frames
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
