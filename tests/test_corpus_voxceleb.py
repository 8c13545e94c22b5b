"""VoxCeleb1 preparation on a fabricated copy of the public layout, and the recipe's evaluation stages."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from corpus_layouts import (
    VOX_LISTS,
    assert_valid_data_dirs,
    copy_recipe,
    make_voxceleb1,
    prepare_in_recipe_copy,
    run_recipe_script,
    write_lines,
)
from uattr.corpora.voxceleb import find_wavs, prepare_voxceleb1, read_trial_list, utterance_id
from uattr.errors import DataError
from uattr.fileio import read_table

# The official lines of corpus_layouts.VOX_LISTS converted by hand, line by line.
EXPECTED_TRIALS = {
    "trials_o": [
        "id10270-x6uYqmx31kE-00001 id10270-8jEAjG6SegY-00008 target",
        "id10270-x6uYqmx31kE-00001 id10271-1gtz-CUIygI-00001 nontarget",
        "id10271-37nktPRUJ58-00002 id10271-1gtz-CUIygI-00001 target",
        "id10271-37nktPRUJ58-00002 id10270-x6uYqmx31kE-00002 nontarget",
    ],
    "trials_e": [
        "id10001-1zcIwhmdeo4-00001 id10001-7gWzIy6yIIk-00003 target",
        "id10001-1zcIwhmdeo4-00002 id10002-0_laIeN-Q44-00001 nontarget",
        "id10003-5ablueV_1tw-00001 id10003-_Owc0gLzbO4-00002 target",
        "id10270-x6uYqmx31kE-00001 id10003-5ablueV_1tw-00001 nontarget",
    ],
    "trials_h": [
        "id10002-0_laIeN-Q44-00001 id10002-6WO410QOeuo-00002 target",
        "id10002-6WO410QOeuo-00002 id10001-7gWzIy6yIIk-00003 nontarget",
    ],
}
TEST_UTTS = [
    "id10270-8jEAjG6SegY-00008", "id10270-x6uYqmx31kE-00001", "id10270-x6uYqmx31kE-00002",
    "id10271-1gtz-CUIygI-00001", "id10271-37nktPRUJ58-00002",
]


def test_utterance_ids_come_from_the_paths():
    assert utterance_id("id10270/x6uYqmx31kE/00001.wav") == "id10270-x6uYqmx31kE-00001"
    assert utterance_id("id10271/1gtz-CUIygI/00001.wav") == "id10271-1gtz-CUIygI-00001"
    with pytest.raises(ValueError):
        utterance_id("id10270/00001.wav")


@pytest.mark.parametrize("name", ["trials_o", "trials_e", "trials_h"])
def test_list_conversion_line_by_line(tmp_path, name):
    official = {"trials_o": "veri_test2.txt", "trials_e": "list_test_all2.txt", "trials_h": "list_test_hard2.txt"}
    path = write_lines(tmp_path / official[name], VOX_LISTS[official[name]])
    assert [" ".join(trial) for trial in read_trial_list(path)] == EXPECTED_TRIALS[name]


def test_data_sh_writes_validated_dirs_and_trials(tmp_path):
    root = make_voxceleb1(tmp_path / "VoxCeleb1")
    data = prepare_in_recipe_copy("voxceleb1", root, tmp_path / "checkout", "--cohort_per_speaker", "2")
    assert_valid_data_dirs(data, ("voxceleb1_test", "voxceleb1", "voxceleb1_cohort"))
    assert sorted(read_table(data / "voxceleb1_test" / "wav.scp")) == TEST_UTTS
    assert len(read_table(data / "voxceleb1" / "wav.scp")) == 5 + 7
    assert read_table(data / "voxceleb1_test" / "utt2spk")["id10271-1gtz-CUIygI-00001"] == "id10271"
    for name, expected in EXPECTED_TRIALS.items():
        folder = "voxceleb1_test" if name == "trials_o" else "voxceleb1"
        assert (data / folder / name).read_text().splitlines() == expected
    cohort = read_table(data / "voxceleb1_cohort" / "utt2spk")
    assert sorted(set(cohort.values())) == ["id10001", "id10002", "id10003"]  # the speakers outside the O list
    assert sorted(cohort.values()) == ["id10001"] * 2 + ["id10002"] * 2 + ["id10003"] * 2


def test_dev_and_test_unpacked_apart(tmp_path):
    root = make_voxceleb1(tmp_path / "vox1", split_trees=True)
    wavs = find_wavs(root)
    assert len(wavs) == 12 and Path(wavs["id10001-1zcIwhmdeo4-00001"]).parts[-5] == "vox1_dev_wav"
    counts = prepare_voxceleb1(root, tmp_path / "data", lists=["o"], cohort_per_speaker=0)
    assert counts == {"voxceleb1_test": 5}


def test_sets_an_earlier_run_wrote_and_this_one_does_not_are_removed(tmp_path, caplog):
    """Run again with --lists o and no cohort: the earlier full set and cohort would be scored or used as the
    AS-norm cohort by later stages as if current."""
    root = make_voxceleb1(tmp_path / "vox1")
    prepare_voxceleb1(root, tmp_path / "data", cohort_per_speaker=2)
    assert (tmp_path / "data" / "voxceleb1").is_dir() and (tmp_path / "data" / "voxceleb1_cohort").is_dir()
    prepare_voxceleb1(root, tmp_path / "data", lists=["o", "e"], cohort_per_speaker=2)
    assert not (tmp_path / "data" / "voxceleb1" / "trials_h").exists()
    prepare_voxceleb1(root, tmp_path / "data", lists=["o"], cohort_per_speaker=0)
    assert sorted(path.name for path in (tmp_path / "data").iterdir()) == ["voxceleb1_test"]
    assert "voxceleb1_cohort: written by an earlier run with other options; removed" in caplog.text


def test_list_errors_name_the_line(tmp_path):
    root = make_voxceleb1(tmp_path / "vox1")
    lines = VOX_LISTS["veri_test2.txt"]
    write_lines(root / "veri_test2.txt", lines[:2] + ["1 id10270/x6uYqmx31kE/00001.wav"])
    with pytest.raises(DataError, match=r"veri_test2.txt:3: expected '1\|0 <enroll.wav> <test.wav>'"):
        prepare_voxceleb1(root, tmp_path / "data")
    write_lines(root / "veri_test2.txt", lines[:1] + ["0 id10270/x6uYqmx31kE/00009.wav id10271/1gtz-CUIygI/00001.wav"])
    with pytest.raises(DataError, match=r"veri_test2.txt:2: utterance 'id10270-x6uYqmx31kE-00009' has no wav file"):
        prepare_voxceleb1(root, tmp_path / "data")
    (root / "list_test_hard2.txt").unlink()
    write_lines(root / "veri_test2.txt", lines)
    with pytest.raises(DataError, match="list_test_hard2.txt: not found"):
        prepare_voxceleb1(root, tmp_path / "data")


def _fake_uattr(folder: Path) -> Path:
    """A stand-in `uattr` that records its calls and leaves the files the next stage looks for."""
    script = folder / "uattr"
    script.parent.mkdir(parents=True)
    script.write_text(textwrap.dedent("""\
        #!/usr/bin/env bash
        echo "$*" >> "${UATTR_CALLS}"
        command=$1; shift
        declare -A opt
        data=()
        while [ $# -gt 0 ]; do
          case $1 in
            --data) shift; while [ $# -gt 0 ] && [[ $1 != --* ]]; do data+=("$1"); shift; done ;;
            --*) opt[$1]=${2:-}; shift 2 || shift ;;
            *) shift ;;
          esac
        done
        case ${command} in
          extract) for set in "${data[@]}"; do
                     mkdir -p "${opt[--out]}/speaker/$(basename "${set}")"
                     touch "${opt[--out]}/speaker/$(basename "${set}")/emb.scp"
                   done
                   echo '{"speaker": {"layers": [1], "weights": [1.0]}}' > "${opt[--out]}/layer_weights.json" ;;
          score-sv) mkdir -p "$(dirname "${opt[--out]}")"; touch "${opt[--out]}" ;;
        esac
        """))
    script.chmod(0o755)
    return folder


def test_run_sh_evaluates_an_external_model_with_and_without_asnorm(tmp_path):
    recipe = copy_recipe("voxceleb1", tmp_path / "checkout")
    model = tmp_path / "elsewhere" / "exp" / "sem_spk" / "model"
    model.mkdir(parents=True)
    (model / "config.yaml").write_text("upstream: {name: hf:x}\n")
    for name in ("voxceleb1_test", "voxceleb1", "voxceleb1_cohort"):  # stage 2's output, for the teacher rows
        (recipe / "dump" / "teacher" / "speaker" / name).mkdir(parents=True)
        (recipe / "dump" / "teacher" / "speaker" / name / "emb.scp").touch()
    calls = tmp_path / "calls.txt"
    fake = _fake_uattr(tmp_path / "fake_bin")
    done = run_recipe_script(
        recipe, "run.sh", "--stage", "3", "--stop_stage", "6", "--nj", "1", "--external_model", str(model),
        "--sv_cohort", "voxceleb1_cohort",
        env={"PATH": f"{fake}:/usr/bin:/bin", "UATTR_CALLS": str(calls)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = calls.read_text().splitlines()
    assert not [line for line in lines if line.startswith("train")]
    extract_calls = [line for line in lines if line.startswith("extract")]
    assert len(extract_calls) == 1  # every set in one call: the model is loaded once
    extracted = sorted(extract_calls[0].split("--data ")[1].split(" --")[0].split())
    assert extracted == ["data/voxceleb1", "data/voxceleb1_cohort", "data/voxceleb1_test"]
    assert all(f"--model {model}" in line for line in lines if line.startswith("extract"))
    scored = [line for line in lines if line.startswith("score-sv")]
    for system, emb_root in (("sem_spk", "exp/sem_spk/emb"), ("teacher", "dump/teacher")):
        plain = (f"score-sv --trials data/voxceleb1_test/trials_o --emb {emb_root}/speaker/voxceleb1_test/emb.scp "
                 f"--out exp/{system}/scores/sv_voxceleb1_test_trials_o/scores")
        normed = (f"score-sv --trials data/voxceleb1/trials_h --emb {emb_root}/speaker/voxceleb1/emb.scp "
                  f"--out exp/{system}/scores/sv_voxceleb1_trials_h_asnorm/scores --norm asnorm "
                  f"--cohort {emb_root}/speaker/voxceleb1_cohort/emb.scp "
                  f"--cohort-utt2spk data/voxceleb1_cohort/utt2spk --top-k 300")
        assert plain in scored and normed in scored
    assert len(scored) == 2 * 3 * 2  # two systems × three lists × with and without AS-norm
    metrics = [line for line in lines if line.startswith("compute-metrics") and "sem_spk" in line]
    assert any("--test-set voxceleb1_trials_e --condition sv-asnorm" in line for line in metrics)
    assert any(line.startswith("plot-layer-weights --weights exp/sem_spk/emb/layer_weights.json") for line in lines)
    assert any("--reference local/paper_results.json" in line for line in lines if line.startswith("results"))
