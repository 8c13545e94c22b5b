"""Metrics files and RESULTS.md: every score of an experiment directory in markdown tables, as ESPnet recipes do.

Metrics-file convention
-----------------------
``uattr compute-metrics --out F.json``, ``uattr score-retrieval --out F.json`` and ``uattr score-labels --out
F.json`` write one JSON object: the metrics, with the same keys as their ``--json`` output, plus ``"meta"``::

    {"eer": 0.91, "min_dcf": {"0.01": 0.1253, "0.05": ...}, "n_target": ..., "n_nontarget": ...,
     "meta": {"task": "sv", "system": "joint", "test_set": "voxceleb1_o", "condition": "sv", ...}}

``uattr results`` reads the files given with ``--metrics``, or else every ``EXP/**/scores/**/*.json``, and keys
each one by task / system / test set / condition:

- from ``meta`` where recorded (``--system``, ``--test-set``, ``--condition`` at scoring time);
- otherwise from the path ``<system>/scores/<test_set>/[<sub>/...]<name>.json``: system = the directory above
  ``scores``, test set = the first directory below it, condition = the rest of the path without ``.json``
  (a file named ``metrics.json`` adds no name);
- task from ``meta.task``, else ``sv`` when the metrics hold ``eer``, ``retrieval`` when they hold ``mrr`` and
  ``classification`` when they hold ``accuracy``.

A metric measured with scoring settings other than the defaults (minDCF's ``c_miss``/``c_fa``, xSIM's ``margin``
and ``xsim_k``, as ``meta`` records them) gets a column of its own, whose header names them: no table puts two
definitions of a metric in one column, nor averages them over runs.

RESULTS.md holds one table per task (rows: system / test set / condition; columns: metrics; empty cells "–"),
the rows of the parts of a test set when recorded (per language, per class, same- or cross-language trials), the environment (Python, numpy, torch and uattr versions, uattr
commit, CPU and GPU models; no host name) and the sha256 of each system's ``config.yaml``. Reference rows (the
paper's numbers, teachers) come from ``--reference`` files: JSON files of the same convention (one object or a
list; ``meta.source`` says where the numbers come from) join the tables; any other file (markdown) is copied
under "Reference results".

Given several experiment directories (runs of the same recipe with different seeds, say), ``uattr results``
aggregates them: one row per task / system / test set / condition, each cell the metric's mean ± its sample
standard deviation over the runs, and a column with the number of runs.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import hashlib
import json
import logging
import math
import os
import platform
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

import uattr
from uattr.errors import DataError
from uattr.fileio import PathLike, atomic_write, iter_table, read_json

logger = logging.getLogger(__name__)

EMPTY = "–"
METRICS_NAME = "metrics"
META_FIELDS = ("system", "test_set", "condition")
# Metrics of parts of a test set, each a row "<condition> [<part>]": per query language (score-retrieval
# --utt2lang), per class (score-labels --per-class), same- and cross-language trials (compute-metrics --utt2lang).
BREAKDOWNS = ("per_lang", "per_class", "per_condition")


def add_metrics_output_arguments(parser: argparse.ArgumentParser) -> None:
    """``--json``, ``--out`` and the labels ``--system``, ``--test-set``, ``--condition`` it records for ``uattr
    results``: the outputs of every command that writes a metrics file."""
    parser.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    parser.add_argument("--out", help="write the metrics (with meta) to this JSON file")
    group = parser.add_argument_group("labels recorded in the --out file (for uattr results)")
    group.add_argument("--system", help="system name (default: the directory above scores/)")
    group.add_argument("--test-set", help="test set name (default: the directory below scores/)")
    group.add_argument("--condition", help="condition, e.g. asnorm (default: the rest of the path)")


def write_metrics(
    path: PathLike, metrics: Mapping[str, Any], task: str, args: argparse.Namespace, **extra: Any
) -> None:
    """Write a metrics file: ``metrics`` plus ``"meta"`` (task, the labels given, and ``extra`` settings)."""
    meta: dict[str, Any] = {"task": task}
    meta.update({name: getattr(args, name) for name in META_FIELDS if getattr(args, name, None)})
    meta.update(extra)
    with atomic_write(path) as handle:
        json.dump({**metrics, "meta": meta}, handle, indent=2, ensure_ascii=False)
        handle.write("\n")


@dataclass
class ResultRow:
    """One table row: where it belongs and its (flattened) metric values; rows aggregated over several runs
    (:func:`aggregate_runs`) hold each metric's mean in ``values``, its sample standard deviation in ``spread``
    and the number of runs that had it in ``counts``."""

    task: str
    system: str
    test_set: str
    condition: str
    values: dict[str, float]
    source: str = ""
    config_dirs: tuple[Path, ...] = ()
    runs: int = 1
    spread: dict[str, float] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        """What identifies the row across runs: task, system, test set, condition, source."""
        return self.task, self.system, self.test_set, self.condition, self.source


# Keys whose values must be numbers (the metrics uattr writes); other non-numeric leaves are notes, and dropped.
_METRIC_KEY = re.compile(r"(eer|mrr|xsim|r@\d+|min_dcf/.+|n_\w+|accuracy|balanced_accuracy|macro_f1)")


def flatten_metrics(metrics: Mapping[str, Any], prefix: str = "", source: str = "metrics") -> dict[str, float]:
    """``{"min_dcf": {"0.01": x}}`` → ``{"min_dcf/0.01": x}``; non-numeric leaves (e.g. meta) are dropped.

    A metric that is not a finite number (NaN, infinity, a string where uattr writes a number) is a DataError
    naming ``source``: it would print as a value, or vanish from its table, or make a mean over runs NaN.
    """
    flat: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_metrics(value, f"{name}/", source))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                finite = math.isfinite(value)
            except OverflowError:  # an int too large for a float
                finite = False
            if not finite:
                raise DataError(f"{source}: '{name}' is {value!r:.40}, not a finite number")
            flat[name] = value
        elif _METRIC_KEY.fullmatch(name):
            raise DataError(f"{source}: '{name}' is {value!r:.40}, not a number")
    return flat


# Scoring settings recorded in a metrics file's meta that change what a metric means: (meta key, default, the
# metric keys it applies to, its name in a header). A metric measured with another value gets a column of its own
# (e.g. "minDCF (P_tar=0.01; C_miss=10)"), so no table puts it beside, or averages it with, the default's.
_SETTINGS = (
    ("c_miss", 1.0, "min_dcf/", "C_miss"),
    ("c_fa", 1.0, "min_dcf/", "C_fa"),
    ("margin", "ratio", "xsim", "margin"),
    ("xsim_k", 4, "xsim", "k"),
)


def _setting_qualifiers(meta: Mapping[str, Any]) -> dict[str, str]:
    """Metric key prefix → the non-default settings it was measured with, as ``name=value`` words."""
    qualifiers: dict[str, list[str]] = {}
    for meta_key, default, prefix, name in _SETTINGS:
        value = meta.get(meta_key, default)
        if value != default:
            qualifiers.setdefault(prefix, []).append(f"{name}={value:g}" if isinstance(value, float) else
                                                     f"{name}={value}")
    return {prefix: " ".join(words) for prefix, words in qualifiers.items()}


def _qualified(values: Mapping[str, float], qualifiers: Mapping[str, str]) -> dict[str, float]:
    """``values`` with each key measured under non-default settings followed by them: ``min_dcf/0.01 C_miss=10``."""
    qualified = {}
    for key, value in values.items():
        words = [words for prefix, words in qualifiers.items() if key.startswith(prefix)]
        qualified[" ".join([key, *words])] = value
    return qualified


def _infer_task(values: Mapping[str, float]) -> str:
    if "eer" in values:
        return "sv"
    if "mrr" in values:
        return "retrieval"
    if "accuracy" in values:
        return "classification"
    return "other"


def _scores_index(parts: Sequence[str]) -> int | None:
    """Position of the last ``scores`` directory in a file's path parts, if any."""
    positions = [i for i, part in enumerate(parts[:-1]) if part == "scores"]
    return positions[-1] if positions else None


