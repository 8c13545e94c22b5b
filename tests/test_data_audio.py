"""Audio loading: formats, pipes, archives, resampling, segments, channels and clear errors."""

from __future__ import annotations

import subprocess
import sys

import kaldiio
import numpy as np
import pytest
import soundfile

from data_fixtures import make_data_dir, ramp, tone, write_audio
from uattr.data.audio import AudioInfo, AudioSource, audio_info, entry_kind, load_audio, segment_frames
from uattr.data.kaldi import DataDir, Segment, write_data_dir
from uattr.errors import DataError


def dominant_frequency(samples: np.ndarray, rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[np.argmax(spectrum)])


@pytest.mark.parametrize("suffix", ["wav", "flac", "ogg"])
def test_formats_load_as_float32_mono(tmp_path, suffix):
    samples = tone(440, 0.5, 16000)
    path = write_audio(tmp_path / f"a.{suffix}", samples, 16000)
    loaded = load_audio(str(path), sample_rate=16000, utt_id="u")
    assert loaded.dtype == np.float32 and loaded.ndim == 1
    assert abs(len(loaded) - len(samples)) <= (0 if suffix != "ogg" else 1024)
    assert dominant_frequency(loaded, 16000) == pytest.approx(440, abs=3)
    if suffix != "ogg":  # lossless
        np.testing.assert_allclose(loaded, samples, atol=1e-4)


def test_mp3_when_libsndfile_supports_it(tmp_path):
    if "MP3" not in soundfile.available_formats():
        pytest.skip("this libsndfile has no MP3 support")
    path = write_audio(tmp_path / "a.mp3", tone(440, 0.5, 16000), 16000)
    loaded = load_audio(str(path), sample_rate=16000, utt_id="u")
    assert dominant_frequency(loaded, 16000) == pytest.approx(440, abs=3)


@pytest.mark.parametrize("rate", [16000, 48000])
def test_an_mp3_segment_is_the_same_samples_as_cut_from_the_whole_decode(tmp_path, rate):
    """libsndfile's mp3 decoder gives ~3000 zero or wrong samples right after a seek."""
    if "MP3" not in soundfile.available_formats():
        pytest.skip("this libsndfile has no MP3 support")
    times = np.arange(4 * rate) / rate
    chirp = (0.5 * np.sin(2 * np.pi * (100 * times + 300 * times**2))).astype(np.float32)
    path = str(write_audio(tmp_path / "chirp.mp3", chirp, rate))
    whole = load_audio(path, sample_rate=rate, utt_id="u")
    segment = load_audio(path, sample_rate=rate, start=1.0, end=2.0, utt_id="u")
    np.testing.assert_array_equal(segment, whole[rate : 2 * rate])


def test_segment_times_round_half_up_as_kaldi_does():
    """0.01 s at 22050 Hz is sample 220.5: Kaldi's extract-segments starts at 221 (Python's round() says 220)."""
    info = AudioInfo(22050, 22050, 1)
    assert [segment_frames(info, start, start + 0.01, "r.wav", "u") for start in (0.01, 0.03, 0.05)] == [
        (221, 441), (662, 882), (1103, 1323)
    ]


def test_resampling_keeps_the_frequency(tmp_path):
    path = write_audio(tmp_path / "a.wav", tone(440, 1.0, 8000), 8000)
    loaded = load_audio(str(path), sample_rate=16000, utt_id="u")
    assert len(loaded) == 16000
    assert dominant_frequency(loaded, 16000) == pytest.approx(440, abs=2)
    assert loaded.dtype == np.float32


def test_segments_cut_the_right_samples(tmp_path):
    samples = ramp(16000)
    path = write_audio(tmp_path / "rec.wav", samples, 16000, subtype="FLOAT")
    data = write_data_dir(
        tmp_path / "data",
        wav_scp={"rec": str(path)},
        segments={"a": Segment("rec", 0.1, 0.35), "b": Segment("rec", 0.29, None), "c": Segment("rec", 0.9, 1.3)},
    )
    source = AudioSource(data)
    assert source.ids == ["a", "b", "c"]
    np.testing.assert_array_equal(source.load("a"), samples[1600:5600])
    np.testing.assert_array_equal(source.load("b"), samples[4640:])  # 0.29 * 16000 = 4639.999...: rounded
    np.testing.assert_array_equal(source.load("c"), samples[14400:])  # an end within 0.5 s past the end is clipped
    assert source.durations() == pytest.approx({"a": 0.25, "b": 0.71, "c": 0.1})


