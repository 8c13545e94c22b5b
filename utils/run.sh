#!/usr/bin/env bash
# Run a command as parallel jobs on this machine, the way Kaldi's run.pl does (use it from cmd.sh).
help_message="Usage: $0 [options] [JOB=1:N] LOG COMMAND [ARGS...]
Runs COMMAND once per job number in 1..N (at most --max-jobs-run at a time), replacing JOB by the job number
in LOG and in the arguments. Each job's LOG holds the command, its output and its exit status. Exits non-zero,
naming the failed jobs and their logs, if any job fails.
  e.g. $0 --max-jobs-run 4 JOB=1:8 exp/log/extract.JOB.log uattr extract --data data/test/split8/JOB ...
Options:
  --max-jobs-run N   jobs running at the same time (default: the number of CPUs)
  --gpu N            accepted for cmd.sh compatibility with slurm.sh; every local GPU stays visible
  --num-threads N    accepted and ignored (the machine's threads are shared)
  --mem M, --time T  accepted and ignored (Slurm resource requests)
  --num-nodes N      only 1 locally; multi-node jobs need utils/slurm.sh"
max_jobs_run=$(nproc)
# shellcheck disable=SC2034  # options accepted so that cmd.sh can switch between run.sh and slurm.sh
gpu=0
# shellcheck disable=SC2034
num_threads=1
# shellcheck disable=SC2034
mem=""
# shellcheck disable=SC2034
time=""
num_nodes=1
utils_dir=$(dirname "$(readlink -f "$0")")
. "${utils_dir}/parse_options.sh"
. "${utils_dir}/lib/jobs.sh"
parse_job_args "$@"
if [ "${num_nodes}" -ne 1 ]; then
  echo "$0: --num-nodes ${num_nodes}: only Slurm (utils/slurm.sh) runs multi-node jobs" >&2
  exit 1
fi
[ "${max_jobs_run}" -ge 1 ] || { echo "$0: --max-jobs-run must be at least 1" >&2; exit 1; }

# Each job runs in its own process group (job control), so that an interrupt can stop whole job trees.
set -m
stop_jobs() {
  local pid
  for pid in $(jobs -p); do
    kill -TERM -- "-${pid}" 2> /dev/null
  done
  exit 130
}
trap stop_jobs INT TERM

remove_job_logs
for ((id = job_start; id <= job_end; id++)); do
  while [ "$(jobs -pr | wc -l)" -ge "${max_jobs_run}" ]; do
    wait -n
  done
  run_logged "$(for_job "${log_template}" "${id}")" "$(for_job "${command_template}" "${id}")" &
done
wait
check_job_logs
