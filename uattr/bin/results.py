"""Collect an experiment directory's metrics files into RESULTS.md tables (as ESPnet recipes do).

Reads --metrics FILE... or every EXP/**/scores/**/*.json (written with --out by compute-metrics and
score-retrieval), and writes one table per task (speaker verification, retrieval): one row per system / test
set / condition, one column per metric, "–" where a row lacks a metric. Rows are labelled from the files'
"meta" (--system/--test-set/--condition) or from their path <system>/scores/<test_set>/[...]<name>.json.
Also notes the environment (versions, CPU/GPU; no host name) and each system's config.yaml sha256.
--reference adds rows from JSON files of the same convention ("meta": {"system", "test_set", "task",
"source"}), or copies a markdown file under "Reference results"; --stage-times adds the recipe's stage times.
Several --exp-dir (runs of the same recipe, e.g. one per seed) give each metric's mean ± sample standard
deviation over the runs, with the number of runs per row.

Examples:
  uattr results --exp-dir exp --out exp/RESULTS.md --reference conf/paper_results.json
  uattr results --exp-dir exp exp_seed1 exp_seed2 --out exp/RESULTS_seeds.md
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from uattr.errors import DataError
from uattr.fileio import atomic_write, read_text
from uattr.scoring.results import (
    ResultRow,
    aggregate_runs,
    collect_rows,
    find_metric_files,
    read_stage_times,
    render_results,
    require_distinct_rows,
    warn_unmatched_references,
)

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--exp-dir", required=True, nargs="+",
                        help="experiment directory (searched for scores/**/*.json); several: mean ± sd over them")
    parser.add_argument("--out", help="markdown file to write (default: EXP/RESULTS.md; required with several)")
    parser.add_argument("--metrics", nargs="+", help="metrics files to use instead of searching EXP (one EXP only)")
    parser.add_argument("--reference", nargs="+", default=[], help="reference rows: JSON metrics files or markdown")
    parser.add_argument("--stage-times", help="'stage name seconds' lines recorded by the recipe")
    parser.add_argument("--title", help="document title (default: RESULTS of EXP)")
    parser.add_argument("--notes", help="markdown file shown under the title (what was run, and how to read it)")
    parser.add_argument("--figure", nargs=2, action="append", default=[], metavar=("CAPTION", "IMAGE"),
                        help="an image to show (path relative to the current directory); repeatable")


def _rows_of_run(exp_dir: Path, metrics: list[str] | None = None) -> list[ResultRow]:
    """The rows of one run's metrics files (``metrics``, else those under ``exp_dir``); none is an error, or a
    RESULTS.md of reference rows alone would look like a result."""
    rows = collect_rows(metrics or find_metric_files(exp_dir))
    if not rows:
        raise DataError(f"{exp_dir}: no metrics file under */scores/ (has the recipe scored it?)")
    return rows


def _measured_rows(args: argparse.Namespace) -> list[ResultRow]:
    """The rows of the one experiment directory, or of several aggregated."""
    exp_dirs = [Path(path) for path in args.exp_dir]
    for exp_dir in exp_dirs:
        if not exp_dir.is_dir():
            raise DataError(f"{exp_dir}: no such experiment directory")
    if len(exp_dirs) == 1:
        rows = _rows_of_run(exp_dirs[0], args.metrics)
        require_distinct_rows(rows, str(exp_dirs[0]))
        return rows
    if args.metrics:
        raise DataError("--metrics names the files of one experiment directory; give one --exp-dir with it")
    if len({exp_dir.resolve() for exp_dir in exp_dirs}) < len(exp_dirs):
        raise DataError(f"--exp-dir: a directory is named twice in {' '.join(args.exp_dir)}")
    return aggregate_runs({str(exp_dir): _rows_of_run(exp_dir) for exp_dir in exp_dirs})


def main(args: argparse.Namespace) -> None:
    if len(args.exp_dir) > 1 and not args.out:
        raise DataError("--out is required with several --exp-dir (no one experiment directory owns the result)")
    measured = _measured_rows(args)
    json_references = [path for path in args.reference if Path(path).suffix == ".json"]
    text_references = []
    for path in args.reference:
        if Path(path).suffix != ".json":
            text_references.append((path, read_text(path, "reference file")))
    references = collect_rows([], json_references)
    warn_unmatched_references(measured, references)
    rows = measured + references
    stage_times = []
    if args.stage_times and Path(args.stage_times).is_file():
        stage_times = read_stage_times(args.stage_times)
    elif args.stage_times:  # a run whose stages were timed elsewhere (or not at all) still gets its tables
        logger.warning("%s: no such stage-times file; RESULTS.md will list no stage times", args.stage_times)
    out = Path(args.out) if args.out else Path(args.exp_dir[0]) / "RESULTS.md"
    notes = read_text(args.notes, "notes file") if args.notes else ""
    figures = []
    for caption, image in args.figure:
        if not Path(image).is_file():
            raise DataError(f"{image}: no such figure")
        figures.append((caption, os.path.relpath(image, out.parent)))
    with atomic_write(out) as handle:
        handle.write(render_results(rows, args.title or f"RESULTS of {' '.join(args.exp_dir)}", text_references,
                                    stage_times, notes, figures, runs=args.exp_dir))
    logger.info("%s: %d rows from %d run(s)", out, len(rows), len(args.exp_dir))
