"""User-facing errors: the CLI prints them as one clear message, without a traceback."""

from __future__ import annotations

import contextlib
from typing import Iterator, Sequence


class UattrError(Exception):
    """A problem with the user's input (data, config, trials); the message names the file, line or id."""


class ConfigError(UattrError):
    """A malformed or unknown configuration key or value."""


class DataError(UattrError):
    """A malformed data directory, table, audio file or trial list."""


def user_message(error: UattrError) -> str:
    """The error's own message, also for one raised in a DataLoader worker: the main process gets it back as
    ``Caught <Error> in DataLoader worker process N.`` followed by the worker's whole traceback, whose last
    line holds the message."""
    text = str(error)
    marker = f"{type(error).__module__}.{type(error).__qualname__}: "
    if text.startswith("Caught ") and "\nOriginal Traceback" in text and marker in text:
        return text.rsplit(marker, 1)[1].strip()
    return text


class BatchItemError(DataError):
    """A model or teacher refuses one input of a batch (too short, digital silence): it knows the item's position,
    :func:`naming_batch` its utterance id."""

    def __init__(self, reason: str, index: int | None = None) -> None:
        super().__init__(reason if index is None else f"batch item {index}: {reason}")
        self.reason = reason
        self.index = index


@contextlib.contextmanager
def naming_batch(source: object, utt_ids: Sequence[str]) -> Iterator[None]:
    """Add ``source`` and the utterance id (or, for an error of no one item, the batch's ids) to a DataError
    raised inside: a model or teacher that refuses an input knows its position in the batch, not its id."""
    try:
        yield
    except BatchItemError as error:
        if error.index is None:
            raise
        raise DataError(f"{source}: utterance '{utt_ids[error.index]}': {error.reason}") from None
    except DataError as error:
        items = ", ".join(f"{index}: '{utt}'" for index, utt in enumerate(utt_ids))
        raise DataError(f"{source}: batch items ({items}): {error}") from None
