"""Test-wide settings: no hub access and no hub cache, quiet tokenizers, logging put back after each test, tests
marked ``gpu`` skipped where CUDA is not available."""

import atexit
import logging
import os
import shutil
import tempfile
from typing import Callable, Iterator

import pytest

# Offline whatever the shell exported, and with an empty cache of the tests' own: a hub id a test expects to fail
# must not load a model the developer happens to have cached (nor download one).
_HUB_CACHE = tempfile.mkdtemp(prefix="uattr-tests-hf-")
atexit.register(shutil.rmtree, _HUB_CACHE, ignore_errors=True)
os.environ.update(
    HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", HF_HOME=_HUB_CACHE, HF_HUB_CACHE=os.path.join(_HUB_CACHE, "hub")
)
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if item.get_closest_marker("gpu"):
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    """The CLI reconfigures the root logger (``basicConfig(force=True)``); put it back so that later tests log, and
    capture logs, as before."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture()
def refuse_pretrained_weights(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Call it to make any later loading of pretrained transformers weights (folder, cache or hub) fail the test."""
    import transformers

    def refuse(cls, *args, **kwargs):
        raise AssertionError(f"{cls.__name__}.from_pretrained{args} loaded pretrained weights")

    return lambda: monkeypatch.setattr(transformers.PreTrainedModel, "from_pretrained", classmethod(refuse))
