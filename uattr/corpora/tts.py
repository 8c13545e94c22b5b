"""Offline text-to-speech voices: the roster file, engine availability, and parallel, cached synthesis.

A roster line is ``voice_id lang engine engine_args...`` (``#`` starts a comment). A voice id may appear on
several lines with different languages: that voice then speaks each of them (the same speaker in two
languages, e.g. an MBROLA German voice reading English through espeak-ng's ``mb-de4-en``). Engines (Debian
packages, see tools/install_system.sh) and their arguments:

=============  ===================================  ==========================================================
engine         needs                                engine_args
=============  ===================================  ==========================================================
espeak         espeak-ng                            espeak voice (``en+m3``; a variant on a regional voice
                                                    such as ``fr-fr+f2`` is ignored: two such voices are
                                                    refused as one), then options
mbrola         espeak-ng, mbrola, mbrola-<db>       voice after ``mb-`` (``fr1``, ``de4-en``), then espeak
                                                    options (give each voice its own ``-p`` pitch)
mbrola-pho     espeak-ng, mbrola, mbrola-<db>       the same, through ``espeak-ng --pho`` with the ``/``
                                                    stress marks stripped from phoneme names, then ``mbrola``
                                                    (the Spanish voices need this)
pico           pico2wave (libttspico-utils)         language tag (``it-IT``)
flite          flite                                voice (``slt``), then flite options
rhvoice        RHVoice-test, rhvoice-<language>     voice (``anna``), then RHVoice-test options (-r, -t)
festival       text2wave, festvox-<voice>           voice name without ``voice_`` (``lp_diphone``)
=============  ===================================  ==========================================================

Every output is 16 kHz mono 16-bit wav (resampled in Python when an engine writes another rate), written under
a temporary name and renamed, so an existing valid file is never synthesised again.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import re
import shutil
import subprocess
import tempfile
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from math import gcd
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import soundfile
from scipy.signal import resample_poly
from tqdm import tqdm

from uattr.errors import ConfigError, DataError
from uattr.fileio import PathLike, atomic_write, iter_lines

logger = logging.getLogger(__name__)

SAMPLE_RATE = 16000
_VOICE_ID = re.compile(r"^[A-Za-z0-9_]+$")  # '-' is reserved: utterance ids are <voice>-<lang>-<unit>
_MBROLA_DIR = Path("/usr/share/mbrola")
_PICO_DIR = Path("/usr/share/pico/lang")
_RHVOICE_DIR = Path("/usr/share/RHVoice/voices")
_FESTIVAL_DIR = Path("/usr/share/festival/voices")
_TIMEOUT_S = 120
FULL_SCALE = 32767 / 32768  # the largest 16-bit sample, as soundfile reads it (the engines write 16-bit PCM)
# An engine's output with more of its samples at full scale than this is clipped: the French MBROLA fr3 at
# espeak-ng's default amplitude had 0.35 % (0.5 % at worst, in runs of up to 17 samples); of the voices of
# egs/mini/uattr1/local/voices.txt at their amplitudes there, none had more than 0.08 %.
MAX_FULL_SCALE_SHARE = 1e-3
# Output quieter than this (RMS) is not speech: an engine given text it cannot read (another script) exits 0
# with a fraction of a second of near-silence (RMS 0 to 6e-4 measured); the voices of the mini recipe's roster
# measured 0.028 (the Spanish MBROLA voices) to about 0.1.
MIN_SPEECH_RMS = 3e-3


@dataclasses.dataclass(frozen=True)
class Voice:
    """One roster line: ``voice_id`` speaks ``lang`` with ``engine`` and its arguments."""

    voice_id: str
    lang: str
    engine: str
    args: tuple[str, ...]
    where: str  # "roster:line", for messages

    def describe(self) -> str:
        return f"{self.where}: voice '{self.voice_id}' ({self.lang}, {self.engine} {' '.join(self.args)})"


@dataclasses.dataclass(frozen=True)
class Engine:
    """How to check for and run one synthesiser; ``run`` writes a wav at whatever rate the engine uses."""

    programs: tuple[str, ...]
    data_file: Callable[[Voice], Path | None]
    run: Callable[[Voice, str, Path, Path], None]
    # Why the engine would not use the voice its roster line names (a misspelt name it falls back from), or None.
    unknown_voice: Callable[[Voice], str | None] = lambda voice: None

    def missing(self, voice: Voice) -> str | None:
        """Why ``voice`` cannot be used here (a program or a voice package is absent, or the engine does not
        know the voice), or None."""
        for program in self.programs:
            if shutil.which(program) is None:
                return f"{program} is not installed"
        data = self.data_file(voice)
        if data is not None and not data.exists():
            return f"{data} is not installed"
        return self.unknown_voice(voice)


def _call(argv: Sequence[str], stdin: bytes | None = None) -> bytes:
    """Run one synthesiser process; a failure becomes a DataError quoting its error output."""
    try:
        done = subprocess.run(argv, input=stdin, capture_output=True, timeout=_TIMEOUT_S, check=False)
    except subprocess.TimeoutExpired:
        raise DataError(f"'{' '.join(argv)}' took more than {_TIMEOUT_S} s") from None
    if done.returncode != 0:
        tail = done.stderr.decode("utf-8", "replace").strip()[-300:]
        raise DataError(f"'{' '.join(argv)}' failed with status {done.returncode}: {tail}")
    return done.stdout


@functools.lru_cache(maxsize=None)
def _listing(*argv: str) -> str | None:
    """What a synthesiser lists of its voices (asked once per run); None where it cannot be asked."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=_TIMEOUT_S, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return None


