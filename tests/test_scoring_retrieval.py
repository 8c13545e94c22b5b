"""R@k, MRR and xSIM against brute force, in blocks smaller than the query count, with ties and many-to-one."""

import logging
import warnings

import numpy as np
import pytest

from uattr.errors import ConfigError, DataError
from uattr.scoring.embeddings import EmbeddingSet
from uattr.scoring.retrieval import (
    _BYTES_PER_SCORE,
    Relevance,
    relevance_from_groups,
    evaluate_retrieval,
    knn_means,
    relevance_by_id,
    relevance_from_map,
    retrieval_metrics,
    select_queries,
)


def normalise(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def unit_rows(rng, n, dim=16):
    return normalise(rng.normal(size=(n, dim)))


def tied_rows(rng, n):
    """Unit vectors with entries ±0.5 in 4-d: every cosine is an exact multiple of 0.25, so ties abound."""
    return (rng.choice([-0.5, 0.5], size=(n, 4))).astype(np.float32)


def brute_force_ranks(queries, gallery, relevant):
    """Rank of each query's best relevant item by the definition (ties broken by gallery order)."""
    scores = queries.astype(np.float64) @ gallery.T.astype(np.float64)
    ranks = []
    for q, items in enumerate(relevant):
        row = scores[q]
        item_ranks = [np.sum(row > row[j]) + np.sum(row[:j] == row[j]) + 1 for j in items]
        ranks.append(min(item_ranks))
    return np.array(ranks)


def brute_force_xsim(queries, gallery, relevant, margin, k):
    """LASER's xsim.py: the margin's arg-max over each query's k nearest gallery items (absolute: the nearest)."""
    scores = queries.astype(np.float64) @ gallery.T.astype(np.float64)
    k_query, k_gallery = min(k, scores.shape[1]), min(k, scores.shape[0])
    query_knn = np.sort(scores, axis=1)[:, ::-1][:, :k_query].mean(axis=1)
    gallery_knn = np.sort(scores, axis=0)[::-1][:k_gallery].mean(axis=0)
    wrong = []
    for q, items in enumerate(relevant):
        by_score = sorted(range(scores.shape[1]), key=lambda j: (-scores[q, j], j))
        nearest = by_score[: 1 if margin == "absolute" else k_query]
        bias = [(query_knn[q] + gallery_knn[j]) / 2 for j in nearest]
        margins = {
            "ratio": [scores[q, j] / b for j, b in zip(nearest, bias)],
            "distance": [scores[q, j] - b for j, b in zip(nearest, bias)],
            "absolute": [scores[q, j] for j in nearest],
        }[margin]
        wrong.append(nearest[int(np.argmax(margins))] not in items)
    return np.array(wrong)


def blocks_of(rows, n_gallery):
    return rows * _BYTES_PER_SCORE * n_gallery  # block_bytes that give blocks of that many query rows


@pytest.mark.parametrize("rows_per_block", [1, 3, 7, 1000])
@pytest.mark.parametrize("make", [unit_rows, tied_rows])
def test_ranks_match_brute_force_in_any_block_size(rows_per_block, make):
    rng = np.random.default_rng(rows_per_block)
    queries, gallery = make(rng, 23), make(rng, 31)
    relevant = [[int(g)] for g in rng.integers(0, 31, 23)]
    outcome = evaluate_retrieval(
        queries, gallery, relevance_from_groups(relevant), margin="absolute", block_bytes=blocks_of(rows_per_block, 31)
    )
    expected = brute_force_ranks(queries, gallery, relevant)
    np.testing.assert_array_equal(outcome.ranks, expected)
    metrics = retrieval_metrics(outcome, (1, 5, 10))
    for k in (1, 5, 10):
        assert metrics[f"r@{k}"] == pytest.approx(100 * np.mean(expected <= k))
    assert metrics["mrr"] == pytest.approx(np.mean(1 / expected))
    assert metrics["n_query"] == 23


def test_ties_are_broken_by_gallery_order():
    queries = np.array([[1.0, 0.0]], np.float32)
    gallery = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]], np.float32)
    ranks = [evaluate_retrieval(queries, gallery, relevance_from_groups([[j]]), "absolute").ranks[0] for j in range(4)]
    assert ranks == [4, 1, 2, 3]


