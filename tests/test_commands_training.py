"""The shared guard of the training commands (`train`, `cv`, `ablate`): user errors are one line and exit code 2,
other errors propagate, and the process group is left either way."""
import pytest

from mmadfer.commands import _training
from mmadfer.commands._training import TrainingSession
from mmadfer.errors import MediaError


@pytest.fixture
def cleanups(monkeypatch):
    calls = []
    monkeypatch.setattr(_training.D, "cleanup", lambda: calls.append(1))
    return calls


@pytest.mark.parametrize("error", [ValueError("bad --set"), FileExistsError("runs/x exists"),
                                   FileNotFoundError("no data"), MediaError("a.mp4", "no video stream")])
def test_a_user_error_is_one_line_and_exit_code_2(error, cleanups, capsys):
    with TrainingSession("cv") as session:
        raise error
    assert session.exit_code == 2 and cleanups == [1]
    assert capsys.readouterr().err == f"mmadfer cv: {error}\n"


def test_a_clean_run_leaves_the_group_and_has_no_exit_code(cleanups):
    with TrainingSession("train") as session:
        info = session.setup("cpu")
    assert session.exit_code is None and cleanups == [1]
    assert info.is_main and info.world_size == 1


def test_a_program_error_propagates_after_leaving_the_group(cleanups, capsys):
    with pytest.raises(KeyError):
        with TrainingSession("ablate"):
            raise KeyError("bug")
    assert cleanups == [1] and capsys.readouterr().err == ""


def test_evaluate_reports_a_missing_checkpoint_in_one_line(tmp_path, capsys):
    from mmadfer.cli import main

    missing = tmp_path / "missing.safetensors"
    rc = main(["evaluate", "--checkpoint", str(missing), "--data", str(tmp_path), "--dataset", "folder",
               "--out", str(tmp_path / "eval")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err == [f"mmadfer evaluate: {missing}: no such file"]
    assert not (tmp_path / "eval").exists()


def test_evaluate_warns_on_stderr_when_class_names_differ(tmp_path, capsys):
    """A checkpoint with the dataset's class count but other class names: one warning line on stderr naming both
    lists, whatever pytest's logging capture does (the CLI prints mmadfer's warnings itself)."""
    import torch

    from mmadfer import MMADFER, ModelConfig, save_checkpoint
    from mmadfer.cli import main
    from mmadfer.data.synthetic import SYNTH_CLASSES, write_synthetic_dataset

    data = tmp_path / "data"
    write_synthetic_dataset(data, 8, size=32, raw=False)
    torch.manual_seed(0)
    ckpt = save_checkpoint(MMADFER(ModelConfig.tiny(num_classes=4, class_names=("A", "B", "C", "D"))),
                           tmp_path / "abcd.safetensors")
    rc = main(["evaluate", "-c", str(ckpt), "--data", str(data), "--dataset", "folder", "--fold", "1", "--split",
               "train", "--num-workers", "0", "--device", "cpu", "--bootstrap", "10", "--out", str(tmp_path / "eval")])
    lines = [x for x in capsys.readouterr().err.splitlines() if "class names differ" in x]
    assert rc == 0
    assert lines == [f"warning: class names differ between the model ['A', 'B', 'C', 'D'] and the dataset "
                     f"{list(SYNTH_CLASSES)}; the dataset's are reported"]