def _unknown_espeak_variant(voice: Voice) -> str | None:
    # espeak-ng says the base voice for a variant it does not have, so a misspelt one would be a second voice
    # id of the same speaker.
    variant, listing = voice.args[0].partition("+")[2], _listing("espeak-ng", "--voices=variant")
    if variant and listing is not None and variant not in re.findall(r"!v/(\S+)", listing):
        return f"espeak-ng has no variant '{variant}' (espeak-ng --voices=variant lists them)"
    return None


def _unknown_flite_voice(voice: Voice) -> str | None:
    # flite says its default voice (kal) for a name it does not have.
    listing = _listing("flite", "-lv")
    listed = listing.partition(":")[2].split() if listing is not None else [voice.args[0]]
    if voice.args[0] not in listed:
        return f"flite has no voice '{voice.args[0]}' (flite -lv: {' '.join(listed)})"
    return None


def _mbrola_database(voice: Voice) -> Path:
    name = voice.args[0].split("-")[0]  # "de4-en" is espeak's English front end on the de4 database
    return _MBROLA_DIR / name / name


def _run_espeak(voice: Voice, text: str, wav: Path, workdir: Path) -> None:
    _call(["espeak-ng", "-v", voice.args[0], *voice.args[1:], "-w", str(wav), "--stdin"], text.encode())


def _run_mbrola(voice: Voice, text: str, wav: Path, workdir: Path) -> None:
    _call(["espeak-ng", "-v", f"mb-{voice.args[0]}", *voice.args[1:], "-w", str(wav), "--stdin"], text.encode())


_STRESS_MARK = re.compile(rb"^([^\t\n/]+)/\t", flags=re.MULTILINE)


def _run_mbrola_pho(voice: Voice, text: str, wav: Path, workdir: Path) -> None:
    # espeak-ng's Spanish MBROLA front end emits phonemes such as "o/" that the databases do not know.
    phonemes = _call(["espeak-ng", "-v", f"mb-{voice.args[0]}", *voice.args[1:], "-q", "--pho", "--stdin"],
                     text.encode())
    # Writing phonemes, espeak-ng applies no amplitude: its -a (100 = as is) becomes mbrola's volume ratio.
    options = voice.args[1:]
    amplitude = next((options[i + 1] for i in range(len(options) - 1) if options[i] == "-a"), None)
    try:
        volume = ["-v", f"{float(amplitude) / 100:g}"] if amplitude is not None else []
    except ValueError:
        raise DataError(f"-a {amplitude!r}: the amplitude must be a number (100: as the voice is)") from None
    _call(["mbrola", *volume, "-e", str(_mbrola_database(voice)), "-", str(wav)],
          _STRESS_MARK.sub(rb"\1\t", phonemes))


def _run_pico(voice: Voice, text: str, wav: Path, workdir: Path) -> None:
    _call(["pico2wave", "-l", voice.args[0], "-w", str(wav), text])


def _run_flite(voice: Voice, text: str, wav: Path, workdir: Path) -> None:
    source = workdir / "text.txt"
    source.write_text(text, encoding="utf-8")
    _call(["flite", "-voice", voice.args[0], *voice.args[1:], "-f", str(source), "-o", str(wav)])


def _run_rhvoice(voice: Voice, text: str, wav: Path, workdir: Path) -> None:
    _call(["RHVoice-test", "-p", voice.args[0], *voice.args[1:], "-o", str(wav)], text.encode())


# Festival reads ISO-8859-1: typographic punctuation is mapped to ASCII first, anything else is replaced.
_LATIN1 = str.maketrans({"’": "'", "‘": "'", "“": '"', "”": '"', "‐": "-", "–": "-", "—": "-", "…": "..."})


def _run_festival(voice: Voice, text: str, wav: Path, workdir: Path) -> None:
    source = workdir / "text.txt"
    source.write_bytes(text.translate(_LATIN1).encode("latin-1", "replace"))
    _call(["text2wave", "-eval", f"(voice_{voice.args[0]})", str(source), "-o", str(wav)])