def test_segment_far_past_the_end_is_an_error(tmp_path):
    path = write_audio(tmp_path / "rec.wav", ramp(16000), 16000)
    with pytest.raises(DataError, match=r"utterance 'x': segment end 2 s is past the end of .*rec\.wav \(1\.000 s"):
        load_audio(str(path), sample_rate=16000, start=1.0, end=2.0, utt_id="x")
    with pytest.raises(DataError, match=r"utterance 'x': segment \[1\.2, end\] s is empty"):
        load_audio(str(path), sample_rate=16000, start=1.2, utt_id="x")


def test_channels_mix_or_pick(tmp_path):
    left, right = tone(300, 0.25, 16000), tone(700, 0.25, 16000, amplitude=0.25)
    path = write_audio(tmp_path / "stereo.wav", np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(str(path), sample_rate=16000, utt_id="u"), (left + right) / 2, atol=1e-7)
    np.testing.assert_array_equal(load_audio(str(path), sample_rate=16000, channel=1, utt_id="u"), right)
    with pytest.raises(DataError, match=r"utterance 'u': channel 2 asked for, but .* has 2 channel"):
        load_audio(str(path), sample_rate=16000, channel=2, utt_id="u")
    data = write_data_dir(tmp_path / "data", wav_scp={"u": str(path)})
    np.testing.assert_array_equal(AudioSource(data, channel=0).load("u"), left)


def test_pipe_entries_run_the_command(tmp_path):
    samples = ramp(8000)
    path = write_audio(tmp_path / "a.wav", samples, 16000, subtype="FLOAT")
    entry = f"cat {path} |"
    assert entry_kind(entry) == "pipe"
    np.testing.assert_array_equal(load_audio(entry, sample_rate=16000, utt_id="u"), samples)
    np.testing.assert_array_equal(load_audio(entry, sample_rate=16000, start=0.25, end=0.375, utt_id="u"),
                                  samples[4000:6000])
    assert audio_info(entry, utt_id="u").num_frames == 8000


