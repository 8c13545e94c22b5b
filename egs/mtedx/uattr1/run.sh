#!/usr/bin/env bash
# mTEDx speech→text retrieval (it→en, as the paper) of a model trained by egs/commonvoice: Italian speech
# segments against the teacher's embeddings of their English translations; R@k, MRR and xSIM beside the
# paper's numbers in exp/RESULTS.md:
#   ./run.sh --external_model ../../commonvoice/uattr1/exp/sem_spk_w2vbert/model
# Other pairs: --data_opts "--pairs es-en" and the matching sets in conf/teachers.txt.
set -euo pipefail

# The release's FLAC rate is not guaranteed to be 16 kHz: audio is resampled when loaded, so any rate is valid.
# Extraction on a GPU, as the teachers (--device cpu runs extraction on the CPU; the teachers' own --device is
# on their lines in conf/teachers.txt).
./uattr.sh \
  --device cuda \
  --valid_set "" \
  --test_sets "" \
  --sv_sets "" \
  --validate_opts "--sample-rate 0" \
  --teacher_conf conf/teachers.txt \
  --retrieval_conf data/retrieval_tasks \
  --reference_results local/paper_results.json \
  "$@"
