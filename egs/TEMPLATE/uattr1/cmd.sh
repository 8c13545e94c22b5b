# How jobs run. Local by default: utils/run.sh runs jobs on this machine (JOB=1:N ranges, per-job logs).
# On a Slurm cluster, switch to utils/slurm.sh (sbatch/srun); options such as partitions go in conf/slurm.conf.
cmd_backend=${cmd_backend:-local}

case "${cmd_backend}" in
  local)
    export train_cmd="utils/run.sh"
    export cuda_cmd="utils/run.sh"
    export decode_cmd="utils/run.sh"
    ;;
  slurm)
    export train_cmd="utils/slurm.sh --config conf/slurm.conf"
    export cuda_cmd="utils/slurm.sh --config conf/slurm.conf"
    export decode_cmd="utils/slurm.sh --config conf/slurm.conf"
    ;;
  *)
    echo "cmd.sh: unknown cmd_backend '${cmd_backend}' (local | slurm)" >&2
    return 1
    ;;
esac
