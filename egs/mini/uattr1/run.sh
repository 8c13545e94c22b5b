#!/usr/bin/env bash
# The mini recipe: TTS voices reading the Universal Declaration of Human Rights in 10 languages, a small
# w2v-BERT-style encoder trained from scratch on one CPU machine to give a semantic and a speaker embedding at once,
# against semantic-only, speaker-only and untrained baselines, with the teachers as ceilings. See README.md.
#   ./run.sh                       # everything (make demo)
#   ./run.sh --stage 3 --systems joint --train_opts "--trainer.max_steps 100"
#   ./run.sh --data_opts "--toy true" --train_opts "--trainer.max_steps 5"   # the CI's toy run
set -euo pipefail

# Systems train two at a time in the order listed: the s3prl variant, the slowest, runs beside the other three
# in turn. Each route has its untrained baseline.
./uattr.sh \
  --nj 1 \
  --train_jobs 2 \
  --data_opts "--nj 2" \
  --train_set train \
  --valid_set dev \
  --test_sets "test" \
  --teacher_conf conf/teachers.txt \
  --init_upstreams "w2v-bert:conf/encoder_w2vbert.yaml wav2vec2:conf/encoder_wav2vec2.yaml" \
  --systems "joint_s3prl_wav2vec2 joint semantic speaker" \
  --untrained_systems "baseline baseline_s3prl_wav2vec2" \
  --sv_attr speaker \
  --sv_sets "dev test" \
  --retrieval_conf data/retrieval_tasks \
  --results_notes local/results_notes.md \
  "$@"
