#!/bin/sh
# Writeback pacing (docs/performance.md): a BENCH_WB_SIZE (default 2G) file copied from
# a warm page cache and fsynced, written four ways by bench_writeback, against `cp` +
# `sync FILE`; median of BENCH_ROUNDS (default 5) rounds, each running all five in turn
# (bench/timed.sh: interleaved).
set -eu
BIN=${BIN:-./bench/bench_writeback}
RUNSTAT=${RUNSTAT:-./bench/runstat}
DIR=${BENCH_DIR:-bench/out}
SIZE=${BENCH_WB_SIZE:-2G}
ROUNDS=${BENCH_ROUNDS:-5}
mkdir -p "$DIR"
bench_reset() { rm -f "$DIR/wb.dst"; }
. "$(dirname "$0")/timed.sh"

SRC="$DIR/wb.src"
[ -f "$SRC" ] || head -c "$SIZE" /dev/urandom >"$SRC"
cat "$SRC" >/dev/null
ALL=$(interleaved "'$BIN' plain '$SRC' '$DIR/wb.dst'" "'$BIN' kick '$SRC' '$DIR/wb.dst'" \
  "'$BIN' wait '$SRC' '$DIR/wb.dst'" "'$BIN' paced '$SRC' '$DIR/wb.dst'" \
  "cp '$SRC' '$DIR/wb.dst' && sync '$DIR/wb.dst'")
echo "$(wc -c <"$SRC") bytes from a warm page cache, fsynced, median of $ROUNDS interleaved rounds:"
echo "$ALL" | awk '{
  split("plain kick wait paced cp+sync", name, " ")
  for (i = 1; i <= 5; i++)
    printf "  %-8s %7.3f s  %.2fx cp+sync\n", name[i], $(2 * i - 1), $9 / $(2 * i - 1)
}'
rm -f "$DIR/wb.dst" "$DIR/stat"
