"""The shell tools in utils/: option parsing, data-dir wrappers, the local job runner and the Slurm runner."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from data_fixtures import make_data_dir, read_ids

REPO = Path(__file__).resolve().parents[1]
UTILS = REPO / "utils"
# The data-dir wrappers find `uattr` on PATH, as recipes put it there through path.sh.
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, env=env or ENV, capture_output=True, text=True, timeout=120)


def write_script(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o755)
    return path


def test_log_lines_name_their_script_and_errors_go_to_stderr(tmp_path):
    script = write_script(tmp_path / "stage.sh", f"""#!/usr/bin/env bash
. {UTILS}/lib/log.sh
main() {{ log "starting"; log "Error: no --root"; }}
main
""")
    done = run([str(script)], tmp_path)
    assert done.stdout.endswith(" (stage.sh:3:main) starting\n") and "Error" not in done.stdout
    assert done.stderr.endswith(" (stage.sh:3:main) Error: no --root\n")


# -------------------------------------------------------------------------------------------------- parse_options


@pytest.fixture
def demo(tmp_path) -> Path:
    return write_script(tmp_path / "demo.sh", f"""#!/usr/bin/env bash
set -euo pipefail
nj=4
use_gpu=false
data_dir=data/train
help_message="Usage: demo.sh [--nj N] [--use-gpu true|false] [--data-dir DIR] <args>"
. {UTILS}/parse_options.sh
echo "nj=$nj use_gpu=$use_gpu data_dir=$data_dir args=$*"
""")


@pytest.mark.parametrize(
    "args, stdout",
    [
        (["--nj", "8", "--use-gpu", "true", "x", "y"], "nj=8 use_gpu=true data_dir=data/train args=x y"),
        (["--nj=16", "--data-dir", "a b"], "nj=16 use_gpu=false data_dir=a b args="),
        (["--data_dir", "$(touch pwned)"], "nj=4 use_gpu=false data_dir=$(touch pwned) args="),
        (["--", "--nj", "3"], "nj=4 use_gpu=false data_dir=data/train args=--nj 3"),
    ],
)
def test_parse_options_sets_defined_variables(demo, tmp_path, args, stdout):
    result = run([str(demo), *args], tmp_path)
    assert (result.returncode, result.stdout.strip()) == (0, stdout), result.stderr
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--bogus", "1"], "invalid option --bogus"),
        (["--use-gpu", "maybe"], "option --use-gpu expects true or false, got 'maybe'"),
        (["--nj"], "option --nj needs a value"),
        (["--bogus"], "invalid option --bogus"),  # a misspelt option given last: misspelt, not valueless
        (["--config", "missing.conf"], "cannot read config file 'missing.conf'"),
    ],
)
def test_parse_options_errors(demo, tmp_path, args, message):
    result = run([str(demo), *args], tmp_path)
    assert result.returncode == 1 and message in result.stderr


def test_parse_options_help_and_config(demo, tmp_path):
    result = run([str(demo), "--help"], tmp_path)
    assert (result.returncode, result.stdout.strip()) == (0, "Usage: demo.sh [--nj N] [--use-gpu true|false] "
                                                             "[--data-dir DIR] <args>")
    (tmp_path / "my.conf").write_text("nj=3\nuse_gpu=true\n")
    result = run([str(demo), "--nj", "2", "--config", "my.conf", "z"], tmp_path)  # the command line wins
    assert result.stdout.strip() == "nj=2 use_gpu=true data_dir=data/train args=z"


def test_parse_options_help_function_shows_the_options_parsed_before_help(tmp_path):
    script = write_script(tmp_path / "helpfn.sh", f"""#!/usr/bin/env bash
