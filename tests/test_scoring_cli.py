"""The scoring subcommands end to end on small kaldiio tables written in tmp_path."""

import json
import math
from pathlib import Path

import kaldiio
import numpy as np
import pytest

from uattr.bin.main import main

SPEAKERS, UTTERANCES, DIM = 5, 4, 16


def save_table(path, table):
    path.parent.mkdir(parents=True, exist_ok=True)
    kaldiio.save_ark(str(path.with_suffix(".ark")), table, scp=str(path))
    return str(path)


@pytest.fixture
def sv_setup(tmp_path):
    """Utterances of 5 speakers (a centre plus noise), a cohort of 6 other speakers, all-pairs trials."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(SPEAKERS, DIM))
    table = {
        f"spk{s}-utt{u}": (centres[s] + 0.8 * rng.normal(size=DIM)).astype(np.float32)
        for s in range(SPEAKERS)
        for u in range(UTTERANCES)
    }
    cohort = {f"c{i}-{j}": rng.normal(size=DIM).astype(np.float32) for i in range(6) for j in range(2)}
    ids = sorted(table)
    kaldi_lines, voxceleb_lines = [], []
    for i, enroll in enumerate(ids):
        for test in ids[i + 1 :]:
            same = enroll.split("-")[0] == test.split("-")[0]
            kaldi_lines.append(f"{enroll} {test} {'target' if same else 'nontarget'}\n")
            voxceleb_lines.append(f"{int(same)} {enroll} {test}\n")
    (tmp_path / "trials").write_text("".join(kaldi_lines))
    (tmp_path / "trials.vox").write_text("".join(voxceleb_lines))
    (tmp_path / "trials.unlabelled").write_text("".join(" ".join(line.split()[:2]) + "\n" for line in kaldi_lines))
    (tmp_path / "cohort_utt2spk").write_text("".join(f"{key} {key.split('-')[0]}\n" for key in sorted(cohort)))
    return {
        "dir": tmp_path,
        "emb": save_table(tmp_path / "emb" / "emb.scp", table),
        "cohort": save_table(tmp_path / "cohort" / "emb.scp", cohort),
    }


def run_json(capsys, argv):
    capsys.readouterr()
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def read_labelled_scores(path: Path) -> tuple[list[float], list[bool]]:
    """Scores and target flags of a labelled score file (``enroll test score target|nontarget``)."""
    rows = [line.split() for line in path.read_text().splitlines()]
    return [float(row[2]) for row in rows], [row[3] == "target" for row in rows]


def brute_force_sweep(scores: list[float], labels: list[bool]) -> list[tuple[float, float]]:
    """(P_miss, P_fa) at θ = −∞ and at each distinct score, counted trial by trial as docs/METRICS.md defines them
    (rejected when s ≤ θ): an independent check of the sorted sweep of uattr.scoring.metrics."""
    targets = [s for s, label in zip(scores, labels) if label]
    nontargets = [s for s, label in zip(scores, labels) if not label]
    return [(sum(s <= theta for s in targets) / len(targets), sum(s > theta for s in nontargets) / len(nontargets))
            for theta in [-math.inf, *sorted(set(scores))]]


def brute_force_eer(scores: list[float], labels: list[bool]) -> float:
    """EER (%) where P_miss − P_fa first turns ≥ 0, interpolated on the segment joining its two sweep points."""
    sweep = brute_force_sweep(scores, labels)
    for (miss_b, fa_b), (miss_a, fa_a) in zip(sweep, sweep[1:]):
        gap_b, gap_a = miss_b - fa_b, miss_a - fa_a
        if gap_b < 0 <= gap_a:
            return 100 * (miss_b + (-gap_b / (gap_a - gap_b)) * (miss_a - miss_b))
    raise AssertionError("P_miss − P_fa never crosses 0")


def brute_force_min_dcf(
    scores: list[float], labels: list[bool], p_target: float, c_miss: float = 1.0, c_fa: float = 1.0
) -> float:
    """Normalised minDCF, the formula of docs/METRICS.md over the brute-force sweep."""
    cost = min(c_miss * miss * p_target + c_fa * fa * (1 - p_target) for miss, fa in brute_force_sweep(scores, labels))
    return cost / min(c_miss * p_target, c_fa * (1 - p_target))


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity in float64, the score of a trial without normalisation."""
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_score_sv_and_compute_metrics(sv_setup, capsys):
    d = sv_setup["dir"]
    assert main(["score-sv", "--trials", str(d / "trials"), "--emb", sv_setup["emb"], "--out", str(d / "s1")]) == 0
    assert main(["score-sv", "--trials", str(d / "trials.vox"), "--emb", sv_setup["emb"], "--out", str(d / "s2")]) == 0
    assert (d / "s1").read_text() == (d / "s2").read_text()
    first = (d / "s1").read_text().splitlines()[0].split()
    assert first[:2] == ["spk0-utt0", "spk0-utt1"] and first[3] == "target"
    metrics = run_json(capsys, ["compute-metrics", str(d / "s1"), "--json"])
    assert set(metrics) == {"eer", "min_dcf", "n_target", "n_nontarget"}
    assert set(metrics["min_dcf"]) == {"0.01", "0.05"}
    assert (metrics["n_target"], metrics["n_nontarget"]) == (SPEAKERS * 6, 190 - SPEAKERS * 6)
    scores, labels = read_labelled_scores(d / "s1")
    assert 0 < metrics["eer"] < 50  # the classes overlap (here P_miss = P_fa = 10% at a sweep point)
    assert metrics["eer"] == pytest.approx(brute_force_eer(scores, labels), rel=1e-9)
    for p_target in (0.01, 0.05):
        assert metrics["min_dcf"][str(p_target)] == pytest.approx(brute_force_min_dcf(scores, labels, p_target))
    # Unlabelled scores get their labels from the trials.
    main(["score-sv", "--trials", str(d / "trials.unlabelled"), "--emb", sv_setup["emb"], "--out", str(d / "s3")])
    assert len((d / "s3").read_text().splitlines()[0].split()) == 3
    joined = run_json(capsys, ["compute-metrics", str(d / "s3"), "--trials", str(d / "trials.vox"), "--json"])
    assert joined == metrics


