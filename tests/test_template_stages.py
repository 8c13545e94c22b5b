"""The TEMPLATE's stages driven by a stand-in `uattr`: what each stage runs, skips, removes and records."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

from corpus_layouts import copy_recipe, run_recipe_script

# Logs every call (and the GPUs it sees to $UATTR_GPUS, then runs 0.5 s so that jobs overlap); fails the subcommand
# named by $FAIL_SUB; reads its standard input to the end with $EAT_STDIN; `train` saves a model, `compute-metrics`,
# `score-retrieval` and `score-labels` write their --out, `results` copies the --stage-times file it is given into its --out.
FAKE_UATTR = """\
    #!/usr/bin/env bash
    echo "$*" >> "${UATTR_CALLS}"
    [ -n "${UATTR_GPUS:-}" ] && { echo "${CUDA_VISIBLE_DEVICES-none} $*" >> "${UATTR_GPUS}"; sleep 0.5; }
    [ "$1" = "${FAIL_SUB:-}" ] && { echo "fake failure of $1" >&2; exit 3; }
    [ -n "${EAT_STDIN:-}" ] && cat > /dev/null  # as a wav.scp pipe such as ffmpeg (without -nostdin) does
    sub=$1
    while [ $# -gt 0 ]; do
      case "$1" in --exp-dir) exp=$2 ;; --out) out=$2 ;; --stage-times) times=$2 ;; esac
      shift
    done
    case "${sub}" in
      train) mkdir -p "${exp}/model" && touch "${exp}/model/model.safetensors" ;;
      compute-metrics|score-retrieval|score-labels) mkdir -p "$(dirname "${out}")" && echo '{}' > "${out}" ;;
      results) cat "${times}" > "${out}" ;;
    esac
    exit 0
    """


def _recipe(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    recipe = copy_recipe("mini", tmp_path / "checkout")
    fake = tmp_path / "fake_bin"
    fake.mkdir()
    (fake / "uattr").write_text(textwrap.dedent(FAKE_UATTR))
    (fake / "uattr").chmod(0o755)
    calls = tmp_path / "calls.txt"
    calls.touch()
    return recipe, {"PATH": f"{fake}:/usr/bin:/bin", "UATTR_CALLS": str(calls)}


def _run(recipe: Path, env: dict[str, str], *args: str, **extra_env: str) -> tuple[int, str, list[str]]:
    done = run_recipe_script(recipe, "run.sh", *args, env={**env, **extra_env})
    calls = Path(env["UATTR_CALLS"]).read_text().splitlines()
    return done.returncode, done.stdout + done.stderr, calls


def _stages(recipe: Path) -> list[str]:
    times = recipe / "exp" / "stage_times.tsv"
    return [line.split("\t")[0] for line in times.read_text().splitlines()] if times.exists() else []


def test_teacher_conf_last_line_without_newline_is_read(tmp_path: Path) -> None:
    recipe, env = _recipe(tmp_path)
    teachers = "# comment\nspeaker train,dev --teacher a\nsemantic dev --teacher b"  # no final newline
    (recipe / "conf" / "teachers.txt").write_text(teachers)
    status, output, calls = _run(recipe, env, "--stage", "2", "--stop_stage", "2")
    assert status == 0, output
    teachers = [call for call in calls if call.startswith("extract-teacher")]
    assert len(teachers) == 2, calls
    assert "--teacher b --data data/dev" in teachers[1]


def test_optional_teacher_sets_are_skipped_when_stage_1_did_not_write_them(tmp_path: Path) -> None:
    recipe, env = _recipe(tmp_path)
    for name, table in (("train", "wav.scp"), ("dev_s2t_seen", "wav.scp"), ("dev_text", "text")):
        (recipe / "data" / name).mkdir(parents=True)
        (recipe / "data" / name / table).write_text("u1 a\n")
    (recipe / "conf" / "teachers.txt").write_text(
        "semantic train,dev_s2t_seen?,dev_text?,dev_s2s_gallery? --teacher b\nlang dev_s2s_gallery? --teacher c\n"
    )
    status, output, calls = _run(recipe, env, "--stage", "2", "--stop_stage", "2")
    assert status == 0, output
    assert [call for call in calls if call.startswith("extract-teacher")] == [
        "extract-teacher --teacher b --data data/train data/dev_s2t_seen data/dev_text --out "
        "dump/teacher/semantic/{set}"
    ]
    assert "semantic: no data/dev_s2s_gallery (optional); skipped" in output
    assert "Warning: lang: none of its sets exists (do the names in conf/teachers.txt match stage 1's?)" in output


def test_a_teacher_that_reads_standard_input_leaves_the_teacher_list_alone(tmp_path: Path) -> None:
    recipe, env = _recipe(tmp_path)
    (recipe / "conf" / "teachers.txt").write_text("speaker train --teacher a\nsemantic dev --teacher b\n")
    status, output, calls = _run(recipe, env, "--stage", "2", "--stop_stage", "2", "--nj", "1", EAT_STDIN="1")
    assert status == 0, output
    assert len([call for call in calls if call.startswith("extract-teacher")]) == 2, calls


def test_split_jobs_on_a_gpu_get_one_each(tmp_path: Path) -> None:
    """A teacher (or extraction) on cuda, split into --nj jobs: each job sees one GPU of its own."""
    recipe, env = _recipe(tmp_path)
    (recipe / "conf" / "teachers.txt").write_text("speaker train --teacher a --device cuda\nsemantic train --teacher b\n")
    seen = tmp_path / "gpus.txt"
    status, output, _ = _run(recipe, env, "--stage", "2", "--stop_stage", "2", "--nj", "2", UATTR_GPUS=str(seen),
                             CUDA_VISIBLE_DEVICES="6,7")
    assert status == 0, output
    jobs = [line.split(" ", 1) for line in seen.read_text().splitlines() if "--num-jobs" in line]
    assert sorted(gpus for gpus, call in jobs if "--teacher a" in call) == ["6", "7"]
    assert [gpus for gpus, call in jobs if "--teacher b" in call] == ["6,7", "6,7"]  # a CPU teacher: untouched


def test_failing_results_leaves_stage_6_not_done(tmp_path: Path) -> None:
    recipe, env = _recipe(tmp_path)
    (recipe / "exp").mkdir()
    (recipe / "exp" / "stage_times.tsv").write_text("5\tscore\t3\n6\treport\t1\n")
    status, output, _ = _run(recipe, env, "--stage", "6", "--stop_stage", "6", FAIL_SUB="results")
    assert status != 0
    assert "uattr results failed" in output
    assert "Stage 6 (report) done" not in output
    assert _stages(recipe) == ["5"]  # the earlier run's stage 6 row is gone too
    assert not (recipe / "exp" / "stage_times.tsv.report").exists()

    status, output, _ = _run(recipe, env, "--stage", "6", "--stop_stage", "6")
    assert status == 0, output
    assert "Stage 6 (report) done" in output
    assert _stages(recipe) == ["5", "6"]
    # RESULTS.md's stage-times table (here: the file `uattr results` was given) includes stage 6.
    assert [line.split("\t")[0] for line in (recipe / "exp" / "RESULTS.md").read_text().splitlines()] == ["5", "6"]


def test_a_stage_that_fails_keeps_no_row_of_an_earlier_run(tmp_path: Path) -> None:
    """A failing plot in stage 6 (before `uattr results`) or a failing stage 5: the earlier run's row of that stage
    must not say it ran."""
    recipe, env = _recipe(tmp_path)
    (recipe / "exp" / "joint" / "emb").mkdir(parents=True)
    (recipe / "exp" / "joint" / "emb" / "layer_weights.json").write_text("{}")
    (recipe / "exp" / "stage_times.tsv").write_text("4\textract\t2\n5\tscore\t3\n6\treport\t1\n")
    status, output, _ = _run(recipe, env, "--stage", "6", "--stop_stage", "6", FAIL_SUB="plot-layer-weights")
    assert status != 0 and "fake failure of plot-layer-weights" in output
    assert _stages(recipe) == ["4", "5"]
    (recipe / "data" / "test").mkdir(parents=True)
    (recipe / "data" / "test" / "trials").write_text("a b target\n")
    _table(recipe / "exp" / "joint" / "emb" / "speaker" / "test", 4)
    status, output, _ = _run(recipe, env, "--stage", "5", "--stop_stage", "5", "--systems", "joint",
                             "--untrained_systems", "", "--sv_sets", "test", FAIL_SUB="score-sv")
    assert status != 0 and "fake failure of score-sv" in output
    assert _stages(recipe) == ["4"]


def _table(folder: Path, dim: int) -> None:
    folder.mkdir(parents=True)
    (folder / "emb.scp").write_text("u1 emb.ark:4\n")
    (folder / "meta.json").write_text(json.dumps({"dim": dim}))


def test_skipped_scoring_removes_the_scores_of_an_earlier_run(tmp_path: Path) -> None:
    recipe, env = _recipe(tmp_path)
    scores = recipe / "exp" / "joint" / "scores"
    stale = ["sv_dev", "sv_dev_asnorm", "sv_test_asnorm", "no_query", "dim_mismatch"]
    for name in stale:
        (scores / name).mkdir(parents=True)
        (scores / name / "metrics.json").write_text('{"stale": true}')
    _table(recipe / "exp" / "joint" / "emb" / "speaker" / "test", 4)  # dev and the cohort: no embeddings
    _table(recipe / "exp" / "joint" / "emb" / "semantic" / "q2", 8)
    _table(recipe / "dump" / "teacher" / "semantic" / "g2", 4)
    (recipe / "data").mkdir()
    (recipe / "data" / "retrieval_tasks").write_text(
        "no_query semantic q1 teacher g2 data/q1/map\ndim_mismatch semantic q2 teacher g2 data/q2/map\n")
    status, output, calls = _run(recipe, env, "--stage", "5", "--stop_stage", "5", "--systems", "joint",
                                 "--untrained_systems", "", "--sv_sets", "dev test", "--sv_cohort", "cohort")
    assert status == 0, output
    assert not [name for name in stale if (scores / name).exists()]
    assert (scores / "sv_test" / "metrics.json").read_text() == "{}\n"  # scored now
    assert not [call for call in calls if call.startswith("score-retrieval")]
    assert "Stage 5: Warning: joint: no_query skipped: no exp/joint/emb/semantic/q1/emb.scp" in output
    assert _stages(recipe) == ["5"]


def test_the_teachers_of_another_dumpdir_are_scored_as_a_system_of_their_own(tmp_path: Path) -> None:
    """The LaBSE set-up (--dumpdir dump_labse) leaves the scores of the dump/ teachers alone."""
    recipe, env = _recipe(tmp_path)
    earlier = recipe / "exp" / "teacher" / "scores" / "sv_test" / "metrics.json"
    earlier.parent.mkdir(parents=True)
    earlier.write_text('{"ecapa": true}')
    _table(recipe / "dump_labse" / "teacher" / "semantic" / "q", 8)
    _table(recipe / "dump_labse" / "teacher" / "semantic" / "g", 8)
    (recipe / "data").mkdir()
    (recipe / "data" / "retrieval_tasks").write_text("s2t semantic q teacher g data/q/map\n")
    status, output, calls = _run(recipe, env, "--stage", "5", "--stop_stage", "5", "--systems", "",
                                 "--untrained_systems", "", "--sv_sets", "test", "--dumpdir", "dump_labse")
    assert status == 0, output
    assert earlier.read_text() == '{"ecapa": true}'
    (retrieval,) = [call for call in calls if call.startswith("score-retrieval")]
    assert "--query dump_labse/teacher/semantic/q/emb.scp" in retrieval and "--system teacher_dump_labse" in retrieval
    assert (recipe / "exp" / "teacher_dump_labse" / "scores" / "s2t" / "metrics.json").is_file()


def test_training_reads_the_recipes_sets_before_the_users_overrides(tmp_path: Path) -> None:
    recipe, env = _recipe(tmp_path)
    status, output, calls = _run(
        recipe, env, "--stage", "3", "--stop_stage", "3", "--systems", "joint", "--untrained_systems", "",
        "--init_upstreams", "", "--train_set", "tr", "--valid_set", "dv", "--train_opts", "--data.valid null")
    assert status == 0, output
    (train,) = [call for call in calls if call.startswith("train")]
    assert "--data.train data/tr --data.valid data/dv --data.valid null" in train

    recipe, env = _recipe(tmp_path / "no_valid")
    status, output, calls = _run(
        recipe, env, "--stage", "3", "--stop_stage", "3", "--systems", "joint", "--untrained_systems", "",
        "--init_upstreams", "", "--valid_set", "")
    assert status == 0, output
    (train,) = [call for call in calls if call.startswith("train")]
    assert "--data.train data/train" in train and "--data.valid" not in train  # the YAML's data.valid


def test_missing_configs_stop_the_recipe_before_stage_3_runs(tmp_path: Path) -> None:
    recipe, env = _recipe(tmp_path)
    status, output, calls = _run(recipe, env, "--stage", "3", "--stop_stage", "4", "--systems", "joint nosuch",
                                 "--untrained_systems", "baseline nobase")
    assert status == 2
    assert "conf/train_nosuch.yaml (--systems nosuch)" in output
    assert "conf/model_nobase.yaml (--untrained_systems nobase)" in output
    assert "train_joint" not in output and "model_baseline.yaml" not in output
    assert calls == []
    assert not (recipe / "exp" / "joint").exists()

    # Not checked when stage 3 does not run, nor for a system already trained.
    status, output, _ = _run(recipe, env, "--stage", "6", "--systems", "nosuch", "--untrained_systems", "")
    assert status == 0, output
    (recipe / "exp" / "done" / "model").mkdir(parents=True)
    (recipe / "exp" / "done" / "model" / "model.safetensors").touch()
    status, output, _ = _run(recipe, env, "--stage", "3", "--stop_stage", "3", "--systems", "done joint",
                             "--untrained_systems", "")
    assert status == 0, output


def test_help_shows_the_defaults_run_sh_sets(tmp_path: Path) -> None:
    recipe, env = _recipe(tmp_path)
    status, output, calls = _run(recipe, env, "--help")
    assert status == 0, output
    assert "--train_jobs     # systems trained at the same time on this machine (default: 2)" in output  # run.sh's
    assert '(default: "joint_s3prl_wav2vec2 joint semantic speaker")' in output
    assert "--device         # cpu|cuda (default: cuda when ngpu > 0, else cpu)" in output
    assert calls == []
    assert "Stages (--stage / --stop_stage): 1 data, 2 teachers, 3 train, 4 extract, 5 score, 6 report." in output
    status, output, _ = _run(recipe, env, "--device", "cuda", "--help")  # as a recipe's run.sh sets it
    assert "--device         # cpu|cuda (default: cuda)" in output


def test_stage_options_are_checked_before_anything_runs(tmp_path: Path) -> None:
    recipe, env = _recipe(tmp_path)
    for args, message in [(("--stage", "2-4"), "--stage must be a stage number, got '2-4'"),
                          (("--stop_stage", "last"), "--stop_stage must be a stage number, got 'last'"),
                          (("--stage", "5", "--stop_stage", "3"), "--stage 5 comes after --stop_stage 3"),
                          (("--train_jobs", "2", "--ngpu", "1"), "--train_jobs 2 with --ngpu 1 on this machine"),
                          (("--nj", "0"), "--nj must be a positive number, got '0'"),
                          (("--cpus_per_gpu", "four"), "--cpus_per_gpu must be a positive number, got 'four'"),
                          (("--ngpu", "-1"), "--ngpu must be a number of GPUs, got '-1'"),
                          (("--stage", "7"), "--stage 7: the stages are 1 (data) to 6 (report)"),
                          (("--stage", "0"), "--stage 0: the stages are 1 (data) to 6 (report)"),
                          (("--device", "gpu"), "--device is cpu, cuda or cuda:N, not 'gpu'"),
                          (("--label_attrs", "language"), "--label_attrs: 'language' is not '<attr>:<labels file>'"),
                          (("--stage", "3", "--systems", "", "--untrained_systems", ""),
                           "no system to train or evaluate: give --systems, --untrained_systems or --external_model")]:
        status, output, calls = _run(recipe, env, *args)
        assert status == 2 and message in output and not calls, (args, output)


def test_label_attributes_are_classified_on_the_valid_and_test_sets_of_the_systems_that_have_them(
    tmp_path: Path,
) -> None:
    recipe, env = _recipe(tmp_path)
    for set_name in ("dev", "test"):
        (recipe / "data" / set_name).mkdir(parents=True)
        (recipe / "data" / set_name / "utt2lang").write_text("u1 en\n")
        _table(recipe / "exp" / "joint" / "emb" / "language" / set_name, 4)
        _table(recipe / "dump" / "teacher" / "language" / set_name, 1)  # label indices: nothing to score
    stale = recipe / "exp" / "speaker" / "scores" / "language_test"  # a system that had the attribute before
    stale.mkdir(parents=True)
    (stale / "metrics.json").write_text('{"stale": true}')
    status, output, calls = _run(recipe, env, "--stage", "5", "--stop_stage", "5", "--systems", "joint speaker",
                                 "--untrained_systems", "", "--sv_sets", "", "--retrieval_conf", "none",
                                 "--label_attrs", "language:utt2lang")
    assert status == 0, output
    assert [call for call in calls if call.startswith("score-labels")] == [
        f"score-labels --model exp/joint/model --attribute language --emb exp/joint/emb/language/{name}/emb.scp "
        f"--labels data/{name}/utt2lang --predictions exp/joint/scores/language_{name}/predictions --system joint "
        f"--test-set {name} --condition language --out exp/joint/scores/language_{name}/metrics.json"
        for name in ("dev", "test")
    ]
    assert not stale.exists()


def test_trials_of_a_multilingual_set_are_also_scored_by_language_condition(tmp_path: Path) -> None:
    recipe, env = _recipe(tmp_path)
    for set_name in ("dev", "test"):
        _table(recipe / "exp" / "joint" / "emb" / "speaker" / set_name, 4)
    (recipe / "data" / "test").mkdir(parents=True)
    (recipe / "data" / "test" / "utt2lang").write_text("u1 en\n")  # dev has no languages
    status, output, calls = _run(recipe, env, "--stage", "5", "--stop_stage", "5", "--systems", "joint",
                                 "--untrained_systems", "", "--sv_sets", "dev test", "--retrieval_conf", "none")
    assert status == 0, output
    metrics = {call.split()[1]: call for call in calls if call.startswith("compute-metrics")}
    assert "--utt2lang" not in metrics["exp/joint/scores/sv_dev/scores"]
    assert "--utt2lang data/test/utt2lang" in metrics["exp/joint/scores/sv_test/scores"]


def test_asnorm_scores_of_an_earlier_run_go_when_the_cohort_is_dropped(tmp_path: Path) -> None:
    recipe, env = _recipe(tmp_path)
    scores = recipe / "exp" / "joint" / "scores"
    (scores / "sv_test_asnorm").mkdir(parents=True)
    (scores / "sv_test_asnorm" / "metrics.json").write_text('{"stale": true}')
    _table(recipe / "exp" / "joint" / "emb" / "speaker" / "test", 4)
    status, output, _ = _run(recipe, env, "--stage", "5", "--stop_stage", "5", "--systems", "joint",
                             "--untrained_systems", "", "--sv_sets", "test", "--retrieval_conf", "none")
    assert status == 0, output
    assert (scores / "sv_test" / "metrics.json").exists() and not (scores / "sv_test_asnorm").exists()


def test_an_external_model_is_not_also_scored_as_the_untrained_baselines(tmp_path: Path) -> None:
    recipe, env = _recipe(tmp_path)
    model = tmp_path / "ext" / "cv" / "model"
    model.mkdir(parents=True)
    (model / "config.yaml").write_text("{}\n")
    status, output, calls = _run(recipe, env, "--stage", "4", "--stop_stage", "4", "--external_model", str(model),
                                 "--systems", "", "--untrained_systems", "baseline")
    assert status == 0, output
    extracts = [call for call in calls if call.startswith("extract ")]
    assert len(extracts) == 1 and f"--model {model} " in extracts[0] and "--out exp/cv/emb" in extracts[0]
    assert "the untrained baselines (--untrained_systems baseline) are not evaluated" in output


def test_an_external_model_given_as_a_hub_id_is_named_after_it(tmp_path: Path) -> None:
    recipe, env = _recipe(tmp_path)
    status, output, calls = _run(recipe, env, "--stage", "4", "--stop_stage", "4", "--external_model",
                                 "some-lab/uattr-joint.v1@a1b2c3", "--systems", "")
    assert status == 0, output
    extracts = [call for call in calls if call.startswith("extract ")]
    assert len(extracts) == 1 and "--model some-lab/uattr-joint.v1@a1b2c3 --data " in extracts[0]
    assert "--out exp/uattr-joint.v1/emb" in extracts[0]
    for path in ("./no/model", "exp/joint"):  # exp/ exists: a mistyped path, not a Hub id
        status, output, _ = _run(recipe, env, "--stage", "4", "--stop_stage", "4", "--external_model", path)
        assert status == 2 and f"Error: --external_model {path}: no config.yaml" in output


def _fake_slurm(recipe: Path, env: dict[str, str]) -> None:
    """sbatch (logged) runs the array's one task here, on "node1" of "node[1-2]"; srun runs the command (once)."""
    fake = Path(env["PATH"].split(":")[0])
    stubs = {
        "sbatch": 'echo "sbatch $*" >> "${UATTR_CALLS}"; for a in "$@"; do script=$a; done; '
                  'SLURM_JOB_ID=31337 SLURM_ARRAY_TASK_ID=1 SLURM_JOB_NODELIST="node[1-2]" bash "$script"',
        "srun": 'while [[ $1 == --* ]]; do shift; done; exec "$@"',
        "scontrol": "printf 'node1\\nnode2\\n'",
        "torchrun": 'echo "torchrun $*" >> "${UATTR_CALLS}"; while [ "$1" != -m ]; do shift; done; shift 2; '
                    'exec uattr "$@"',
    }
    for name, body in stubs.items():
        (fake / name).write_text(f"#!/usr/bin/env bash\n{body}\n")
        (fake / name).chmod(0o755)
    (recipe / "conf" / "slurm.conf").write_text("")


