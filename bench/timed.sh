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
