#!/usr/bin/env bash
# More seeds of the mini recipe's trained systems, and their mean ± standard deviation. Run it from
# egs/mini/uattr1 after ./run.sh: it reuses data/, the teacher embeddings and exp/init_upstream. Seed N runs
# stages 3-6 into <expdir>_seedN (skipped where already done: the stages resume); then `uattr results`
# aggregates <expdir> (seed 0) and every <expdir>_seedN into <expdir>/RESULTS_seeds.md.
#   local/run_seeds.sh 1 2 3 4
set -euo pipefail

expdir=exp                        # the seed-0 run; the others go to ${expdir}_seed<N>
systems="joint semantic speaker"  # the trained systems to repeat (the untrained baselines do not vary)
train_opts=""                     # more `uattr train` options, for every seed

help_message="Usage: $0 [--expdir exp] [--systems 'joint semantic speaker'] [--train_opts '...'] <seed> [<seed> ...]"

MAIN_ROOT=${MAIN_ROOT:-$(cd "$(dirname "$0")/../../../.." && pwd)}
. "${MAIN_ROOT}/utils/lib/log.sh"
. "${MAIN_ROOT}/utils/parse_options.sh"
if [ $# -eq 0 ]; then
  echo "${help_message}" >&2
  exit 2
fi

if [ ! -d "${expdir}" ]; then
  echo "$0: ${expdir} does not exist: run ./run.sh first (its run is seed 0)" >&2
  exit 1
fi
runs=("${expdir}")
for seed in "$@"; do
  if [ "${seed}" = 0 ]; then
    echo "$0: seed 0 is ${expdir} itself (./run.sh's run); name the other seeds" >&2
    exit 2
  fi
  log "seed ${seed}: ${expdir}_seed${seed}"
  ./run.sh --stage 3 --expdir "${expdir}_seed${seed}" --systems "${systems}" --untrained_systems "" \
    --init_upstreams "" --train_opts "--trainer.seed ${seed} ${train_opts}"
  runs+=("${expdir}_seed${seed}")
done
uattr results --exp-dir "${runs[@]}" --out "${expdir}/RESULTS_seeds.md" --notes local/results_notes.md \
  --title "RESULTS of the mini recipe over ${#runs[@]} seeds"
log "${expdir}/RESULTS_seeds.md"