def test_compute_metrics_out_file_carries_meta(sv_setup, capsys):
    d = sv_setup["dir"]
    main(["score-sv", "--trials", str(d / "trials"), "--emb", sv_setup["emb"], "--out", str(d / "scores")])
    out = d / "metrics.json"
    argv = ["compute-metrics", str(d / "scores"), "--p-target", "0.01", "--out", str(out), "--system", "joint"]
    assert main(argv + ["--test-set", "vox1-o", "--condition", "sv"]) == 0
    data = json.loads(out.read_text())
    assert data["meta"]["task"] == "sv"
    assert (data["meta"]["system"], data["meta"]["test_set"], data["meta"]["condition"]) == ("joint", "vox1-o", "sv")
    assert list(data["min_dcf"]) == ["0.01"]
    text = capsys.readouterr().out
    assert "EER:" in text and "minDCF (P_tar=0.01, C_miss=1, C_fa=1)" in text


def test_score_sv_with_asnorm_enrolment_and_mean(sv_setup):
    d = sv_setup["dir"]
    (d / "spk2utt").write_text("".join(f"spk{s} spk{s}-utt0 spk{s}-utt1\n" for s in range(SPEAKERS)))
    (d / "model_trials").write_text("".join(f"spk{s} spk{t}-utt3\n" for s in range(SPEAKERS) for t in range(SPEAKERS)))
    argv = ["score-sv", "--trials", str(d / "model_trials"), "--emb", sv_setup["emb"], "--out", str(d / "s")]
    argv += ["--enroll-spk2utt", str(d / "spk2utt"), "--mean-emb", sv_setup["cohort"]]
    argv += ["--norm", "asnorm", "--cohort", sv_setup["cohort"], "--cohort-utt2spk", str(d / "cohort_utt2spk")]
    assert main(argv + ["--top-k", "3"]) == 0
    lines = [line.split() for line in (d / "s").read_text().splitlines()]
    assert len(lines) == SPEAKERS**2 and all(len(line) == 3 for line in lines)
    scores = np.array([float(line[2]) for line in lines]).reshape(SPEAKERS, SPEAKERS)
    assert (np.argmax(scores, axis=1) == np.arange(SPEAKERS)).mean() >= 0.8


def test_top_k_without_asnorm_is_reported(sv_setup, capsys):
    d = sv_setup["dir"]
    argv = ["score-sv", "--trials", str(d / "trials"), "--emb", sv_setup["emb"], "--cohort", sv_setup["cohort"]]
    assert main(argv + ["--out", str(d / "s"), "--norm", "snorm", "--top-k", "3"]) == 0
    assert "--top-k 3 applies to --norm asnorm only; ignored with --norm snorm" in capsys.readouterr().err
    assert main(argv + ["--out", str(d / "s"), "--norm", "snorm"]) == 0
    assert "--top-k" not in capsys.readouterr().err