def test_multi_node_training_meets_at_the_jobs_first_node(tmp_path: Path) -> None:
    """The rendezvous host is known only inside the Slurm job: expanded there, not on the submitting host."""
    recipe, env = _recipe(tmp_path)
    _fake_slurm(recipe, env)
    status, output, calls = _run(
        recipe, env, "--stage", "3", "--stop_stage", "3", "--systems", "joint", "--untrained_systems", "",
        "--init_upstreams", "", "--train_jobs", "1", "--ngpu", "2", "--num_nodes", "2",
        "--train_opts", "--trainer.tag '$HOME'", cmd_backend="slurm", MASTER_ADDR="submit-host")
    assert status == 0, output
    (torchrun,) = [call for call in calls if call.startswith("torchrun")]
    assert "--nnodes=2 --nproc_per_node=2 --rdzv_backend=c10d --rdzv_endpoint=node1:21337 --rdzv_id=joint" in torchrun
    (train,) = [call for call in calls if call.startswith("train")]
    assert train.endswith("--trainer.tag $HOME")  # an option value reaches uattr as given, not expanded
    (sbatch,) = [call for call in calls if call.startswith("sbatch")]
    assert "--nodes=2 --ntasks-per-node=1 --cpus-per-task=10 --gres=gpu:2" in sbatch  # 5 CPUs per GPU


