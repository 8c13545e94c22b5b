# shellcheck shell=bash
# Where the corpora live on this machine (as ESPnet's db.sh). Set them here or in the environment.
# VOXPOPULI: the --root given to the release's scripts (github.com/facebookresearch/voxpopuli), after
# `python -m voxpopuli.get_asr_data --lang fr` and `python -m voxpopuli.get_s2s_data --source-lang fr
# --target-lang en`: it holds transcribed_data/fr/{asr_*.tsv,<year>/,en/s2s.tsv,en/<year>/} (en/s2s_ref.tsv with
# --use-annotated-target: run.sh --data_opts "--annotated_target true").
VOXPOPULI=${VOXPOPULI:-}
