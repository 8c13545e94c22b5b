#!/usr/bin/env bash
# Write utt2dur and utt2num_samples of a data dir from its audio headers.
# Thin wrapper: the logic is `uattr compute-durations` (Python, tested); see its --help.
. "$(dirname "$(readlink -f "$0")")/lib/uattr.sh"
run_uattr compute-durations "$@"
