# Shared by utils/run.sh and utils/slurm.sh: the Kaldi run.pl job interface.
#
#   <runner> [options] [JOB=1:N] LOG COMMAND [ARGS...]
#
# JOB (any upper/lower-case name) is replaced by the job number in LOG and in the command. An argument that is a
# shell operator ("\|", ">", "2>&1", "&&", ";" given as a separate word) acts as shell syntax, as in Kaldi; every
# other argument is quoted, so that a value such as '$HOME', '*.sh' or '{"a":1}' reaches the command as it was
# given, never expanded or run. Each job runs with `bash -o pipefail -c` and writes LOG:
#   # <command>
#   # Started at <date> on <host>
#   <output>
#   # Ended (code <status>) at <date>, elapsed time <seconds> seconds

# Parse "$@" (options already removed) into job_var, job_start, job_end, log_template, command_template.
parse_job_args() {
  job_var=""
  job_start=1
  job_end=1
  if [[ ${1:-} =~ ^([A-Za-z_]+)=([0-9]+):([0-9]+)$ ]]; then
    job_var=${BASH_REMATCH[1]}
    job_start=${BASH_REMATCH[2]}
    job_end=${BASH_REMATCH[3]}
    shift
    ((job_start <= job_end)) || { echo "$0: empty job range ${job_var}=${job_start}:${job_end}" >&2; exit 1; }
  fi
  [ $# -ge 2 ] || { printf '%s\n' "${help_message:-Usage: $0 [options] [JOB=1:N] LOG COMMAND [ARGS...]}" >&2; exit 1; }
  log_template=$1
  shift
  if [ -n "${job_var}" ] && [ "${job_end}" -gt "${job_start}" ] && [[ ${log_template} != *"${job_var}"* ]]; then
    echo "$0: ${job_end} - ${job_start} + 1 jobs would share the log ${log_template}; put ${job_var} in its name" >&2
    exit 1
  fi
  command_template=""
  local arg
  local operator='^([0-9]*(<|>|>>|<<|>&|<&)[0-9-]*|\|\|?|&&|;|&)$'
  for arg in "$@"; do
    if [[ ${arg} =~ ${operator} ]]; then
      command_template+="${arg} "
    else
      command_template+="$(printf '%q' "${arg}") "
    fi
  done
  command_template=${command_template% }
}

# The log file or command of job $2, from template $1.
for_job() {
  if [ -n "${job_var}" ]; then
    printf '%s' "${1//${job_var}/$2}"
  else
    printf '%s' "$1"
  fi
}

# run_logged LOG COMMAND [LAUNCHER...]: run COMMAND (through LAUNCHER, e.g. srun) writing LOG; returns its status.
run_logged() {
  local log=$1 command=$2 start status
  shift 2
  mkdir -p "$(dirname "${log}")"
  start=$(date +%s)
  printf '# %s\n# Started at %s on %s\n' "${command}" "$(date)" "$(hostname)" > "${log}"
  "$@" bash -o pipefail -c "${command}" >> "${log}" 2>&1 < /dev/null
  status=$?
  [ -n "$(tail -c 1 "${log}")" ] && echo >> "${log}"  # output without a final newline: the marker on a line of its own
  printf '# Ended (code %d) at %s, elapsed time %d seconds\n' "${status}" "$(date)" "$(($(date +%s) - start))" \
    >> "${log}"
  return "${status}"
}

# Remove the logs of every job, so that a job that never runs cannot look finished.
remove_job_logs() {
  local id
  for ((id = job_start; id <= job_end; id++)); do
    rm -f "$(for_job "${log_template}" "${id}")"
  done
}

# Read every job's exit status from its log; print the failures and return 1 if any job failed.
check_job_logs() {
  local id log status failed=()
  for ((id = job_start; id <= job_end; id++)); do
    log=$(for_job "${log_template}" "${id}")
    status=$(sed -n 's/^# Ended (code \([0-9]*\)).*/\1/p' "${log}" 2> /dev/null | tail -n 1)
    if [ -z "${status}" ]; then
      echo "$0: job ${id} did not finish (no exit status in ${log})" >&2
      failed+=("${id}")
    elif [ "${status}" -ne 0 ]; then
      echo "$0: job ${id} failed with exit code ${status}; see ${log}" >&2
      failed+=("${id}")
    fi
  done
  if [ ${#failed[@]} -gt 0 ]; then
    echo "$0: ${#failed[@]} of $((job_end - job_start + 1)) job(s) failed: ${failed[*]}" >&2
    return 1
  fi
}
