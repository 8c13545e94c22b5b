"""Embedding tables, cosine trial scoring, enrolment models, mean subtraction and S-norm/AS-norm."""

import logging

import kaldiio
import numpy as np
import pytest

from uattr.errors import ConfigError, DataError
from uattr.scoring.embeddings import EmbeddingSet, load_embedding_set, table_mean
from uattr.scoring.sv import ScoreNorm, enrolment_models, load_cohort, score_trials
from uattr.scoring.trials import read_trials


def unit(matrix):
    matrix = np.asarray(matrix, np.float64)
    return matrix / np.linalg.norm(matrix, axis=-1, keepdims=True)


def embedding_set(rng, ids, dim=8):
    return EmbeddingSet(list(ids), unit(rng.normal(size=(len(ids), dim))).astype(np.float32), source="mem")


def save_table(path, table):
    kaldiio.save_ark(str(path.with_suffix(".ark")), table, scp=str(path))
    return path


def test_cosine_scores_of_both_trial_formats_are_identical(tmp_path):
    rng = np.random.default_rng(0)
    ids = [f"u{i}" for i in range(6)]
    raw = {key: rng.normal(size=5).astype(np.float32) * 3 for key in ids}
    emb = load_embedding_set(save_table(tmp_path / "emb.scp", raw))
    (tmp_path / "kaldi").write_text("u0 u1 target\nu2 u3 nontarget\nu4 u5 target\n")
    (tmp_path / "vox").write_text("1 u0 u1\n0 u2 u3\n1 u4 u5\n")
    kaldi = score_trials(read_trials(tmp_path / "kaldi"), emb)
    voxceleb = score_trials(read_trials(tmp_path / "vox"), emb)
    np.testing.assert_array_equal(kaldi.scores, voxceleb.scores)
    assert kaldi.labels.tolist() == voxceleb.labels.tolist() == [True, False, True]
    expected = [unit(raw["u0"]) @ unit(raw["u1"]), unit(raw["u2"]) @ unit(raw["u3"]), unit(raw["u4"]) @ unit(raw["u5"])]
    np.testing.assert_allclose(kaldi.scores, expected, atol=1e-6)


def test_missing_ids_are_listed_or_skipped(tmp_path, caplog):
    emb = embedding_set(np.random.default_rng(1), ["a", "b", "c"])
    (tmp_path / "trials").write_text("a b target\na zz nontarget\nyy c target\n")
    trials = read_trials(tmp_path / "trials")
    with pytest.raises(DataError, match=r"trials: 2 trial\(s\) \(first on line 2\) name 2 id\(s\).*'yy', 'zz'"):
        score_trials(trials, emb)
    scores = score_trials(trials, emb, skip_missing=True)
    assert (scores.enroll, scores.test, scores.labels.tolist()) == (["a"], ["b"], [True])
    assert "skipping" in caplog.text and "2 trial(s)" in caplog.text


def test_missing_id_message_is_capped_at_ten(tmp_path):
    emb = embedding_set(np.random.default_rng(1), ["a"])
    (tmp_path / "trials").write_text("".join(f"a m{i}\n" for i in range(15)))
    with pytest.raises(DataError, match=r"'m9' \(and 5 more\)"):
        score_trials(read_trials(tmp_path / "trials"), emb)


def test_enrolment_models_average_normalised_utterances(tmp_path):
    rng = np.random.default_rng(2)
    utts = embedding_set(rng, ["e1", "e2", "e3", "t1"])
    (tmp_path / "spk2utt").write_text("spkA e1 e2\nspkB e3\n")
    models = enrolment_models(tmp_path / "spk2utt", utts)
    expected = unit(utts.vectors[0].astype(np.float64) + utts.vectors[1])
    np.testing.assert_allclose(models.vectors[models.index["spkA"]], expected, atol=1e-6)
    (tmp_path / "trials").write_text("spkA t1 target\nspkB t1 nontarget\n")
    scores = score_trials(read_trials(tmp_path / "trials"), utts, enroll=models)
    np.testing.assert_allclose(scores.scores[0], expected @ utts.vectors[3], atol=1e-6)


def test_enrolment_with_unknown_utterances(tmp_path):
    utts = embedding_set(np.random.default_rng(2), ["e1", "e2"])
    (tmp_path / "spk2utt").write_text("spkA e1 gone\nspkB lost\n")
    with pytest.raises(DataError, match=r"spk2utt: 2 enrolment utterance\(s\).*'gone', 'lost'"):
        enrolment_models(tmp_path / "spk2utt", utts)
    models = enrolment_models(tmp_path / "spk2utt", utts, skip_missing=True)
    assert models.ids == ["spkA"]