set -euo pipefail
nj=4
print_help() {{ echo "Usage: helpfn.sh [--nj N] (default: ${{nj}})"; }}
. {UTILS}/parse_options.sh
echo "nj=$nj"
""")
    result = run([str(script), "--nj", "8", "--help", "--nj", "9"], tmp_path)
    assert (result.returncode, result.stdout.strip()) == (0, "Usage: helpfn.sh [--nj N] (default: 8)")


# ------------------------------------------------------------------------------------------------------ split_opts


def test_split_opts_keeps_quoted_values_whole_and_runs_nothing(tmp_path):
    """The recipe's *_opts strings: quotes group words (a list of languages, a YAML list); $(...) stays text."""
    script = write_script(tmp_path / "split.sh", f"""#!/usr/bin/env bash
set -euo pipefail
. {UTILS}/lib/opts.sh
split_opts words "$1"
echo "${{#words[@]}}"
printf '<%s>' "${{words[@]}}"
""")
    opts = "--languages 'fr_fr de_de' --trainer.on_the_fly \"[semantic, speaker]\" --x $(touch pwned)"
    words = "<--languages><fr_fr de_de><--trainer.on_the_fly><[semantic, speaker]><--x><$(touch><pwned)>"
    assert run([str(script), opts], tmp_path).stdout == f"7\n{words}"
    assert not (tmp_path / "pwned").exists()
    assert run([str(script), ""], tmp_path).stdout == "0\n<>"  # (printf prints its format once even without words)
    for empty_last in ("--data.valid_max_utts ''", '--a "" --data.valid_max_utts \'\''):  # '' is YAML's null
        assert run([str(script), empty_last], tmp_path).stdout.endswith("<--data.valid_max_utts><>"), empty_last
    broken = run([str(script), "--languages 'fr_fr"], tmp_path)
    assert broken.returncode == 2 and "cannot split the options '--languages 'fr_fr' into words" in broken.stderr


# ------------------------------------------------------------------------------------------------ data wrappers


