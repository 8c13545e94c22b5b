"""The usual sources of training-time augmentation as Kaldi data dirs: MUSAN's noise, music and speech (babble)
and the simulated room impulse responses of RIRS_NOISES, for ``data.augment`` (:mod:`uattr.data.augment`).

Public layouts (OpenSLR 17 and 28)::

    <musan>/noise/{free-sound,sound-bible}/noise-free-sound-0000.wav
    <musan>/music/{fma,fma-western-art,hd-classical,jamendo,rfm}/music-fma-0000.wav
    <musan>/speech/{librivox,us-gov}/speech-librivox-0000.wav
    <rirs>/simulated_rirs/{smallroom,mediumroom,largeroom}/Room001/Room001-00001.wav

Written under ``out``: ``musan_noise``, ``musan_music``, ``musan_speech`` (ids: the file names, which MUSAN
makes unique) and ``rirs`` (ids ``<room size>-Room001-00001``). Only wav.scp: a noise has no speaker. The
simulated responses are used, as WeSpeaker and Kaldi's x-vector recipes use them; the real ones of RIRS_NOISES
are multi-channel recordings of other corpora.
"""

from __future__ import annotations

import logging
from pathlib import Path

from uattr.corpora.release import absolute, check_data_dir
from uattr.data.kaldi import write_data_dir
from uattr.errors import DataError
from uattr.fileio import PathLike

logger = logging.getLogger(__name__)

MUSAN_KINDS = ("noise", "music", "speech")
ROOM_SIZES = ("smallroom", "mediumroom", "largeroom")


def _write(out: Path, name: str, wav_scp: dict[str, str]) -> Path:
    path = write_data_dir(out / name, wav_scp=wav_scp)
    check_data_dir(path)
    logger.info("%s: %d recordings", path, len(wav_scp))
    return path


def prepare_musan(root: PathLike, out: PathLike) -> dict[str, Path]:
    """``musan_<kind>`` data dirs of the three MUSAN kinds (none unless every kind is found); returns them by kind."""
    root = Path(root)
    lists = {}
    for kind in MUSAN_KINDS:
        files = sorted((root / kind).glob("*/*.wav"))
        if not files:
            raise DataError(f"{root / kind}: no <subset>/*.wav files (expected MUSAN's layout: {kind}/<subset>/*.wav)")
        wav_scp: dict[str, str] = {}
        for path in files:
            if path.stem in wav_scp:
                raise DataError(f"{path}: recording '{path.stem}' is also at {wav_scp[path.stem]}")
            wav_scp[path.stem] = absolute(path)
        lists[kind] = wav_scp
    return {kind: _write(Path(out), f"musan_{kind}", wav_scp) for kind, wav_scp in lists.items()}


def prepare_rirs(root: PathLike, out: PathLike) -> Path:
    """The ``rirs`` data dir of RIRS_NOISES' simulated room impulse responses."""
    simulated = Path(root) / "simulated_rirs"
    wav_scp = {
        f"{size}-{path.stem}": absolute(path)
        for size in ROOM_SIZES
        for path in sorted((simulated / size).glob("Room*/*.wav"))
    }
    if not wav_scp:
        layout = f"simulated_rirs/{{{','.join(ROOM_SIZES)}}}/RoomNNN/*.wav"
        raise DataError(f"{simulated}: no impulse responses (expected RIRS_NOISES' layout: {layout})")
    return _write(Path(out), "rirs", wav_scp)
