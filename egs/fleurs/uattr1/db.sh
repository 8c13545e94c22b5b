# shellcheck shell=bash
# Where the corpora live on this machine (as ESPnet's db.sh). Set them here or in the environment.
# FLEURS: the folder holding one folder per language (google/fleurs data/<lang>/), each with {dev,test}.tsv and
# audio/{dev,test}/ (the audio/<split>.tar.gz archives unpacked in place).
FLEURS=${FLEURS:-}
