#!/usr/bin/env bash
# Run a command as a Slurm job array and wait for it; the same interface as utils/run.sh (use it from cmd.sh).
help_message="Usage: $0 [options] [JOB=1:N] LOG COMMAND [ARGS...]
Submits one sbatch array (tasks 1..N, at most --max-jobs-run at a time) whose task JOB runs COMMAND, with JOB
replaced by the task number in LOG and in the arguments, through srun (once per node). Waits for the array;
exits non-zero, naming the failed tasks and their logs, if any task fails. An interrupt cancels the array.
Batch scripts and Slurm's own output go to \$(dirname LOG)/q/.
Options:
  --gpu N            GPUs per task (--gres=gpu:N, plus \$gpu_opts from the config when N > 0)
  --num-nodes N      nodes per task (--nodes=N); srun runs COMMAND once per node with MASTER_ADDR set to
                     the first node and MASTER_PORT (default 10000 + job id % 20000), for torchrun's
                     rendezvous
  --num-threads N    CPUs per task (--cpus-per-task=N)
  --mem M            memory per node (--mem=M, e.g. 16G)
  --time T           time limit (--time=T, e.g. 24:00:00)
  --max-jobs-run N   array tasks running at the same time (--array=1-N%M)
  --sbatch-opts S    extra sbatch options for every job (e.g. \"--partition=cpu --account=me\")
  --gpu-opts S       extra sbatch options for GPU jobs only (e.g. \"--partition=gpu\")
  --config FILE      a shell file setting the options above, e.g. conf/slurm.conf:
                       sbatch_opts=\"--account=myproject --partition=cpu\"
                       gpu_opts=\"--partition=gpu\"
                       mem=8G"
gpu=0
num_nodes=1
num_threads=1
mem=""
time=""
max_jobs_run=""
sbatch_opts=""
gpu_opts=""
utils_dir=$(dirname "$(readlink -f "$0")")
. "${utils_dir}/parse_options.sh"
. "${utils_dir}/lib/jobs.sh"
parse_job_args "$@"

queue_dir="$(dirname "$(for_job "${log_template}" 1)")/q"
name=$(basename "${log_template}" .log)
name=${name//[^A-Za-z0-9_.-]/_}
mkdir -p "${queue_dir}"
script="${queue_dir}/${name}.sh"

# The batch script: task JOB writes its own log, like a run.sh job, running COMMAND through srun.
# shellcheck disable=SC2016  # these lines are written out unexpanded, to expand in the batch job
{
  echo "#!/usr/bin/env bash"
  echo ". $(printf '%q' "${utils_dir}/lib/jobs.sh")"
  printf 'job_var=%q\nlog_template=%q\ncommand_template=%q\n' "${job_var}" "${log_template}" "${command_template}"
  echo 'id=${SLURM_ARRAY_TASK_ID}'
  if [ "${num_nodes}" -gt 1 ]; then
    echo 'export MASTER_ADDR=$(scontrol show hostnames "${SLURM_JOB_NODELIST}" | head -n 1)'
    # A port of the job's own (below Linux's ephemeral range): two multi-node jobs may share a first node.
    echo 'export MASTER_PORT=${MASTER_PORT:-$(( 10000 + SLURM_JOB_ID % 20000 ))}'
  fi
  printf 'run_logged "$(for_job "${log_template}" "${id}")" "$(for_job "${command_template}" "${id}")" '
  printf 'srun --nodes=%d --ntasks-per-node=1 --cpus-per-task=%d\n' "${num_nodes}" "${num_threads}"
} > "${script}"

array="${job_start}-${job_end}"
[ -n "${max_jobs_run}" ] && array+="%${max_jobs_run}"
job_name="${name}.$$"
options=(--wait "--array=${array}" "--job-name=${job_name}" "--output=${queue_dir}/${name}.%a.out"
  "--chdir=${PWD}" "--nodes=${num_nodes}" "--ntasks-per-node=1" "--cpus-per-task=${num_threads}")
[ "${gpu}" -gt 0 ] && options+=("--gres=gpu:${gpu}")
[ -n "${mem}" ] && options+=("--mem=${mem}")
[ -n "${time}" ] && options+=("--time=${time}")
# shellcheck disable=SC2206  # the option strings are meant to split into words
options+=(${sbatch_opts})
# shellcheck disable=SC2206
[ "${gpu}" -gt 0 ] && options+=(${gpu_opts})

remove_job_logs
# sbatch --wait blocks until every task has ended; an interrupt cancels the array by its (unique) name.
sbatch "${options[@]}" "${script}" &
sbatch_pid=$!
trap 'scancel --name="${job_name}"; kill "${sbatch_pid}" 2> /dev/null; exit 130' INT TERM
wait "${sbatch_pid}" || echo "$0: sbatch exited with status $? (job ${job_name})" >&2
trap - INT TERM
check_job_logs