def _labels_from_path(path: Path) -> dict[str, str]:
    """system / test_set / condition from ``<system>/scores/<test_set>/[...]<name>.json`` (see module doc)."""
    parts = path.with_suffix("").parts
    at = _scores_index(parts)
    name = [] if parts[-1] == METRICS_NAME else [parts[-1]]
    if at is None:  # not below a scores/ directory: its own directory names the system
        return {"system": path.parent.name, "test_set": "", "condition": "/".join(name)}
    directories = list(parts[at + 1 : -1])
    return {
        "system": parts[at - 1] if at > 0 else "",
        "test_set": directories.pop(0) if directories else "",
        "condition": "/".join(directories + name),
    }


def _system_dir(path: Path) -> Path | None:
    """The directory holding ``scores/`` (where the system's config.yaml lives)."""
    at = _scores_index(path.parts)
    return Path(*path.parts[:at]) if at else None


def _rows_of(data: Any, path: Path, reference: bool) -> list[ResultRow]:
    """The rows of one metrics object (plus a row per part of its breakdowns)."""
    if not isinstance(data, Mapping):
        raise DataError(f"{path}: expected a JSON object of metrics, got {type(data).__name__}")
    meta = data.get("meta", {})
    if not isinstance(meta, Mapping):
        raise DataError(f"{path}: 'meta' must be an object")
    labels = {} if reference else _labels_from_path(path)
    labels.update({name: str(meta[name]) for name in META_FIELDS if meta.get(name)})
    metrics = {key: value for key, value in data.items() if key != "meta" and key not in BREAKDOWNS}
    values = flatten_metrics(metrics, source=str(path))
    if not values:
        raise DataError(f"{path}: no numeric metric in the file")
    task = str(meta.get("task") or _infer_task(values))
    qualifiers = _setting_qualifiers(meta)
    values = _qualified(values, qualifiers)
    source = str(meta.get("source") or ("reference" if reference else ""))
    system_dir = None if reference else _system_dir(path)
    base = ResultRow(
        task, labels.get("system", ""), labels.get("test_set", ""), labels.get("condition", ""), values, source,
        (system_dir,) if system_dir is not None else (),
    )
    rows = [base]
    for breakdown in BREAKDOWNS:
        parts = data.get(breakdown, {})
        if not isinstance(parts, Mapping) or not all(isinstance(value, Mapping) for value in parts.values()):
            raise DataError(f"{path}: \"{breakdown}\" must map each part to an object of metrics")
        for part, part_metrics in sorted(parts.items()):
            condition = f"{base.condition} [{part}]" if base.condition else f"[{part}]"
            part_values = _qualified(flatten_metrics(part_metrics, source=f"{path} [{part}]"), qualifiers)
            rows.append(ResultRow(task, base.system, base.test_set, condition, part_values, source))
    return rows


