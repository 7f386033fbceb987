#!/bin/sh
# Conversion benchmark: a generated checkpoint of BENCH_CONVERT_SIZE (default 2G) with a
# realistic spread of tensor sizes (200 tensors, largest ~10^6 x the smallest: many small,
# a few of hundreds of MiB), converted TF -> HDF5 and HDF5 -> TF, each timed against
# `cp` of the same data bytes on the same filesystem from a warm page cache (and against
# cp followed by `sync FILE`, since the converters fsync), median of BENCH_ROUNDS rounds
# that run the four in turn (bench/timed.sh: interleaved);
# peak RSS from getrusage. Then 1 GiB in 130 tensors (4 KiB to 128 MiB), and one 2 GiB
# tensor, the same way (BENCH_BIG=0: only the first). Prints ratios measured in this run.
set -eu
TOOLS=${TOOLS:-./tools}
RUNSTAT=${RUNSTAT:-./bench/runstat}
DIR=${BENCH_DIR:-bench/out}
SIZE=${BENCH_CONVERT_SIZE:-2G}
ROUNDS=${BENCH_ROUNDS:-5}
BIG=${BENCH_BIG:-1}
mkdir -p "$DIR"

bench_reset() { rm -rf "$DIR/out.h5" "$DIR/back" "$DIR/cp.data" && mkdir -p "$DIR/back"; }
. "$(dirname "$0")/timed.sh"

# run_case LABEL PREFIX
run_case() {
  label=$1 P=$2
  BYTES=$(cat "$P".data-* | wc -c)
  cat "$P".index "$P".data-* >/dev/null
  # the HDF5 file for the way back, made once outside the timing
  rm -f "$DIR/src.h5"
  "$TOOLS/tensorflow-to-h5" --quiet "$P" "$DIR/src.h5"
  cat "$DIR/src.h5" >/dev/null
  # ckptd fsyncs its output: the like-for-like baseline is a copy made durable too
  ALL=$(interleaved "cp '$P.data-00000-of-00001' '$DIR/cp.data'" \
    "cp '$P.data-00000-of-00001' '$DIR/cp.data' && sync '$DIR/cp.data'" \
    "'$TOOLS/tensorflow-to-h5' --quiet '$P' '$DIR/out.h5'" \
    "'$TOOLS/h5-to-tensorflow' --quiet --no-checkpoint-file '$DIR/src.h5' '$DIR/back/model'")
  echo
  echo "$label: $BYTES tensor bytes, warm source cache, median of $ROUNDS interleaved rounds"
  echo "$ALL" | awk -v b="$BYTES" '{
    printf "  cp (page cache only)        %7.3f s  %8.1f MB/s                           peak RSS %6.1f MiB\n", $1, b/$1/1e6, $2/1024
    printf "  cp + sync FILE (durable)    %7.3f s  %8.1f MB/s                           peak RSS %6.1f MiB\n", $3, b/$3/1e6, $4/1024
    printf "  tensorflow-to-h5 (fsyncs)   %7.3f s  %8.1f MB/s  %.2fx cp+sync, %.2fx cp  peak RSS %6.1f MiB\n", $5, b/$5/1e6, $3/$5, $1/$5, $6/1024
    printf "  h5-to-tensorflow (fsyncs)   %7.3f s  %8.1f MB/s  %.2fx cp+sync, %.2fx cp  peak RSS %6.1f MiB\n", $7, b/$7/1e6, $3/$7, $1/$7, $8/1024
  }'
}

P="$DIR/mixed.ckpt-1"
if [ ! -f "$P.index" ]; then
  echo "generating a $SIZE checkpoint (200 tensors, float32/bfloat16/int64, sizes spread 10^6x) in $DIR"
  "$TOOLS/ckpt" synth "$P" --size "$SIZE" --tensors 200 --spread 1000000 --dtypes float32,bfloat16,float32,int64
fi
run_case "mixed checkpoint" "$P"

if [ "$BIG" != 0 ]; then
  P="$DIR/m130.ckpt-1"
  if [ ! -f "$P.index" ]; then
    echo "generating 1 GiB in 130 tensors in $DIR"
    "$TOOLS/ckpt" synth "$P" --size 1G --tensors 130 --spread 30000 --dtypes float32,bfloat16
  fi
  run_case "1 GiB in 130 tensors" "$P"

  P="$DIR/big.ckpt-1"
  if [ ! -f "$P.index" ]; then
    echo "generating one 2 GiB tensor in $DIR"
    "$TOOLS/ckpt" synth "$P" --size 2G --tensors 1
  fi
  run_case "one 2 GiB tensor" "$P"
fi
rm -rf "$DIR/out.h5" "$DIR/back" "$DIR/cp.data" "$DIR/src.h5" "$DIR/stat"