def test_data_dir_wrappers(tmp_path):
    data = make_data_dir(tmp_path)
    result = run([str(UTILS / "validate_data_dir.sh"), str(data)], tmp_path)
    assert result.returncode == 0 and "OK, 6 utterances" in result.stdout, result.stderr
    result = run([str(UTILS / "validate_data_dir.sh"), "--no-feats", "--no-text", str(data)], tmp_path)  # Kaldi's
    assert result.returncode == 0 and "OK, 6 utterances" in result.stdout, result.stderr

    for kaldi_form in ([str(data), "2"], ["--per-spk", str(data), "1"]):
        result = run([str(UTILS / "subset_data_dir.sh"), *kaldi_form, str(tmp_path / "kaldi")], tmp_path)
        assert result.returncode == 2 and "use --first N <src> <dst>" in result.stderr
        assert not (tmp_path / "kaldi").exists()
    result = run([str(UTILS / "subset_data_dir.sh"), "--per-spk", "1", str(data), str(tmp_path / "one")], tmp_path)
    assert result.returncode == 0, result.stderr
    assert read_ids(tmp_path / "one" / "wav.scp") == ["spkA-u1", "spkB-u1", "spkC-u1"]
    run([str(UTILS / "subset_data_dir.sh"), "--first", "2", str(data), str(tmp_path / "two")], tmp_path)
    result = run([str(UTILS / "combine_data.sh"), str(tmp_path / "both"), str(tmp_path / "one"), str(tmp_path / "two")],
                 tmp_path)
    assert result.returncode == 1 and "utterance 'spkA-u1' is also in" in result.stderr

    result = run([str(UTILS / "split_data.sh"), str(data), "3"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert [read_ids(data / "split3" / str(i) / "spk2utt") for i in (1, 2, 3)] == [["spkA"], ["spkB"], ["spkC"]]

    result = run([str(UTILS / "utt2spk_to_spk2utt.sh"), str(data / "utt2spk")], tmp_path)
    assert result.stdout == (data / "spk2utt").read_text()
    assert run([str(UTILS / "compute_durations.sh"), str(data)], tmp_path).returncode == 0
    assert (data / "utt2dur").read_text().splitlines()[0] == "spkA-u1 0.25"

    (data / "utt2spk").write_text((data / "utt2spk").read_text().replace("spkC-u2 spkC\n", ""))
    result = run([str(UTILS / "validate_data_dir.sh"), "--no-audio", str(data)], tmp_path)
    assert result.returncode == 1
    assert f"{data}/wav.scp:6: id 'spkC-u2': missing from utt2spk" in result.stdout.splitlines()
    assert run([str(UTILS / "fix_data_dir.sh"), str(data)], tmp_path).returncode == 0
    assert run([str(UTILS / "validate_data_dir.sh"), str(data)], tmp_path).returncode == 0


def test_wrappers_fall_back_to_the_checkouts_venv(tmp_path):
    if not (REPO / ".venv" / "bin" / "uattr").exists():
        pytest.skip("no .venv in this checkout")
    env = {**os.environ, "PATH": "/usr/bin:/bin"}
    result = run([str(UTILS / "validate_data_dir.sh"), "--no-audio", str(make_data_dir(tmp_path))], tmp_path, env)
    assert result.returncode == 0, result.stderr


# ------------------------------------------------------------------------------------------------------ job runners

# A job that records how many jobs run at once (each holds a file in running/ while it runs), then fails if JOB=3.
JOB_COMMAND = [
    "bash", "-c",
    "mkdir -p running; touch running/JOB; ls running | wc -l > count.JOB; sleep 0.3; rm running/JOB; "
    "echo done JOB; [ JOB -ne 3 ]",
]


def test_local_runner_runs_jobs_in_parallel_and_names_failures(tmp_path):
    result = run([str(UTILS / "run.sh"), "--max-jobs-run", "2", "JOB=1:5", "log/job.JOB.log", *JOB_COMMAND], tmp_path)
    assert result.returncode == 1
    assert "job 3 failed with exit code 1; see log/job.3.log" in result.stderr
    assert "1 of 5 job(s) failed: 3" in result.stderr
    assert max(int((tmp_path / f"count.{i}").read_text()) for i in range(1, 6)) <= 2
    log = (tmp_path / "log" / "job.4.log").read_text().splitlines()
    assert log[0].startswith("# bash -c mkdir\\ -p\\ running\\;\\ touch\\ running/4\\;")
    assert log[2] == "done 4" and log[3].startswith("# Ended (code 0)")
    assert (tmp_path / "log" / "job.3.log").read_text().splitlines()[-1].startswith("# Ended (code 1)")


def test_local_runner_runs_a_job_per_cpu_whatever_omp_num_threads_says(tmp_path):
    """The recipes give each split job OMP_NUM_THREADS = CPUs / jobs, which nproc reports as the CPU count. A stub
    nproc does the same on a machine of 3 CPUs, whatever this one has."""
    stubs = tmp_path / "bin"
    stubs.mkdir()
    write_script(stubs / "nproc", '#!/bin/sh\necho "${OMP_NUM_THREADS:-3}"\n')
    env = {**ENV, "OMP_NUM_THREADS": "1", "PATH": f"{stubs}{os.pathsep}{ENV['PATH']}"}
    # Each of the first jobs waits (up to 5 s) until 3 run at once, so that they overlap however loaded the machine.
    job = ("mkdir -p running started; touch running/JOB started/JOB; for _ in $(seq 50); do "
           "[ $(ls running | wc -l) -ge 3 ] || [ $(ls started | wc -l) -ge 4 ] && break; sleep 0.1; done; "
           "ls running | wc -l > count.JOB; sleep 0.1; rm running/JOB")
    result = run([str(UTILS / "run.sh"), "JOB=1:5", "log/job.JOB.log", "bash", "-c", job], tmp_path, env)
    assert result.returncode == 0, result.stderr
    assert max(int((tmp_path / f"count.{i}").read_text()) for i in range(1, 6)) == 3


def test_local_runner_single_job_and_shell_words(tmp_path):
    result = run([str(UTILS / "run.sh"), "log/one.log", "echo", "a  b", "|", "tr", "a-z", "A-Z"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "log" / "one.log").read_text().splitlines()[:3] == [
        "# echo a\\ \\ b | tr a-z A-Z", (tmp_path / "log" / "one.log").read_text().splitlines()[1], "A  B"]
    result = run([str(UTILS / "run.sh"), "log/fail.log", "false"], tmp_path)
    assert result.returncode == 1 and "job 1 failed with exit code 1; see log/fail.log" in result.stderr


def test_local_runner_output_without_a_final_newline_still_ends_with_its_marker(tmp_path):
    result = run([str(UTILS / "run.sh"), "log/x.log", "printf", "ok"], tmp_path)
    assert result.returncode == 0, result.stderr
    lines = (tmp_path / "log" / "x.log").read_text().splitlines()
    assert lines[2] == "ok" and lines[3].startswith("# Ended (code 0)")


# A job that holds its GPUs (a folder per GPU) while it runs: a second job given one of them fails its mkdir.
GPU_JOB_COMMAND = [
    "bash", "-c",
    "for d in ${CUDA_VISIBLE_DEVICES//,/ }; do mkdir gpu_$d || exit 1; done; sleep 0.3; "
    "echo $CUDA_VISIBLE_DEVICES > devices.JOB; for d in ${CUDA_VISIBLE_DEVICES//,/ }; do rmdir gpu_$d; done",
]


@pytest.mark.parametrize(("visible", "per_job"), [("4,5,6", 1), ("0,1,2,3,7", 2)])
def test_local_gpu_jobs_each_get_gpus_of_their_own(tmp_path, visible, per_job):
    """Split GPU jobs (extraction, teachers) spread over the visible GPUs, never two on one GPU at a time."""
    env = {**ENV, "CUDA_VISIBLE_DEVICES": visible}
    result = run([str(UTILS / "run.sh"), "--gpu", str(per_job), "--max-jobs-run", "9", "JOB=1:7", "log/job.JOB.log",
                  *GPU_JOB_COMMAND],
                 tmp_path, env)
    assert result.returncode == 0, result.stderr + "".join(p.read_text() for p in (tmp_path / "log").iterdir())
    used = [(tmp_path / f"devices.{job}").read_text().split(",") for job in range(1, 8)]
    assert all(len(devices) == per_job for devices in used)
    gpus = visible.split(",")
    assert {device.strip() for devices in used for device in devices} == set(gpus[: len(gpus) // per_job * per_job])


def test_local_gpu_jobs_find_the_gpus_with_nvidia_smi(tmp_path):
    fake = tmp_path / "bin"
    fake.mkdir()
    write_script(fake / "nvidia-smi", "#!/usr/bin/env bash\nprintf '0\\n1\\n'\n")
    env = {key: value for key, value in ENV.items() if key != "CUDA_VISIBLE_DEVICES"}
    env["PATH"] = f"{fake}{os.pathsep}{env['PATH']}"
    result = run([str(UTILS / "run.sh"), "--gpu", "1", "--max-jobs-run", "9", "JOB=1:4", "log/job.JOB.log",
                  *GPU_JOB_COMMAND], tmp_path, env)
    assert result.returncode == 0, result.stderr
    assert {(tmp_path / f"devices.{job}").read_text().strip() for job in range(1, 5)} == {"0", "1"}


@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="this machine lists its GPUs")
def test_local_gpu_jobs_without_a_gpu_list_see_every_gpu(tmp_path):
    env = {key: value for key, value in ENV.items() if key != "CUDA_VISIBLE_DEVICES"}
    result = run([str(UTILS / "run.sh"), "--gpu", "1", "log/x.log", "true"], tmp_path, env)
    assert result.returncode == 0 and "nvidia-smi lists the GPUs; every job sees every GPU" in result.stderr


def test_local_gpu_jobs_need_the_gpus_they_ask_for(tmp_path):
    result = run([str(UTILS / "run.sh"), "--gpu", "2", "log/x.log", "true"], tmp_path,
                 {**ENV, "CUDA_VISIBLE_DEVICES": "0"})
    assert result.returncode == 1 and "--gpu 2: only 1 GPU(s) visible on" in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["JOB=1:2", "log/same.log", "true"], "2 - 1 + 1 jobs would share the log log/same.log"),
        (["--num-nodes", "2", "log/x.log", "true"], "only Slurm (utils/slurm.sh) runs multi-node jobs"),
        (["--max-jobs", "2", "log/x.log", "true"], "invalid option --max-jobs"),
        (["--max-jobs-run", "x", "log/x.log", "true"], "--max-jobs-run must be a positive number, got 'x'"),
    ],
)
def test_local_runner_usage_errors(tmp_path, args, message):
    result = run([str(UTILS / "run.sh"), *args], tmp_path)
    assert result.returncode == 1 and message in result.stderr and "integer expression" not in result.stderr


@pytest.fixture
def fake_slurm(tmp_path) -> dict[str, str]:
    """sbatch/srun/scontrol/scancel stand-ins that record their arguments; sbatch runs the array tasks here."""
    bin_dir = tmp_path / "fake_bin"
    bin_dir.mkdir()
    record = tmp_path / "calls"
    write_script(bin_dir / "sbatch", f"""#!/usr/bin/env bash
echo "sbatch $*" >> {record}
for arg in "$@"; do
  case "$arg" in --array=*) array=${{arg#--array=}} ;; --*) ;; *) script=$arg ;; esac
done
range=${{array%%%*}}
echo "Submitted batch job 4242"
status=0
for ((task = ${{range%-*}}; task <= ${{range#*-}}; task++)); do
  SLURM_JOB_ID=$((4242 + task)) SLURM_ARRAY_TASK_ID=$task SLURM_JOB_NODELIST="node[1-2]" bash "$script" || status=1
done
exit $status
""")
    write_script(bin_dir / "srun", f"""#!/usr/bin/env bash
echo "srun $*" >> {record}
while [[ $1 == --* ]]; do shift; done
exec "$@"
""")
    write_script(bin_dir / "scontrol", "#!/usr/bin/env bash\nprintf 'node1\\nnode2\\n'\n")
    write_script(bin_dir / "scancel", f"#!/usr/bin/env bash\necho \"scancel $*\" >> {record}\n")
    return {**ENV, "PATH": f"{bin_dir}{os.pathsep}{ENV['PATH']}"}


def test_slurm_runner_submits_an_array_and_names_failures(tmp_path, fake_slurm):
    (tmp_path / "slurm.conf").write_text('sbatch_opts="--account=proj --qos=normal"\ngpu_opts="--partition=gpu"\n')
    command = ["bash", "-c", "echo task JOB on $MASTER_ADDR:$MASTER_PORT; [ JOB -ne 2 ]"]
    result = run([str(UTILS / "slurm.sh"), "--config", "slurm.conf", "--gpu", "2", "--num-nodes", "2", "--mem", "4G",
                  "--time", "1:00:00", "--num-threads", "3", "--max-jobs-run", "2", "JOB=1:3", "exp/log/t.JOB.log",
                  *command], tmp_path, fake_slurm)
    assert result.returncode == 1
    assert "job 2 failed with exit code 1; see exp/log/t.2.log" in result.stderr
    assert "1 of 3 job(s) failed: 2" in result.stderr

    calls = (tmp_path / "calls").read_text().splitlines()
    sbatch = calls[0].split()
    assert sbatch[0] == "sbatch" and sbatch[-1] == "exp/log/q/t.JOB.sh"
    for option in ("--wait", "--array=1-3%2", "--gres=gpu:2", "--mem=4G", "--time=1:00:00", "--cpus-per-task=3",
                   "--nodes=2", "--account=proj", "--qos=normal", "--partition=gpu", f"--chdir={tmp_path}"):
        assert option in sbatch, option
    srun = "srun --nodes=2 --ntasks-per-node=1 --cpus-per-task=3 bash -o pipefail -c bash -c echo\\ task\\ "
    assert [call[: len(srun) + 1] for call in calls[1:]] == [f"{srun}{i}" for i in (1, 2, 3)]
    log = (tmp_path / "exp" / "log" / "t.1.log").read_text().splitlines()
    # Each task (a job of its own) meets at a port of its own: jobs sharing a first node must not meet.
    assert log[2] == "task 1 on node1:14243" and log[3].startswith("# Ended (code 0)")
    assert (tmp_path / "exp" / "log" / "t.3.log").read_text().splitlines()[2] == "task 3 on node1:14245"


def test_slurm_runner_cpu_job_without_range(tmp_path, fake_slurm):
    (tmp_path / "slurm.conf").write_text('gpu_opts="--partition=gpu"\n')
    result = run([str(UTILS / "slurm.sh"), "--config", "slurm.conf", "log/one.log", "echo", "hello"], tmp_path,
                 fake_slurm)
    assert result.returncode == 0, result.stderr
    sbatch = (tmp_path / "calls").read_text().splitlines()[0].split()
    assert "--array=1-1" in sbatch and not any(o.startswith(("--gres", "--partition", "--mem")) for o in sbatch)
    assert (tmp_path / "log" / "one.log").read_text().splitlines()[2] == "hello"


def test_slurm_runner_reports_tasks_that_never_ran(tmp_path, fake_slurm):
    write_script(Path(fake_slurm["PATH"].split(os.pathsep)[0]) / "sbatch", "#!/usr/bin/env bash\nexit 1\n")
    result = run([str(UTILS / "slurm.sh"), "JOB=1:2", "log/x.JOB.log", "true"], tmp_path, fake_slurm)
    assert result.returncode == 1
    assert "sbatch exited with status 1" in result.stderr
    assert "job 1 did not finish (no exit status in log/x.1.log)" in result.stderr


def test_local_runner_leaves_the_commands_own_config_option_alone(tmp_path):
    # `run.sh LOG uattr train --config x.yaml`: the --config after LOG belongs to the command, not to run.sh.
    (tmp_path / "x.yaml").write_text("trainer:\n  max_steps: 3\n")
    result = run([str(UTILS / "run.sh"), "--gpu", "0", "log/train.log", "echo", "--config", "x.yaml"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "--config x.yaml" in (tmp_path / "log" / "train.log").read_text()
