#!/usr/bin/env bash
# FLEURS retrieval of a model trained by egs/commonvoice: speech of every language → English text (gallery:
# the teacher's embeddings of the English sentences) and → English speech (gallery: the model's own
# embeddings), R@1/5/10, MRR and xSIM per language in exp/RESULTS.md:
#   ./run.sh --external_model ../../commonvoice/uattr1/exp/sem_spk_w2vbert/model
set -euo pipefail

# Extraction on a GPU, as the teachers (--device cpu runs extraction on the CPU; the teachers' own --device is
# on their lines in conf/teachers.txt).
./uattr.sh \
  --device cuda \
  --valid_set "" \
  --test_sets "" \
  --sv_sets "" \
  --teacher_conf conf/teachers.txt \
  --retrieval_conf data/retrieval_tasks \
  "$@"
