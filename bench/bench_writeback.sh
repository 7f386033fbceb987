#!/bin/sh
# Writeback pacing (docs/performance.md): a BENCH_WB_SIZE (default 2G) file copied from
# a warm page cache and fsynced, written four ways by bench_writeback, against `cp` +
# `sync FILE`; ROUNDS rounds (default 5), each running all five in turn; medians.
set -eu
BIN=${BIN:-./bench/bench_writeback}
DIR=${BENCH_DIR:-bench/out}
SIZE=${BENCH_WB_SIZE:-2G}
ROUNDS=${BENCH_ROUNDS:-5}
mkdir -p "$DIR"
SRC="$DIR/wb.src"
[ -f "$SRC" ] || head -c "$SIZE" /dev/urandom >"$SRC"
cat "$SRC" >/dev/null
rm -f "$DIR"/wb.times.*
i=0
while [ $i -lt "$ROUNDS" ]; do
  for m in plain kick wait paced cp; do
    rm -f "$DIR/wb.dst"
    sync
    if [ $m = cp ]; then
      t0=$(date +%s.%N)
      cp "$SRC" "$DIR/wb.dst" && sync "$DIR/wb.dst"
      echo "$(date +%s.%N) $t0" | awk '{ printf "%.3f\n", $1 - $2 }' >>"$DIR/wb.times.$m"
    else
      "$BIN" $m "$SRC" "$DIR/wb.dst" >>"$DIR/wb.times.$m"
    fi
  done
  i=$((i + 1))
done
med() { sort -n "$DIR/wb.times.$1" | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }
CP=$(med cp)
echo "$(wc -c <"$SRC") bytes from a warm page cache, fsynced, median of $ROUNDS interleaved rounds:"
for m in plain kick wait paced cp; do
  printf '  %-6s %7.3f s  %.2fx cp+sync   (%s)\n' $m "$(med $m)" "$(echo "$CP $(med $m)" | awk '{ print $1 / $2 }')" \
    "$(sort -n "$DIR/wb.times.$m" | tr '\n' ' ')"
done
rm -f "$DIR"/wb.times.* "$DIR/wb.dst"
