"""Shared test settings: nothing a test runs may write outside its temporary folders."""
import pytest


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Converted models (``--backend onnx-int8``) go to a temporary cache, not the user's ``~/.cache/mmadfer``."""
    mp = pytest.MonkeyPatch()
    mp.setenv("MMADFER_CACHE", str(tmp_path_factory.mktemp("mmadfer-cache")))
    yield
    mp.undo()
