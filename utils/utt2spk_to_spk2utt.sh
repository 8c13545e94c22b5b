#!/usr/bin/env bash
# Write spk2utt from utt2spk: utt2spk_to_spk2utt.sh UTT2SPK [SPK2UTT] (default stdout).
# A thin wrapper over `uattr utt2spk-to-spk2utt`, where the logic lives and is tested; see `uattr utt2spk-to-spk2utt --help`.
. "$(dirname "$(readlink -f "$0")")/lib/uattr.sh"
run_uattr utt2spk-to-spk2utt "$@"
