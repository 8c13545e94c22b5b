"""Audio of a data dir: decode any ``wav.scp`` entry, cut segments, mix or pick channels, resample.

A ``wav.scp`` entry is one of Kaldi's rxfilenames:

* a plain path (wav/flac/ogg/mp3, read with soundfile; relative paths are relative to the working directory,
  as in Kaldi);
* ``foo.ark:123``: the WAV blob stored at byte offset 123 of an archive (read through kaldiio);
* ``cmd args |``: a shell command whose standard output is an audio file (run with ``/bin/sh``, as Kaldi does).

A segment of a plain file is read by seeking; one of an archive or command entry decodes the whole entry, once
per segment (utterances are read in duration order, not by recording, so a cache of the last one would not help).

Every problem (missing, empty, corrupt or unreadable audio, a failing command, a segment outside the
recording) raises :class:`AudioError` (a :class:`DataError`) naming the utterance and the entry.
"""

from __future__ import annotations

import io
import math
import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple, Sequence

import numpy as np
import soundfile

from uattr.data.kaldi import DataDir
from uattr.errors import DataError

# Kaldi's extract-segments tolerates segments that end up to this far past the end of the recording.
MAX_SEGMENT_OVERSHOOT_S = 0.5
# Samples an mp3 segment is decoded from before its start (see load_audio); 8192 measured exact at 8-48 kHz.
MP3_SEEK_MARGIN = 16384

_ARK_OFFSET = re.compile(r"^(?P<ark>.+):(?P<offset>\d+)$")


class AudioError(DataError):
    """An unusable audio entry; ``reason`` is the message without the utterance prefix (for validation reports).

    Built from a message alone too: a DataLoader worker's error reaches the main process as
    ``type(error)(message)``, and a class it cannot build that way becomes a RuntimeError with a traceback.
    """

    def __init__(self, utt_id: str, reason: str | None = None) -> None:
        super().__init__(utt_id if reason is None else f"utterance '{utt_id}': {reason}")
        self.utt_id = "" if reason is None else utt_id
        self.reason = utt_id if reason is None else reason


class AudioInfo(NamedTuple):
    """What an audio header says (for archive and pipe entries: what decoding found)."""

    sample_rate: int
    num_frames: int
    channels: int

    @property
    def duration(self) -> float:
        return self.num_frames / self.sample_rate


def entry_kind(entry: str) -> str:
    """``"pipe"``, ``"ark"`` or ``"file"``: how a wav.scp entry is read."""
    entry = entry.strip()
    if entry.endswith("|"):
        return "pipe"
    if _ARK_OFFSET.match(entry) and not os.path.exists(entry):
        return "ark"
    return "file"


def audio_info(entry: str, *, utt_id: str) -> AudioInfo:
    """Header facts of one wav.scp entry (files: header only, without decoding the samples)."""
    if entry_kind(entry) == "file":
        with _open_file(entry, utt_id) as handle:
            return _header(handle, entry, utt_id)
    samples, rate = _decode(entry, utt_id)
    return AudioInfo(rate, samples.shape[0], samples.shape[1])


def load_audio(
    entry: str,
    *,
    sample_rate: int,
    channel: int | None = None,
    start: float = 0.0,
    end: float | None = None,
    utt_id: str,
) -> np.ndarray:
    """Samples of one wav.scp entry as float32 mono at ``sample_rate``.

    ``start``/``end`` (seconds; ``end`` None = to the end) cut a segment; samples are ``floor(t * rate + 0.5)``.
    ``channel`` picks one channel (0-based); None mixes all channels down by averaging.
    """
    if entry_kind(entry) == "file":
        # Seek in the file so that a short segment of a long recording decodes only its own samples.
        with _open_file(entry, utt_id) as handle:
            info = _header(handle, entry, utt_id)
            first, last = segment_frames(info, start, end, entry, utt_id)
            # An mp3 decoder needs a run-in after a seek (its bit reservoir): started at the segment, the first
            # ~3000 samples come out zero or wrong. It starts MP3_SEEK_MARGIN samples earlier and drops them.
            begin = max(0, first - MP3_SEEK_MARGIN) if handle.format == "MP3" else first
            try:
                handle.seek(begin)
                samples = handle.read(last - begin, dtype="float32", always_2d=True)[first - begin :]
            except (soundfile.LibsndfileError, RuntimeError) as error:
                raise AudioError(utt_id, f"cannot decode {entry}: {error}") from None
    else:
        whole, rate = _decode(entry, utt_id)
        info = AudioInfo(rate, whole.shape[0], whole.shape[1])
        first, last = segment_frames(info, start, end, entry, utt_id)
        samples = whole[first:last]
    _require_finite(samples, info.sample_rate, first, entry, utt_id)
    return _resample(_select_channel(samples, channel, entry, utt_id), info.sample_rate, sample_rate)