def test_a_pipe_command_gets_no_standard_input(tmp_path):
    """A command that reads its input (ffmpeg without -nostdin) must not eat its caller's: the recipe's teacher
    list is read on standard input. Run in a child whose input is an open pipe, as a shell loop's would be."""
    path = write_audio(tmp_path / "a.wav", ramp(800), 16000, subtype="FLOAT")
    entry = f'test "$(readlink /proc/self/fd/0)" = /dev/null && cat {path} |'
    child = f"from uattr.data.audio import load_audio as l; print(l({entry!r}, sample_rate=16000, utt_id='u').size)"
    done = subprocess.run([sys.executable, "-c", child], stdin=subprocess.PIPE, capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.stdout.strip() == "800", done.stderr


def test_failing_or_silent_pipes_name_the_utterance(tmp_path):
    with pytest.raises(DataError, match=r"utterance 'u7': command 'echo oops >&2; exit 3' failed \(exit 3\): oops"):
        load_audio("echo oops >&2; exit 3 |", sample_rate=16000, utt_id="u7")
    with pytest.raises(DataError, match=r"utterance 'u7': command 'true' wrote no audio"):
        load_audio("true |", sample_rate=16000, utt_id="u7")
    with pytest.raises(DataError, match=r"utterance 'u7': output of 'echo hello \|' is not audio"):
        load_audio("echo hello |", sample_rate=16000, utt_id="u7")


def test_ark_offset_entries(tmp_path):
    pcm = (tone(440, 0.25, 8000) * 32767).astype(np.int16)
    ark, scp = tmp_path / "wav.ark", tmp_path / "wav.scp"
    kaldiio.save_ark(str(ark), {"int16": (8000, pcm), "flac": (16000, pcm)}, scp=str(scp))
    kaldiio.save_ark(str(ark), {"float": (ramp(100), 16000)}, scp=str(tmp_path / "float.scp"), append=True,
                     write_function="soundfile", write_kwargs={"subtype": "FLOAT"})
    entries = dict(line.split() for line in scp.read_text().splitlines())
    entries.update(dict(line.split() for line in (tmp_path / "float.scp").read_text().splitlines()))
    assert entry_kind(entries["int16"]) == "ark"

    at_8k = load_audio(entries["int16"], sample_rate=8000, utt_id="int16")
    np.testing.assert_allclose(at_8k, pcm / 32768.0, atol=1e-7)
    assert len(load_audio(entries["int16"], sample_rate=16000, utt_id="int16")) == 2 * len(pcm)
    assert audio_info(entries["flac"], utt_id="flac") == (16000, len(pcm), 1)
    np.testing.assert_array_equal(load_audio(entries["float"], sample_rate=16000, utt_id="float"), ramp(100))


def test_ark_errors(tmp_path):
    kaldiio.save_ark(str(tmp_path / "feats.ark"), {"m": np.zeros((3, 4), dtype=np.float32)},
                     scp=str(tmp_path / "feats.scp"))
    entry = (tmp_path / "feats.scp").read_text().split()[1]
    with pytest.raises(DataError, match=r"utterance 'm': .*feats\.ark:\d+ holds a matrix, not audio"):
        load_audio(entry, sample_rate=16000, utt_id="m")
    with pytest.raises(DataError, match=r"utterance 'z': archive .*missing\.ark of entry .* does not exist"):
        load_audio(f"{tmp_path}/missing.ark:12", sample_rate=16000, utt_id="z")


def test_bad_files_name_utterance_and_path(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "corrupt.wav").write_bytes(b"RIFF....WAVEfmt garbage" * 10)
    header_only = tmp_path / "header_only.wav"
    soundfile.write(str(header_only), np.zeros(0, dtype=np.float32), 16000)
    cases = {
        "missing.wav": r"utterance 'u1': audio file .*missing\.wav does not exist",
        "empty.wav": r"utterance 'u1': audio file .*empty\.wav is empty",
        "corrupt.wav": r"utterance 'u1': cannot read audio header of .*corrupt\.wav",
        "header_only.wav": r"utterance 'u1': empty audio in .*header_only\.wav",
    }
    for name, message in cases.items():
        with pytest.raises(DataError, match=message):
            load_audio(str(tmp_path / name), sample_rate=16000, utt_id="u1")


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_samples_name_the_file_and_time(tmp_path, value):
    samples = np.zeros((16000, 2), dtype=np.float32)
    samples[8000, 1] = value
    path = tmp_path / "float.wav"
    soundfile.write(str(path), samples, 16000, subtype="FLOAT")
    with pytest.raises(DataError, match=r"utterance 'u1': .*float\.wav has 1 non-finite sample value\(s\) \(NaN or "
                                        r"inf\), the first at 0\.500 s"):
        load_audio(str(path), sample_rate=16000, utt_id="u1")
    assert load_audio(str(path), sample_rate=16000, end=0.25, utt_id="u1").shape == (4000,)  # a clean segment
    pipe = f"cat {path} |"
    with pytest.raises(DataError, match="the first at 0.500 s"):
        load_audio(pipe, sample_rate=16000, start=0.25, utt_id="u1")


def test_audio_source_of_a_data_dir(tmp_path):
    data_path = make_data_dir(tmp_path, rate=8000, seconds=0.5)
    source = AudioSource(str(data_path), sample_rate=16000)
    assert len(source) == 6 and source.ids[0] == "spkA-u1"
    assert source.load("spkA-u1").shape == (8000,)  # 0.5 s at 16 kHz
    assert dominant_frequency(source.load("spkA-u2"), 16000) == pytest.approx(250, abs=2)
    assert source.durations() == pytest.approx(dict.fromkeys(source.ids, 0.5))
    assert source.measure("spkA-u1") == (0.5, 4000)  # samples at the file's own rate

    (data_path / "utt2dur").write_text("".join(f"{utt} 9.5\n" for utt in source.ids))
    assert AudioSource(DataDir.load(data_path)).durations() == dict.fromkeys(source.ids, 9.5)
    with pytest.raises(DataError, match=r"wav\.scp: no utterance 'ghost'"):
        source.load("ghost")
