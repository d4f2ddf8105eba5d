"""Privacy by default: the whole predict path runs with the network cut off and writes only what was asked for."""
from __future__ import annotations

import socket
import tempfile
from pathlib import Path

import pandas as pd
import pytest
import torch

from mmadfer import MMADFER, ModelConfig, save_checkpoint
from mmadfer.cli import main
from mmadfer.data.synthetic import make_astronaut_video


class NetworkUsed(AssertionError):
    pass


def _refuse(*args, **kwargs):
    raise NetworkUsed(f"network access attempted: {args[:2]}")


class _NoSocket(socket.socket):
    def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
        if family in (socket.AF_INET, socket.AF_INET6, -1):
            _refuse(family, type)
        super().__init__(family, type, proto, fileno)  # local (AF_UNIX) sockets stay allowed


@pytest.fixture
def offline(monkeypatch):
    """Cut the network: opening an internet socket, connecting or resolving a name raises."""
    monkeypatch.setattr(socket, "socket", _NoSocket)
    for name in ("create_connection", "getaddrinfo", "gethostbyname", "gethostbyname_ex", "socketpair"):
        monkeypatch.setattr(socket, name, _refuse)
    with pytest.raises(NetworkUsed):  # the guard itself works
        socket.create_connection(("example.com", 80))
    with pytest.raises(NetworkUsed):
        socket.socket(socket.AF_INET, socket.SOCK_STREAM)


def _listing(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


@pytest.mark.slow
def test_predict_path_offline_writes_only_requested_outputs(tmp_path, monkeypatch, offline):
    # inputs are made before the scratch folder is watched
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    video = make_astronaut_video(inputs / "person.mp4", seconds=4.0, fps=12, size=160)
    torch.manual_seed(0)
    checkpoint = save_checkpoint(MMADFER(ModelConfig.tiny(num_classes=4)), inputs / "tiny.safetensors")

    # a private temporary folder: anything that spills into "the" temp dir lands here and is seen
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # nothing may land in the current folder either
    before_inputs = _listing(inputs)

    out = tmp_path / "out"
    assert main(["predict", video, "--checkpoint", str(checkpoint), "--output", str(out), "--plot"]) == 0
    assert _listing(out) == {"person.csv", "person.png"}
    df = pd.read_csv(out / "person.csv")
    assert len(df) == 1 and df.face_coverage.iloc[0] == 1.0
    assert _listing(scratch) == set() and _listing(work) == set()
    assert _listing(inputs) == before_inputs  # nothing written beside the video or the checkpoint

    # asking for more writes exactly that, and still nothing else
    faces, anon = tmp_path / "faces", tmp_path / "shared.mp4"
    assert main(["predict", video, "-c", str(checkpoint), "-o", str(out), "--format", "json",
                 "--save-faces", str(faces), "--anonymize", str(anon)]) == 0
    assert _listing(out) == {"person.csv", "person.png", "person.json"}
    assert _listing(faces) == {"person", "person/00000.000s.jpg"}
    assert anon.is_file()
    assert _listing(scratch) == set() and _listing(work) == set()
    assert _listing(inputs) == before_inputs
