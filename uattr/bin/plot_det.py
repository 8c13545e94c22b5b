"""Plot the DET curves of one or more speaker-verification score files on one figure.

Probit-scaled axes (false-alarm rate vs miss rate), one curve per score file with its EER point marked. Labels
come from each score file's 4th column, or from --trials.

Example:
  uattr plot-det exp/joint/scores/sv_test/scores exp/teacher/scores/sv_test/scores --labels joint ECAPA \\
      --out exp/det_test.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

from uattr.errors import ConfigError, DataError
from uattr.scoring.metrics import error_rates
from uattr.scoring.plots import image_format, plot_det
from uattr.scoring.trials import attach_labels, read_scores, read_trials


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scores", nargs="+", help="score files (enroll test score [target|nontarget])")
    parser.add_argument("--labels", nargs="+", help="legend names, one per score file (default: file paths)")
    parser.add_argument("--trials", help="labelled trial list for score files without labels")
    parser.add_argument("--title", default="DET", help="figure title (default: DET)")
    parser.add_argument("--out", required=True, help="image file (.png, .pdf, .svg)")


def main(args: argparse.Namespace) -> None:
    image_format(args.out)
    names = args.labels or [str(Path(path)) for path in args.scores]
    if len(names) != len(args.scores):
        raise ConfigError(f"{len(args.scores)} score files but {len(names)} --labels")
    trials = read_trials(args.trials) if args.trials else None
    curves = []
    for name, path in zip(names, args.scores):
        scores = read_scores(path)
        if scores.labels is None:
            if trials is None:
                raise DataError(f"{path}: the score file has no labels; give --trials")
            scores = attach_labels(scores, trials)
        try:
            curves.append((name, error_rates(scores.scores, scores.labels)))
        except DataError as error:  # e.g. one class only: say which of the score files
            raise DataError(f"{path}: {error}") from None
    plot_det(curves, args.out, title=args.title)