def test_single_node_ddp_lets_torchrun_pick_a_free_port(tmp_path: Path) -> None:
    """Two DDP jobs on one host (two recipes, or Slurm jobs sharing a node) must not meet in one rendezvous."""
    recipe, env = _recipe(tmp_path)
    _fake_slurm(recipe, env)  # for its torchrun stand-in; the jobs run here
    status, output, calls = _run(recipe, env, "--stage", "3", "--stop_stage", "3", "--systems", "joint",
                                 "--untrained_systems", "", "--init_upstreams", "", "--train_jobs", "1", "--ngpu", "2")
    assert status == 0, output
    (torchrun,) = [call for call in calls if call.startswith("torchrun")]
    assert "--nnodes=1 --nproc_per_node=2 --rdzv_backend=c10d --rdzv_endpoint=localhost:0 --rdzv_id=joint" in torchrun


def test_random_init_encoders_stay_where_the_configs_name_them_when_expdir_moves(tmp_path: Path) -> None:
    """The mini configs train on hf:exp/init_upstream/...: an experiment of another --expdir must find (and, on a
    fresh checkout, make) them there, not make unread ones under its own folder."""
    recipe, env = _recipe(tmp_path)
    status, output, calls = _run(recipe, env, "--stage", "3", "--stop_stage", "3", "--systems", "joint",
                                 "--untrained_systems", "", "--expdir", "exp_400")
    assert status == 0, output
    created = [call for call in calls if call.startswith("create-upstream")]
    assert [call.split("--out ")[1] for call in created] == ["exp/init_upstream/encoder_w2vbert",
                                                            "exp/init_upstream/encoder_wav2vec2"]
    assert "hf:exp/init_upstream/encoder_w2vbert" in (recipe / "conf" / "train_joint.yaml").read_text()
    assert any(call.startswith("train ") and "--exp-dir exp_400/joint" in call for call in calls)


def test_multi_node_training_without_gpus_is_refused(tmp_path: Path) -> None:
    recipe, env = _recipe(tmp_path)
    status, output, calls = _run(recipe, env, "--stage", "3", "--num_nodes", "2", cmd_backend="slurm")
    assert status == 2 and calls == []
    assert "--num_nodes 2 needs GPUs: multi-node DDP runs one process per GPU (--ngpu)" in output


def test_on_slurm_a_single_extraction_job_is_still_a_cluster_job(tmp_path: Path) -> None:
    recipe, env = _recipe(tmp_path)
    _fake_slurm(recipe, env)
    (recipe / "exp" / "joint" / "model").mkdir(parents=True)
    status, output, calls = _run(recipe, env, "--stage", "4", "--stop_stage", "4", "--systems", "joint",
                                 "--untrained_systems", "", "--nj", "1", "--device", "cuda", cmd_backend="slurm")
    assert status == 0, output
    assert [call.split(" ", 1)[0] for call in calls] == ["sbatch", "extract"]
    assert "--gres=gpu:1" in calls[0] and "--num-jobs" not in calls[1]
