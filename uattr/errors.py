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


@contextlib.contextmanager
def naming_batch(source: object, utt_ids: Sequence[str]) -> Iterator[None]:
    """Add ``source`` and the batch's utterance ids to a DataError raised inside: a model or teacher that refuses
    an input (audio too short, digital silence) knows its position in the batch, not its utterance id."""
    try:
        yield
    except DataError as error:
        items = ", ".join(f"{index}: '{utt}'" for index, utt in enumerate(utt_ids))
        raise DataError(f"{source}: batch items ({items}): {error}") from None
