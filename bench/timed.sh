# Sourced by the shell benchmarks. timed CMD...: the median wall time and the largest
# peak RSS (KiB) of ROUNDS runs -> "T RSS", measured by RUNSTAT. Before each run the
# script's own bench_reset removes the outputs, then dirty pages are written back.
timed() {
  times="" rss=0 i=0
  while [ $i -lt "$ROUNDS" ]; do
    bench_reset
    sync
    "$RUNSTAT" "$@" 2>"$DIR/stat" >/dev/null || { cat "$DIR/stat" >&2; exit 1; }
    times="$times $(tail -n 1 "$DIR/stat" | cut -d' ' -f1)"
    r=$(tail -n 1 "$DIR/stat" | cut -d' ' -f2)
    [ "$r" -gt "$rss" ] && rss=$r
    i=$((i + 1))
  done
  med=$(echo "$times" | tr ' ' '\n' | grep . | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }')
  echo "$med $rss"
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
      bench_reset
      sync
      "$RUNSTAT" sh -c "$cmd" 2>"$DIR/stat" >/dev/null || { cat "$DIR/stat" >&2; exit 1; }
      tail -n 1 "$DIR/stat" | cut -d' ' -f1,2 >>"$DIR/times.$k"
    done
    i=$((i + 1))
  done
  k=0 line=""
  for cmd in "$@"; do
    k=$((k + 1))
    line="$line $(sort -n "$DIR/times.$k" | awk '{ t[NR] = $1; if ($2 > r) r = $2 } END { print t[int((NR + 1) / 2)], r }')"
  done
  rm -f "$DIR"/times.*
  echo $line
}
