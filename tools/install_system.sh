#!/usr/bin/env bash
# System packages the recipes need (Debian): sox and the TTS engines/voices of the mini corpus.
#
#   tools/install_system.sh            espeak-ng, sox, MBROLA voices, Pico, flite, festival, RHVoice
#   tools/install_system.sh --minimal  espeak-ng and sox only (what CI's toy corpus needs)
#
# Idempotent: it runs apt-get only when a package is missing, and only as root (otherwise it prints the
# command to run). MBROLA, Pico and RHVoice live in Debian's contrib/non-free components, which are added to
# the apt sources (a separate deb822 file mirroring the main entries) when they are not there yet.
# Packages that this Debian release does not carry are reported and skipped: the corpus builder skips the
# voices whose engine is absent.
set -euo pipefail

minimal=false
for arg in "$@"; do
  case "$arg" in
    --minimal) minimal=true ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "install_system.sh: unknown option '$arg' (use --minimal or nothing)" >&2; exit 2 ;;
  esac
done

packages=(espeak-ng sox)
if ! $minimal; then
  # MBROLA voices: different real speakers (the Italian ones, es3, es4, nl1 and de8 are broken and left out).
  mbrola_voices=(us1 us2 us3 en1 fr1 fr2 fr3 fr4 fr5 fr6 fr7 de1 de2 de3 de4 de5 es1 es2 mx1 vz1 nl2 br1 br2 br3)
  packages+=(flite mbrola libttspico-utils festival festvox-italp16k festvox-itapc16k festvox-ellpc11k)
  packages+=(rhvoice rhvoice-english rhvoice-russian rhvoice-ukrainian rhvoice-polish rhvoice-brazilian-portuguese)
  for voice in "${mbrola_voices[@]}"; do packages+=("mbrola-$voice"); done
fi

missing=()
for pkg in "${packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install_system.sh: missing system packages: ${missing[*]}" >&2
  echo "  run it as root (it enables contrib/non-free), or: sudo apt-get install ${missing[*]}" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive

# Enable contrib and non-free by adding a deb822 file that repeats the main stanzas with those components.
enable_contrib_nonfree() {
  local extra=/etc/apt/sources.list.d/uattr-contrib-non-free.sources
  [ -e "$extra" ] && return 0
  # "non-free" as a whole word: Debian 12's default "non-free-firmware" does not count.
  if grep -rqsE '^[^#]*(Components:|deb ).*[[:space:]]non-free([[:space:]]|$)' /etc/apt/sources.list \
      /etc/apt/sources.list.d/; then
    return 0
  fi
  local main=/etc/apt/sources.list.d/debian.sources
  if [ -f "$main" ]; then
    sed -E 's/^Components:.*/Components: contrib non-free/' "$main" >"$extra.tmp"
    mv "$extra.tmp" "$extra"
  elif [ -f /etc/apt/sources.list ]; then
    sed -nE 's/^(deb\s+\S+\s+\S+)\s+main\b.*/\1 contrib non-free/p' /etc/apt/sources.list \
      >/etc/apt/sources.list.d/uattr-contrib-non-free.list
  fi
  echo "install_system.sh: enabled Debian contrib and non-free components" >&2
}

$minimal || enable_contrib_nonfree
apt-get update -qq

# Keep only what this release offers (e.g. a voice package dropped by Debian), and say what is skipped.
available=()
for pkg in "${missing[@]}"; do
  policy=$(apt-cache policy "$pkg" 2>/dev/null)  # not piped into grep -q: pipefail + SIGPIPE
  if [[ $policy =~ Candidate:\ [^\(] ]]; then
    available+=("$pkg")
  else
    echo "install_system.sh: package '$pkg' is not available here; skipped" >&2
  fi
done
if [ ${#available[@]} -gt 0 ]; then
  apt-get install -y -qq --no-install-recommends "${available[@]}"
fi
