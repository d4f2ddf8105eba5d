"""An archive over several processes: real ``torchrun`` with 2 CPU processes (gloo) gives the same timelines as one
process, a merged index.csv of every video (a file name that is not UTF-8 among them, carried losslessly), and a
rerun after a killed rank redoes exactly that rank's unfinished videos."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote_to_bytes

import pytest
import torch

from conftest import package_frames
from mmadfer import MMADFER, ModelConfig, save_checkpoint
from mmadfer.cli import main
from mmadfer.data.synthetic import make_astronaut_video
from mmadfer.predict.shard import merge_index, my_share, read_index, write_rank_index

ROOT = Path(__file__).resolve().parents[1]
TORCHRUN = Path(sys.executable).with_name("torchrun")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("shard")
    torch.manual_seed(0)
    ck = save_checkpoint(MMADFER(ModelConfig.tiny(num_classes=4)), d / "tiny.safetensors")
    arch = d / "archive"
    (arch / "sub").mkdir(parents=True)
    for i, (sec, audio) in enumerate([(6.0, True), (2.0, True), (4.0, False), (3.0, True)]):
        make_astronaut_video(arch / ("sub" if i == 3 else "") / f"v{i}.mp4", seconds=sec, fps=6, size=96, seed=i,
                             audio=audio)
    (arch / "bad.mp4").write_bytes(b"not a video" * 50)
    make_astronaut_video(os.fsdecode(os.fsencode(arch) + b"/caf\xe9.mp4"), seconds=1.0, fps=6, size=96, seed=9,
                         audio=False)  # Latin-1 bytes: not UTF-8
    return ck, arch


def _args(ck, arch, out, *extra):
    return ["predict", str(arch), "-c", str(ck), "-o", str(out), "--backend", "torch", "--no-faces",
            "--batch-size", "2", "--workers", "0", *extra]


def _torchrun(*argv):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    return subprocess.run([str(TORCHRUN), "--standalone", "--nproc_per_node", "2", "-m", "mmadfer.cli", *argv],
                          env=env, capture_output=True, text=True, timeout=300)


def _tables(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*.csv")) if p.name != "index.csv"}


@pytest.mark.slow
def test_torchrun_matches_one_process_and_resumes_a_killed_rank(setup, tmp_path, capsys):
    ck, arch = setup
    single = tmp_path / "single"
    assert main(_args(ck, arch, single)) == 1  # the bad file fails, the others are written
    capsys.readouterr()
    out = tmp_path / "sharded"
    run = _torchrun(*_args(ck, arch, out, "--plot"))
    assert run.returncode != 0, run.stderr  # a rank saw the bad file (exit 1); torchrun passes that on
    summaries = sorted(ln.split("]:")[-1].strip() for ln in run.stderr.splitlines() if "succeeded" in ln)
    assert len(summaries) == 2 and sum(int(s.split(": ")[1].split()[0]) for s in summaries) == 5, run.stderr
    assert not package_frames(run.stderr), run.stderr  # no traceback from mmadfer itself (torchrun reports exit 1)
    assert _tables(out) == _tables(single) and len(_tables(out)) == 6  # byte-equal timelines and summary.csv
    assert len(list(out.rglob("*.png"))) == 5  # --plot: the non-UTF-8 name's chart too
    assert not (out / ".index").exists()

    rows = {Path(r["video"]).name: r for r in read_index(out / "index.csv")}
    assert set(rows) == {"v0.mp4", "v1.mp4", "v2.mp4", "v3.mp4", "bad.mp4", "caf\\xe9.mp4"}
    assert {n: r["status"] for n, r in rows.items()} == {**{f"v{i}.mp4": "done" for i in range(4)}, "bad.mp4": "failed",
                                                         "caf\\xe9.mp4": "done"}
    assert unquote_to_bytes(rows["caf\\xe9.mp4"]["video_bytes"]) == os.fsencode(arch) + b"/caf\xe9.mp4"
    assert rows["caf\\xe9.mp4"]["rank"] in ("0", "1")  # its rank's report was matched by its exact bytes
    assert "not a media file" in rows["bad.mp4"]["error"]
    assert {r["rank"] for r in rows.values()} == {"0", "1"}
    assert float(rows["v0.mp4"]["duration_s"]) == pytest.approx(6.0, abs=0.3)
    assert Path(rows["v3.mp4"]["output"]) == out / "sub" / "v3.csv"
    # balanced by duration, longest first: v0 (6 s) and v2 (4 s) open the two ranks; v3 (3 s) joins v2, v1 (2 s) v0,
    # then café (1 s) joins v2 and v3
    ranks = {n: int(r["rank"]) for n, r in rows.items()}
    assert ranks["v0.mp4"] != ranks["v2.mp4"] and ranks["v3.mp4"] == ranks["v2.mp4"] and ranks["v1.mp4"] == ranks["v0.mp4"]

    # A SIGKILL of rank 1 midway leaves: its finished videos' outputs and its index file so far, a stale temporary
    # file, no output for the rest, and no merged index.
    ones = sorted(n for n, r in ranks.items() if r == 1)  # café, v2, v3
    first, rest = ones[0], ones[1:]
    kept = {p: p.stat().st_mtime_ns for p in out.rglob("*.csv") if p.name != "index.csv"}
    lost = [Path(rows[n]["output"]) for n in rest if rows[n]["status"] == "done"]
    assert lost, ones
    for p in lost:
        p.unlink()
        kept.pop(p)
    (lost[0].parent / f".{lost[0].name}.x1y2z3.tmp").write_text("half a table")
    write_rank_index(out, 1, [rows[first]])
    (out / "index.csv").unlink()
    run = _torchrun(*_args(ck, arch, out, "--skip-existing"))
    assert _tables(out) == _tables(single)
    for p, stamp in kept.items():
        assert p.stat().st_mtime_ns == stamp, p  # finished videos were not redone
    redone = [ln for ln in run.stderr.splitlines() if "succeeded" in ln]
    assert sum(int(ln.split(": ")[1].split()[0]) for ln in redone) == len(lost), run.stderr
    rows = {Path(r["video"]).name: r for r in read_index(out / "index.csv")}
    assert all(rows[f"v{i}.mp4"]["status"] == "done" for i in range(4)) and rows["bad.mp4"]["status"] == "failed"


def test_merge_index_marks_what_no_rank_reported(tmp_path):
    out = tmp_path / "out"
    (out / "a.csv").parent.mkdir(parents=True)
    (out / "a.csv").write_text("start_s,end_s,label\n0,5.12,joy\n")
    (out / "b.csv").write_text("start_s,end_s,label\n0,5.12,j")  # cut short: not done
    planned = [{"video": v, "output": str(out / f"{v}.csv"), "outputs": [str(out / f"{v}.csv")], "duration_s": "1.000"}
               for v in ("a", "b", "c")]
    write_rank_index(out, 0, [{"video": "c", "status": "failed", "output": str(out / "c.csv"), "rank": 0,
                               "duration_s": "1.000", "windows": 0, "error": "c: broken"}])
    rows = read_index(merge_index(out, planned, world_size=2))  # rank 1 never reported (killed)
    assert [(r["video"], r["status"]) for r in rows] == [("a", "done"), ("b", "skipped"), ("c", "failed")]
    assert "rank stopped" in rows[1]["error"] and rows[2]["error"] == "c: broken"
    assert not (out / ".index").exists()
    assert my_share([5.0, 1.0, 4.0], 0, 2) == [0] and my_share([5.0, 1.0, 4.0], 1, 2) == [1, 2]
