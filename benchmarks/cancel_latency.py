"""How long the web app's Cancel takes to stop a running job: click (POST .../cancel) to status ``cancelled``.

A tiny random model with the default face detector (MTCNN) on a generated 640x360 H.264 talking-head video, in the
app as ``mmadfer serve`` builds it (through Starlette's in-process TestClient, on loopback names only). The job is
cancelled once its first windows are scored, ``--repeats`` times; prints each latency and the median.

    python -m benchmarks.cancel_latency [--repeats 5] [--seconds 40]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
from starlette.testclient import TestClient

from mmadfer import MMADFER, ModelConfig, Recognizer, save_checkpoint
from mmadfer.data.synthetic import make_astronaut_video
from mmadfer.serve.app import create_app
from mmadfer.serve.datadir import DataDir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=40.0, help="length of the generated video")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        torch.manual_seed(0)
        ck = save_checkpoint(MMADFER(ModelConfig.tiny(num_classes=4)), d / "tiny.safetensors")
        video = Path(make_astronaut_video(d / "talk.mp4", seconds=args.seconds, fps=25, size=360, width=640))
        rec = Recognizer.from_checkpoint(ck, device="cpu", backend="torch")
        body = video.read_bytes()
        latencies = []
        with TestClient(create_app(rec, data=DataDir(d / "data")), base_url="http://127.0.0.1:8765") as c:
            for _ in range(args.repeats):
                job = c.post("/api/jobs", files={"file": ("talk.mp4", body, "video/mp4")},
                             data={"anonymize": "false"}).json()["id"]
                while c.get(f"/api/jobs/{job}").json()["windows_done"] < 1:
                    time.sleep(0.02)
                t0 = time.perf_counter()
                c.post(f"/api/jobs/{job}/cancel")
                while (state := c.get(f"/api/jobs/{job}").json())["status"] == "cancelling":
                    time.sleep(0.01)
                latencies.append(time.perf_counter() - t0)
                print(f"cancel -> {state['status']} in {latencies[-1]:.3f} s "
                      f"(after {state['windows_done']} of {state['windows_total']} windows)", flush=True)
                c.delete(f"/api/jobs/{job}")
        print(f"median {statistics.median(latencies):.3f} s, max {max(latencies):.3f} s over {len(latencies)}")


if __name__ == "__main__":
    main()
