"""Test-wide settings: no hub access, small thread pools, deterministic torch."""

import os
from typing import Callable

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture()
def refuse_pretrained_weights(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Call it to make any later loading of pretrained transformers weights (folder, cache or hub) fail the test."""
    import transformers

    def refuse(cls, *args, **kwargs):
        raise AssertionError(f"{cls.__name__}.from_pretrained{args} loaded pretrained weights")

    return lambda: monkeypatch.setattr(transformers.PreTrainedModel, "from_pretrained", classmethod(refuse))
