"""Metrics-file labels (meta or path), RESULTS.md tables, reference rows; DET and layer-weight figures."""

import json

import numpy as np
import pytest

from uattr.errors import DataError
from scipy.stats import norm

from uattr.scoring.metrics import equal_error_rate, error_rates
from uattr.scoring.plots import (
    DET_TICKS, _probit, _thin, det_limits, det_ticks, plot_det, plot_layer_weights, validate_layer_weights,
)
from uattr.scoring.results import aggregate_runs, collect_rows, find_metric_files, flatten_metrics, render_results

SV = {"eer": 1.5, "min_dcf": {"0.01": 0.2, "0.05": 0.1}, "n_target": 10, "n_nontarget": 90}
RETRIEVAL = {"r@1": 90.0, "r@5": 95.0, "r@10": 99.0, "mrr": 0.93, "xsim": 8.0, "n_query": 100, "n_gallery": 100}


def dump(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


@pytest.mark.parametrize(
    "relative, labels",
    [
        ("joint/scores/vox1_o/metrics.json", ("joint", "vox1_o", "")),
        ("joint/scores/vox1_o/asnorm.json", ("joint", "vox1_o", "asnorm")),
        ("joint/scores/vox1_o/speaker/asnorm.json", ("joint", "vox1_o", "speaker/asnorm")),
        ("joint/scores/sv.json", ("joint", "", "sv")),
    ],
)
def test_labels_from_the_path(tmp_path, relative, labels):
    (row,) = collect_rows([dump(tmp_path / "exp" / relative, SV)])
    assert (row.system, row.test_set, row.condition) == labels
    assert row.task == "sv"


def test_meta_labels_win_over_the_path(tmp_path):
    meta = {"task": "retrieval", "system": "sys", "test_set": "fleurs", "condition": "s2t"}
    path = dump(tmp_path / "exp/a/scores/b/c.json", {**RETRIEVAL, "meta": meta})
    (row,) = collect_rows([path])
    assert (row.task, row.system, row.test_set, row.condition) == ("retrieval", "sys", "fleurs", "s2t")
    assert row.values["r@5"] == 95.0


def test_find_metric_files_only_under_scores(tmp_path):
    dump(tmp_path / "exp/a/scores/t/metrics.json", SV)
    dump(tmp_path / "exp/a/emb/meta.json", {"dim": 3})
    assert [p.name for p in find_metric_files(tmp_path / "exp")] == ["metrics.json"]


def test_tables_have_one_row_per_system_and_dashes_for_gaps(tmp_path):
    files = [
        dump(tmp_path / "exp/joint/scores/vox/metrics.json", SV),
        dump(tmp_path / "exp/spk/scores/vox/metrics.json", {"eer": 2.0, "min_dcf": {"0.01": 0.3}}),
        dump(tmp_path / "exp/joint/scores/fleurs/metrics.json", {**RETRIEVAL, "per_lang": {"fr": RETRIEVAL}}),
    ]
    text = render_results(collect_rows(files), title="T")
    assert text.startswith("# T\n")
    sv_table = text[text.index("## Speaker verification") : text.index("## Retrieval")]
    assert "### vox\n\n| system | condition | EER (%)" in sv_table  # one table per test set
    assert "| joint | – | 1.50 | 0.2000 | 0.1000 | 10 | 90 |" in sv_table
    assert "| spk | – | 2.00 | 0.3000 | – | – | – |" in sv_table
    retrieval_table = text[text.index("## Retrieval") :]
    assert "### fleurs" in retrieval_table
    assert "R@1 (%) | R@5 (%) | R@10 (%) | MRR | xSIM error (%) | #query | #gallery |" in retrieval_table
    assert "| joint | [fr] | 90.00 |" in retrieval_table


def test_notes_and_figures_are_shown(tmp_path):
    files = [dump(tmp_path / "exp/joint/scores/vox/metrics.json", SV)]
    text = render_results(collect_rows(files), title="T", notes="Trained from scratch.",
                          figures=[("Layer weights", "joint/layer_weights.png")])
    assert text.startswith("# T\n\nTrained from scratch.\n")
    assert "![Layer weights](joint/layer_weights.png)" in text


def test_reference_rows_follow_measured_rows(tmp_path):
    measured = dump(tmp_path / "exp/joint/scores/vox/metrics.json", SV)
    reference = dump(tmp_path / "ref.json", {"eer": 0.9, "meta": {"system": "ECAPA", "test_set": "vox"}})
    rows = collect_rows([measured], [reference])
    assert rows[1].source == "reference" and rows[1].task == "sv"
    text = render_results(rows)
    assert text.index("| joint |") < text.index("| ECAPA (reference) |")


def test_a_reference_row_with_an_empty_source_or_an_unmeasured_test_set(tmp_path, capsys):
    from uattr.bin.main import main

    dump(tmp_path / "exp/joint/scores/vox/metrics.json", SV)
    dump(tmp_path / "ref.json", [
        {"eer": 0.9, "meta": {"system": "ECAPA", "test_set": "vox", "source": ""}},
        {"eer": 0.8, "meta": {"system": "ECAPA", "test_set": "Vox", "source": "paper"}},
    ])
    assert main(["results", "--exp-dir", str(tmp_path / "exp"), "--reference", str(tmp_path / "ref.json")]) == 0
    text = (tmp_path / "exp/RESULTS.md").read_text()
    assert text.index("| joint |") < text.index("| ECAPA (reference) |")  # an empty source is still a reference
    warnings = [line.split("WARNING: ")[1] for line in capsys.readouterr().err.splitlines() if "WARNING" in line]
    assert warnings == [
        "reference rows of paper: no measured sv row has the test set 'Vox' (measured: vox); they get a table of"
        " their own"
    ]


def test_runs_aggregate_to_mean_and_sample_deviation(tmp_path):
    runs = {}
    for seed, eer in enumerate([1.0, 2.0, 4.5]):
        exp = tmp_path / f"exp_seed{seed}"
        (exp / "joint").mkdir(parents=True)
        (exp / "joint" / "config.yaml").write_text(f"seed: {seed}\n")
        files = [dump(exp / "joint/scores/vox/metrics.json", {**SV, "eer": eer})]
        if seed == 0:  # a row of one run only, e.g. an untrained baseline scored once
            files.append(dump(exp / "baseline/scores/vox/metrics.json", {"eer": 30.0}))
        runs[str(exp)] = collect_rows(files)
    rows = {row.system: row for row in aggregate_runs(runs)}
    joint = rows["joint"]
    assert joint.runs == 3 and joint.values["eer"] == pytest.approx(2.5)
    assert joint.spread["eer"] == pytest.approx(np.std([1.0, 2.0, 4.5], ddof=1))
    assert joint.spread["n_target"] == 0.0 and len(joint.config_dirs) == 3
    assert rows["baseline"].runs == 1
    text = render_results(list(rows.values()), runs=list(runs))
    assert "mean ± the sample standard deviation over 3 runs" in text
    assert "| system | condition | runs | EER (%)" in text
    assert "| joint | – | 3 | 2.50 ± 1.80 | 0.2000 | 0.1000 | 10 | 90 |" in text  # constant metrics: no ±
    assert "| baseline | – | 1 | 30.00 | – |" in text
    (digests,) = [line for line in text.splitlines() if line.startswith("| joint | joint/config.yaml |")]
    assert digests.count(",") == 2  # the three runs' configs differ (their seeds)


def test_metrics_of_other_scoring_settings_get_columns_of_their_own(tmp_path):
    """A minDCF of other costs, or an xSIM of another margin, is not the same metric: never one column, or a mean."""
    runs = {}
    for run, (c_miss, margin) in enumerate([(1.0, "ratio"), (10.0, "absolute")]):
        runs[f"run{run}"] = collect_rows([
            dump(tmp_path / f"run{run}/joint/scores/vox/metrics.json",
                 {**SV, "meta": {"task": "sv", "c_miss": c_miss, "c_fa": 1.0}}),
            dump(tmp_path / f"run{run}/joint/scores/fleurs/metrics.json",
                 {**RETRIEVAL, "xsim": 8.0 + run, "meta": {"task": "retrieval", "margin": margin, "xsim_k": 4}}),
        ])
    text = render_results(collect_rows([tmp_path / "run1/joint/scores/vox/metrics.json"]))
    assert "| EER (%) | minDCF (P_tar=0.01; C_miss=10) | minDCF (P_tar=0.05; C_miss=10) |" in text
    text = render_results(aggregate_runs(runs), runs=list(runs))
    assert ("| minDCF (P_tar=0.01) | minDCF (P_tar=0.01; C_miss=10) | minDCF (P_tar=0.05) "
            "| minDCF (P_tar=0.05; C_miss=10) |") in text
    assert "| xSIM error (%) | xSIM error (%; margin=absolute) |" in text
    assert "| joint | – | 2 | 90.00 | 95.00 | 99.00 | 0.9300 | 8.00 (1 run) | 9.00 (1 run) | 100 | 100 |" in text


def test_a_metric_missing_from_some_runs_says_how_many_had_it(tmp_path):
    first = collect_rows([dump(tmp_path / "a/joint/scores/vox/metrics.json", SV)])
    second = collect_rows([dump(tmp_path / "b/joint/scores/vox/metrics.json", {"eer": 2.5})])
    (row,) = aggregate_runs({"a": first, "b": second})
    assert row.counts["min_dcf/0.01"] == 1
    assert "| joint | – | 2 | 2.00 ± 0.71 | 0.2000 (1 run) |" in render_results([row], runs=["a", "b"])


def test_counts_that_differ_over_runs_and_reference_rows_of_aggregated_tables(tmp_path):
    runs = {run: collect_rows([dump(tmp_path / run / "joint/scores/vox/metrics.json", {**SV, "n_target": n})])
            for run, n in (("a", 10), ("b", 11))}
    reference = dump(tmp_path / "ref.json", {"eer": 0.9, "meta": {"system": "ECAPA", "test_set": "vox",
                                                                 "source": "paper"}})
    text = render_results(aggregate_runs(runs) + collect_rows([], [reference]), runs=list(runs))
    assert "| joint | – | 2 | 1.50 | 0.2000 | 0.1000 | 10.5 ± 0.7 | 90 |" in text
    assert "| ECAPA (paper) | – | – | 0.90 |" in text  # a reference is not one of the runs


def test_a_metric_name_is_escaped_in_its_header(tmp_path):
    (row,) = collect_rows([dump(tmp_path / "exp/joint/scores/vox/metrics.json", {**SV, "acc|top": 3.0})])
    header = next(line for line in render_results([row]).splitlines() if line.startswith("| system |"))
    assert header.endswith("| acc\\|top |")
    assert header.replace("\\|", "").count("|") == 2 + 1 + len(row.values)


def test_a_spread_below_the_columns_precision_still_shows(tmp_path):
    runs = {run: collect_rows([dump(tmp_path / run / "joint/scores/vox/metrics.json", {"eer": eer})])
            for run, eer in (("a", 1.004), ("b", 1.006))}
    assert "| joint | – | 2 | 1.00 ± 0.0014 |" in render_results(aggregate_runs(runs), runs=list(runs))


def test_figure_links_with_spaces_or_brackets_stay_links(tmp_path):
    row = collect_rows([dump(tmp_path / "exp/joint/scores/vox/metrics.json", SV)])
    text = render_results(row, title="T", figures=[("DET [test]", "fig dir/det (1).png"), ("plain", "a/b.png")])
    assert "![DET \\[test\\]](<fig dir/det (1).png>)" in text and "![plain](a/b.png)" in text


def test_two_rows_with_the_same_labels_in_one_run_are_refused(tmp_path):
    rows = collect_rows([dump(tmp_path / "x/joint/scores/vox/metrics.json", SV),
                         dump(tmp_path / "y/joint/scores/vox/metrics.json", SV)])
    with pytest.raises(DataError, match="exp: two metrics files give the row sv / joint / vox"):
        aggregate_runs({"exp": rows})


def test_one_experiment_whose_two_files_give_one_row_is_refused(tmp_path, capsys):
    from uattr.bin.main import main

    dump(tmp_path / "exp/a/joint/scores/vox/metrics.json", SV)
    dump(tmp_path / "exp/b/joint/scores/vox/metrics.json", {**SV, "eer": 9.0})
    assert main(["results", "--exp-dir", str(tmp_path / "exp")]) == 1
    assert "two metrics files give the row sv / joint / vox" in capsys.readouterr().err
    assert main(["results", "--exp-dir", str(tmp_path / "exp/a"), f"{tmp_path}/exp/b/../a",
                 "--out", str(tmp_path / "R.md")]) == 1  # one directory, two spellings
    assert "a directory is named twice" in capsys.readouterr().err


def test_bad_metrics_files(tmp_path):
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(DataError, match=r"broken\.json:1: invalid JSON"):
        collect_rows([tmp_path / "broken.json"])
    with pytest.raises(DataError, match="no numeric metric"):
        collect_rows([dump(tmp_path / "empty.json", {"meta": {}})])
    with pytest.raises(DataError, match=r"lang\.json: \"per_lang\" must map each part to an object"):
        collect_rows([dump(tmp_path / "lang.json", {**SV, "per_lang": {"fr": 0.5}})])


def test_flatten_metrics():
    assert flatten_metrics({"a": 1, "b": {"c": 2.5}, "d": "x", "e": True}) == {"a": 1, "b/c": 2.5}


@pytest.mark.parametrize(
    "metrics, message",
    [
        ({"eer": float("nan")}, r"'eer' is nan, not a finite number"),
        ({"eer": 1.0, "min_dcf": {"0.01": float("inf")}}, r"'min_dcf/0\.01' is inf, not a finite number"),
        ({"eer": 10**400}, r"'eer' is 1000.*, not a finite number"),
        ({"eer": "1.5"}, r"'eer' is '1\.5', not a number"),
    ],
)
def test_a_metric_that_is_not_a_finite_number_names_its_file(tmp_path, metrics, message):
    """It would print as 'nan', vanish from its table (a string) or turn a mean over runs into NaN."""
    path = tmp_path / "exp/joint/scores/vox/metrics.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(metrics).replace("NaN", "NaN").replace("Infinity", "Infinity"))
    with pytest.raises(DataError, match=rf"metrics\.json: {message}"):
        collect_rows([path])


def test_labels_with_pipes_or_line_breaks_keep_the_table_whole(tmp_path):
    path = dump(tmp_path / "exp/a/scores/vox/metrics.json", {**SV, "meta": {"system": "a|b", "condition": "x\ny"}})
    table = [line for line in render_results(collect_rows([path]), title="T").splitlines() if line.startswith("| a")]
    assert table == ["| a\\|b | x y | 1.50 | 0.2000 | 0.1000 | 10 | 90 |"]


def test_det_thinning_keeps_the_ends_and_shape():
    x = np.linspace(-3, 3, 100_000)
    keep = _thin(x, -x)
    assert keep[0] == 0 and keep[-1] == x.size - 1
    assert 500 < keep.size < 2000
    assert np.all(np.diff(x[keep]) <= 0.0051)


def test_plot_det_of_a_large_list(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.random(200_000) < 0.1
    scores = rng.normal(size=labels.size) + 2 * labels
    curves = [("good", error_rates(scores, labels)), ("chance", error_rates(rng.normal(size=100), np.arange(100) < 50))]
    plot_det(curves, tmp_path / "det.pdf")
    assert (tmp_path / "det.pdf").read_bytes()[:4] == b"%PDF"


@pytest.mark.parametrize("floor, top", [(0.001, 0.5), (0.001, 0.999), (0.05, 0.95), (0.05, 0.5)])
def test_det_ticks_are_spread_and_symmetric(floor, top):
    ticks = det_ticks(floor, top)
    assert 0.5 in ticks and floor <= min(ticks) and max(ticks) <= top
    gaps = np.diff(norm.ppf(ticks))
    assert gaps.min() >= (norm.ppf(top) - norm.ppf(floor)) / 16  # 99.5, 99.8, 99.9 would overlap on 0.1%–99.9%
    upper = [t for t in ticks if t > 0.5]
    assert upper == [pytest.approx(1 - t) for t in ticks if t < 0.5][::-1][: len(upper)]
    if top == 0.5:  # a half-range axis keeps every tick, as before
        assert ticks == [t for t in DET_TICKS if floor <= t <= top]


@pytest.mark.parametrize("n_small", [1, 2])
@pytest.mark.parametrize("small_class", ["target", "nontarget"])
def test_det_axes_keep_a_range_when_a_class_has_one_or_two_trials(tmp_path, n_small, small_class):
    """Half a trial of a class of 1 or 2 is 50% or 25%: the axes must still span a range the curve crosses."""
    scores = np.array([0.9, 0.8][:n_small] + [0.1, 0.2, 0.95, 0.3, 0.4, 0.5])
    labels = np.arange(scores.size) < n_small
    rates = error_rates(scores, labels if small_class == "target" else ~labels)
    floor, top = det_limits([("sys", rates)], [equal_error_rate(rates)])
    assert floor < top
    low, high = norm.ppf([floor, top])
    assert high - low >= 1.0  # at least one probit unit (e.g. 5% to 50%)
    x, y = _probit(rates.p_fa, floor), _probit(rates.p_miss, floor)
    inside = (x >= low) & (x <= high) & (y >= low) & (y <= high)
    assert len(set(zip(x[inside], y[inside]))) >= 2  # a curve, not a dot
    plot_det([("sys", rates)], tmp_path / "det.png")


def test_layer_weights_validation_and_plot(tmp_path):
    weights = validate_layer_weights({"semantic": {"layers": (1, 2), "weights": np.array([0.4, 0.6])}}, "model")
    assert weights == {"semantic": {"layers": [1, 2], "weights": [0.4, 0.6]}}
    plot_layer_weights(weights, tmp_path / "lw.svg", title="branches")
    assert b"<svg" in (tmp_path / "lw.svg").read_bytes()[:500]
    bad_inputs = (
        {},
        {"a": [0.5]},
        {"a": {"layers": [1], "weights": [float("nan")]}},
        {"a": {"layers": ["x"], "weights": [1]}},
        {"a": {"layers": "12", "weights": "34"}},  # list("12"): layers 1 and 2
        {"a": {"layers": [1.7, True], "weights": [0.5, 0.5]}},
        {"a": {"layers": [1, 1], "weights": [0.5, 0.5]}},
    )
    for bad in bad_inputs:
        with pytest.raises(DataError, match="model"):
            validate_layer_weights(bad, "model")


def test_plot_names_are_printed_as_given(tmp_path, monkeypatch):
    """A system named with ``$`` must not start math mode (a lone one fails to parse), and one starting with ``_``
    must not vanish from the legend."""
    import uattr.scoring.plots as plots

    drawn = []
    monkeypatch.setattr(plots, "save_figure", lambda figure, path: (drawn.append(figure), figure.savefig(
        tmp_path / "check.png")))
    rates = error_rates(np.array([0.9, 0.8, 0.3, 0.2]), np.array([1, 1, 0, 0]))
    plot_det([("_hidden", rates), ("cost $5 a$x^$b", rates)], tmp_path / "det.png", title="a $ b")
    plot_layer_weights({"_speaker": {"layers": [1], "weights": [1.0]}, "$sem": {"layers": [1], "weights": [1.0]}},
                       tmp_path / "lw.png", title="$x")
    det, weights = (figure.axes[0] for figure in drawn)
    assert [text.get_text() for text in det.get_legend().get_texts()] == [
        "_hidden (EER 0.00%)", r"cost \$5 a\$x^\$b (EER 0.00%)"]
    assert det.get_title() == r"a \$ b"
    assert [text.get_text() for text in weights.get_legend().get_texts()] == ["_speaker", r"\$sem"]
    assert weights.get_title() == r"\$x"
