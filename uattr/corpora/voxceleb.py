"""VoxCeleb1 for speaker verification: data dirs, the official O/E/H trial lists in Kaldi format, an AS-norm cohort.

Public layout (the dev and test zips both unpack to ``wav/``; unpacked side by side, or each in its own folder)::

    <root>/wav/id10270/x6uYqmx31kE/00001.wav      (or <root>/<any>/wav/...)
    <root>/veri_test2.txt       VoxCeleb1-O (cleaned): "1 id10270/x6uYqmx31kE/00001.wav id10270/8jEAjG6SegY/00008.wav"
    <root>/list_test_all2.txt   VoxCeleb1-E (cleaned)
    <root>/list_test_hard2.txt  VoxCeleb1-H (cleaned)

Utterance ids are the paths without ``.wav``, '/' → '-' (``id10270-x6uYqmx31kE-00001``); speaker = ``idXXXXX``.
Written under ``out``:

- ``voxceleb1_test``: every utterance of the speakers of the O list (the 40 test speakers), ``trials_o``;
- ``voxceleb1``: every utterance (1,251 speakers), ``trials_e`` and ``trials_h`` (E and H draw from all of them);
- ``voxceleb1_cohort``: the AS-norm cohort, ``cohort_per_speaker`` random utterances of every speaker not in the
  O list (VoxCeleb1 dev: 1,211 speakers; scored as speaker means, so the cohort has 1,211 entries). It is
  disjoint from the O speakers only: E and H trials use the dev speakers too, so AS-norm on E/H would normalise
  with the trial speakers themselves (use a VoxCeleb2 cohort for those).

Trials are Kaldi lines ``enroll test target|nontarget``, in the order of the official list.
"""

from __future__ import annotations

import logging
import random
import shutil
from pathlib import Path
from typing import Container, Mapping, Sequence

from uattr.corpora.release import absolute, check_data_dir, require_file
from uattr.data.kaldi import write_data_dir
from uattr.errors import DataError
from uattr.fileio import PathLike, atomic_write, iter_fields

logger = logging.getLogger(__name__)

# Official cleaned lists (https://www.robots.ox.ac.uk/~vgg/data/voxceleb/vox1.html), by condition.
TRIAL_LISTS = {"o": "veri_test2.txt", "e": "list_test_all2.txt", "h": "list_test_hard2.txt"}
_LABELS = {"1": "target", "0": "nontarget"}

TEST_SET = "voxceleb1_test"
FULL_SET = "voxceleb1"
COHORT_SET = "voxceleb1_cohort"

Trial = tuple[str, str, str]


def utterance_id(relative_path: str) -> str:
    """``id10270/x6uYqmx31kE/00001.wav`` → ``id10270-x6uYqmx31kE-00001`` (speaker, video, segment)."""
    parts = relative_path.strip().split("/")
    if len(parts) != 3 or not parts[2].endswith(".wav") or not all(parts):
        raise ValueError(f"not a VoxCeleb path 'idXXXXX/<video>/<nnnnn>.wav': {relative_path!r}")
    return "-".join([parts[0], parts[1], parts[2][: -len(".wav")]])


def find_wavs(root: PathLike) -> dict[str, str]:
    """Utterance id → absolute wav path, over ``<root>/wav`` and ``<root>/*/wav`` (dev and test unpacked apart)."""
    root = Path(root)
    trees = [tree for tree in [root / "wav", *sorted(root.glob("*/wav"))] if tree.is_dir()]
    if not trees:
        raise DataError(f"{root}: no wav/ folder (expected {root}/wav/idXXXXX/<video>/<nnnnn>.wav)")
    wavs: dict[str, str] = {}
    for tree in trees:
        for path in sorted(tree.glob("id*/*/*.wav")):
            utt = utterance_id(path.relative_to(tree).as_posix())
            if utt in wavs:
                raise DataError(f"{path}: utterance '{utt}' is also at {wavs[utt]}")
            wavs[utt] = absolute(path)
    if not wavs:
        raise DataError(f"{root}: no idXXXXX/<video>/<nnnnn>.wav files under {', '.join(map(str, trees))}")
    return wavs


