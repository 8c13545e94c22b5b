"""The `uattr` command: subcommand discovery, help, errors, and `python -m uattr`."""

from __future__ import annotations

import subprocess
import sys

import pytest

from uattr.bin.main import discover_commands, main


def test_every_subcommand_is_listed_with_its_summary(capsys: pytest.CaptureFixture) -> None:
    commands = discover_commands()
    for name in ("validate-data-dir", "extract-teacher", "train", "extract", "score-sv", "compute-metrics",
                 "score-retrieval", "plot-det", "plot-layer-weights", "results", "prepare-mini", "init-model"):
        assert commands.get(name), name  # present, with a one-line summary
    assert main(["--help"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in commands)


@pytest.mark.parametrize("name", sorted(discover_commands()))
def test_each_subcommand_documents_itself(name: str, capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    assert f"uattr {name}" in capsys.readouterr().out


def test_unknown_command_lists_the_choices(capsys: pytest.CaptureFixture) -> None:
    assert main(["trian"]) == 2
    assert "unknown command 'trian'" in capsys.readouterr().err


def test_python_dash_m_uattr_is_the_command() -> None:
    done = subprocess.run([sys.executable, "-m", "uattr", "--version"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.startswith("uattr ")