def test_user_errors_are_reported_without_traceback(sv_setup, capsys):
    d = sv_setup["dir"]
    (d / "bad_trials").write_text("1 spk0-utt0 spk0-utt1\nspk0-utt0 spk0-utt2 target\n")
    assert main(["score-sv", "--trials", str(d / "bad_trials"), "--emb", sv_setup["emb"], "--out", str(d / "x")]) == 1
    assert "bad_trials:2: malformed trial line" in capsys.readouterr().err
    (d / "missing").write_text("1 spk0-utt0 nobody\n")
    assert main(["score-sv", "--trials", str(d / "missing"), "--emb", sv_setup["emb"], "--out", str(d / "x")]) == 1
    assert "'nobody'" in capsys.readouterr().err
    assert not (d / "x").exists()
    argv = ["score-sv", "--trials", str(d / "missing"), "--emb", sv_setup["emb"], "--out", str(d / "x")]
    assert main(argv + ["--norm", "snorm"]) == 1
    assert "needs --cohort" in capsys.readouterr().err
    (d / "one_class").write_text("spk0-utt0 spk0-utt1 0.5 target\n")
    assert main(["compute-metrics", str(d / "one_class")]) == 1
    assert f"{d / 'one_class'}: EER/minDCF need both classes" in capsys.readouterr().err


def test_unwritable_outputs_are_one_line_errors(sv_setup, capsys):
    """A folder where the output file goes, or a file where its folder goes: the path and the reason, exit 1."""
    d = sv_setup["dir"]
    (d / "afile").write_text("")
    trials, emb = str(d / "trials"), sv_setup["emb"]
    for out in (d / "afile" / "scores", d):
        capsys.readouterr()
        assert main(["score-sv", "--trials", trials, "--emb", emb, "--out", str(out)]) == 1
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err and f"{out}: " in err, err
    main(["score-sv", "--trials", trials, "--emb", emb, "--out", str(d / "scores")])
    capsys.readouterr()
    assert main(["plot-det", str(d / "scores"), "--out", str(d / "det.xyz")]) == 1
    assert "det.xyz: cannot write a .xyz image; formats: " in capsys.readouterr().err
    assert not (d / "det.xyz").exists()


