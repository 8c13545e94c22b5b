# shellcheck shell=bash
# Where the corpora live on this machine (as ESPnet's db.sh). Set them here or in the environment.
# VOXCELEB1: the folder holding wav/ (dev and test unpacked) and the official lists veri_test2.txt,
# list_test_all2.txt, list_test_hard2.txt (https://www.robots.ox.ac.uk/~vgg/data/voxceleb/vox1.html).
VOXCELEB1=${VOXCELEB1:-}