def test_identical_gallery_vectors_tie_exactly_whatever_the_blocks():
    """A float32 matrix product can give two identical gallery vectors cosines one ulp apart (depending on their
    column and on the block's shape): ties must still go to the earlier item, and blocks must not matter."""
    for seed in range(20):
        rng = np.random.default_rng(seed)
        gallery = unit_rows(rng, 23, dim=384)
        gallery[15:] = gallery[:8]  # items 15-22 repeat items 0-7
        queries = normalise(gallery[:8] + 0.5 * unit_rows(rng, 8, dim=384))
        first = relevance_from_groups([[i] for i in range(8)])
        second = relevance_from_groups([[15 + i] for i in range(8)])
        for rows_per_block in (1, 3, 8):
            block_bytes = blocks_of(rows_per_block, 23)
            for margin in ("absolute", "ratio"):
                a = evaluate_retrieval(queries, gallery, first, margin, block_bytes=block_bytes)
                b = evaluate_retrieval(queries, gallery, second, margin, block_bytes=block_bytes)
                np.testing.assert_array_equal(b.ranks, a.ranks + 1, err_msg=f"seed {seed}")  # the copy comes later
                expected = brute_force_xsim(queries, gallery, [[i] for i in range(8)], margin, 4)
                np.testing.assert_array_equal(a.xsim_wrong, expected)
            assert (a.ranks == 1).all()


def test_k_nearest_of_a_collapsed_model_are_the_first_items():
    """Every score equal (a collapsed model): the k nearest are the first k gallery items, every query wrong but
    the first item's."""
    queries, gallery = np.ones((6, 4), np.float32) / 2, np.ones((50, 4), np.float32) / 2
    outcome = evaluate_retrieval(queries, gallery, relevance_from_groups([[i] for i in range(6)]), "ratio",
                                 block_bytes=blocks_of(4, 50))
    np.testing.assert_array_equal(outcome.ranks, np.arange(1, 7))
    np.testing.assert_array_equal(outcome.xsim_wrong, np.arange(6) > 0)


def test_a_query_without_a_relevant_item_is_refused():
    with pytest.raises(DataError, match=r"1 query\(s\) without a relevant gallery item \('row 1'\)"):
        relevance_from_groups([[0], [], [2]])


@pytest.mark.parametrize("rows_per_block", [5, 1000])  # several blocks; one block whose scores serve both passes
@pytest.mark.parametrize("margin", ["ratio", "distance", "absolute"])
@pytest.mark.parametrize("make", [unit_rows, tied_rows])
def test_xsim_matches_brute_force(margin, make, rows_per_block):
    rng = np.random.default_rng(11)
    queries, gallery = make(rng, 29), make(rng, 17)
    relevant = [[int(g)] for g in rng.integers(0, 17, 29)]
    outcome = evaluate_retrieval(
        queries, gallery, relevance_from_groups(relevant), margin, xsim_k=4, block_bytes=blocks_of(rows_per_block, 17)
    )
    np.testing.assert_array_equal(outcome.xsim_wrong, brute_force_xsim(queries, gallery, relevant, margin, 4))