def find_metric_files(exp_dir: PathLike) -> list[Path]:
    """Every ``**/scores/**/*.json`` below the experiment directory, sorted."""
    pattern = os.path.join(glob.escape(str(exp_dir)), "**", "scores", "**", "*.json")
    return sorted({Path(p) for p in glob.glob(pattern, recursive=True)})


def collect_rows(metric_files: Iterable[PathLike], reference_files: Iterable[PathLike] = ()) -> list[ResultRow]:
    """Rows of every metrics file, then of every JSON reference file."""
    rows: list[ResultRow] = []
    for path in map(Path, metric_files):
        rows.extend(_rows_of(read_json(path), path, reference=False))
    for path in map(Path, reference_files):
        data = read_json(path)
        for item in data if isinstance(data, list) else [data]:
            rows.extend(_rows_of(item, path, reference=True))
    return rows


def require_distinct_rows(rows: Sequence[ResultRow], run: str) -> None:
    """Two metrics files of one run that give the same row would show as two rows no reader can tell apart."""
    seen: set[tuple[str, str, str, str, str]] = set()
    for row in rows:
        if row.key in seen:
            labels = " / ".join(part for part in row.key if part)
            raise DataError(f"{run}: two metrics files give the row {labels}; label them apart (meta.condition)")
        seen.add(row.key)


