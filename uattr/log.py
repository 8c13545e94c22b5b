"""One logging format for the whole toolkit."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

LOG_FORMAT = "%(asctime)s (%(module)s:%(lineno)d) %(levelname)s: %(message)s"


def setup_logging(verbosity: int = 0, log_file: str | Path | None = None) -> None:
    """Configure the root logger: ``verbosity`` -1 quiet (warnings, and no Hugging Face progress bars), 0 info,
    1+ debug."""
    level = logging.WARNING if verbosity < 0 else logging.DEBUG if verbosity > 0 else logging.INFO
    if verbosity < 0:
        quiet_hub_progress_bars()
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    logging.basicConfig(level=level, format=LOG_FORMAT, handlers=handlers, force=True)


def add_file_handler(log_file: str | Path) -> logging.Handler:
    """Also write the log to ``log_file`` (e.g. the experiment dir's train.log); returns the handler."""
    Path(log_file).parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logging.getLogger().addHandler(handler)
    return handler


def quiet_hub_progress_bars() -> None:
    """Turn off the progress bars transformers and huggingface_hub draw on stderr (loading and writing weights):
    through the environment for the libraries not imported yet (they read it on import), and by their own
    switches for those that are."""
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    if "huggingface_hub" in sys.modules:
        sys.modules["huggingface_hub"].utils.disable_progress_bars()
    if "transformers" in sys.modules:
        sys.modules["transformers"].utils.logging.disable_progress_bar()
