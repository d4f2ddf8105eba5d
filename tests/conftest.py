"""Shared test settings and fixtures: nothing a test runs may write outside its temporary folders."""
import pytest
import torch

from mmadfer import MMADFER, ModelConfig

#: Class names of the tiny models the tests build.
TINY_LABELS = ("calm", "joy", "anger", "grief")


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