def test_xsim_candidates_are_the_k_nearest_as_in_laser():
    """Gallery items of varied hubness: a margin arg-max over the whole gallery would differ from LASER's here."""
    rng = np.random.default_rng(41)
    hub = rng.normal(size=6)
    queries = normalise(rng.normal(size=(12, 6)) + hub)
    gallery = normalise(rng.normal(size=(12, 6)) + rng.uniform(0, 2, size=(12, 1)) * hub)
    relevant = [[i] for i in range(12)]
    outcome = evaluate_retrieval(queries, gallery, relevance_from_groups(relevant), "ratio", xsim_k=4)
    laser = brute_force_xsim(queries, gallery, relevant, "ratio", 4)
    np.testing.assert_array_equal(outcome.xsim_wrong, laser)
    scores = queries.astype(np.float64) @ gallery.T
    bias = (np.sort(scores, axis=1)[:, -4:].mean(axis=1)[:, None] + np.sort(scores, axis=0)[-4:].mean(axis=0)) / 2
    whole_gallery = np.argmax(scores / bias, axis=1) != np.arange(12)
    assert np.any(whole_gallery != laser)


def test_absolute_xsim_is_one_minus_r_at_1_on_a_unique_gallery():
    rng = np.random.default_rng(12)
    gallery = unit_rows(rng, 50)
    queries = normalise(gallery + 1.2 * unit_rows(rng, 50))
    relevance = relevance_from_groups([[i] for i in range(50)])
    metrics = retrieval_metrics(evaluate_retrieval(queries, gallery, relevance, "absolute"))
    assert 0 < metrics["r@1"] < 100
    assert metrics["xsim"] == pytest.approx(100 - metrics["r@1"])


def test_knn_means_in_blocks_equal_the_full_matrix():
    rng = np.random.default_rng(13)
    queries, gallery = unit_rows(rng, 40), unit_rows(rng, 9)
    full = queries.astype(np.float64) @ gallery.T
    query_means, gallery_means = knn_means(queries, gallery, k=4, block_bytes=blocks_of(3, 9))
    np.testing.assert_allclose(query_means, np.sort(full, axis=1)[:, -4:].mean(axis=1), atol=1e-6)
    np.testing.assert_allclose(gallery_means, np.sort(full, axis=0)[-4:].mean(axis=0), atol=1e-6)
    small_means, _ = knn_means(queries, gallery, k=50)  # k larger than the gallery: all items
    np.testing.assert_allclose(small_means, full.mean(axis=1), atol=1e-6)


def test_many_to_one_relevance_from_a_map(tmp_path):
    rng = np.random.default_rng(14)
    gallery = EmbeddingSet([f"g{i}" for i in range(12)], tied_rows(rng, 12), source="gallery")
    queries = EmbeddingSet([f"q{i}" for i in range(8)], tied_rows(rng, 8), source="queries")
    references = [sorted({int(g) for g in rng.integers(0, 12, rng.integers(1, 4))}) for _ in range(8)]
    lines = [f"q{q} " + " ".join(f"g{g}" for g in refs) for q, refs in enumerate(references)]
    (tmp_path / "query2ref").write_text("\n".join(lines[::-1] + ["unused g1"]) + "\n")
    relevance = relevance_from_map(tmp_path / "query2ref", queries, gallery)
    outcome = evaluate_retrieval(queries.vectors, gallery.vectors, relevance, "ratio", block_bytes=blocks_of(3, 12))
    np.testing.assert_array_equal(outcome.ranks, brute_force_ranks(queries.vectors, gallery.vectors, references))
    expected_wrong = brute_force_xsim(queries.vectors, gallery.vectors, references, "ratio", 4)
    np.testing.assert_array_equal(outcome.xsim_wrong, expected_wrong)


def test_relevance_map_errors(tmp_path):
    gallery = EmbeddingSet(["g0", "g1"], np.eye(2, dtype=np.float32), source="gallery")
    queries = EmbeddingSet(["q0", "q1"], np.eye(2, dtype=np.float32), source="queries")
    cases = {
        "q0 g0\nq1 g9\n": r"query2ref:2: reference id\(s\) not in the gallery gallery: 'g9'",
        "q0 g0\nq0 g1\n": r"query2ref:2: duplicate query id 'q0' \(first seen on line 1\)",
        "q0 g0\nq1\n": r"query2ref:2: query 'q1' has no reference id",
        "q0 g0\n": r"no line for 1 query id\(s\) of queries: 'q1'",
    }
    for text, message in cases.items():
        (tmp_path / "query2ref").write_text(text)
        with pytest.raises(DataError, match=message):
            relevance_from_map(tmp_path / "query2ref", queries, gallery)


