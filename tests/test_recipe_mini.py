"""The mini recipe at toy scale through every stage (what `make demo` runs, shrunk): espeak-ng voices in two
languages, a few units, a few training steps per system, and a language attribute added to the joint model as a user
would add one; RESULTS.md must have a number in every cell; another seed aggregates with the first."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "egs" / "mini" / "uattr1"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (make test installs it)"),
]


def copy_recipe(target: Path) -> Path:
    """The recipe's own files in ``target``, its links pointing back at this checkout's TEMPLATE and utils."""
    shutil.copytree(RECIPE / "conf", target / "conf")
    shutil.copytree(RECIPE / "local", target / "local")
    shutil.copy2(RECIPE / "run.sh", target / "run.sh")
    for name, source in [("uattr.sh", "egs/TEMPLATE/uattr1/uattr.sh"), ("path.sh", "egs/TEMPLATE/uattr1/path.sh"),
                         ("cmd.sh", "egs/TEMPLATE/uattr1/cmd.sh"), ("utils", "utils")]:
        (target / name).symlink_to(REPO / source)
    return target


def is_separator(line: str) -> bool:
    return set(line) <= set("|-: ")


def table_rows(markdown: str) -> list[list[str]]:
    """Data rows of every markdown table (header and separator rows left out)."""
    lines = markdown.splitlines()
    rows = []
    for index, line in enumerate(lines):
        if not line.startswith("|") or is_separator(line):
            continue
        if index + 1 < len(lines) and lines[index + 1].startswith("|") and is_separator(lines[index + 1]):
            continue  # a header row
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def add_language_attribute(recipe: Path) -> None:
    """A third attribute for the joint model, as a user adds one: language identification from utt2lang (the label
    tables conf/teachers.txt lists, a `label` expert) and its classification in stage 5 (--label_attrs)."""
    config = yaml.safe_load((recipe / "conf" / "train_joint.yaml").read_text())
    config["attributes"]["language"] = {"expert": "label", "loss": {"name": "ce"},
                                        "branch": {"layer_start": 3, "layer_end": 4, "normalize": False}}
    (recipe / "conf" / "train_joint.yaml").write_text(yaml.safe_dump(config))


def test_toy_recipe_runs_every_stage_and_fills_results(tmp_path: Path) -> None:
    recipe = copy_recipe(tmp_path / "uattr1")
    add_language_attribute(recipe)
    env = {**os.environ, "MAIN_ROOT": str(REPO), "HF_HUB_OFFLINE": "1"}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"  # this interpreter's uattr
    command = ["./run.sh", "--data_opts", "--toy true", "--label_attrs", "language:utt2lang",
               "--train_opts", "--trainer.max_steps 2 --trainer.valid_every 2 --data.num_workers 0"]
    result = subprocess.run(command, cwd=recipe, env=env, capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    results = (recipe / "exp" / "RESULTS.md").read_text()
    for system in ("joint", "semantic", "speaker", "joint_s3prl_wav2vec2", "baseline", "baseline_s3prl_wav2vec2",
                   "teacher"):
        assert f"| {system} |" in results, system
    for section in ("## Speaker verification", "### dev", "### test", "## Retrieval", "### test_s2t_unseen",
                    "### test_s2s_seen", "## Figures", "## Stage times"):
        assert section in results, section
    rows = table_rows(results)
    metric_rows = [row for row in rows if len(row) > 3 and row[1] in ("sv", "retrieval", "language")]
    assert len(metric_rows) > 20
    assert "## Classification" in results
    assert [row[0] for row in metric_rows if row[1] == "language"] == ["joint", "joint"]  # dev and test
    for row in metric_rows:
        for cell in row[2:]:
            assert re.fullmatch(r"-?\d+(\.\d+)?", cell), f"not a number in {row}"
    stages = [row[1] for row in rows if len(row) == 3 and row[0].isdigit()]
    assert stages == ["data", "teachers", "train", "extract", "score", "report"]
    assert (recipe / "exp" / "joint" / "layer_weights.png").is_file()
    assert (recipe / "exp" / "det_test.png").is_file()

    # Every stage resumes: a second run finds everything done and changes no result.
    again = subprocess.run(command, cwd=recipe, env=env, capture_output=True, text=True, timeout=1800)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "trained model exists" in again.stdout + again.stderr

    # Another seed of one system, aggregated with the first run's (local/run_seeds.sh).
    seeds = ["local/run_seeds.sh", "--systems", "joint", "--train_opts",
             "--trainer.max_steps 2 --trainer.valid_every 2 --data.num_workers 0", "1"]
    seeded = subprocess.run(seeds, cwd=recipe, env=env, capture_output=True, text=True, timeout=1800)
    assert seeded.returncode == 0, seeded.stdout[-3000:] + seeded.stderr[-3000:]
    aggregated = (recipe / "exp" / "RESULTS_seeds.md").read_text()
    assert "over 2 runs (`exp`, `exp_seed1`)" in aggregated
    by_system = {row[0]: row for row in table_rows(aggregated) if len(row) > 4 and row[1] == "sv"}
    assert by_system["joint"][2] == "2" and by_system["baseline"][2] == "1" and by_system["speaker"][2] == "1"
    assert re.fullmatch(r"\d+\.\d+( ± \d+\.\d+)?", by_system["joint"][3]), by_system["joint"]
