#!/usr/bin/env bash
# The stages of every uattr recipe (ESPnet egs2 style). A corpus's run.sh only sets options and calls this.
#
#   1 data      local/data.sh → Kaldi data dirs (+ trials, retrieval maps), each validated
#   2 teachers  cached teacher embeddings: dump/teacher/<attr>/<set>/emb.{ark,scp}
#   3 train     one experiment per system: exp/<system>/{config.yaml,checkpoints,tensorboard,model}
#   4 extract   embeddings of every attribute in one encoder pass: exp/<system>/emb/<attr>/<set>/
#   5 score     speaker verification (trials) and retrieval (query → gallery) per system and teacher
#   6 report    exp/RESULTS.md, layer-weight and DET plots
set -euo pipefail

. utils/lib/log.sh
. utils/lib/opts.sh
SECONDS=0

# General options
stage=1                # first stage to run
stop_stage=100         # last stage to run
nj=2                   # parallel jobs for teachers and extraction (data preparation: --data_opts "--nj N")
ngpu=0                 # GPUs per training job (0 = CPU); >1 launches torchrun (DDP)
num_nodes=1            # nodes per training job (>1 needs a Slurm cmd.sh: srun + torchrun rendezvous)
cpus_per_gpu=5         # CPUs a Slurm training job asks for per GPU (per node; ngpu 0: for the job), e.g. 4
                       # data-loader workers + the process; the local job runner shares this machine's
data_opts=""           # options passed to local/data.sh
dumpdir=dump           # teacher embeddings
expdir=exp             # experiments
validate_opts=""       # extra `uattr validate-data-dir` options (e.g. --sample-rate 0: 48 kHz mp3, resampled on load)

# Data
train_set=train        # training data dir (data/<train_set>)
valid_set=dev          # model selection only: never a test set
test_sets="test"       # sets to extract embeddings for (dev is added automatically)
teacher_conf=conf/teachers.txt   # lines: "<attr> <set,set?,...> <uattr extract-teacher options>" (set?: optional)

# Training
systems=""             # systems to train: conf/train_<system>.yaml → exp/<system>
untrained_systems=""   # systems built without training: conf/model_<system>.yaml → exp/<system>/model (baselines)
init_upstreams=""      # randomly initialised encoders to build first, "<arch>:<conf.yaml>" each →
                       # ${init_upstream_dir}/<conf name> (for from-scratch set-ups such as the mini recipe)
init_upstream_dir=exp/init_upstream  # where they go: the training configs name this path, so it stays put
                       # when --expdir moves (an experiment of another --expdir trains from the same encoders)
train_opts=""          # extra `uattr train` overrides for every system (e.g. --trainer.max_steps 100)
train_jobs=1           # systems trained at the same time, each with its share of the CPU threads (CPU recipes:
                       # two 1-thread trainings on 2 cores do ~1.3x the work of one 2-thread training)
device=""              # cpu | cuda (empty: cuda when ngpu > 0)
external_model=""      # evaluate this trained model dir (uattr save_pretrained), or its Hugging Face Hub id
                       # <org>/<name>[@<revision>], instead of training: stage 3 is skipped and ${systems}
                       # (default: the model's experiment name, or <name>) names it in exp/ and RESULTS.md

# Evaluation
sv_attr=speaker        # attribute whose embeddings are scored on trials
sv_sets="dev test"     # trial lists: "<set>" (data/<set>/trials) or "<set>:<file>" (data/<set>/<file>)
sv_cohort=""           # AS-norm cohort set: each trial list is also scored with AS-norm against it (sv-asnorm)
sv_cohort_opts="--top-k 300"  # extra `uattr score-sv` options of the AS-norm scoring
label_attrs=""         # label attributes scored by their classifier on the valid and test sets, "<attr>:<table>"
                       # each, the table a data-dir file of labels (e.g. "language:utt2lang")
retrieval_conf=data/retrieval_tasks  # lines: "<name> <attr> <query_set> <gallery_kind: teacher|speech>
                       #   <gallery_set> <query2ref>"