def cohort_stats_direct(vector, cohort, top_k):
    scores = sorted((float(vector @ member) for member in cohort), reverse=True)
    chosen = np.array(scores if top_k is None else scores[:top_k])
    return chosen.mean(), chosen.std()


@pytest.mark.parametrize("top_k", [None, 2, 5])
def test_snorm_and_asnorm_match_the_formula(tmp_path, top_k):
    rng = np.random.default_rng(3)
    emb = embedding_set(rng, [f"u{i}" for i in range(6)])
    cohort = embedding_set(rng, [f"c{i}" for i in range(9)])
    (tmp_path / "trials").write_text("u0 u1\nu0 u2\nu3 u4\nu5 u0\n")
    trials = read_trials(tmp_path / "trials")
    raw = score_trials(trials, emb)
    normed = score_trials(trials, emb, norm=ScoreNorm(cohort, top_k))
    for i, (e, t) in enumerate(zip(trials.enroll, trials.test)):
        mean_e, std_e = cohort_stats_direct(emb.vectors[emb.index[e]], cohort.vectors, top_k)
        mean_t, std_t = cohort_stats_direct(emb.vectors[emb.index[t]], cohort.vectors, top_k)
        s = raw.scores[i]
        assert normed.scores[i] == pytest.approx(0.5 * ((s - mean_e) / std_e + (s - mean_t) / std_t), rel=1e-6)


def test_asnorm_with_k_of_the_whole_cohort_equals_snorm(tmp_path):
    rng = np.random.default_rng(4)
    emb = embedding_set(rng, ["a", "b", "c"])
    cohort = embedding_set(rng, [f"c{i}" for i in range(7)])
    (tmp_path / "trials").write_text("a b\nb c\n")
    trials = read_trials(tmp_path / "trials")
    snorm = score_trials(trials, emb, norm=ScoreNorm(cohort)).scores
    np.testing.assert_allclose(score_trials(trials, emb, norm=ScoreNorm(cohort, 7)).scores, snorm)
    np.testing.assert_allclose(score_trials(trials, emb, norm=ScoreNorm(cohort, 100)).scores, snorm)
    with pytest.raises(ConfigError, match="at least 2"):
        ScoreNorm(cohort, 1)


def test_a_side_with_equal_cohort_scores_is_an_error_that_says_which_scores(tmp_path):
    def sets(*cohort):
        emb = EmbeddingSet(["a", "b"], np.array([[1, 0, 0], [0.6, 0.8, 0]], np.float32), source="emb.scp")
        return emb, EmbeddingSet([f"c{i}" for i in range(len(cohort))], np.array(cohort, np.float32), "cohort.scp")

    (tmp_path / "trials").write_text("a b\n")
    trials = read_trials(tmp_path / "trials")
    emb, cohort = sets([0, 1, 0], [0, 0, 1], [-1, 0, 0])  # 'a' scores 0, 0, -1: its top 2 are equal
    assert np.isfinite(score_trials(trials, emb, norm=ScoreNorm(cohort)).scores).all()
    with pytest.raises(DataError, match=r"emb.scp: 'a': its 2 highest scores against the cohort cohort.scp are all "
                                        r"equal; cannot normalise \(a larger --top-k may help\)"):
        score_trials(trials, emb, norm=ScoreNorm(cohort, 2))
    emb, cohort = sets([0, 1, 0], [0, 0, 1])  # 'a' scores 0 against both
    for top_k in (None, 2):
        with pytest.raises(DataError, match=r"emb.scp: 'a' scores the same against every member of the cohort "
                                            r"cohort.scp; cannot normalise"):
            score_trials(trials, emb, norm=ScoreNorm(cohort, top_k))


def test_a_cohort_of_fewer_than_two_speakers_is_a_config_error():
    rng = np.random.default_rng(4)
    one = EmbeddingSet(["c0"], unit(rng.normal(size=(1, 8))).astype(np.float32), source="cohort.scp")
    for top_k in (None, 300):
        with pytest.raises(ConfigError, match=r"at least 2 speakers.*cohort.scp has 1"):
            ScoreNorm(one, top_k)