def test_plot_det(sv_setup):
    d = sv_setup["dir"]
    main(["score-sv", "--trials", str(d / "trials"), "--emb", sv_setup["emb"], "--out", str(d / "a")])
    main(["score-sv", "--trials", str(d / "trials.unlabelled"), "--emb", sv_setup["emb"], "--out", str(d / "b")])
    argv = ["plot-det", str(d / "a"), str(d / "b"), "--labels", "A", "B", "--trials", str(d / "trials")]
    assert main(argv + ["--out", str(d / "det.png")]) == 0
    assert (d / "det.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["plot-det", str(d / "a"), "--labels", "A", "B", "--out", str(d / "det2.png")]) == 1


def test_plot_det_names_the_score_file_of_one_class(sv_setup, capsys):
    d = sv_setup["dir"]
    main(["score-sv", "--trials", str(d / "trials"), "--emb", sv_setup["emb"], "--out", str(d / "a")])
    lines = (d / "a").read_text().splitlines()
    (d / "targets").write_text("".join(f"{line}\n" for line in lines if line.endswith(" target")))
    capsys.readouterr()
    assert main(["plot-det", str(d / "a"), str(d / "targets"), "--out", str(d / "det.png")]) == 1
    assert f"{d / 'targets'}: EER/minDCF need both classes" in capsys.readouterr().err
    assert not (d / "det.png").exists()


def score_sv(d: Path, trials: Path, out: str, *options: str) -> int:
    """``uattr score-sv`` on ``trials`` writing ``d/out``; the embeddings and other options are given."""
    return main(["score-sv", "--trials", str(trials), "--out", str(d / out), *options])


def test_score_sv_skip_missing_drops_only_the_trials_of_ids_without_an_embedding(sv_setup: dict, capsys) -> None:
    """A trial list of a larger set than was extracted: without --skip-missing it is an error naming the trials;
    with it they are dropped, with a warning, and every other trial scores as in a list without them."""
    d, emb = sv_setup["dir"], ["--emb", sv_setup["emb"]]
    known = (d / "trials").read_text().splitlines(keepends=True)[:12]
    (d / "known").write_text("".join(known))
    (d / "with_missing").write_text(known[0] + "spk0-utt0 nobody nontarget\n" + "".join(known[1:])
                                    + "ghost spk1-utt1 nontarget\n")
    assert score_sv(d, d / "known", "expected", *emb) == 0
    capsys.readouterr()
    assert score_sv(d, d / "with_missing", "x", *emb) == 1
    missing = (f"{d / 'with_missing'}: 2 trial(s) (first on line 2) name 2 id(s) with no embedding in "
               f"{sv_setup['emb']}: 'ghost', 'nobody'")  # enrol-side ids first
    assert f"{missing}; --skip-missing drops such trials" in capsys.readouterr().err
    assert not (d / "x").exists()
    assert score_sv(d, d / "with_missing", "kept", *emb, "--skip-missing") == 0
    assert f"WARNING: skipping {missing}" in capsys.readouterr().err
    assert (d / "kept").read_text() == (d / "expected").read_text()
    (d / "all_missing").write_text("spk0-utt0 nobody nontarget\n")
    assert score_sv(d, d / "all_missing", "x", *emb, "--skip-missing") == 1
    assert "no trial left to score" in capsys.readouterr().err
    # An enrolment utterance without an embedding: dropped from its model's mean, which the rest then make up.
    (d / "model_trials").write_text("spk0 spk0-utt3 target\nspk0 spk1-utt3 nontarget\n")
    for name, members in (("spk2utt", "spk0-utt0 lost spk0-utt1"), ("spk2utt.present", "spk0-utt0 spk0-utt1")):
        (d / name).write_text(f"spk0 {members}\n")
    enrol = [*emb, "--enroll-spk2utt"]
    assert score_sv(d, d / "model_trials", "x", *enrol, str(d / "spk2utt")) == 1
    assert "1 enrolment utterance(s) with no embedding" in capsys.readouterr().err
    assert score_sv(d, d / "model_trials", "models", *enrol, str(d / "spk2utt"), "--skip-missing") == 0
    assert score_sv(d, d / "model_trials", "models.present", *enrol, str(d / "spk2utt.present")) == 0
    assert (d / "models").read_text() == (d / "models.present").read_text()


def test_score_sv_enroll_emb_takes_the_enrolment_side_from_its_own_table(sv_setup: dict, capsys) -> None:
    """Enrolment and test utterances extracted into two tables: each side of a trial is looked up in its own, and
    the score is the cosine of the two raw vectors."""
    d = sv_setup["dir"]
    table = dict(kaldiio.load_scp(sv_setup["emb"]))
    enroll_ids = [f"spk{s}-utt0" for s in range(SPEAKERS)]
    test_ids = [key for key in sorted(table) if key not in enroll_ids]
    enroll = save_table(d / "enroll" / "emb.scp", {key: table[key] for key in enroll_ids})
    test = save_table(d / "test" / "emb.scp", {key: table[key] for key in test_ids})
    (d / "split_trials").write_text("".join(f"{e} {t}\n" for e in enroll_ids for t in test_ids))
    assert score_sv(d, d / "split_trials", "s", "--emb", test, "--enroll-emb", enroll) == 0
    rows = [line.split() for line in (d / "s").read_text().splitlines()]
    assert [(e, t) for e, t, _ in rows] == [(e, t) for e in enroll_ids for t in test_ids]
    for e, t, score in rows:
        assert float(score) == pytest.approx(cosine(table[e], table[t]), abs=1e-6), (e, t)
    for trial, unknown in (((test_ids[0], test_ids[1]), test_ids[0]), ((enroll_ids[0], enroll_ids[1]), enroll_ids[1])):
        (d / "wrong_side").write_text(" ".join(trial) + "\n")  # an id of the other side's table
        capsys.readouterr()
        assert score_sv(d, d / "wrong_side", "x", "--emb", test, "--enroll-emb", enroll) == 1
        assert f"name 1 id(s) with no embedding in {enroll} / {test}: '{unknown}';" in capsys.readouterr().err


def test_compute_metrics_costs_weigh_misses_and_false_alarms(tmp_path: Path, capsys) -> None:
    """--c-miss/--c-fa enter minDCF = min_θ[C_miss·P_miss·P_tar + C_fa·P_fa·(1−P_tar)] / min(C_miss·P_tar,
    C_fa·(1−P_tar)) (docs/METRICS.md): on 10 trials each value must be that formula's, and the costs move it;
    the EER, which has no costs, stays (interpolated: P_miss − P_fa jumps from −1/12 to +1/6 at θ = 0.4)."""
    targets, nontargets = [0.9, 0.6, 0.4, 0.35], [0.8, 0.5, 0.3, 0.1, -0.2, -0.5]
    scores, labels = targets + nontargets, [True] * len(targets) + [False] * len(nontargets)
    (tmp_path / "scores").write_text("".join(f"e{i} t{i} {score} {'target' if label else 'nontarget'}\n"
                                             for i, (score, label) in enumerate(zip(scores, labels))))
    argv = ["compute-metrics", str(tmp_path / "scores"), "--p-target", "0.1", "0.5"]
    values = {}
    for c_miss, c_fa in ((1, 1), (10, 1), (1, 10)):
        costs = ["--c-miss", str(c_miss), "--c-fa", str(c_fa)]
        metrics = run_json(capsys, [*argv, *costs, "--json"])
        assert metrics["eer"] == pytest.approx(brute_force_eer(scores, labels)) == pytest.approx(100 / 3)
        values[c_miss, c_fa] = metrics["min_dcf"]
        for p_target in (0.1, 0.5):
            expected = brute_force_min_dcf(scores, labels, p_target, c_miss, c_fa)
            assert values[c_miss, c_fa][str(p_target)] == pytest.approx(expected, rel=1e-12), (c_miss, c_fa)
    # Costly misses favour a low threshold at P_tar 0.1 (0.75 → 1/3); costly false alarms a high one at 0.5.
    assert values[10, 1]["0.1"] == pytest.approx(1 / 3) and values[1, 1]["0.1"] == pytest.approx(0.75)
    assert values[1, 10]["0.5"] == pytest.approx(0.75) and values[1, 1]["0.5"] == pytest.approx(1 / 3)
    assert main([*argv, "--c-miss", "10", "--out", str(tmp_path / "m.json")]) == 0
    assert "minDCF (P_tar=0.1, C_miss=10, C_fa=1): 0.3333" in capsys.readouterr().out
    saved = json.loads((tmp_path / "m.json").read_text())
    assert (saved["meta"]["c_miss"], saved["meta"]["c_fa"]) == (10, 1) and saved["min_dcf"] == values[10, 1]
    assert main([*argv, "--c-fa", "0"]) == 1
    assert "C_miss and C_fa must be positive, got 1.0 and 0.0" in capsys.readouterr().err


def test_same_and_cross_language_trials_are_scored_apart(tmp_path: Path, capsys) -> None:
    """--utt2lang: each kind's EER is the brute-force EER of its own trials, and RESULTS.md shows both as rows."""
    rng = np.random.default_rng(0)
    utt2lang = {f"s{speaker}-{lang}{k}": lang for speaker in range(4) for lang in ("en", "fr") for k in range(2)}
    utts = sorted(utt2lang)
    trials = [(a, b, a[:2] == b[:2]) for i, a in enumerate(utts) for b in utts[i + 1:]]
    # Cross-language targets score lower, as for an embedding that keeps the language.
    scores = [float(rng.normal(1.0 if target else 0.0) - (0.6 if target and utt2lang[a] != utt2lang[b] else 0.0))
              for a, b, target in trials]
    (tmp_path / "scores").write_text("".join(f"{a} {b} {score} {'target' if target else 'nontarget'}\n"
                                             for (a, b, target), score in zip(trials, scores)))
    (tmp_path / "utt2lang").write_text("".join(f"{utt} {lang}\n" for utt, lang in utt2lang.items()))
    scores_dir = tmp_path / "exp" / "joint" / "scores" / "sv_test"
    scores_dir.mkdir(parents=True)
    metrics = run_json(capsys, ["compute-metrics", str(tmp_path / "scores"), "--utt2lang", str(tmp_path / "utt2lang"),
                                "--condition", "sv", "--out", str(scores_dir / "metrics.json"), "--json"])
    for name, same in (("same-language", True), ("cross-language", False)):
        chosen = [i for i, (a, b, _) in enumerate(trials) if (utt2lang[a] == utt2lang[b]) == same]
        part = metrics["per_condition"][name]
        assert part["eer"] == pytest.approx(brute_force_eer([scores[i] for i in chosen],
                                                            [trials[i][2] for i in chosen]))
        assert part["n_target"] + part["n_nontarget"] == len(chosen)
    assert metrics["per_condition"]["cross-language"]["eer"] > metrics["per_condition"]["same-language"]["eer"]
    assert main(["results", "--exp-dir", str(tmp_path / "exp"), "--out", str(tmp_path / "RESULTS.md")]) == 0
    results = (tmp_path / "RESULTS.md").read_text()
    assert "| joint | sv [cross-language] |" in results and "| joint | sv [same-language] |" in results

    one_language = tmp_path / "one_language"
    one_language.write_text("".join(f"{utt} en\n" for utt in utt2lang))
    assert main(["compute-metrics", str(tmp_path / "scores"), "--utt2lang", str(one_language), "--json"]) == 0
    out, err = capsys.readouterr()
    assert list(json.loads(out)["per_condition"]) == ["same-language"]
    assert "its cross-language trials are 0 target and 0 nontarget: not scored apart" in err
    one_language.write_text("s0-en0 en\n")
    assert main(["compute-metrics", str(tmp_path / "scores"), "--utt2lang", str(one_language)]) == 1
    assert f"{one_language}: no language for 15 id(s) of" in capsys.readouterr().err


@pytest.fixture
def retrieval_setup(tmp_path):
    rng = np.random.default_rng(1)
    sentences = rng.normal(size=(10, DIM))
    gallery = {f"s{i}": sentences[i].astype(np.float32) for i in range(10)}
    queries = {
        f"{lang}-s{i}": (sentences[i] + noise * rng.normal(size=DIM)).astype(np.float32)
        for lang, noise in (("fr", 0.3), ("de", 1.5))
        for i in range(10)
    }
    (tmp_path / "query2ref").write_text("".join(f"{key} {key.split('-')[1]}\n" for key in sorted(queries)))
    (tmp_path / "utt2lang").write_text("".join(f"{key} {key.split('-')[0]}\n" for key in sorted(queries)))
    return {
        "dir": tmp_path,
        "query": save_table(tmp_path / "q" / "emb.scp", queries),
        "gallery": save_table(tmp_path / "g" / "emb.scp", gallery),
    }


def test_score_retrieval_json(retrieval_setup, capsys):
    d = retrieval_setup["dir"]
    argv = ["score-retrieval", "--query", retrieval_setup["query"], "--gallery", retrieval_setup["gallery"]]
    argv += ["--query2ref", str(d / "query2ref")]
    metrics = run_json(capsys, argv + ["--json"])
    assert list(metrics) == ["r@1", "r@5", "r@10", "mrr", "xsim", "n_query", "n_gallery"]
    assert (metrics["n_query"], metrics["n_gallery"]) == (20, 10)
    assert metrics["r@10"] == 100.0 and 0 < metrics["mrr"] <= 1
    per_lang = run_json(capsys, argv + ["--utt2lang", str(d / "utt2lang"), "--json", "--margin", "absolute"])
    assert set(per_lang["per_lang"]) == {"fr", "de"}
    assert per_lang["per_lang"]["fr"]["r@1"] >= per_lang["per_lang"]["de"]["r@1"]
    assert per_lang["xsim"] == pytest.approx(100 - per_lang["r@1"])
    assert main(argv + ["--out", str(d / "m.json"), "--system", "sys", "--block-mb", "1"]) == 0
    saved = json.loads((d / "m.json").read_text())
    assert saved["meta"]["task"] == "retrieval" and saved["meta"]["margin"] == "ratio"
    assert saved["r@1"] == metrics["r@1"]


def test_each_language_is_scored_on_its_own(tmp_path, capsys):
    """The gallery side of the ratio margin must not pool languages: fr's row is that of an fr-only run."""
    rng = np.random.default_rng(3)
    gallery = rng.normal(size=(40, DIM))
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    noise = {"fr": 0.9, "de": 0.3}  # de queries sit close to the gallery and would dominate its k-NN means
    queries = {f"{lang}-s{i}": (gallery[i] + scale * rng.normal(size=DIM)).astype(np.float32)
               for lang, scale in noise.items() for i in range(40)}
    (tmp_path / "query2ref").write_text("".join(f"{key} s{key.split('-s')[1]}\n" for key in sorted(queries)))
    (tmp_path / "utt2lang").write_text("".join(f"{key} {key.split('-')[0]}\n" for key in sorted(queries)))
    fr_only = {key: value for key, value in queries.items() if key.startswith("fr-")}
    argv = ["score-retrieval", "--gallery", save_table(tmp_path / "g" / "emb.scp", {
        f"s{i}": vector.astype(np.float32) for i, vector in enumerate(gallery)})]
    argv += ["--query2ref", str(tmp_path / "query2ref"), "--json"]
    both = run_json(capsys, argv + ["--query", save_table(tmp_path / "q" / "emb.scp", queries),
                                    "--utt2lang", str(tmp_path / "utt2lang")])
    alone = run_json(capsys, argv + ["--query", save_table(tmp_path / "fr" / "emb.scp", fr_only)])
    assert both["per_lang"]["fr"] == alone  # pooled with de, fr's xSIM error would be 87.5%, not 90%
    assert both["per_lang"]["fr"]["n_gallery"] == 40 and both["per_lang"]["fr"]["n_query"] == 40


def test_score_retrieval_same_id_errors(retrieval_setup, capsys):
    argv = ["score-retrieval", "--query", retrieval_setup["query"], "--gallery", retrieval_setup["gallery"]]
    assert main(argv) == 1
    assert "not in the gallery" in capsys.readouterr().err


def test_score_retrieval_checks_its_inputs_before_scoring(retrieval_setup, capsys, monkeypatch):
    import uattr.bin.score_retrieval as command

    d = retrieval_setup["dir"]
    monkeypatch.setattr(command, "evaluate_retrieval", lambda *args, **kwargs: pytest.fail("scored first"))
    argv = ["score-retrieval", "--query", retrieval_setup["query"], "--gallery", retrieval_setup["gallery"]]
    argv += ["--query2ref", str(d / "query2ref")]
    assert main(argv + ["--utt2lang", str(d / "nowhere")]) == 1
    assert "nowhere: no such file" in capsys.readouterr().err
    small = save_table(d / "g8" / "emb.scp", {f"s{i}": np.ones(8, dtype=np.float32) for i in range(10)})
    assert main(argv[:3] + ["--gallery", small, "--query2ref", str(d / "query2ref")]) == 1
    assert f"{retrieval_setup['query']}: 16-d queries, but {small} holds 8-d vectors" in capsys.readouterr().err
    assert main(argv + ["--xsim-k", "0"]) == 1
    assert "--xsim-k must be at least 1, got 0" in capsys.readouterr().err


def test_a_language_with_fewer_queries_than_xsim_k_is_warned_about(retrieval_setup, capsys):
    d = retrieval_setup["dir"]
    ids = [line.split()[0] for line in (d / "query2ref").read_text().splitlines()]
    (d / "utt2lang").write_text("".join(f"{key} {'fr' if i < 3 else 'de'}\n" for i, key in enumerate(ids)))
    argv = ["score-retrieval", "--query", retrieval_setup["query"], "--gallery", retrieval_setup["gallery"],
            "--query2ref", str(d / "query2ref"), "--utt2lang", str(d / "utt2lang")]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "language fr has 3 query(s), fewer than --xsim-k 4" in err and "language de" not in err
    assert main(argv + ["--margin", "absolute"]) == 0  # the nearest item: no neighbourhood to average
    assert "fewer than --xsim-k" not in capsys.readouterr().err


def test_plot_layer_weights(tmp_path):
    weights = {
        "semantic": {"layers": list(range(1, 7)), "weights": [0.1, 0.2, 0.3, 0.2, 0.1, 0.1]},
        "speaker": {"layers": list(range(1, 7)), "weights": [0.05, 0.05, 0.1, 0.2, 0.3, 0.3]},
    }
    (tmp_path / "lw.json").write_text(json.dumps(weights))
    argv = ["plot-layer-weights", "--weights", str(tmp_path / "lw.json"), "--out", str(tmp_path / "lw.png")]
    assert main(argv + ["--json-out", str(tmp_path / "copy.json")]) == 0
    assert (tmp_path / "lw.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((tmp_path / "copy.json").read_text()) == weights
    (tmp_path / "bad.json").write_text(json.dumps({"semantic": {"layers": [1, 2], "weights": [0.5]}}))
    assert main(["plot-layer-weights", "--weights", str(tmp_path / "bad.json"), "--out", str(tmp_path / "x.png")]) == 1


def test_results_collects_an_experiment(sv_setup, capsys):
    d = sv_setup["dir"]
    exp = d / "exp"
    (exp / "joint").mkdir(parents=True)
    (exp / "joint" / "config.yaml").write_text("attributes: {}\n")
    scores = exp / "joint" / "scores" / "sv_test" / "scores"
    main(["score-sv", "--trials", str(d / "trials"), "--emb", sv_setup["emb"], "--out", str(scores)])
    main(["compute-metrics", str(scores), "--out", str(scores.parent / "metrics.json")])
    (exp / "stage_times.tsv").write_text("5\tscore\t12\n")
    (d / "paper.md").write_text("| system | EER |\n|---|---|\n| ECAPA | 0.90 |\n")
    reference = [{"eer": 0.90, "min_dcf": {"0.01": 0.1104}, "meta": {"system": "ECAPA", "test_set": "sv_test",
                                                                   "task": "sv", "source": "paper"}}]
    (d / "paper.json").write_text(json.dumps(reference))
    argv = ["results", "--exp-dir", str(exp), "--stage-times", str(exp / "stage_times.tsv")]
    assert main(argv + ["--reference", str(d / "paper.json"), str(d / "paper.md")]) == 0
    text = (exp / "RESULTS.md").read_text()
    assert "## Speaker verification" in text and "### sv_test" in text and "| joint | – |" in text
    assert "| ECAPA (paper) | – | 0.90 | 0.1104 | – | – | – |" in text
    assert "| ECAPA | 0.90 |" in text and "| 5 | score | 12 |" in text
    assert "joint/config.yaml" in text and "- python:" in text
    (exp / "stage_times.tsv").write_text("5\tscore\t12.25\n")  # a fraction, as `date +%s.%N` timings give
    assert main(argv) == 0 and "| 5 | score | 12.25 |" in (exp / "RESULTS.md").read_text()
    for seconds in ("-1", "nan", "12s"):
        (exp / "stage_times.tsv").write_text(f"5\tscore\t{seconds}\n")
        capsys.readouterr()
        assert main(argv) == 1
        assert "stage_times.tsv:1: expected 'stage name seconds' (seconds ≥ 0)" in capsys.readouterr().err
    (exp / "stage_times.tsv").unlink()  # stages timed elsewhere: the tables are still written, with a warning
    capsys.readouterr()
    assert main(argv) == 0
    assert f"{exp / 'stage_times.tsv'}: no such stage-times file" in capsys.readouterr().err
    assert "| 5 | score | 12 |" not in (exp / "RESULTS.md").read_text()
    (d / "notes.md").write_bytes(b"r\xe9sum\xe9\n")
    assert main(argv + ["--notes", str(d / "notes.md")]) == 1
    assert "notes.md:1: not UTF-8 text" in capsys.readouterr().err


def test_results_aggregates_runs(tmp_path):
    for run, eer in (("exp", 2.0), ("exp_seed1", 4.0)):
        metrics = tmp_path / run / "joint" / "scores" / "test" / "metrics.json"
        metrics.parent.mkdir(parents=True)
        metrics.write_text(json.dumps({"eer": eer, "meta": {"task": "sv"}}))
    runs = [str(tmp_path / "exp"), str(tmp_path / "exp_seed1")]
    out = tmp_path / "RESULTS_seeds.md"
    assert main(["results", "--exp-dir", *runs, "--out", str(out)]) == 0
    assert "| joint | – | 2 | 3.00 ± 1.41 |" in out.read_text()
    assert main(["results", "--exp-dir", *runs]) == 1  # --out is required
    assert main(["results", "--exp-dir", runs[0], runs[0], "--out", str(out)]) == 1
    (tmp_path / "unscored").mkdir()
    assert main(["results", "--exp-dir", runs[0], str(tmp_path / "unscored"), "--out", str(out)]) == 1
    assert main(["results", "--exp-dir", str(tmp_path / "unscored")]) == 1  # alone too: no RESULTS.md of nothing
    assert not (tmp_path / "unscored" / "RESULTS.md").exists()


def test_plot_layer_weights_of_a_saved_model(tmp_path):
    from uattr.attributes import AttributeConfig
    from uattr.branch import BranchConfig
    from uattr.model import ModelConfig, UnifiedEncoder
    from uattr.upstream.base import UpstreamConfig
    from uattr.upstream.create import create_upstream

    upstream = create_upstream(
        "w2v-bert", tmp_path / "upstream", hidden_size=32, num_hidden_layers=3, num_attention_heads=2,
        intermediate_size=64, output_hidden_size=32,
    )
    attributes = {
        "semantic": AttributeConfig(dim=8),
        "speaker": AttributeConfig(dim=4, branch=BranchConfig(layer_start=2)),
    }
    model = UnifiedEncoder(ModelConfig(UpstreamConfig(name=f"hf:{upstream}"), attributes))
    model.save_pretrained(tmp_path / "exp" / "model")
    # An experiment dir, as `uattr extract --model` takes it.
    argv = ["plot-layer-weights", "--model", str(tmp_path / "exp"), "--out", str(tmp_path / "lw.png")]
    assert main(argv + ["--json-out", str(tmp_path / "lw.json")]) == 0
    weights = json.loads((tmp_path / "lw.json").read_text())
    assert weights["speaker"]["layers"] == [2, 3] and weights["speaker"]["weights"] == pytest.approx([0.5, 0.5])
    assert (tmp_path / "lw.png").read_bytes()[:4] == b"\x89PNG"