score_opts=""          # extra `uattr score-sv` options (e.g. --norm asnorm --cohort ...)
extract_opts=""        # extra `uattr extract` options
results_notes=""       # a markdown file shown at the top of RESULTS.md (what the systems are)
reference_results=""   # reference rows (e.g. the paper's numbers) for RESULTS.md: a JSON metrics file or markdown

# The help text is built when --help is met (utils/parse_options.sh calls print_help), so that its defaults are
# those in force then: run.sh's options, which come before the user's, are applied.
print_help() {
  cat << EOF
Usage: $0 [options]

Stages (--stage / --stop_stage): 1 data, 2 teachers, 3 train, 4 extract, 5 score, 6 report.

General options:
  --stage          # first stage (default: ${stage})
  --stop_stage     # last stage (default: ${stop_stage})
  --nj             # parallel jobs for teachers and extraction; a GPU each on cuda (default: ${nj})
  --ngpu           # GPUs per training job; >1 = torchrun DDP (default: ${ngpu})
  --num_nodes      # nodes per training job, Slurm only (default: ${num_nodes})
  --cpus_per_gpu   # CPUs a Slurm training job asks for per GPU (ngpu 0: for the job) (default: ${cpus_per_gpu})
  --data_opts      # options for local/data.sh (default: "${data_opts}")
  --dumpdir        # teacher embeddings dir (default: ${dumpdir}); the training configs name the tables they
                   #   read themselves (data.target_pattern): move both, e.g. --train_opts "--data.target_pattern ..."
  --expdir         # experiments dir (default: ${expdir}); the random-init encoders of stage 3 stay in
                   #   --init_upstream_dir, whose path the configs name
  --validate_opts  # extra uattr validate-data-dir options (default: "${validate_opts}")
Data:
  --train_set      # training set: uattr train --data.train data/<train_set> (default: ${train_set})
  --valid_set      # validation set (model selection), --data.valid data/<valid_set>; "": the YAML's
                   # data.valid (default: ${valid_set})
  --test_sets      # evaluation sets (default: "${test_sets}")
  --teacher_conf   # teacher table spec (default: ${teacher_conf})
Training:
  --systems        # systems to train, each conf/train_<system>.yaml (default: "${systems}")
  --untrained_systems # baselines built without training from conf/model_<system>.yaml (default: "${untrained_systems}")
  --init_upstreams # encoders to create before training, "<arch>:<conf.yaml>" (default: "${init_upstreams}")
  --init_upstream_dir # where they go, as the configs name it (default: ${init_upstream_dir})
  --train_opts     # extra dotted overrides for uattr train (default: "${train_opts}")
  --train_jobs     # systems trained at the same time on this machine (default: ${train_jobs})
  --device         # cpu|cuda (default: ${device:-cuda when ngpu > 0, else cpu})
  --external_model # a trained model dir, or its Hub id <org>/<name>[@<revision>], to evaluate instead of training
                   # (default: "${external_model}")
Evaluation:
  --sv_attr        # attribute scored on trials (default: ${sv_attr})
  --sv_sets        # trial lists, "<set>" or "<set>:<trials file>" (default: "${sv_sets}")
  --sv_cohort      # AS-norm cohort set; lists are scored with and without AS-norm (default: "${sv_cohort}")
  --sv_cohort_opts # extra uattr score-sv options with AS-norm (default: "${sv_cohort_opts}")
  --label_attrs    # label attributes to classify on the valid and test sets, "<attr>:<labels file>" each, e.g.
                   # "language:utt2lang" (default: "${label_attrs}")
  --retrieval_conf # retrieval task list (default: ${retrieval_conf})
  --score_opts     # extra uattr score-sv options (default: "${score_opts}")
  --extract_opts   # extra uattr extract options (default: "${extract_opts}")
  --results_notes  # markdown shown at the top of RESULTS.md (default: "${results_notes}")
  --reference_results # reference rows to show beside ours: JSON metrics or markdown (default: "${reference_results}")
EOF
}