def _festival_voice(voice: Voice) -> Path:
    found = sorted(_FESTIVAL_DIR.glob(f"*/{voice.args[0]}"))
    return found[0] if found else _FESTIVAL_DIR / "<language>" / voice.args[0]


ENGINES: dict[str, Engine] = {
    "espeak": Engine(("espeak-ng",), lambda voice: None, _run_espeak, _unknown_espeak_variant),
    "mbrola": Engine(("espeak-ng", "mbrola"), _mbrola_database, _run_mbrola),
    "mbrola-pho": Engine(("espeak-ng", "mbrola"), _mbrola_database, _run_mbrola_pho),
    "pico": Engine(("pico2wave",), lambda voice: _PICO_DIR / f"{voice.args[0]}_ta.bin", _run_pico),
    "flite": Engine(("flite",), lambda voice: None, _run_flite, _unknown_flite_voice),
    "rhvoice": Engine(("RHVoice-test",), lambda voice: _RHVOICE_DIR / voice.args[0], _run_rhvoice),
    "festival": Engine(("text2wave",), _festival_voice, _run_festival),
}


def parse_roster(path: PathLike) -> list[Voice]:
    """Read a roster file; malformed lines, unknown engines and repeated (voice, language) pairs are errors."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: roster file not found")
    voices: list[Voice] = []
    seen: dict[tuple[str, str], int] = {}
    for number, line in iter_lines(path, "roster file"):  # bytes that are not UTF-8: a DataError naming the line
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        where = f"{path}:{number}"
        if len(fields) < 4:
            raise ConfigError(f"{where}: expected 'voice_id lang engine engine_args...', got {line.strip()!r}")
        voice_id, lang, engine, *args = fields
        if not _VOICE_ID.match(voice_id):
            raise ConfigError(f"{where}: voice id '{voice_id}' may only hold letters, digits and '_'")
        if engine not in ENGINES:
            raise ConfigError(f"{where}: unknown engine '{engine}'; choices: {', '.join(ENGINES)}")
        if (voice_id, lang) in seen:
            first = seen[voice_id, lang]
            raise ConfigError(f"{where}: voice '{voice_id}' ({lang}) already defined on line {first}")
        seen[voice_id, lang] = number
        voices.append(Voice(voice_id, lang, engine, tuple(args), where))
    _require_one_id_per_speaker(voices)
    return voices


def speaker_key(voice: Voice) -> tuple[str, str]:
    """The synthetic speaker behind a voice: its engine family and voice data, without what only sets the
    language. espeak-ng's variant (``en+m3``, ``de+m3``: one set of formants) is its speaker, whatever the
    language or pitch; MBROLA's ``de4-en`` is ``de4`` reading English; RHVoice's ``evgeniy-eng`` is ``evgeniy``."""
    family, name = voice.engine.split("-")[0], voice.args[0]
    if family == "espeak":
        name = name.partition("+")[2] or "(default)"
    elif family == "mbrola":
        name = name.removesuffix("-en")
    elif family == "rhvoice":
        name = re.sub(r"-[a-z]{3}$", "", name)
    return family, name


def _require_one_id_per_speaker(voices: Sequence[Voice]) -> None:
    """Two ids for one speaker would put it in two splits (train and test) and make its pairs nontargets."""
    first: dict[tuple[str, str], Voice] = {}
    for voice in voices:
        other = first.setdefault(speaker_key(voice), voice)
        if other.voice_id != voice.voice_id:
            family, name = speaker_key(voice)
            raise ConfigError(
                f"{voice.where}: voice '{voice.voice_id}' is the {family} speaker '{name}', as voice "
                f"'{other.voice_id}' ({other.where}): one speaker needs one voice id (a bilingual one: the same id on "
                "two lines), or the splits and trials take it for two"
            )


def usable_voices(voices: Sequence[Voice]) -> list[Voice]:
    """The voices whose engine and voice data are installed; the others are skipped with one warning per cause."""
    usable, skipped = [], {}
    for voice in voices:
        reason = ENGINES[voice.engine].missing(voice)
        if reason is None:
            usable.append(voice)
        else:
            skipped.setdefault(reason, []).append(voice.voice_id)
    for reason, ids in skipped.items():
        logger.warning("skipping %d voice(s) because %s (see tools/install_system.sh): %s",
                       len(ids), reason, ", ".join(ids))
    return usable


@dataclasses.dataclass(frozen=True)
class SynthesisJob:
    """Say ``text`` with ``voice`` into ``wav`` (16 kHz mono); ``utt_id`` names it in messages."""

    utt_id: str
    voice: Voice
    text: str
    wav: Path


def is_valid_wav(path: PathLike) -> bool:
    """Whether ``path`` is a readable, non-empty 16 kHz mono file (a finished synthesis)."""
    try:
        info = soundfile.info(str(path))
    except (soundfile.LibsndfileError, RuntimeError, OSError):
        return False
    return info.samplerate == SAMPLE_RATE and info.channels == 1 and info.frames > 0


def _to_target_format(source: Path, target: Path) -> None:
    """Write ``source`` to ``target`` atomically as 16 kHz mono 16-bit PCM; clipped engine output is an error,
    and a resampled peak above full scale is scaled down rather than clipped."""
    samples, rate = soundfile.read(str(source), dtype="float32", always_2d=True)
    samples = samples.mean(axis=1)
    if samples.size == 0:
        raise DataError(f"{source}: the engine produced no audio")
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    if rms < MIN_SPEECH_RMS:
        raise DataError(
            f"the engine's output is near-silent ({samples.size / rate:.2f} s at RMS {rms:.1e}): can the voice read "
            "this text's language and script?"
        )
    full_scale = float(np.mean(np.abs(samples) >= FULL_SCALE))
    if full_scale > MAX_FULL_SCALE_SHARE:
        raise DataError(
            f"{full_scale:.2%} of the engine's samples are at full scale (clipped speech); give the voice a lower "
            f"amplitude in the roster (espeak-ng and MBROLA voices: e.g. '-a 70')"
        )
    if rate != SAMPLE_RATE:
        common = gcd(rate, SAMPLE_RATE)
        samples = resample_poly(samples, SAMPLE_RATE // common, rate // common).astype(np.float32)
    peak = float(np.abs(samples).max())
    if peak > 1.0:  # the resampling filter overshoots a peak near full scale
        samples /= peak
    with atomic_write(target, "wb") as handle:
        soundfile.write(handle, samples, SAMPLE_RATE, subtype="PCM_16", format="WAV")


def synthesize_one(job: SynthesisJob) -> None:
    """Synthesise one job unless its wav already exists and is valid."""
    if is_valid_wav(job.wav):
        return
    with tempfile.TemporaryDirectory(prefix="uattr-tts-") as workdir:
        raw = Path(workdir) / "raw.wav"
        try:
            ENGINES[job.voice.engine].run(job.voice, job.text, raw, Path(workdir))
            _to_target_format(raw, job.wav)
        except (DataError, soundfile.LibsndfileError, RuntimeError) as error:
            raise DataError(f"{job.voice.describe()}: cannot synthesise '{job.utt_id}': {error}") from None


def require_distinct_voices(jobs: Sequence[SynthesisJob]) -> None:
    """Refuse two voice ids whose audio of one text is the same file: one speaker under two ids, which the splits
    and trials would take for two. The roster checks cannot see it when an engine ignores what tells the voices
    apart (espeak-ng drops the variant of a regional voice: ``fr-fr+f2`` and ``fr-fr+m3`` are one voice). Only
    the finished files of one text and one size are read."""
    groups: dict[tuple[str, int], list[SynthesisJob]] = {}
    for job in jobs:
        groups.setdefault((job.text, job.wav.stat().st_size), []).append(job)
    for group in groups.values():
        if len(group) < 2:
            continue
        first: dict[str, SynthesisJob] = {}
        for job in group:
            other = first.setdefault(hashlib.sha256(job.wav.read_bytes()).hexdigest(), job)
            if other.voice.voice_id != job.voice.voice_id:
                raise ConfigError(
                    f"{job.voice.describe()} and {other.voice.describe()} gave the same audio for '{job.utt_id}' "
                    f"and '{other.utt_id}': one speaker under two voice ids; give one of them another voice"
                )


def synthesize(jobs: Sequence[SynthesisJob], nj: int = 1, progress: bool = True) -> int:
    """Run ``jobs`` on ``nj`` threads (each waits on a synthesiser process); returns how many were synthesised.

    The first failure stops the run (pending jobs are cancelled) and is raised; finished files are kept, so a
    re-run resumes where it stopped.
    """
    todo = [job for job in jobs if not is_valid_wav(job.wav)]
    if not todo:
        return 0
    for folder in {job.wav.parent for job in todo}:
        folder.mkdir(parents=True, exist_ok=True)
    pool = ThreadPoolExecutor(max_workers=max(1, nj))
    try:
        futures = [pool.submit(synthesize_one, job) for job in todo]
        with tqdm(total=len(futures), desc="synthesis", unit="utt", disable=not progress) as bar:
            for future in futures:
                future.add_done_callback(lambda _: bar.update())
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            failed = [future for future in done if future.exception() is not None]
            if failed:
                raise failed[0].exception()
    finally:
        # On a failure or Ctrl-C, the queued jobs are dropped (the running ones finish their file): a plain
        # `with` would wait for every queued job first.
        pool.shutdown(wait=True, cancel_futures=True)
    return len(todo)
