# Sourced by egs/TEMPLATE/uattr1/uattr.sh: an *_opts option is split into words the way xargs splits its input
# (quotes and backslashes group words; nothing is expanded or run), so --data_opts "--languages 'fr_fr de_de'"
# passes --languages one value with a space, and --train_opts "--trainer.on_the_fly '[semantic, speaker]'" one
# YAML list. Plain unquoted expansion would split those values at their spaces; eval would run $(...) in them.
#   split_opts ARRAY_NAME "OPTS"   →  ARRAY_NAME=(the words of OPTS)
split_opts() {
  # On an unmatched quote xargs says why (on stderr) and fails; checked first, as the split below cannot tell.
  if ! printf '%s' "$2" | xargs -r printf '%s\0' > /dev/null; then
    echo "$0: cannot split the options '$2' into words" >&2
    exit 2
  fi
  # NUL-terminated words, so an empty one ('') survives; xargs drops an empty last word,
  # so a sentinel word follows the options and is taken off again.
  mapfile -d '' -t "$1" < <(printf '%s\n.' "$2" | xargs printf '%s\0')
  unset "$1[-1]"
}