def _require_finite(samples: np.ndarray, rate: int, first: int, entry: str, utt_id: str) -> None:
    """A float file can hold NaN or inf samples: they would make every loss and score of their batch NaN (and
    training would only skip updates), so they are an error that names the file and the time."""
    finite = np.isfinite(samples)
    if not finite.all():
        bad = int(np.count_nonzero(~finite))
        at = (first + int(np.flatnonzero(~finite.all(axis=1))[0])) / rate
        raise AudioError(utt_id, f"{entry} has {bad} non-finite sample value(s) (NaN or inf), the first at {at:.3f} s")


def _open_file(entry: str, utt_id: str) -> soundfile.SoundFile:
    path = Path(entry.strip())
    if not path.is_file():
        raise AudioError(utt_id, f"audio file {entry} does not exist")
    if path.stat().st_size == 0:
        raise AudioError(utt_id, f"audio file {entry} is empty")
    try:
        return soundfile.SoundFile(str(path))
    except (soundfile.LibsndfileError, RuntimeError) as error:
        raise AudioError(utt_id, f"cannot read audio header of {entry}: {error}") from None


def _header(handle: soundfile.SoundFile, entry: str, utt_id: str) -> AudioInfo:
    if handle.frames == 0:
        raise AudioError(utt_id, f"empty audio in {entry}")
    return AudioInfo(int(handle.samplerate), int(handle.frames), int(handle.channels))


def _decode(entry: str, utt_id: str) -> tuple[np.ndarray, int]:
    """Decode an archive or pipe entry completely into float32 ``[frames, channels]``."""
    if entry_kind(entry) == "pipe":
        data = _run_pipe(entry, utt_id)
        try:
            samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=True)
        except (soundfile.LibsndfileError, RuntimeError) as error:
            raise AudioError(utt_id, f"output of '{entry}' is not audio: {error}") from None
    else:
        samples, rate = _read_ark(entry, utt_id)
    if samples.shape[0] == 0:
        raise AudioError(utt_id, f"empty audio in {entry}")
    return samples, rate


def _run_pipe(entry: str, utt_id: str) -> bytes:
    command = entry.strip()[:-1]
    # No standard input: a command that reads it (ffmpeg without -nostdin) would eat its caller's.
    result = subprocess.run(
        command, shell=True, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False
    )
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip().splitlines()
        detail = f": {message[-1]}" if message else ""
        raise AudioError(utt_id, f"command '{command.strip()}' failed (exit {result.returncode}){detail}")
    if not result.stdout:
        raise AudioError(utt_id, f"command '{command.strip()}' wrote no audio")
    return result.stdout


def _read_ark(entry: str, utt_id: str) -> tuple[np.ndarray, int]:
    """Read ``foo.ark:offset`` with kaldiio; Kaldi wav archives hold WAV blobs, which kaldiio returns as ints."""
    import kaldiio  # only archives need it

    ark = _ARK_OFFSET.match(entry.strip())["ark"]  # type: ignore[index]
    if not os.path.isfile(ark):
        raise AudioError(utt_id, f"archive {ark} of entry {entry} does not exist")
    try:
        loaded = kaldiio.load_mat(entry.strip())
    except Exception as error:  # kaldiio raises assorted errors on corrupt archives
        raise AudioError(utt_id, f"cannot read {entry}: {error}") from None
    if not isinstance(loaded, tuple):
        raise AudioError(utt_id, f"{entry} holds a matrix, not audio")
    rate, samples = loaded
    samples = np.asarray(samples)
    if samples.dtype == np.int16:
        samples = samples.astype(np.float32) / 32768.0
    elif samples.dtype == np.uint8:
        samples = (samples.astype(np.float32) - 128.0) / 128.0
    samples = samples.astype(np.float32, copy=False)
    return (samples[:, None] if samples.ndim == 1 else samples), int(rate)


def segment_frames(info: AudioInfo, start: float, end: float | None, entry: str, utt_id: str) -> tuple[int, int]:
    """Frame range of ``[start, end)``; an end slightly past the recording is clipped, as Kaldi does."""
    duration = info.duration
    if end is not None and end > duration + MAX_SEGMENT_OVERSHOOT_S:
        raise AudioError(utt_id, f"segment end {end:g} s is past the end of {entry} ({duration:.3f} s long)")
    first = _frame_at(start, info.sample_rate)
    last = info.num_frames if end is None else min(_frame_at(end, info.sample_rate), info.num_frames)
    if first >= last:
        span = f"[{start:g}, {'end' if end is None else f'{end:g}'}]"
        raise AudioError(utt_id, f"segment {span} s is empty in {entry} ({duration:.3f} s long)")
    return first, last


