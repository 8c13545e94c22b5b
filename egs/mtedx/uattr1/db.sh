# shellcheck shell=bash
# Where the corpora live on this machine (as ESPnet's db.sh). Set them here or in the environment.
# MTEDX: the folder holding the unpacked mtedx_<src>-<tgt>.tgz archives (openslr.org/100): <src>-<tgt>/data/...
MTEDX=${MTEDX:-}
