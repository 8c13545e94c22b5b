"""The TEMPLATE's stage 3 with --train_jobs: systems train side by side, and a failed one stops the recipe."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

from corpus_layouts import copy_recipe, run_recipe_script


def _fake_train(folder: Path) -> Path:
    """A stand-in `uattr` whose `train` logs its start and end, sleeps, and saves a model unless the exp is 'broken'.
    The systems named in $RENDEZVOUS each wait (up to 10 s) until all of them have started: run side by side, they
    overlap however loaded the machine is; run one after the other, the first ends before the next starts."""
    script = folder / "uattr"
    folder.mkdir(parents=True)
    script.write_text(textwrap.dedent("""\
        #!/usr/bin/env bash
        [ "$1" = train ] || exit 0
        while [ $# -gt 0 ]; do [ "$1" = --exp-dir ] && exp=$2; shift; done
        echo "start $(basename "${exp}") ${OMP_NUM_THREADS:-unset} $(date +%s.%N)" >> "${UATTR_CALLS}"
        if [[ " ${RENDEZVOUS:-} " == *" $(basename "${exp}") "* ]]; then
          for _ in $(seq 100); do
            waiting=0
            for system in ${RENDEZVOUS}; do grep -q "^start ${system} " "${UATTR_CALLS}" || waiting=1; done
            [ "${waiting}" = 0 ] && break
            sleep 0.1
          done
        fi
        sleep 0.3
        echo "end $(basename "${exp}") $(date +%s.%N)" >> "${UATTR_CALLS}"
        [ "$(basename "${exp}")" = broken ] && exit 3
        mkdir -p "${exp}/model" && touch "${exp}/model/model.safetensors"
        """))
    script.chmod(0o755)
    return folder


def _run_stage3(tmp_path: Path, systems: str, rendezvous: str = "") -> tuple[int, str, list[list[str]]]:
    recipe = copy_recipe("voxceleb1", tmp_path / "checkout")
    for system in systems.split():  # checked before stage 3 starts; the fake train does not read them
        (recipe / "conf" / f"train_{system}.yaml").write_text("{}\n")
    calls = tmp_path / "calls.txt"
    calls.touch()
    fake = _fake_train(tmp_path / "fake_bin")
    done = run_recipe_script(
        recipe, "run.sh", "--stage", "3", "--stop_stage", "3", "--systems", systems, "--train_jobs", "2",
        env={"PATH": f"{fake}:/usr/bin:/bin", "UATTR_CALLS": str(calls), "RENDEZVOUS": rendezvous},
    )
    return done.returncode, done.stdout + done.stderr, [line.split() for line in calls.read_text().splitlines()]


def test_systems_train_two_at_a_time_with_a_share_of_the_threads_each(tmp_path: Path) -> None:
    status, output, calls = _run_stage3(tmp_path, "a b c", rendezvous="a b")
    assert status == 0, output
    starts = {call[1]: float(call[3]) for call in calls if call[0] == "start"}
    ends = {call[1]: float(call[2]) for call in calls if call[0] == "end"}
    assert sorted(starts) == ["a", "b", "c"]
    assert starts["b"] < ends["a"] and starts["a"] < ends["b"]  # a and b overlap
    assert starts["c"] >= min(ends["a"], ends["b"])  # c waits for a free slot
    threads = {call[2] for call in calls if call[0] == "start"}
    assert threads == {str(max(len(os.sched_getaffinity(0)) // 2, 1))}


def test_a_failed_system_stops_the_recipe_and_is_named(tmp_path: Path) -> None:
    status, output, calls = _run_stage3(tmp_path, "a broken c")
    assert status != 0
    assert "broken: training failed" in output
    assert "see the end of exp/broken/train.log and exp/broken/train.launch.log" in output
    assert sorted(call[1] for call in calls if call[0] == "end") == ["a", "broken", "c"]  # the others finish
    assert "Stage 3 (train) done" not in output
