"""User-facing errors: the CLI prints them as one clear message, without a traceback."""


class UattrError(Exception):
    """A problem with the user's input (data, config, trials); the message names the file, line or id."""


class ConfigError(UattrError):
    """A malformed or unknown configuration key or value."""


class DataError(UattrError):
    """A malformed data directory, table, audio file or trial list."""