def test_map_lines_of_other_queries_are_not_checked_against_the_gallery(tmp_path, caplog):
    """A line for a query outside this query table is ignored, so its references need not be in this gallery."""
    gallery = EmbeddingSet(["g1", "g2", "g3"], np.eye(3, dtype=np.float32), source="gallery")
    queries = EmbeddingSet(["q1", "q2"], np.eye(3, dtype=np.float32)[:2], source="queries")
    (tmp_path / "query2ref").write_text("q1 g1\nq_other g_elsewhere\nq2 g2 g3\n")
    with caplog.at_level(logging.INFO):
        relevance = relevance_from_map(tmp_path / "query2ref", queries, gallery)
    assert relevance.offsets.tolist() == [0, 1, 3] and relevance.items.tolist() == [0, 1, 2]
    assert "1 line(s) name queries absent from queries (ignored)" in caplog.text


def test_same_id_relevance():
    gallery = EmbeddingSet(["b", "a", "c"], np.eye(3, dtype=np.float32))
    queries = EmbeddingSet(["a", "c"], np.eye(3, dtype=np.float32)[[1, 2]])
    relevance = relevance_by_id(queries, gallery)
    assert relevance.items.tolist() == [1, 2]
    with pytest.raises(DataError, match=r"1 query id\(s\) .* 'z'"):
        relevance_by_id(EmbeddingSet(["a", "z"], np.eye(3, dtype=np.float32)[:2]), gallery)


def test_select_queries_keeps_their_relevant_items_in_order():
    relevance = relevance_from_groups([[0], [1, 2], [3], [4, 5, 6]])
    part = select_queries(relevance, np.array([3, 1]))
    assert part.offsets.tolist() == [0, 3, 5] and part.items.tolist() == [4, 5, 6, 1, 2]
    empty = select_queries(relevance, np.array([], dtype=np.int64))
    assert empty.offsets.tolist() == [0] and empty.items.size == 0


def test_ratio_margin_with_a_nonpositive_bias_warns_and_never_picks_nan(caplog):
    """Cosines [[0, .5], [-.5, .5]], k = 2: query 0's bias against g0 is 0 (0/0), query 1's is negative."""
    queries = np.array([[0.0, 0.5, np.sqrt(0.75)], [-0.5, 0.5, np.sqrt(0.5)]], np.float32)
    gallery = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], np.float32)
    relevance = relevance_from_groups([[1], [1]])
    with warnings.catch_warnings(), caplog.at_level(logging.WARNING):
        warnings.simplefilter("error")  # no numpy divide/invalid RuntimeWarning either
        outcome = evaluate_retrieval(
            queries, gallery, relevance, "ratio", xsim_k=2, query_ids=["qa", "qb"], gallery_ids=["g0", "g1"]
        )
    assert not outcome.xsim_wrong[0]  # the 0/0 candidate g0 did not win over g1
    assert "≤ 0 for 2 query(s) ('qa', 'qb') against 1 gallery item(s) ('g0')" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        evaluate_retrieval(queries, gallery, relevance, "distance", xsim_k=2)
        evaluate_retrieval(np.abs(queries), gallery, relevance, "ratio", xsim_k=2)
    assert caplog.text == ""


def test_bad_options():
    rng = np.random.default_rng(15)
    queries, gallery = unit_rows(rng, 10), unit_rows(rng, 10)
    relevance = Relevance(np.arange(11), np.arange(10))
    with pytest.raises(ConfigError, match="unknown margin"):
        evaluate_retrieval(queries, gallery, relevance, "cosine")
    with pytest.raises(DataError, match="16-d"):
        evaluate_retrieval(queries, gallery[:, :8], relevance)
