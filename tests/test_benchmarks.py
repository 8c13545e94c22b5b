"""The benchmark scripts run (smallest sizes): they call the library's internals, which a change could break."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"

CASES = {
    "train_step.py": ["--device", "cpu", "--preset", "tiny", "--batch-size", "2", "--utterances", "10", "--steps",
                      "1", "--warmup", "1", "--num-workers", "0"],
    "branch.py": ["--repeats", "1", "--layers", "2", "--dim", "32", "--batch", "2", "--seconds", "1",
                  "--encoder-hidden", "32", "--encoder-layers", "2"],
    "data_scaling.py": ["--utterances", "400", "--parts", "2", "--factor", "2"],
    "extract.py": ["--device", "cpu", "--preset", "tiny", "--amp", "bf16", "--utterances", "6", "--repeats", "1",
                   "--num-workers", "0"],
    "scoring.py": ["--sv-sizes", "1000", "--speechbrain-sizes", "200", "--speechbrain-dcf-max", "200",
                   "--retrieval-sizes", "200", "--dim", "16", "--repeat", "1"],
}
# The part of each report that compares with the baseline measured in the same run.
EXPECTED = {
    "train_step.py": "on-the-fly / cached step time",
    "branch.py": "| one joint pass / two models |",
    "scoring.py": "| queries × gallery | uattr (s) |",
    "data_scaling.py": "| step | grows with | base | base (s) | large | large (s) | growth |",
    "extract.py": "| batched by duration, bf16 autocast |",
}


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(CASES))
def test_each_benchmark_runs_at_its_smallest_size(script: str, tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), *CASES[script]],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert EXPECTED[script] in result.stdout
    assert not list(tmp_path.iterdir())  # nothing written into the working directory
