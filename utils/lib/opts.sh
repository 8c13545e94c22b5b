# Sourced by egs/TEMPLATE/uattr1/uattr.sh: an *_opts option is split into words the way xargs splits its input
# (quotes and backslashes group words; nothing is expanded or run), so --data_opts "--languages 'fr_fr de_de'"
# passes --languages one value with a space, and --train_opts "--trainer.on_the_fly '[semantic, speaker]'" one
# YAML list. Plain unquoted expansion would split those values at their spaces; eval would run $(...) in them.
#   split_opts ARRAY_NAME "OPTS"   →  ARRAY_NAME=(the words of OPTS)
split_opts() {
  local _split_opts_words  # a name no caller uses: mapfile below writes the caller's array
  # On an unmatched quote xargs says why (on stderr) and fails.
  if ! _split_opts_words=$(printf '%s' "$2" | xargs -r printf '%s\n'); then
    echo "$0: cannot split the options '$2' into words" >&2
    exit 2
  fi
  mapfile -t "$1" < <(printf '%s' "${_split_opts_words}${_split_opts_words:+$'\n'}")
}