def warn_unmatched_references(measured: Sequence[ResultRow], references: Sequence[ResultRow]) -> None:
    """A reference row is shown beside the measured rows of its task and test set; one whose test set no
    measured row has (a misspelt name, or a set this run did not score) gets a table of its own, so say so."""
    measured_sets = {(row.task, row.test_set) for row in measured}
    if not measured_sets:
        return
    unmatched = {
        (row.task, row.test_set, row.source) for row in references if (row.task, row.test_set) not in measured_sets
    }
    for task, test_set, source in sorted(unmatched):
        known = sorted(name for of_task, name in measured_sets if of_task == task)
        logger.warning(
            "reference rows of %s: no measured %s row has the test set %r (measured: %s); they get a table of their"
            " own", source, task, test_set, ", ".join(known) or "none",
        )


def aggregate_runs(runs: Mapping[str, Sequence[ResultRow]]) -> list[ResultRow]:
    """Rows of several runs of the same experiment (e.g. one per seed, keyed by the run's name) → one row per
    task / system / test set / condition / source: each metric's mean, sample standard deviation and count.

    Single runs of a model trained from scratch can differ by more than the changes they compare (the mini
    recipe's README measures it), so results are reported over seeds; a row that only some runs have (e.g. an
    untrained baseline scored once) keeps the runs it has, and says how many."""
    groups: dict[tuple[str, str, str, str, str], list[ResultRow]] = {}
    for run, rows in runs.items():
        require_distinct_rows(rows, run)
        for row in rows:
            groups.setdefault(row.key, []).append(row)
    aggregated = []
    for members in groups.values():
        first = members[0]
        row = ResultRow(first.task, first.system, first.test_set, first.condition, {}, first.source,
                        tuple(path for member in members for path in member.config_dirs), len(members))
        for key in sorted({key for member in members for key in member.values}):
            values = np.array([member.values[key] for member in members if key in member.values], dtype=float)
            row.values[key] = float(values.mean())
            # Equal values give exactly 0 (std's rounding would show "± 0.0000" for a constant count or metric).
            row.spread[key] = float(values.std(ddof=1)) if np.ptp(values) > 0 else 0.0
            row.counts[key] = len(values)
        aggregated.append(row)
    return aggregated


# Column order and headers: (key prefix, header, number format); other keys follow alphabetically.
_COLUMNS = (
    ("eer", "EER (%)", "{:.2f}"),
    ("min_dcf/", "minDCF (P_tar={})", "{:.4f}"),
    ("r@", "R@{} (%)", "{:.2f}"),
    ("mrr", "MRR", "{:.4f}"),
    ("xsim", "xSIM error (%)", "{:.2f}"),
    ("n_target", "#target", "{:d}"),
    ("n_nontarget", "#nontarget", "{:d}"),
    ("n_query", "#query", "{:d}"),
    ("n_gallery", "#gallery", "{:d}"),
    ("accuracy", "accuracy (%)", "{:.2f}"),
    ("balanced_accuracy", "balanced accuracy (%)", "{:.2f}"),
    ("macro_f1", "macro F1 (%)", "{:.2f}"),
    ("n_utterances", "#utterances", "{:d}"),
    ("n_classes", "#classes", "{:d}"),
)


def _column_rank(key: str) -> tuple[int, float, str]:
    """Where a metric's column goes: by ``_COLUMNS``, then by its number (P_tar, k), then by its settings."""
    metric = key.split(" ", 1)[0]  # without the settings of _qualified
    for position, (prefix, _, _) in enumerate(_COLUMNS):
        if metric == prefix or (prefix.endswith(("/", "@")) and metric.startswith(prefix)):
            suffix = metric[len(prefix) :]
            try:
                return position, float(suffix or 0), key
            except ValueError:
                return position, 0.0, key
    return len(_COLUMNS), 0.0, key


