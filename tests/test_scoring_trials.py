"""Trial lists (Kaldi / VoxCeleb / unlabelled), score files and the label join."""

import numpy as np
import pytest

from uattr.errors import DataError
from uattr.scoring.trials import Scores, attach_labels, read_scores, read_trials, write_scores


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def test_kaldi_and_voxceleb_formats_read_the_same(tmp_path):
    kaldi = read_trials(write(tmp_path / "k", "a b target\n\na c nontarget\n"))
    voxceleb = read_trials(write(tmp_path / "v", "1 a b\n0 a c\n"))
    assert (kaldi.enroll, kaldi.test) == (voxceleb.enroll, voxceleb.test) == (["a", "a"], ["b", "c"])
    assert kaldi.labels.tolist() == voxceleb.labels.tolist() == [True, False]
    assert kaldi.lines.tolist() == [1, 3]


def test_unlabelled_trials(tmp_path):
    trials = read_trials(write(tmp_path / "t", "a b\nc d\n"))
    assert trials.labels is None and trials.test == ["b", "d"]


def test_kaldi_wins_when_a_line_fits_both(tmp_path):
    trials = read_trials(write(tmp_path / "t", "1 x target\n0 y nontarget\n"))
    assert trials.enroll == ["1", "0"] and trials.labels.tolist() == [True, False]


@pytest.mark.parametrize(
    "text, line",
    [
        ("1 a b\n0 a c\na b target\n", 3),  # Kaldi line in a VoxCeleb file
        ("a b target\na c maybe\n", 2),  # unknown label
        ("a b target\na c\n", 2),  # unlabelled line in a labelled file
        ("a b\n\n1 a c\n", 3),  # three fields in an unlabelled file
        ("a b c d\n", 1),  # unknown format
        ("2 a b\n", 1),
    ],
)
def test_malformed_lines_name_file_and_line(tmp_path, text, line):
    path = write(tmp_path / "trials", text)
    with pytest.raises(DataError, match=f"{path}:{line}: malformed trial line"):
        read_trials(path)


def test_empty_or_missing_trial_list(tmp_path):
    with pytest.raises(DataError, match="empty trial list"):
        read_trials(write(tmp_path / "t", "\n\n"))
    with pytest.raises(DataError, match="no such trial list"):
        read_trials(tmp_path / "absent")


@pytest.mark.parametrize("labels", [None, np.array([True, False, True])])
def test_score_files_round_trip(tmp_path, labels):
    scores = Scores(["a", "a", "b"], ["x", "y", "z"], np.array([0.123456789, -1e-9, 3.0], np.float32), labels)
    write_scores(tmp_path / "scores", scores)
    back = read_scores(tmp_path / "scores")
    assert (back.enroll, back.test) == (scores.enroll, scores.test)
    np.testing.assert_array_equal(back.scores.astype(np.float32), scores.scores)  # 9 digits: float32 exact
    assert (back.labels is None) if labels is None else back.labels.tolist() == labels.tolist()
    assert len((tmp_path / "scores").read_text().splitlines()[0].split()) == (3 if labels is None else 4)


@pytest.mark.parametrize(
    "text, message",
    [
        ("a b 0.5\na c 0.1 target\n", ":2: malformed score line"),
        ("a b 0.5 yes\n", ":1: malformed score line"),
        ("a b 0.5\na c high\n", ":2: score 'high' is not a number"),
        ("a b 0.5\na c 1_0\n", ":2: score '1_0' is not a number"),  # Python's float() reads it as 10
        ("a b nan\n", ":1: score of 'a b' is nan"),
        ("a b\n", ":1: malformed score line"),
    ],
)
def test_malformed_score_files(tmp_path, text, message):
    with pytest.raises(DataError, match=message):
        read_scores(write(tmp_path / "scores", text))


def test_labels_joined_by_pair_not_by_order(tmp_path):
    trials = read_trials(write(tmp_path / "t", "1 a b\n0 a c\n1 b a\n"))
    scores = read_scores(write(tmp_path / "s", "b a 0.9\na c 0.1\na b 0.8\n"))
    assert attach_labels(scores, trials).labels.tolist() == [True, False, True]


def test_labels_join_either_order_and_unscored_trials_are_reported(tmp_path, caplog):
    """Pairs are unordered, as the lists' checks are; metrics over a subset of the trials say so."""
    trials = read_trials(write(tmp_path / "t", "1 a b\n0 a c\n0 b c\n"))
    scores = read_scores(write(tmp_path / "s", "b a 0.9\nc a 0.1\n"))
    assert attach_labels(scores, trials).labels.tolist() == [True, False]
    assert "s: 1 of the 3 pairs of" in caplog.text and "have no score; the metrics are over the other 2" in caplog.text


def test_an_utterance_paired_with_itself_is_warned(tmp_path, caplog):
    read_trials(write(tmp_path / "t", "a b target\na a target\n"))
    assert "t: 1 line(s) pair an utterance with itself (e.g. line 2)" in caplog.text


def test_label_join_errors(tmp_path):
    trials = read_trials(write(tmp_path / "t", "1 a b\n0 a c\n"))
    with pytest.raises(DataError, match=r"1 scored pair\(s\) not in .*'a d'"):
        attach_labels(read_scores(write(tmp_path / "s", "a b 0.1\na d 0.2\n")), trials)
    with pytest.raises(DataError, match="no target/nontarget labels"):
        attach_labels(read_scores(tmp_path / "s"), read_trials(write(tmp_path / "t3", "a b\n")))


def test_a_pair_labelled_both_ways_is_an_error_and_repeats_are_warned(tmp_path, caplog):
    path = write(tmp_path / "t", "a b target\na c nontarget\nb a nontarget\n")
    with pytest.raises(DataError, match=rf"{path}:3: pair 'b a' is labelled nontarget here but target on line 1"):
        read_trials(path)
    path = write(tmp_path / "s", "a b 0.9 nontarget\na b 0.9 target\n")
    with pytest.raises(DataError, match=rf"{path}:2: pair 'a b' is labelled target here but nontarget on line 1"):
        read_scores(path)
    trials = read_trials(write(tmp_path / "r", "a b target\na c nontarget\na b target\n"))
    assert len(trials.enroll) == 3  # scored as listed
    assert "r: 1 line(s) repeat a pair listed before (e.g. line 3 repeats line 1)" in caplog.text
