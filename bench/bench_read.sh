#!/bin/sh
# Bundle read benchmark: read and verify every tensor of a generated checkpoint of
# at least 1 GiB with `ckpt verify`, against `cat` of the same files to /dev/null,
# both from a warm page cache in the same run. Prints ratios, not absolute claims.
#   BENCH_DIR   where to generate (default: bench/out under the build dir)
#   BENCH_SIZE  checkpoint size (default 1G)
set -eu
CKPT=${CKPT:-./tools/ckpt}
BENCH_CRC=${BENCH_CRC:-./bench/bench_crc32c}
DIR=${BENCH_DIR:-bench/out}
SIZE=${BENCH_SIZE:-1G}
ROUNDS=${BENCH_ROUNDS:-5}
mkdir -p "$DIR"
P="$DIR/bench.ckpt-1"

if [ ! -f "$P.index" ]; then
  echo "generating a $SIZE checkpoint (300 tensors, sizes spread 10000x) in $DIR"
  "$CKPT" synth "$P" --size "$SIZE" --tensors 300 --spread 10000 --dtypes float32,bfloat16,float32,int64
fi
BYTES=$(cat "$P".index "$P".data-* | wc -c)

best() { # best wall time of $ROUNDS runs of "$@"
  b=""
  i=0
  while [ $i -lt "$ROUNDS" ]; do
    t0=$(date +%s.%N)
    "$@" >/dev/null
    t1=$(date +%s.%N)
    b=$(echo "$t0 $t1 ${b:-}" | awk '{d=$2-$1; if ($3=="" || d<$3) print d; else print $3}')
    i=$((i + 1))
  done
  echo "$b"
}

cat "$P".index "$P".data-* >/dev/null # warm the page cache
T_CAT=$(best sh -c "cat '$P'.index '$P'.data-* >/dev/null")
T_HW=$(best "$CKPT" verify --threads 1 "$P")
T_HW2=$(best "$CKPT" verify --threads 2 "$P")
T_SW=$(CKPTD_CRC32C=portable best "$CKPT" verify --threads 1 "$P")

echo
echo "bundle read + verify, $BYTES bytes, warm cache, best of $ROUNDS"
awk -v b="$BYTES" -v c="$T_CAT" -v h="$T_HW" -v h2="$T_HW2" -v s="$T_SW" 'BEGIN {
  printf "  cat FILES >/dev/null                 %7.3f s  %8.1f MB/s  1.00x\n", c, b/c/1e6
  printf "  ckpt verify, sse4.2, 1 thread        %7.3f s  %8.1f MB/s  %.2fx of cat\n", h, b/h/1e6, c/h
  printf "  ckpt verify, sse4.2, 2 threads       %7.3f s  %8.1f MB/s  %.2fx of cat\n", h2, b/h2/1e6, c/h2
  printf "  ckpt verify, portable, 1 thread      %7.3f s  %8.1f MB/s  %.2fx of cat\n", s, b/s/1e6, c/s
}'
echo
echo "crc32c in memory, 256 MiB buffer, best of 4"
"$BENCH_CRC" | grep -v '^CRC_' | sed 's/^/  /'
CRC=$("$BENCH_CRC" | sed -n 's/^CRC_HW_GBPS=\([0-9.]*\).*/\1/p')
awk -v b="$BYTES" -v c="$T_CAT" -v g="$CRC" 'BEGIN { printf "  crc32c sse4.2 vs cat: %.2fx cat'"'"'s throughput\n", g*1e9/(b/c) }'
