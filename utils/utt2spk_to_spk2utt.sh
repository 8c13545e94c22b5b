#!/usr/bin/env bash
# Write spk2utt from utt2spk: utt2spk_to_spk2utt.sh UTT2SPK [SPK2UTT] (default stdout).
# Thin wrapper: the logic is `uattr utt2spk-to-spk2utt` (Python, tested); see its --help.
. "$(dirname "$(readlink -f "$0")")/lib/uattr.sh"
run_uattr utt2spk-to-spk2utt "$@"