def _header(key: str) -> str:
    metric, _, settings = key.partition(" ")
    position = _column_rank(key)[0]
    if position == len(_COLUMNS):
        return key
    prefix, header, _ = _COLUMNS[position]
    header = header.format(metric[len(prefix) :]) if "{}" in header else header
    if settings:  # inside the header's parentheses: "minDCF (P_tar=0.01; C_miss=10, C_fa=1)"
        header = f"{header[:-1]}; {settings.replace(' ', ', ')})"
    return header


def _number(key: str, value: float) -> str:
    position = _column_rank(key)[0]
    style = _COLUMNS[position][2] if position < len(_COLUMNS) else "{:.4g}"
    if style == "{:d}":  # a count; its mean and spread over runs need not be whole
        return str(int(value)) if float(value).is_integer() else f"{value:.1f}"
    return style.format(value)


def _cell(row: ResultRow, key: str) -> str:
    """The value; ``mean ± sd`` where it varies over runs, and ``(n runs)`` where fewer runs than the row's had it."""
    if key not in row.values:
        return EMPTY
    text = _number(key, row.values[key])
    if row.spread.get(key):
        spread = _number(key, row.spread[key])
        if float(spread) == 0:  # a spread below the column's precision would read as none: two significant digits
            spread = f"{row.spread[key]:.2g}"
        text += f" ± {spread}"
    count = row.counts.get(key, row.runs)
    if count < row.runs:
        text += f" ({count} run{'s' if count > 1 else ''})"
    return text


def _table(rows: Sequence[ResultRow], aggregated: bool) -> list[str]:
    """One markdown table of rows that share a task and a test set (so the test set is the section's title);
    when runs are aggregated, a column gives each row's number of runs."""
    keys = sorted({key for row in rows for key in row.values}, key=_column_rank)
    header = "| system | condition | " + ("runs | " if aggregated else "")
    lines = [
        header + " | ".join(markdown_cell(_header(key)) for key in keys) + " |",
        "|---|---|" + ("---:|" if aggregated else "") + "---:|" * len(keys),
    ]
    for row in rows:
        system = f"{row.system} ({row.source})" if row.source else row.system
        cells = [markdown_cell(system) or EMPTY, markdown_cell(row.condition) or EMPTY]
        cells += [EMPTY if row.source else str(row.runs)] if aggregated else []  # a reference is no run
        cells += [_cell(row, key) for key in keys]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _link_text(text: str) -> str:
    return text.replace("[", "\\[").replace("]", "\\]")


def _link_target(path: str) -> str:
    """A link's target; one with spaces or parentheses in angle brackets, as CommonMark reads it whole."""
    return f"<{path}>" if any(char in path for char in " ()") else path


def markdown_cell(text: str) -> str:
    """``text`` as one table cell: a ``|`` would end the cell and a line break the row."""
    return " ".join(text.split()).replace("|", "\\|")


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return EMPTY


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _command_output(command: Sequence[str]) -> str:
    """First line of a command's output, or "" when it is unavailable (no GPU driver, not a git checkout)."""
    if shutil.which(command[0]) is None:
        return ""
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip().splitlines()[0] if done.stdout.strip() else ""