log "$0 $*"
. utils/parse_options.sh
if [ $# -ne 0 ]; then
  log "$(print_help)"
  log "Error: no positional arguments are required."
  exit 2
fi
. ./path.sh
. ./cmd.sh

for option in stage stop_stage; do
  [[ ${!option} =~ ^[0-9]+$ ]] || { log "Error: --${option} must be a stage number, got '${!option}'"; exit 2; }
done
if [ "${stage}" -lt 1 ] || [ "${stage}" -gt 6 ]; then
  log "Error: --stage ${stage}: the stages are 1 (data) to 6 (report)"
  exit 2
fi
for option in nj num_nodes cpus_per_gpu train_jobs; do
  [[ ${!option} =~ ^[1-9][0-9]*$ ]] || { log "Error: --${option} must be a positive number, got '${!option}'"; exit 2; }
done
[[ ${ngpu} =~ ^[0-9]+$ ]] || { log "Error: --ngpu must be a number of GPUs, got '${ngpu}'"; exit 2; }
if [ "${num_nodes}" -gt 1 ] && [ "${ngpu}" -eq 0 ]; then
  log "Error: --num_nodes ${num_nodes} needs GPUs: multi-node DDP runs one process per GPU (--ngpu)"
  exit 2
fi
if [ "${stage}" -gt "${stop_stage}" ]; then
  log "Error: --stage ${stage} comes after --stop_stage ${stop_stage}: no stage would run"
  exit 2
fi
# Locally, each training job would be given the same first GPUs (Slurm allocates every job its own).
if [ "${train_jobs}" -gt 1 ] && [ "${ngpu}" -gt 0 ] && [ "${cmd_backend:-local}" = local ]; then
  log "Error: --train_jobs ${train_jobs} with --ngpu ${ngpu} on this machine: train one system at a time" \
    "(--train_jobs 1), or through Slurm (cmd_backend=slurm)"
  exit 2
fi
[ -z "${device}" ] && { [ "${ngpu}" -gt 0 ] && device=cuda || device=cpu; }
[[ ${device} =~ ^(cpu|cuda(:[0-9]+)?)$ ]] || { log "Error: --device is cpu, cuda or cuda:N, not '${device}'"; exit 2; }
if [ -n "${external_model}" ]; then
  # A Hugging Face Hub model id <org>/<name>[@<revision>] → system <name>, by uattr/hub.py's rule: no path that
  # starts with / . or ~, nor one whose first part exists here (exp/joint with an exp/ folder is a mistyped path).
  hub_id='^[^/.~@][^/@]*/[^/@]+(@[^/@]+)?$'
  if [[ ${external_model} =~ ${hub_id} ]] && [ ! -e "${external_model%%/*}" ]; then
    [ -z "${systems}" ] && { systems=${external_model#*/}; systems=${systems%@*}; }
  else
    [ -f "${external_model}/config.yaml" ] \
      || { log "Error: --external_model ${external_model}: no config.yaml"; exit 2; }
    if [ -z "${systems}" ]; then  # exp/<name>/model → <name>
      systems=$(basename "$(cd "${external_model}" && pwd)")
      [ "${systems}" = model ] && systems=$(basename "$(cd "${external_model}/.." && pwd)")
    fi
  fi
  [ "$(wc -w <<< "${systems}")" -eq 1 ] || { log "Error: --external_model names one system, got '${systems}'"; exit 2; }
  if [ -n "${untrained_systems}" ]; then  # stage 3 does not run: they would be scored as the external model
    log "--external_model: the untrained baselines (--untrained_systems ${untrained_systems}) are not evaluated"
    untrained_systems=""
  fi
fi
all_systems="${systems} ${untrained_systems}"
# A range reaching stages 3-4 without a system would do nothing there, and report success.
if [ ${stage} -le 4 ] && [ ${stop_stage} -ge 3 ] && [ -z "${all_systems//[[:space:]]/}" ]; then
  log "Error: no system to train or evaluate: give --systems, --untrained_systems or --external_model (a trained" \
    "model dir)"
  exit 2
fi
# Stage 3's config files are checked before anything runs, not after other systems have trained.
if [ ${stage} -le 3 ] && [ ${stop_stage} -ge 3 ] && [ -z "${external_model}" ]; then
  missing=""
  for system in ${systems}; do
    [ -f "${expdir}/${system}/model/model.safetensors" ] && continue  # trained: its config is not read again
    [ -f "conf/train_${system}.yaml" ] || missing+=" conf/train_${system}.yaml (--systems ${system})"
  done
  for system in ${untrained_systems}; do
    [ -f "conf/model_${system}.yaml" ] || missing+=" conf/model_${system}.yaml (--untrained_systems ${system})"
  done
  for spec in ${init_upstreams}; do
    [ -f "${spec#*:}" ] || missing+=" ${spec#*:} (--init_upstreams ${spec})"
  done
  if [ -n "${missing}" ]; then
    log "Error: stage 3 needs these config files, which do not exist (in $(pwd)):${missing}"
    exit 2
  fi
fi
for spec in ${label_attrs}; do
  [[ ${spec} =~ ^[^:]+:[^:/]+$ ]] || { log "Error: --label_attrs: '${spec}' is not '<attr>:<labels file>'"; exit 2; }
done
eval_sets=$(echo "${valid_set} ${test_sets}" | tr ' ' '\n' | awk 'NF && !seen[$0]++' | tr '\n' ' ')
mkdir -p "${expdir}"
timing="${expdir}/stage_times.tsv"

# Record each stage's wall time for RESULTS.md.
stage_rows_except() {  # stage: the recorded stage times without that stage's row
  if [ -f "${timing}" ]; then awk -F'\t' -v stage="$1" '$1 != stage' "${timing}"; fi
}
stage_times_with() {  # stage name out: the stage times with this stage's row (the latest run of each is kept)
  { stage_rows_except "$1"; printf '%s\t%s\t%d\n' "$1" "$2" "$(( SECONDS - stage_start ))"; } | sort -n > "$3"
}
stage_begin() {  # stage: until it is done again, no row says it ran (an earlier run's would, after a failure)
  stage_start=${SECONDS}
  if [ -f "${timing}" ]; then
    stage_rows_except "$1" > "${timing}.tmp"
    mv "${timing}.tmp" "${timing}"
  fi
}
stage_done() {  # stage name
  stage_times_with "$1" "$2" "${timing}.tmp"
  mv "${timing}.tmp" "${timing}"
  log "Stage $1 ($2) done in $(( SECONDS - stage_start )) s"
}

# The model dir of a system: the external model when one is evaluated, else the trained one.
model_dir() {
  if [ -n "${external_model}" ]; then echo "${external_model}"; else echo "${expdir}/$1/model"; fi
}

# An sv_sets entry "<set>[:<trials file>]": its data set, its trial list, and its name in scores/ and RESULTS.md.
sv_set() { echo "${1%%:*}"; }
sv_trials() { if [[ $1 == *:* ]]; then echo "data/${1%%:*}/${1#*:}"; else echo "data/$1/trials"; fi; }
sv_name() { if [[ $1 == *:* ]]; then echo "${1%%:*}_${1#*:}"; else echo "$1"; fi; }

# The teachers' own embeddings are scored as one more system, the ceilings: "teacher" for the tables in dump/,
# "teacher_<name>" for those of another --dumpdir (e.g. teacher_dump_labse), so that each keeps its own scores.
teacher_system=teacher
[ "$(basename "${dumpdir}")" = dump ] || teacher_system="teacher_$(basename "${dumpdir}")"

# Where a system's (or the teacher's) embeddings of <attr>/<set> live.
emb_scp() {  # system attr set
  if [ "$1" = "${teacher_system}" ]; then
    echo "${dumpdir}/teacher/$2/$3/emb.scp"
  else
    echo "${expdir}/$1/emb/$2/$3/emb.scp"
  fi
}

# The vector dimension of an embedding table (from the meta.json beside its emb.scp).
table_dim() {  # emb.scp
  python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["dim"])' "$(dirname "$1")/meta.json"
}

# Run a `uattr` subcommand that supports --job/--num-jobs/--merge as ${nj} jobs through ${decode_cmd}
# (each with its share of the CPU threads, and a GPU of its own when it runs on one), then merge. With nj=1 it
# runs directly on this machine; on Slurm it is still one job of the cluster's.
run_split() {  # logdir gpus_per_job subcommand args...
  local logdir=$1 gpus=$2 threads=$(( $(nproc) / nj > 0 ? $(nproc) / nj : 1 ))
  shift 2
  if [ "${nj}" -le 1 ] && [ "${cmd_backend:-local}" = local ]; then
    uattr "$@"
  elif [ "${nj}" -le 1 ]; then
    ${decode_cmd} --gpu "${gpus}" --num-threads "${threads}" "${logdir}/job.1.log" uattr "$@"
  else
    OMP_NUM_THREADS=${threads} ${decode_cmd} --gpu "${gpus}" --num-threads "${threads}" JOB=1:"${nj}" \
      "${logdir}/job.JOB.log" uattr "$@" --job JOB --num-jobs "${nj}"
    uattr "$@" --merge "${nj}"
  fi
}
# 1 when a device option names a GPU (cuda, cuda:N), else 0.
gpus_for() {  # device
  if [[ $1 == cuda* ]]; then echo 1; else echo 0; fi
}

# Fields of the retrieval task list, without comments: "<name> <attr> <query_set> <kind> <gallery_set> <map>".
retrieval_tasks() {
  [ -f "${retrieval_conf}" ] && awk '$1 !~ /^#/ && NF' "${retrieval_conf}" || true
}

if [ ${stage} -le 1 ] && [ ${stop_stage} -ge 1 ]; then
  stage_begin 1
  log "Stage 1: data preparation (local/data.sh ${data_opts})"
  split_opts data_args "${data_opts}"
  local/data.sh "${data_args[@]}"
  split_opts validate_args "${validate_opts}"
  for dir in data/*/; do
    [ -f "${dir}/wav.scp" ] && uattr validate-data-dir "${validate_args[@]}" "${dir}"
  done
  stage_done 1 data
fi

if [ ${stage} -le 2 ] && [ ${stop_stage} -ge 2 ]; then
  stage_begin 2
  log "Stage 2: teacher embeddings (${teacher_conf})"
  # The list is read on descriptor 3: a job on standard input (a wav.scp pipe such as ffmpeg) must not eat it.
  while read -r attr sets opts <&3 || [ -n "${attr:-}" ]; do  # a last line without its newline too
    case "${attr}" in ''|'#'*) continue ;; esac
    # One call per attribute: the teacher is loaded once for all of its sets.
    data_dirs=()
    for set in ${sets//,/ }; do
      if [[ ${set} == *'?' ]]; then  # optional: a set that stage 1 writes only for some options
        set=${set%'?'}
        # A data dir has wav.scp, or text alone (a gallery of sentences): as uattr's DataDir.load requires.
        if [ ! -f "data/${set}/wav.scp" ] && [ ! -f "data/${set}/text" ]; then
          log "  ${attr}: no data/${set} (optional); skipped"; continue
        fi
      fi
      data_dirs+=("data/${set}")
    done
    if [ ${#data_dirs[@]} -eq 0 ]; then  # all optional and absent: set names that do not match stage 1's?
      log "  Warning: ${attr}: none of its sets exists (do the names in ${teacher_conf} match stage 1's?); skipped"
      continue
    fi
    log "  ${attr} (${sets}): uattr extract-teacher ${opts}"
    teacher_device=$(sed -n 's/.*--device[= ]\([^ ]*\).*/\1/p' <<< "${opts}")
    # shellcheck disable=SC2086
    run_split "${dumpdir}/teacher/${attr}/log" "$(gpus_for "${teacher_device}")" extract-teacher ${opts} \
      --data "${data_dirs[@]}" --out "${dumpdir}/teacher/${attr}/{set}"
  done 3< "${teacher_conf}"
  stage_done 2 teachers
fi

if [ ${stage} -le 3 ] && [ ${stop_stage} -ge 3 ] && [ -n "${external_model}" ]; then
  log "Stage 3: skipped: evaluating ${external_model} as system '${systems}'"
elif [ ${stage} -le 3 ] && [ ${stop_stage} -ge 3 ]; then
  stage_begin 3
  for spec in ${init_upstreams}; do
    arch=${spec%%:*}
    upstream_conf=${spec#*:}
    name=$(basename "${upstream_conf}" .yaml)
    log "Stage 3: random-init ${arch} encoder ${init_upstream_dir}/${name} (${upstream_conf})"
    uattr create-upstream --arch "${arch}" --config "${upstream_conf}" --out "${init_upstream_dir}/${name}"
  done
  for system in ${untrained_systems}; do
    log "Stage 3: ${system}: untrained model from conf/model_${system}.yaml"
    uattr init-model --config "conf/model_${system}.yaml" --out "${expdir}/${system}/model"
  done
  # The recipe's sets come first so that --train_opts (e.g. --data.valid null) can still override them.
  train_args=()
  [ -n "${train_set}" ] && train_args+=(--data.train "data/${train_set}")
  [ -n "${valid_set}" ] && train_args+=(--data.valid "data/${valid_set}")
  split_opts user_train_args "${train_opts}"
  train_args+=("${user_train_args[@]}")
  train_system() {  # system
    local conf="conf/train_$1.yaml" sysdir="${expdir}/$1" launcher=(uattr)
    if [ "${num_nodes}" -gt 1 ]; then
      # DDP across nodes: the Slurm cmd.sh runs this once per node (srun), and torchrun meets its peers through
      # the c10d rendezvous on the job's first node, MASTER_ADDR, which only the job knows: expanded there.
      # shellcheck disable=SC2016
      launcher=(bash -c 'exec torchrun --nnodes="$1" --nproc_per_node="$2" --rdzv_backend=c10d \
        --rdzv_endpoint="${MASTER_ADDR:?no MASTER_ADDR: use the Slurm cmd_backend}:${MASTER_PORT:?no MASTER_PORT}" \
        --rdzv_id="$3" -m uattr "${@:4}"' torchrun "${num_nodes}" "${ngpu}" "$1")
    elif [ "${ngpu}" -gt 1 ]; then  # DDP on this machine: one process per GPU
      # Port 0: torchrun takes a free one, so that jobs sharing a host (--train_jobs, two recipes) never meet in
      # one rendezvous; a fixed port made a second job join the first one's and die when that one ended.
      launcher=(torchrun --nnodes=1 --nproc_per_node="${ngpu}" --rdzv_backend=c10d
        --rdzv_endpoint="localhost:${MASTER_PORT:-0}" --rdzv_id="$1" -m uattr)
    fi
    log "Stage 3: training $1 (${conf}) → ${sysdir}; log: ${sysdir}/train.log"
    mkdir -p "${sysdir}"
    # shellcheck disable=SC2086
    ${cuda_cmd} --gpu "${ngpu}" --num-nodes "${num_nodes}" \
      --num-threads "$(( cpus_per_gpu * (ngpu > 0 ? ngpu : 1) ))" "${sysdir}/train.launch.log" \
      "${launcher[@]}" train --config "${conf}" --exp-dir "${sysdir}" --trainer.device "${device}" "${train_args[@]}"
  }
  for system in ${systems}; do
    if [ -f "${expdir}/${system}/model/model.safetensors" ]; then
      log "Stage 3: ${system}: trained model exists (${expdir}/${system}/model)"
      continue
    fi
    if [ "${train_jobs}" -le 1 ]; then
      train_system "${system}"
      continue
    fi
    while [ "$(jobs -rp | wc -l)" -ge "${train_jobs}" ]; do wait -n || true; done
    OMP_NUM_THREADS=$(( $(nproc) / train_jobs > 0 ? $(nproc) / train_jobs : 1 )) train_system "${system}" &
  done
  wait  # a job's success is judged by its model below, not by the race-prone exit statuses of `wait -n`
  for system in ${systems}; do
    [ -f "${expdir}/${system}/model/model.safetensors" ] && continue
    # uattr train appends to train.log (an earlier run's lines come first); a launch that failed before it
    # started shows in the launcher's log only.
    log "Error: ${system}: training failed (no ${expdir}/${system}/model); see the end of" \
      "${expdir}/${system}/train.log and ${expdir}/${system}/train.launch.log"
    exit 1
  done
  stage_done 3 train
fi

if [ ${stage} -le 4 ] && [ ${stop_stage} -ge 4 ]; then
  stage_begin 4
  # Retrieval query sets and speech galleries are extracted too.
  extra_sets=$(retrieval_tasks | awk '{print $3} $4 == "speech" {print $5}')
  for spec in ${sv_sets} ${sv_cohort}; do extra_sets+=" $(sv_set "${spec}")"; done
  extract_sets=$(echo "${eval_sets} ${extra_sets}" | tr ' ' '\n' | awk 'NF && !seen[$0]++' | tr '\n' ' ')
  extract_dirs=()
  for set in ${extract_sets}; do extract_dirs+=("data/${set}"); done
  split_opts extract_args "${extract_opts}"
  for system in ${all_systems}; do
    log "Stage 4: ${system}: embeddings of ${extract_sets}"
    run_split "${expdir}/${system}/emb/log" "$(gpus_for "${device}")" extract --model "$(model_dir "${system}")" \
      --data "${extract_dirs[@]}" --out "${expdir}/${system}/emb" --device "${device}" "${extract_args[@]}"
  done
  stage_done 4 extract
fi

if [ ${stage} -le 5 ] && [ ${stop_stage} -ge 5 ]; then
  stage_begin 5
  split_opts score_args "${score_opts}"
  split_opts sv_cohort_args "${sv_cohort_opts}"
  for system in ${all_systems} ${teacher_system}; do
    scoredir="${expdir}/${system}/scores"
    for spec in ${sv_sets}; do
      set=$(sv_set "${spec}")
      name=$(sv_name "${spec}")
      emb=$(emb_scp "${system}" "${sv_attr}" "${set}")
      if [ ! -f "${emb}" ]; then  # scores of an earlier run would show in RESULTS.md as if current
        log "Stage 5: ${system}: no ${sv_attr} embeddings of ${set}; no SV"
        rm -rf "${scoredir:?}/sv_${name}" "${scoredir:?}/sv_${name}_asnorm"
        continue
      fi
      log "Stage 5: ${system}: speaker verification on $(sv_trials "${spec}")"
      uattr score-sv --trials "$(sv_trials "${spec}")" --emb "${emb}" --out "${scoredir}/sv_${name}/scores" \
        "${score_args[@]}"
      languages=()  # a multilingual set: same- and cross-language trials are also scored apart
      [ -f "data/${set}/utt2lang" ] && languages=(--utt2lang "data/${set}/utt2lang")
      uattr compute-metrics "${scoredir}/sv_${name}/scores" --p-target 0.01 0.05 "${languages[@]}" \
        --system "${system}" --test-set "${name}" --condition sv --out "${scoredir}/sv_${name}/metrics.json"
      if [ -z "${sv_cohort}" ]; then  # AS-norm scores of an earlier run with a cohort would show in RESULTS.md
        rm -rf "${scoredir:?}/sv_${name}_asnorm"
        continue
      fi
      cohort=$(emb_scp "${system}" "${sv_attr}" "${sv_cohort}")
      if [ ! -f "${cohort}" ]; then
        log "Stage 5: ${system}: no ${sv_attr} embeddings of ${sv_cohort}; no AS-norm"
        rm -rf "${scoredir:?}/sv_${name}_asnorm"
        continue
      fi
      log "Stage 5: ${system}: AS-norm on $(sv_trials "${spec}") (cohort: speakers of data/${sv_cohort})"
      uattr score-sv --trials "$(sv_trials "${spec}")" --emb "${emb}" --out "${scoredir}/sv_${name}_asnorm/scores" \
        --norm asnorm --cohort "${cohort}" --cohort-utt2spk "data/${sv_cohort}/utt2spk" "${sv_cohort_args[@]}"
      uattr compute-metrics "${scoredir}/sv_${name}_asnorm/scores" --p-target 0.01 0.05 "${languages[@]}" \
        --system "${system}" --test-set "${name}" --condition sv-asnorm \
        --out "${scoredir}/sv_${name}_asnorm/metrics.json"
    done
    for spec in ${label_attrs}; do
      [ "${system}" = "${teacher_system}" ] && break  # the teacher of a label attribute is its labels
      attr=${spec%%:*}
      for set in ${eval_sets}; do
        emb=$(emb_scp "${system}" "${attr}" "${set}")
        if [ ! -f "${emb}" ] || [ ! -f "data/${set}/${spec#*:}" ]; then  # a system without the attribute
          rm -rf "${scoredir:?}/${attr}_${set}"
          continue
        fi
        log "Stage 5: ${system}: ${attr} classification on ${set}"
        uattr score-labels --model "$(model_dir "${system}")" --attribute "${attr}" --emb "${emb}" \
          --labels "data/${set}/${spec#*:}" --predictions "${scoredir}/${attr}_${set}/predictions" \
          --system "${system}" --test-set "${set}" --condition "${attr}" --out "${scoredir}/${attr}_${set}/metrics.json"
      done
    done
    while read -r name attr query_set gallery_kind gallery_set query2ref; do
      query=$(emb_scp "${system}" "${attr}" "${query_set}")
      gallery_owner=${system}
      [ "${gallery_kind}" = teacher ] && gallery_owner=${teacher_system}
      gallery=$(emb_scp "${gallery_owner}" "${attr}" "${gallery_set}")
      if [ ! -f "${query}" ] || [ ! -f "${gallery}" ]; then  # RESULTS.md will lack the task: said loudly
        missing=${query}
        [ -f "${query}" ] && missing=${gallery}
        log "Stage 5: Warning: ${system}: ${name} skipped: no ${missing}"
        rm -rf "${scoredir:?}/${name:?}"
        continue
      fi
      if [ "$(table_dim "${query}")" != "$(table_dim "${gallery}")" ]; then
        # e.g. an untrained baseline's hidden-state means against a text teacher's sentence embeddings
        log "Stage 5: ${system}: ${name}: its ${attr} space is not the gallery's (dimensions differ); skipped"
        rm -rf "${scoredir:?}/${name:?}"
        continue
      fi
      log "Stage 5: ${system}: retrieval ${name}"
      uattr score-retrieval --query "${query}" --gallery "${gallery}" --query2ref "${query2ref}" --k 1 5 10 \
        --system "${system}" --test-set "${name}" --condition retrieval --out "${scoredir}/${name}/metrics.json"
    done < <(retrieval_tasks)
  done
  stage_done 5 score
fi

if [ ${stage} -le 6 ] && [ ${stop_stage} -ge 6 ]; then
  stage_begin 6
  log "Stage 6: plots and RESULTS.md"
  # RESULTS.md lists this stage's time too, but the stage is recorded done only once `uattr results` succeeds.
  report_args=(--stage-times "${timing}.report")
  [ -n "${reference_results}" ] && report_args+=(--reference "${reference_results}")
  [ -n "${results_notes}" ] && report_args+=(--notes "${results_notes}")
  for system in ${systems}; do  # trained systems: an untrained baseline's weights are its initial ones
    weights="${expdir}/${system}/emb/layer_weights.json"  # written by stage 4
    [ -f "${weights}" ] || continue
    uattr plot-layer-weights --weights "${weights}" --out "${expdir}/${system}/layer_weights.png"
    report_args+=(--figure "${system}: learned layer weights of each branch" "${expdir}/${system}/layer_weights.png")
  done
  last_sv_set=$(sv_name "$(echo ${sv_sets} | awk '{print $NF}')")
  det_inputs=()
  det_labels=()
  for system in ${all_systems} ${teacher_system}; do
    f="${expdir}/${system}/scores/sv_${last_sv_set}/scores"
    [ -f "${f}" ] && { det_inputs+=("${f}"); det_labels+=("${system}"); }
  done
  if [ ${#det_inputs[@]} -gt 0 ]; then
    uattr plot-det "${det_inputs[@]}" --labels "${det_labels[@]}" --out "${expdir}/det_${last_sv_set}.png"
    report_args+=(--figure "DET curves, speaker verification on ${last_sv_set}" "${expdir}/det_${last_sv_set}.png")
  fi
  stage_times_with 6 report "${timing}.report"
  if ! uattr results --exp-dir "${expdir}" --out "${expdir}/RESULTS.md" "${report_args[@]}"; then
    rm -f "${timing}.report"
    log "Error: stage 6: uattr results failed; ${expdir}/RESULTS.md is not up to date"
    exit 1
  fi
  mv "${timing}.report" "${timing}"
  log "Stage 6 (report) done in $(( SECONDS - stage_start )) s"
fi

log "Successfully finished. [elapsed=${SECONDS}s]"