def read_trial_list(path: PathLike, known: Container[str] | None = None) -> list[Trial]:
    """Convert a VoxCeleb list (``1|0 enroll.wav test.wav``) into Kaldi trials ``(enroll, test, label)``.

    With ``known``, an utterance that is not in it (no wav file) is an error naming the list's line.
    """
    trials: list[Trial] = []
    for number, line, fields in iter_fields(path, "trial list"):
        if len(fields) != 3 or fields[0] not in _LABELS:
            raise DataError(f"{path}:{number}: expected '1|0 <enroll.wav> <test.wav>', got {line!r}")
        try:
            enroll, test = utterance_id(fields[1]), utterance_id(fields[2])
        except ValueError as error:
            raise DataError(f"{path}:{number}: {error}") from None
        for utt in (enroll, test):
            if known is not None and utt not in known:
                raise DataError(f"{path}:{number}: utterance '{utt}' has no wav file under the corpus root")
        trials.append((enroll, test, _LABELS[fields[0]]))
    if not trials:
        raise DataError(f"{path}: empty trial list")
    return trials


def write_trials(path: PathLike, trials: Sequence[Trial]) -> None:
    """Kaldi trial lines ``enroll test target|nontarget`` (order kept)."""
    with atomic_write(path) as handle:
        handle.writelines(f"{enroll} {test} {label}\n" for enroll, test, label in trials)


def _speaker(utt: str) -> str:
    return utt.split("-", 1)[0]


def _write_set(out: Path, name: str, wavs: Mapping[str, str]) -> Path:
    path = write_data_dir(out / name, wav_scp=wavs, utt2spk={utt: _speaker(utt) for utt in wavs})
    check_data_dir(path)
    return path


def cohort_utterances(wavs: Mapping[str, str], excluded_speakers: set[str], per_speaker: int, seed: int) -> list[str]:
    """``per_speaker`` random utterances (fewer if a speaker has fewer) of every speaker not excluded."""
    by_speaker: dict[str, list[str]] = {}
    for utt in sorted(wavs):
        if _speaker(utt) not in excluded_speakers:
            by_speaker.setdefault(_speaker(utt), []).append(utt)
    rng = random.Random(seed)
    chosen = []
    for speaker in sorted(by_speaker):
        utts = by_speaker[speaker]
        chosen += sorted(rng.sample(utts, min(per_speaker, len(utts))))
    return chosen


def prepare_voxceleb1(
    root: PathLike,
    out: PathLike,
    *,
    lists: Sequence[str] = ("o", "e", "h"),
    lists_dir: PathLike | None = None,
    cohort_per_speaker: int = 5,
    seed: int = 0,
) -> dict[str, int]:
    """Write the data dirs and trial lists described in the module docstring; returns utterances per set."""
    unknown = sorted(set(lists) - set(TRIAL_LISTS))
    if unknown or "o" not in lists:
        raise DataError(f"trial lists must include 'o' and be among {', '.join(TRIAL_LISTS)}; got {', '.join(lists)}")
    out = Path(out)
    lists_dir = Path(lists_dir or root)
    wavs = find_wavs(root)
    layout = f"the official VoxCeleb1 lists ({', '.join(TRIAL_LISTS.values())}) in {lists_dir}"
    trials = {name: read_trial_list(require_file(lists_dir / TRIAL_LISTS[name], layout), wavs) for name in lists}

    test_speakers = {_speaker(utt) for enroll, test, _ in trials["o"] for utt in (enroll, test)}
    counts = {}
    test_wavs = {utt: path for utt, path in wavs.items() if _speaker(utt) in test_speakers}
    write_trials(_write_set(out, TEST_SET, test_wavs) / "trials_o", trials["o"])
    counts[TEST_SET] = len(test_wavs)
    if set(lists) - {"o"}:
        full = _write_set(out, FULL_SET, wavs)
        for name in sorted(set(lists) - {"o"}):
            write_trials(full / f"trials_{name}", trials[name])
        for name in sorted(set(TRIAL_LISTS) - set(lists)):  # an earlier run's list, which stage 5 would score
            (full / f"trials_{name}").unlink(missing_ok=True)
        counts[FULL_SET] = len(wavs)
    if cohort_per_speaker > 0:
        cohort = cohort_utterances(wavs, test_speakers, cohort_per_speaker, seed)
        if not cohort:
            raise DataError(f"{root}: no speaker outside the O list for the AS-norm cohort (is the dev part there?)")
        _write_set(out, COHORT_SET, {utt: wavs[utt] for utt in cohort})
        counts[COHORT_SET] = len(cohort)
    for name in (FULL_SET, COHORT_SET):  # an earlier run's, with other options: later stages would take it as current
        if name not in counts and (out / name).is_dir():
            logger.warning("%s/%s: written by an earlier run with other options; removed", out, name)
            shutil.rmtree(out / name)
    for name, count in counts.items():
        logger.info("%s/%s: %d utterances", out, name, count)
    return counts
