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
    assert "unknown command 'trian'; did you mean train?" in capsys.readouterr().err
    assert main(["zzz"]) == 2
    assert "unknown command 'zzz'; commands: " in capsys.readouterr().err


def test_quiet_and_verbose_may_come_before_the_command(capsys: pytest.CaptureFixture) -> None:
    assert main(["-q", "compute-metrics", "missing-scores"]) == 1  # an error is still said under -q
    assert "missing-scores" in capsys.readouterr().err
    assert main(["-q"]) == 2 and "usage: uattr" in capsys.readouterr().err


def test_no_command_is_a_usage_error(capsys: pytest.CaptureFixture) -> None:
    """`uattr $cmd` with an empty $cmd must fail, with the command list on stderr."""
    assert main([]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "usage: uattr [-q | -v] <command>" in captured.err


def test_options_are_not_abbreviated(capsys: pytest.CaptureFixture) -> None:
    """A script's --ou would silently mean another option once a second one starts with it."""
    with pytest.raises(SystemExit) as exit_info:
        main(["score-sv", "--tri", "t", "--emb", "e.scp", "--out", "s"])
    assert exit_info.value.code == 2 and "required: --trials" in capsys.readouterr().err  # --tri is not it


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


def _trial_data_dir(path, *, languages=True, texts=True):
    """Three speakers of four utterances each; utterance k reads text k mod 2, in language en or fr by speaker."""
    from uattr.data.kaldi import write_data_dir

    utts = [f"s{spk}-{index}" for spk in range(3) for index in range(4)]
    return write_data_dir(
        path,
        wav_scp={utt: f"/audio/{utt}.wav" for utt in utts},
        utt2spk={utt: utt.split("-")[0] for utt in utts},
        utt2lang={utt: "en" if utt.startswith("s0") else "fr" for utt in utts} if languages else None,
        text={utt: f"sentence {int(utt.split('-')[1]) % 2}" for utt in utts} if texts else None,
    )


def _read_trials(path):
    return [tuple(line.split()) for line in path.read_text().splitlines()]


def test_make_trials_writes_every_target_pair_and_as_many_nontargets(tmp_path, capsys) -> None:
    data = _trial_data_dir(tmp_path / "dev")
    assert main(["make-trials", str(data), str(tmp_path / "trials")]) == 0
    trials = _read_trials(tmp_path / "trials")
    labels = [label for _, _, label in trials]
    assert labels.count("target") == labels.count("nontarget") == 3 * 6  # C(4, 2) per speaker
    capsys.readouterr()
    assert main(["make-trials", "--num-target", "100", str(data), str(tmp_path / "capped")]) == 0  # more than exist
    assert "only 18 target trials exist (100 asked for)" in capsys.readouterr().err
    assert _read_trials(tmp_path / "capped") == trials
    assert all((label == "target") == (e.split("-")[0] == t.split("-")[0]) for e, t, label in trials)
    assert main(["make-trials", str(data), str(tmp_path / "again")]) == 0
    assert _read_trials(tmp_path / "again") == trials  # the same list for the same seed

    # Text-independent: of each speaker's 6 pairs, the 2 of one text go (0-2 and 1-3), and no nontarget shares one.
    assert main(["make-trials", "--text-independent", str(data), str(tmp_path / "ti")]) == 0
    trials = _read_trials(tmp_path / "ti")
    text = {utt: int(utt.split("-")[1]) % 2 for utt in data.joinpath("utt2spk").read_text().split()[::2]}
    assert sum(label == "target" for *_, label in trials) == sum(label == "nontarget" for *_, label in trials) == 12
    assert all(text[enroll] != text[test] for enroll, test, _ in trials)

    # Sampled numbers; half of each kind across languages (s0 speaks en only: no cross-language target exists,
    # so no nontarget crosses languages either).
    argv = ["make-trials", "--num-target", "5", "--num-nontarget", "10", "--cross-language-share", "0.5"]
    assert main([*argv, str(data), str(tmp_path / "sampled")]) == 0
    trials = _read_trials(tmp_path / "sampled")
    assert [label for *_, label in trials].count("target") == 5 and len(trials) == 15
    assert all(e.startswith("s0") == t.startswith("s0") for e, t, _ in trials)


@pytest.mark.parametrize("argv, languages, texts, message", [
    ([], True, True, "utt2spk: no entry for 1 utterance(s) of the data dir, e.g. 's9-0'"),
    (["--cross-language-share", "0.3"], False, True, "utt2lang: no such file (--cross-language-share needs"),
    (["--text-independent"], True, False, "text: no such file in data dir"),
    (["--num-target", "0"], True, True, "--num-target must be at least 1, got 0"),
    (["--cross-language-share", "1.5"], True, True, "--cross-language-share must be in [0, 1], got 1.5"),
])
def test_make_trials_names_what_is_missing_or_wrong(tmp_path, capsys, argv, languages, texts, message) -> None:
    data = _trial_data_dir(tmp_path / "dev", languages=languages, texts=texts)
    if "utt2spk" in message:
        with open(data / "wav.scp", "a") as handle:
            handle.write("s9-0 /audio/s9-0.wav\n")
    assert main(["make-trials", *argv, str(data), str(tmp_path / "trials")]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "trials").exists()


def test_make_trials_refuses_a_data_dir_without_a_target_pair(tmp_path, capsys) -> None:
    from uattr.data.kaldi import write_data_dir

    data = write_data_dir(tmp_path / "dev", wav_scp={"a-1": "a.wav", "b-1": "b.wav"}, utt2spk={"a-1": "a", "b-1": "b"})
    assert main(["make-trials", str(data), str(tmp_path / "trials")]) == 1
    assert "no speaker has two utterances, so there is no target trial" in capsys.readouterr().err
