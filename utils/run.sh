#!/usr/bin/env bash
# Run a command as parallel jobs on this machine, the way Kaldi's run.pl does (use it from cmd.sh).
help_message="Usage: $0 [options] [JOB=1:N] LOG COMMAND [ARGS...]
Runs COMMAND once per job number in 1..N (at most --max-jobs-run at a time), replacing JOB by the job number
in LOG and in the arguments. Each job's LOG holds the command, its output and its exit status. Exits non-zero,
naming the failed jobs and their logs, if any job fails.
  e.g. $0 --max-jobs-run 4 JOB=1:8 exp/log/extract.JOB.log uattr extract --data data/test/split8/JOB ...
Options:
  --max-jobs-run N   jobs running at the same time (default: the number of CPUs)
  --gpu N            GPUs per job: each running job sees N GPUs of its own (CUDA_VISIBLE_DEVICES), taken from
                     those visible here (\$CUDA_VISIBLE_DEVICES, else nvidia-smi), so at most (GPUs / N) jobs
                     run at a time; 0: no GPU is assigned
  --num-threads N    accepted and ignored (the machine's threads are shared)
  --mem M, --time T  accepted and ignored (Slurm resource requests)
  --num-nodes N      only 1 locally; multi-node jobs need utils/slurm.sh"
# The CPUs of this machine (nproc alone would answer $OMP_NUM_THREADS, which a caller sets per job).
max_jobs_run=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
gpu=0
# shellcheck disable=SC2034  # options accepted so that cmd.sh can switch between run.sh and slurm.sh
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
if ! [[ ${max_jobs_run} =~ ^[1-9][0-9]*$ ]]; then
  echo "$0: --max-jobs-run must be a positive number, got '${max_jobs_run}'" >&2
  exit 1
fi

# GPU slots: slot s holds the GPUs gpus[s*N .. s*N+N-1]; a job runs in a free slot, so no two jobs share a GPU.
slots=${max_jobs_run}
if [ "${gpu}" -gt 0 ]; then
  if [ -n "${CUDA_VISIBLE_DEVICES+set}" ]; then
    IFS=, read -r -a gpus <<< "${CUDA_VISIBLE_DEVICES}"
  elif command -v nvidia-smi > /dev/null; then
    mapfile -t gpus < <(nvidia-smi --query-gpu=index --format=csv,noheader 2> /dev/null || true)
  else
    echo "$0: warning: --gpu ${gpu}: neither CUDA_VISIBLE_DEVICES nor nvidia-smi lists the GPUs; every job sees" \
      "every GPU" >&2
    gpu=0
  fi
  if [ "${gpu}" -gt 0 ] && [ "${#gpus[@]}" -lt "${gpu}" ]; then
    echo "$0: --gpu ${gpu}: only ${#gpus[@]} GPU(s) visible on $(hostname) (CUDA_VISIBLE_DEVICES or nvidia-smi)" >&2
    exit 1
  fi
  [ "${gpu}" -gt 0 ] && slots=$(( ${#gpus[@]} / gpu < max_jobs_run ? ${#gpus[@]} / gpu : max_jobs_run ))
fi
slot_devices() {  # slot → its comma-separated GPUs
  local first=$(( $1 * gpu ))
  local IFS=,
  echo "${gpus[*]:first:gpu}"
}

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
slot_pids=()
for ((id = job_start; id <= job_end; id++)); do
  while true; do  # the first slot whose job has ended (or that never had one)
    free=""
    for ((slot = 0; slot < slots; slot++)); do
      if [ -z "${slot_pids[slot]:-}" ] || ! kill -0 "${slot_pids[slot]}" 2> /dev/null; then
        free=${slot}
        break
      fi
    done
    [ -n "${free}" ] && break
    wait -n
  done
  if [ "${gpu}" -gt 0 ]; then
    CUDA_VISIBLE_DEVICES=$(slot_devices "${free}") \
      run_logged "$(for_job "${log_template}" "${id}")" "$(for_job "${command_template}" "${id}")" &
  else
    run_logged "$(for_job "${log_template}" "${id}")" "$(for_job "${command_template}" "${id}")" &
  fi
  slot_pids[free]=$!
done
wait
check_job_logs