def test_a_cohort_holding_trial_utterances_is_reported(tmp_path, caplog):
    rng = np.random.default_rng(7)
    emb = embedding_set(rng, ["a", "b", "c", "d"])
    cohort = embedding_set(rng, [f"s{i}" for i in range(10)])
    (tmp_path / "trials").write_text("a b target\nc d nontarget\n")
    trials = read_trials(tmp_path / "trials")
    with caplog.at_level(logging.WARNING):
        score_trials(trials, emb, norm=ScoreNorm(cohort, 3))
    assert caplog.text == ""
    leaky = EmbeddingSet(["b", "d"] + cohort.ids, np.vstack([emb.vectors[[1, 3]], cohort.vectors]), source="leaky")
    with caplog.at_level(logging.WARNING):
        score_trials(trials, emb, norm=ScoreNorm(leaky, 3))
    assert "cohort leaky contains 2 trial id(s) (enrol/test): 'b', 'd'" in caplog.text
    # Behind a cohort of speaker means and enrolment models of several utterances, the utterances are compared.
    caplog.clear()
    raw = {key: rng.normal(size=emb.dim).astype(np.float32) for key in ("a", "x", "y")}
    scp = save_table(tmp_path / "cohort.scp", raw)
    (tmp_path / "utt2spk").write_text("a s1\nx s1\ny s2\n")
    speakers = load_cohort(scp, tmp_path / "utt2spk")
    (tmp_path / "spk2utt").write_text("m1 a c\n")
    (tmp_path / "model_trials").write_text("m1 b target\n")
    models = enrolment_models(tmp_path / "spk2utt", emb)
    with caplog.at_level(logging.WARNING):
        score_trials(read_trials(tmp_path / "model_trials"), emb, models, norm=ScoreNorm(speakers, 3))
    assert "contains 1 trial id(s) (enrol/test): 'a'" in caplog.text  # enrolment utterance a of model m1


def test_cohort_grouped_by_speaker(tmp_path):
    rng = np.random.default_rng(5)
    raw = {f"c{i}": rng.normal(size=4).astype(np.float32) for i in range(4)}
    scp = save_table(tmp_path / "cohort.scp", raw)
    (tmp_path / "utt2spk").write_text("c0 s1\nc1 s1\nc2 s2\nc3 s2\nextra s3\n")
    cohort = load_cohort(scp, tmp_path / "utt2spk")
    assert cohort.ids == ["s1", "s2"]
    np.testing.assert_allclose(cohort.vectors[0], unit(unit(raw["c0"]) + unit(raw["c1"])), atol=1e-6)
    (tmp_path / "utt2spk").write_text("c0 s1\n")
    with pytest.raises(DataError, match=r"no speaker for 3 cohort id\(s\)"):
        load_cohort(scp, tmp_path / "utt2spk")


def test_mean_subtraction_uses_the_training_mean(tmp_path):
    rng = np.random.default_rng(6)
    train = {f"t{i}": (rng.normal(size=4) + 5).astype(np.float32) for i in range(10)}
    mean = table_mean(save_table(tmp_path / "train.scp", train))
    np.testing.assert_allclose(mean.vector, np.mean(list(train.values()), axis=0), atol=1e-6)
    test = {"x": rng.normal(size=4).astype(np.float32)}
    emb = load_embedding_set(save_table(tmp_path / "test.scp", test), mean)
    np.testing.assert_allclose(emb.vectors[0], unit(test["x"] - mean.vector), atol=1e-6)


def test_a_mean_of_another_dimension_is_an_error_naming_both_tables(tmp_path):
    mean = table_mean(save_table(tmp_path / "train.scp", {"t": np.ones(3, np.float32)}))
    with pytest.raises(DataError, match=r"test.scp: dimension 4 differs from that of the mean vector of .*train.scp"):
        load_embedding_set(save_table(tmp_path / "test.scp", {"x": np.ones(4, np.float32)}), mean)


@pytest.mark.parametrize(
    "vector, message",
    [
        (np.array([1.0, np.nan], np.float32), "emb.scp:2: the embedding of 'bad' has NaN"),
        (np.array([np.inf, 0.0], np.float32), "emb.scp:2: the embedding of 'bad' has NaN or infinite"),
        (np.zeros(2, np.float32), "emb.scp: the embedding of 'bad' is all zeros"),
        (np.ones(3, np.float32), "emb.scp:2: the embedding of 'bad' has dimension 3"),
    ],
)
def test_bad_embeddings_name_the_id(tmp_path, vector, message):
    scp = save_table(tmp_path / "emb.scp", {"good": np.ones(2, np.float32), "bad": vector})
    with pytest.raises(DataError, match=message):
        load_embedding_set(scp)


def test_broken_tables(tmp_path):
    scp = save_table(tmp_path / "emb.scp", {"a": np.ones(2, np.float32)})
    (tmp_path / "dup.scp").write_text(scp.read_text() * 2)
    with pytest.raises(DataError, match=r"dup.scp:2: duplicate id 'a'"):
        load_embedding_set(tmp_path / "dup.scp")
    (tmp_path / "gone.scp").write_text("a missing.ark:5\n")
    with pytest.raises(DataError, match="cannot read the embedding of 'a'"):
        load_embedding_set(tmp_path / "gone.scp")
    with pytest.raises(DataError, match="no such file"):
        load_embedding_set(tmp_path / "absent.scp")
