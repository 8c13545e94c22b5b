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


def test_init_model_replaces_an_earlier_model_dir_and_nothing_else(tmp_path, capsys) -> None:
    from uattr.model import safetensors_sha256
    from uattr.upstream.create import create_upstream

    upstream = create_upstream(
        "w2v-bert", tmp_path / "upstream", hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, output_hidden_size=32,
    )
    (tmp_path / "model.yaml").write_text(
        f"upstream: {{name: 'hf:{upstream}', finetune: frozen}}\nattributes: {{speaker: {{dim: 4}}}}\n"
    )
    argv = ["init-model", "--config", str(tmp_path / "model.yaml")]
    assert main([*argv, "--out", str(tmp_path / "model")]) == 0
    weights = safetensors_sha256(tmp_path / "model" / "model.safetensors")
    assert main([*argv, "--out", str(tmp_path / "model")]) == 0  # a re-run: the same model again
    assert safetensors_sha256(tmp_path / "model" / "model.safetensors") == weights
    data = tmp_path / "data"
    data.mkdir()
    (data / "wav.scp").write_text("u1 u1.wav\n")
    capsys.readouterr()
    assert main([*argv, "--out", str(data)]) == 1  # a mistyped --out
    assert f"{data}: exists and is not a model dir (no model.safetensors)" in capsys.readouterr().err
    assert (data / "wav.scp").read_text() == "u1 u1.wav\n"


def test_option_values_are_checked_before_any_work(tmp_path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["validate-data-dir", str(tmp_path), "--max-report", "-1"])
    assert exit_info.value.code == 2
    assert "--max-report: must be 0 or more, not -1" in capsys.readouterr().err