def _frame_at(seconds: float, rate: int) -> int:
    """The sample at a time, rounded half up as Kaldi's extract-segments does (Python's round() goes to even)."""
    return math.floor(seconds * rate + 0.5)


def _select_channel(samples: np.ndarray, channel: int | None, entry: str, utt_id: str) -> np.ndarray:
    if channel is None:
        return samples.mean(axis=1, dtype=np.float32) if samples.shape[1] > 1 else samples[:, 0]
    if not 0 <= channel < samples.shape[1]:
        raise AudioError(utt_id, f"channel {channel} asked for, but {entry} has {samples.shape[1]} channel(s)")
    return np.ascontiguousarray(samples[:, channel])


def _resample(samples: np.ndarray, rate: int, target: int) -> np.ndarray:
    if rate == target:
        return samples
    import torch  # heavy: imported only when a file's rate differs from the model's
    import torchaudio.functional

    resampled = torchaudio.functional.resample(torch.from_numpy(samples), rate, target)
    return resampled.numpy().astype(np.float32, copy=False)


class AudioSource:
    """The utterances of a data dir as float32 mono arrays at one sample rate."""

    def __init__(self, data: DataDir | str | os.PathLike, sample_rate: int = 16000, channel: int | None = None):
        self.data = data if isinstance(data, DataDir) else DataDir.load(data)
        self.sample_rate = sample_rate
        self.channel = channel
        self._info_cache: dict[str, AudioInfo] = {}

    @property
    def ids(self) -> list[str]:
        return self.data.utt_ids

    def __len__(self) -> int:
        return len(self.data.utt_ids)

    def load(self, utt_id: str) -> np.ndarray:
        """The utterance's samples (segment cut, channel mixed or picked, resampled)."""
        entry, start, end = self.data.locate(utt_id)
        return load_audio(
            entry, sample_rate=self.sample_rate, channel=self.channel, start=start, end=end, utt_id=utt_id
        )

    def info(self, utt_id: str) -> AudioInfo:
        """Header facts of the utterance's recording (cached per entry: segments share recordings)."""
        entry, _, _ = self.data.locate(utt_id)
        if entry not in self._info_cache:
            self._info_cache[entry] = audio_info(entry, utt_id=utt_id)
        return self._info_cache[entry]

    def measure(self, utt_id: str) -> tuple[float, int]:
        """``(duration in seconds, number of samples at the recording's own rate)`` from headers and segments: the
        samples :meth:`load` reads, so a segment that cannot be loaded is an AudioError here too."""
        entry, start, end = self.data.locate(utt_id)
        info = self.info(utt_id)
        first, last = segment_frames(info, start, end, entry, utt_id)
        return (last - first) / info.sample_rate, last - first

    def measure_all(self, num_threads: int = 8, ids: Sequence[str] | None = None) -> dict[str, tuple[float, int]]:
        """:meth:`measure` of every utterance (of ``ids`` only, if given: a split job's share, what a resume has
        left); recordings are probed once each, ``num_threads`` at a time."""
        ids = self.ids if ids is None else list(ids)
        first_utt_of_entry = {self.data.locate(utt)[0]: utt for utt in reversed(ids)}
        with ThreadPoolExecutor(num_threads) as pool:
            list(pool.map(self.info, first_utt_of_entry.values()))
        return {utt: self.measure(utt) for utt in ids}

    def durations(self, ids: Sequence[str] | None = None) -> dict[str, float]:
        """Seconds per utterance (of ``ids`` only, if given): ``utt2dur`` when the data dir has it, otherwise
        measured from the audio, so that another job's broken file or a pipe it decodes is not this one's work."""
        ids = self.ids if ids is None else list(ids)
        if self.data.utt2dur is not None:
            missing = [utt for utt in ids if utt not in self.data.utt2dur]
            if missing:
                raise DataError(
                    f"{self.data.path}/utt2dur: {len(missing)} utterance(s) missing, e.g. '{missing[0]}' "
                    f"(run uattr compute-durations --force)"
                )
            return {utt: self.data.utt2dur[utt] for utt in ids}
        return {utt: duration for utt, (duration, _) in self.measure_all(ids=ids).items()}
