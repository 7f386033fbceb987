# Sourced by the shell benchmarks. timed CMD...: the median wall time and the largest
# peak RSS (KiB) of ROUNDS runs -> "T RSS", measured by RUNSTAT. Before each run the
# script's own bench_reset removes the outputs, then dirty pages are written back.
timed() {
  i=0
  rm -f "$DIR/times.0"
  while [ $i -lt "$ROUNDS" ]; do
    run_into "$DIR/times.0" "$@"
    i=$((i + 1))
  done
  summary "$DIR/times.0"
  rm -f "$DIR/times.0"
}

# interleaved CMD...: like timed, for several commands (shell strings) at once. Each of
# ROUNDS rounds runs every command in turn, so a machine whose speed drifts (shared
# disks and hosts do, by 2x within minutes) slows every command of a round alike and
# the ratios compare like with like. Prints "T RSS" per command, in order, on one line.
interleaved() {
  i=0
  rm -f "$DIR"/times.*
  while [ $i -lt "$ROUNDS" ]; do
    k=0
    for cmd in "$@"; do
      k=$((k + 1))
      run_into "$DIR/times.$k" sh -c "$cmd"
    done
    i=$((i + 1))
  done
  k=0 line=""
  for cmd in "$@"; do
    k=$((k + 1))
    line="$line $(summary "$DIR/times.$k")"
  done
  rm -f "$DIR"/times.*
  echo $line
}

# run_into FILE CMD...: one run, after bench_reset and sync; "T RSS" appended to FILE.
run_into() {
  into=$1
  shift
  bench_reset
  sync
  "$RUNSTAT" "$@" 2>"$DIR/stat" >/dev/null || { cat "$DIR/stat" >&2; exit 1; }
  tail -n 1 "$DIR/stat" | cut -d' ' -f1,2 >>"$into"
}

# summary FILE: the "T RSS" lines of one command's runs -> "median T, largest RSS".
summary() {
  sort -n "$1" | awk '{ t[NR] = $1; if ($2 > r) r = $2 } END { print t[int((NR + 1) / 2)], r + 0 }'
}
