# shellcheck shell=bash
# Where the corpora live on this machine (as ESPnet's db.sh). Set them here or in the environment.
# COMMONVOICE: an unpacked Common Voice release (the paper: v19), one folder per language, e.g.
# /corpora/cv-corpus-19.0-2024-09-13 holding fr/{validated,dev,test,clip_durations}.tsv and fr/clips/*.mp3.
COMMONVOICE=${COMMONVOICE:-}
