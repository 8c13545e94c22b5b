"""Entry point of the ``uattr`` command.

Subcommands are discovered from the modules of this package without importing them (their docstring's first
line is the help text), so ``uattr --help`` is instant. Each subcommand module defines::

    def add_arguments(parser: argparse.ArgumentParser) -> None
    def main(args: argparse.Namespace) -> int | None

The module docstring becomes the subcommand's ``--help`` description. A module that sets
``ACCEPTS_OVERRIDES = True`` receives the options its parser does not know as ``args.overrides``.
"""

from __future__ import annotations

import argparse
import ast
import difflib
import importlib
import logging
import sys
from pathlib import Path
from typing import Sequence

from uattr import __version__
from uattr.errors import UattrError, user_message
from uattr.log import setup_logging

logger = logging.getLogger("uattr")

_BIN_DIR = Path(__file__).resolve().parent
_NOT_COMMANDS = {"__init__", "__main__", "main"}


def discover_commands() -> dict[str, str]:
    """Map each subcommand name to the first line of its module docstring, reading source only."""
    commands = {}
    for path in sorted(_BIN_DIR.glob("*.py")):
        if path.stem in _NOT_COMMANDS or path.stem.startswith("_"):
            continue
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        commands[path.stem.replace("_", "-")] = doc.strip().splitlines()[0] if doc.strip() else ""
    return commands


def _add_common_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-v", "--verbose", action="count", default=0, help="more log output (debug)")
    group.add_argument("-q", "--quiet", action="store_true", help="only warnings and errors")


def build_subcommand_parser(name: str, prog: str = "uattr") -> tuple[argparse.ArgumentParser, object]:
    """Import the subcommand's module and build its argument parser."""
    module = importlib.import_module(f"uattr.bin.{name.replace('-', '_')}")
    parser = argparse.ArgumentParser(
        prog=f"{prog} {name}",
        description=module.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        allow_abbrev=False,  # a script's --ou would silently mean another option once one is added
    )
    _add_common_options(parser)
    module.add_arguments(parser)
    return parser, module


_COMMON_OPTIONS = ("-q", "--quiet", "-v", "-vv", "--verbose")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    leading = 0
    while leading < len(argv) and argv[leading] in _COMMON_OPTIONS:
        leading += 1
    # `uattr -q score-sv ...` as `uattr score-sv -q ...`; options and no command: as no command
    argv = [argv[leading], *argv[:leading], *argv[leading + 1 :]] if leading < len(argv) else []
    commands = discover_commands()
    if not argv or argv[0] in ("-h", "--help"):
        width = max(map(len, commands), default=0)
        listing = "\n".join(f"  {name.ljust(width)}  {summary}" for name, summary in commands.items())
        print(
            f"usage: uattr [-q | -v] <command> [options]   (uattr <command> --help for details; uattr --version)\n\n"
            f"uattr {__version__}: one speech encoder, several utterance-level attribute embeddings.\n\n"
            f"commands:\n{listing}",
            file=sys.stdout if argv else sys.stderr,
        )
        return 0 if argv else 2  # no command is a usage error: `uattr $cmd` with an empty $cmd must fail
    if argv[0] == "--version":
        print(f"uattr {__version__}")
        return 0
    name, rest = argv[0], argv[1:]
    if name not in commands:
        close = difflib.get_close_matches(name, commands, n=3)
        hint = f"; did you mean {' or '.join(close)}?" if close else f"; commands: {', '.join(commands)}"
        print(f"uattr: unknown command '{name}'{hint} (uattr --help lists them)", file=sys.stderr)
        return 2
    parser, module = build_subcommand_parser(name)
    if getattr(module, "ACCEPTS_OVERRIDES", False):
        # Unknown options are dotted config overrides (--trainer.max_steps 500) for the subcommand to parse.
        args, overrides = parser.parse_known_args(rest)
        args.overrides = overrides
    else:
        args = parser.parse_args(rest)
    setup_logging(-1 if args.quiet else args.verbose)
    try:
        status = module.main(args)
    except UattrError as error:
        logger.error("%s", user_message(error))
        return 1
    except OSError as error:  # a path the command cannot write or read: a file where a folder must be, a full disk
        logger.error("%s%s", f"{error.filename}: " if error.filename else "", error.strerror or error)
        return 1
    except KeyboardInterrupt:
        logger.error("interrupted")
        return 130
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
