#!/usr/bin/env bash
# VoxPopuli speech→speech retrieval (fr→en interpretation, as the paper) of a model trained by egs/commonvoice:
# French source speech against the English interpretations, both embedded by the model's semantic branch;
# R@k, MRR and xSIM beside the paper's numbers in exp/RESULTS.md:
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
  --reference_results local/paper_results.json \
  "$@"