def environment() -> dict[str, str]:
    """Versions and hardware the numbers were measured with (deliberately without the host name)."""
    package_dir = str(Path(uattr.__file__).resolve().parent)
    gpu = _command_output(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"])
    return {
        "date (UTC)": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "uattr": uattr.__version__,
        "uattr commit": _command_output(["git", "-C", package_dir, "rev-parse", "--short", "HEAD"]) or EMPTY,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "torch": _version("torch"),
        "os": f"{platform.system()} {platform.release()}",
        "cpu": f"{_cpu_model()} ({os.cpu_count()} logical cores)",
        "gpu": gpu or "none",
    }


def config_hashes(rows: Iterable[ResultRow]) -> dict[str, tuple[str, str]]:
    """system → (``<system dir>/config.yaml``, first 12 hex digits of its sha256, comma-separated over the runs
    whose configs differ) where the file exists."""
    # Every test set's row of a system names the same directories: read each config once.
    configs = dict.fromkeys((row.system, directory / "config.yaml") for row in rows for directory in row.config_dirs)
    digests: dict[str, list[str]] = {}
    shown: dict[str, str] = {}
    for system, config in configs:
        if not config.is_file():
            continue
        digest = hashlib.sha256(config.read_bytes()).hexdigest()[:12]
        shown.setdefault(system, f"{config.parent.name}/{config.name}")  # no absolute path: RESULTS.md is shared
        if digest not in digests.setdefault(system, []):
            digests[system].append(digest)
    return {system: (shown[system], ", ".join(found)) for system, found in digests.items()}


def read_stage_times(path: PathLike) -> list[tuple[str, str, str]]:
    """``stage<TAB>name<TAB>seconds`` lines (written by the recipe, or by hand) as (stage, name, seconds); the
    seconds may have a fraction (``12.5``), and are shown as written."""
    times = []
    for number, stage, rest in iter_table(path):
        fields = rest.split()
        if len(fields) != 2 or not _is_duration(fields[1]):
            raise DataError(f"{path}:{number}: expected 'stage name seconds' (seconds ≥ 0), got {stage} {rest!r}")
        times.append((stage, fields[0], fields[1]))
    return times


def _is_duration(text: str) -> bool:
    try:
        seconds = float(text)
    except ValueError:
        return False
    return math.isfinite(seconds) and seconds >= 0


_TASK_TITLES = {"sv": "Speaker verification", "retrieval": "Retrieval", "classification": "Classification"}


def render_results(
    rows: Sequence[ResultRow],
    title: str = "RESULTS",
    reference_texts: Sequence[tuple[str, str]] = (),
    stage_times: Sequence[tuple[str, str, str]] = (),
    notes: str = "",
    figures: Sequence[tuple[str, str]] = (),
    runs: Sequence[str] = (),
) -> str:
    """The markdown of RESULTS.md: notes, the runs aggregated (if several), environment, one table per task and
    test set (measured rows first, then reference rows), reference texts, figures (``(caption, relative path)``)
    and stage times."""
    lines = [f"# {title}", ""]
    if notes.strip():
        lines += [notes.strip(), ""]
    if len(runs) > 1:
        names = ", ".join(f"`{run}`" for run in runs)
        lines += [
            (
                f"Each number is the mean ± the sample standard deviation over {len(runs)} runs ({names}); "
                "the column *runs* says how many had the row."
            ),
            "",
        ]
    lines += ["## Environment", ""]
    lines += [f"- {name}: {value}" for name, value in environment().items()]
    hashes = config_hashes(rows)
    if hashes:
        lines += ["", "## Systems", "", "| system | config | sha256 |", "|---|---|---|"]
        lines += [f"| {markdown_cell(system)} | {markdown_cell(str(path))} | {digest} |"
                  for system, (path, digest) in sorted(hashes.items())]
    known = list(_TASK_TITLES)
    tasks = sorted({row.task for row in rows}, key=lambda task: (known.index(task) if task in known else 99, task))
    for task in tasks:
        lines += ["", f"## {_TASK_TITLES.get(task, task)}"]
        of_task = [row for row in rows if row.task == task]
        for test_set in sorted({row.test_set for row in of_task}, key=lambda name: name or ""):
            members = sorted(
                (row for row in of_task if row.test_set == test_set),
                key=lambda row: (bool(row.source), row.system, row.condition),
            )
            lines += ["", f"### {markdown_cell(test_set) or EMPTY}", ""] + _table(members, aggregated=len(runs) > 1)
    if not rows:
        lines += ["", "No metrics file found."]
    for path, text in reference_texts:
        lines += ["", f"## Reference results ({Path(path).name})", "", text.strip()]
    if figures:
        lines += ["", "## Figures"]
        for caption, path in figures:
            lines += ["", f"![{_link_text(caption)}]({_link_target(path)})", "", f"*{caption}*"]
    if stage_times:
        lines += ["", "## Stage times", "", "| stage | name | seconds |", "|---|---|---:|"]
        lines += [f"| {stage} | {name} | {seconds} |" for stage, name, seconds in stage_times]
    return "\n".join(lines) + "\n"
