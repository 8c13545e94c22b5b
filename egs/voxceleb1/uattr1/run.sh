#!/usr/bin/env bash
# VoxCeleb1 speaker verification (O, E, H cleaned lists) of a model trained by egs/commonvoice, beside the ECAPA
# teacher, with the paper's numbers in exp/RESULTS.md:
#   ./run.sh --external_model ../../commonvoice/uattr1/exp/sem_spk_w2vbert/model
# With AS-norm as well (cohort: VoxCeleb1 dev speakers, disjoint from the O speakers only):
#   ./run.sh --external_model ... --stage 4 --sv_sets voxceleb1_test:trials_o --sv_cohort voxceleb1_cohort
set -euo pipefail

# Extraction on a GPU, as the teachers (--device cpu runs extraction on the CPU; the teachers' own --device is
# on their lines in conf/teachers.txt).
./uattr.sh \
  --device cuda \
  --valid_set "" \
  --test_sets "" \
  --teacher_conf conf/teachers.txt \
  --sv_attr speaker \
  --sv_sets "voxceleb1_test:trials_o voxceleb1:trials_e voxceleb1:trials_h" \
  --sv_cohort_opts "--top-k 300" \
  --reference_results local/paper_results.json \
  "$@"
