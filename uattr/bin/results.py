"""Collect an experiment directory's metrics files into RESULTS.md tables (as ESPnet recipes do).

Reads --metrics FILE... or every EXP/**/scores/**/*.json (written with --out by compute-metrics and
score-retrieval), and writes one table per task (speaker verification, retrieval): one row per system / test
set / condition, one column per metric, "–" where a row lacks a metric. Rows are labelled from the files'
"meta" (--system/--test-set/--condition) or from their path <system>/scores/<test_set>/[...]<name>.json.
Also notes the environment (versions, CPU/GPU; no host name) and each system's config.yaml sha256.
--reference adds rows from JSON files of the same convention ("meta": {"system", "test_set", "task",
"source"}), or copies a markdown file under "Reference results"; --stage-times adds the recipe's stage times.

Example:
  uattr results --exp-dir exp --out exp/RESULTS.md --reference conf/paper_results.json
"""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from uattr.errors import DataError
from uattr.fileio import atomic_write
from uattr.scoring.results import collect_rows, find_metric_files, read_stage_times, render_results

logger = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--exp-dir", required=True, help="experiment directory (searched for scores/**/*.json)")
    parser.add_argument("--out", help="markdown file to write (default: EXP/RESULTS.md)")
    parser.add_argument("--metrics", nargs="+", help="metrics files to use instead of searching EXP")
    parser.add_argument("--reference", nargs="+", default=[], help="reference rows: JSON metrics files or markdown")
    parser.add_argument("--stage-times", help="'stage name seconds' lines recorded by the recipe")
    parser.add_argument("--title", help="document title (default: RESULTS of EXP)")
    parser.add_argument("--notes", help="markdown file shown under the title (what was run, and how to read it)")
    parser.add_argument("--figure", nargs=2, action="append", default=[], metavar=("CAPTION", "IMAGE"),
                        help="an image to show (path relative to the current directory); repeatable")


def main(args: argparse.Namespace) -> None:
    exp_dir = Path(args.exp_dir)
    if not exp_dir.is_dir():
        raise DataError(f"{exp_dir}: no such experiment directory")
    metric_files = args.metrics or find_metric_files(exp_dir)
    json_references = [path for path in args.reference if Path(path).suffix == ".json"]
    text_references = []
    for path in args.reference:
        if Path(path).suffix != ".json":
            if not Path(path).is_file():
                raise DataError(f"{path}: no such reference file")
            text_references.append((path, Path(path).read_text(encoding="utf-8")))
    rows = collect_rows(metric_files, json_references)
    stage_times = read_stage_times(args.stage_times) if args.stage_times and Path(args.stage_times).is_file() else []
    out = Path(args.out) if args.out else exp_dir / "RESULTS.md"
    notes = ""
    if args.notes:
        if not Path(args.notes).is_file():
            raise DataError(f"{args.notes}: no such notes file")
        notes = Path(args.notes).read_text(encoding="utf-8")
    figures = []
    for caption, image in args.figure:
        if not Path(image).is_file():
            raise DataError(f"{image}: no such figure")
        figures.append((caption, os.path.relpath(image, out.parent)))
    with atomic_write(out) as handle:
        handle.write(render_results(rows, args.title or f"RESULTS of {exp_dir}", text_references, stage_times,
                                    notes, figures))
    logger.info("%s: %d rows from %d metrics file(s)", out, len(rows), len(metric_files))
