"""Shared test settings and fixtures: nothing a test runs may write outside its temporary folders."""
import re
from pathlib import Path

import pytest
import torch

import mmadfer
from mmadfer import MMADFER, ModelConfig

#: Where the package's own source files are, however the checkout's folder or the venv is named.
PACKAGE_DIR = Path(mmadfer.__file__).resolve().parent

#: Class names of the tiny models the tests build.
TINY_LABELS = ("calm", "joy", "anger", "grief")


def package_frames(text: str) -> list[str]:
    """The traceback frames in ``text`` that lie in mmadfer's own source files (``File ".../mmadfer/x.py"``, under
    :data:`PACKAGE_DIR`). Matching the package's directory, not the word ``mmadfer``, keeps the check independent of
    where the checkout lives: a clone named ``mmadfer`` puts that word in every path torchrun prints."""
    frames = re.findall(r'File "([^"]+)", line \d+', text)
    return [f for f in frames if Path(f).resolve().is_relative_to(PACKAGE_DIR)]


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Converted models (``--backend onnx-int8``) go to a temporary cache, not the user's ``~/.cache/mmadfer``."""
    mp = pytest.MonkeyPatch()
    mp.setenv("MMADFER_CACHE", str(tmp_path_factory.mktemp("mmadfer-cache")))
    yield
    mp.undo()


def open_tiny_model(class_names=TINY_LABELS) -> MMADFER:
    """A tiny random model (seed 0) in eval mode, its fusion gates opened (they start at 0) so that audio changes the
    output and the fusion path is part of whatever a test compares. The same weights every call."""
    torch.manual_seed(0)
    model = MMADFER(ModelConfig.tiny(num_classes=len(class_names), class_names=tuple(class_names))).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("_gate"):
                p.fill_(0.5)
    return model


@pytest.fixture(scope="module")
def tiny_model() -> MMADFER:
    """:func:`open_tiny_model`, once per test module."""
    return open_tiny_model()
