"""Check a Kaldi data dir; print one line per problem and exit non-zero if there is any.

Each problem is printed as FILE:LINE: id 'X': what is wrong. Checked: ids sorted (C locale), unique, not empty
and free of whitespace; the number of fields on each line; utt2spk and spk2utt agree; every id of every
per-utterance file is an utterance of segments (or of wav.scp when there is no segments file) and every
utterance is in every per-utterance file; segments name recordings of wav.scp, start >= 0, start < end
(end -1 = to the end of the recording), and hold samples of the recording, ending at most 0.5 s past it;
durations are positive numbers;
every recording's audio header is readable and has the expected sample rate (ark:offset and pipe entries
are decoded to check them; skip all audio checks with --no-audio).
A clean dir prints a one-line summary and exits 0.
"""

from __future__ import annotations

import argparse

from uattr.data.validate import validate_data_dir


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("data_dir", help="the data dir to check")
    parser.add_argument("--no-audio", "--no-wav", action="store_true",
                        help="do not open the audio (no header/rate checks)")
    parser.add_argument("--no-feats", "--no-text", action="store_true", dest="ignored_kaldi_flags",
                        help="accepted as Kaldi's validate_data_dir.sh takes them: a uattr data dir has no features "
                             "and its text is optional")
    parser.add_argument(
        "--sample-rate", type=_count, default=16000, help="expected sample rate in Hz; 0 accepts any (default 16000)"
    )
    parser.add_argument("--max-report", type=_count, default=50, help="print at most this many problems (default 50)")


def main(args: argparse.Namespace) -> int:
    report = validate_data_dir(args.data_dir, check_audio=not args.no_audio, sample_rate=args.sample_rate)
    if report.ok:
        print(report.summary())
        return 0
    for problem in report.problems[: args.max_report]:
        print(problem)
    hidden = len(report.problems) - args.max_report
    if hidden > 0:
        print(f"... and {hidden} more problems")
    print(f"{args.data_dir}: {len(report.problems)} problem(s) found")
    return 1
