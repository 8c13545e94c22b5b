#!/usr/bin/env bash
# Write utt2dur and utt2num_samples of a data dir from its audio headers.
# A thin wrapper over `uattr compute-durations`, where the logic lives and is tested; see `uattr compute-durations --help`.
. "$(dirname "$(readlink -f "$0")")/lib/uattr.sh"
run_uattr compute-durations "$@"
