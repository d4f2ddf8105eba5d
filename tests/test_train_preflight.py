"""`mmadfer train` stops, with the count of what was skipped and why, when too few training clips can load, instead of
"training" on nothing and writing a final model (exit 2, one line on stderr)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mmadfer.cli import main
from mmadfer.data.synthetic import write_synthetic_dataset

FAST = ["--config", "synthetic", "--set", "train.tensorboard=false", "--num-workers", "0", "--epochs", "1"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("preflight") / "synth"
    write_synthetic_dataset(root, 20, size=32, raw=False)  # fold 1: 16 train, 4 test clips
    return root


def _copy(data: Path, dst: Path) -> Path:
    shutil.copytree(data, dst)
    return dst


def _train(data: Path, run: Path, capsys) -> tuple[int, str]:
    rc = main(["train", *FAST, "--data", str(data), "--out", str(run)])
    return rc, capsys.readouterr().err


def test_every_training_path_missing_stops_the_run(data, tmp_path, capsys):
    root = _copy(data, tmp_path / "moved")
    train = root / "annotations" / "set_1_train.txt"
    for line in train.read_text().splitlines():
        shutil.rmtree(root / line.split()[0])  # the frame folders are gone, the index still lists them
    rc, err = _train(root, tmp_path / "run", capsys)
    assert rc == 2, err
    (line,) = [ln for ln in err.splitlines() if "too few" in ln]
    assert line.startswith(f"mmadfer train: {root}: too few usable training clips: 0 of 16 (at least 8 needed); "
                           f"skipped: 16 not found (e.g. {root / 'clips'}")
    assert not (tmp_path / "run" / "final.safetensors").exists()


def test_negative_frame_counts_stop_the_run(data, tmp_path, capsys):
    root = _copy(data, tmp_path / "negative")
    train = root / "annotations" / "set_1_train.txt"
    lines = train.read_text().splitlines()
    train.write_text("".join(f"{p} {-int(n) if i < 12 else n} {y}\n"
                             for i, (p, n, y) in enumerate(ln.split() for ln in lines)))
    rc, err = _train(root, tmp_path / "run", capsys)
    assert rc == 2, err
    assert "too few usable training clips: 4 of 16 (at least 8 needed); skipped: 12 with a frame count of 0 or " \
           "less (e.g. " in err
    assert not (tmp_path / "run" / "final.safetensors").exists()


@pytest.mark.slow
def test_a_few_missing_clips_are_counted_and_the_run_goes_on(data, tmp_path, capsys):
    root = _copy(data, tmp_path / "few")
    first = (root / "annotations" / "set_1_train.txt").read_text().split()[0]
    shutil.rmtree(root / first)
    rc, err = _train(root, tmp_path / "run", capsys)
    assert rc == 0, err
    assert f"skipping 1 of 16 training clips: 1 not found (e.g. {root / first})" in err
    assert (tmp_path / "run" / "final.safetensors").is_file()


def test_clips_that_all_fail_to_decode_stop_the_run_after_one_epoch(data, tmp_path, capsys):
    root = _copy(data, tmp_path / "corrupt")
    for jpg in (root / "clips").rglob("*.jpg"):  # present, but not images
        jpg.write_bytes(b"not a jpeg")
    rc, err = _train(root, tmp_path / "run", capsys)
    assert rc == 2, err
    assert "epoch 1: none of the 16 training clips could be loaded" in err
    assert not (tmp_path / "run" / "final.safetensors").exists()
