#!/usr/bin/env bash
# The paper's training: w2v-BERT 2.0 post-trained on Common Voice (v19 validated, < 10 s) so that one pass yields
# a semantic embedding (teacher: BGE-M3 on the transcript) and a speaker embedding (teacher: ECAPA on the audio).
# 8 GPUs by default (the paper: 20 utterances per GPU); evaluate the result with egs/{voxceleb1,fleurs,mtedx,
# voxpopuli}/uattr1/run.sh --external_model $(pwd)/exp/sem_spk_w2vbert/model.
# Ablations: --systems "sem_w2vbert spk_w2vbert"; the SAMU-XLSR set-up (XLS-R 300M + LaBSE): see README.md.
set -euo pipefail

# Common Voice clips are 48 (or 32) kHz mp3: any rate is valid, audio is resampled to 16 kHz when loaded.
./uattr.sh \
  --train_set train \
  --valid_set dev \
  --test_sets "test" \
  --validate_opts "--sample-rate 0" \
  --teacher_conf conf/teachers.txt \
  --systems "sem_spk_w2vbert" \
  --ngpu 8 \
  --nj 16 \
  --sv_sets "dev test" \
  --retrieval_conf data/retrieval_tasks \
  "$@"
