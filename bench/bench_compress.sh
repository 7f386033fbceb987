#!/bin/sh
# Compressed HDF5 benchmark (issue 12): a generated checkpoint of BENCH_COMPRESS_SIZE
# (default 1G, 130 tensors, float32 and bfloat16 weights drawn from N(0, 0.02^2), which
# compress like trained ones) converted TF -> HDF5 with --compression lz4 and gzip, and
# back, with 1 and 2 threads, at chunk sizes BENCH_CHUNKS (default 1M 4M 16M).
# Baselines measured in the same run, from a warm page cache, median of BENCH_ROUNDS:
#   cp + sync of the uncompressed data (the target: lz4 >= 0.8x of it both ways),
#   cp + sync of the compressed .h5 itself (what writing those bytes costs),
# and the 1-thread result (gzip's target: >= 1.8x from 1 to 2 threads). The buffer
# budget is 64M, or 16 chunks for chunks over 4M, so that every thread has a chunk.
set -eu
TOOLS=${TOOLS:-./tools}
RUNSTAT=${RUNSTAT:-./bench/runstat}
DIR=${BENCH_DIR:-bench/out}
SIZE=${BENCH_COMPRESS_SIZE:-1G}
ROUNDS=${BENCH_ROUNDS:-3}
CHUNKS=${BENCH_CHUNKS:-1M 4M 16M}
CODECS=${BENCH_CODECS:-lz4 gzip}
mkdir -p "$DIR"

bench_reset() { rm -rf "$DIR/z.h5" "$DIR/zback" "$DIR/cp.data" && mkdir -p "$DIR/zback"; }
. "$(dirname "$0")/timed.sh"

P="$DIR/weights.ckpt-1"
if [ ! -f "$P.index" ]; then
  echo "generating a $SIZE checkpoint of normal-distributed weights (130 tensors, float32/bfloat16) in $DIR"
  "$TOOLS/ckpt" synth "$P" --size "$SIZE" --tensors 130 --spread 30000 --dtypes float32,bfloat16 --fill normal
fi
BYTES=$(cat "$P".data-* | wc -c)
cat "$P".index "$P".data-* >/dev/null
CPS=$(timed sh -c "cp '$P.data-00000-of-00001' '$DIR/cp.data' && sync '$DIR/cp.data'" | cut -d' ' -f1)
echo
echo "$BYTES tensor bytes, warm source cache, median of $ROUNDS; cp + sync of them: $CPS s"
printf '%-5s %-5s %-3s %-4s %8s %8s %7s %9s %9s %8s %8s\n' codec chunk thr dir seconds "MB/s" ratio "x cp+sync" "x cp+sync" "x 1 thr" "RSS MiB"
printf '%-5s %-5s %-3s %-4s %8s %8s %7s %9s %9s %8s %8s\n' "" "" "" "" "" "(raw)" "(size)" "(raw)" "(.h5)" "" ""
for codec in $CODECS; do
  for chunk in $CHUNKS; do
    # a buffer budget that holds a chunk slot per thread (the default 64M does up to 4M)
    mib=$(echo "$chunk" | sed 's/[Kk]$/ \/ 1024/; s/[Mm]$//' | xargs expr)
    BUF=$((mib * 16 > 64 ? mib * 16 : 64))M
    rm -f "$DIR/zsrc.h5"
    "$TOOLS/tensorflow-to-h5" --quiet --compression "$codec" --chunk-size "$chunk" --buffer-size $BUF "$P" "$DIR/zsrc.h5"
    ZB=$(wc -c < "$DIR/zsrc.h5")
    cat "$DIR/zsrc.h5" >/dev/null
    ZCPS=$(timed sh -c "cp '$DIR/zsrc.h5' '$DIR/cp.data' && sync '$DIR/cp.data'" | cut -d' ' -f1)
    for dir in th ht; do
      one=""
      for thr in 1 2; do
        if [ $dir = th ]; then
          R=$(timed "$TOOLS/tensorflow-to-h5" --quiet --compression "$codec" --chunk-size "$chunk" --threads $thr \
                --buffer-size $BUF \
                "$P" "$DIR/z.h5")
        else
          R=$(timed "$TOOLS/h5-to-tensorflow" --quiet --no-checkpoint-file --threads $thr --buffer-size $BUF "$DIR/zsrc.h5" \
                "$DIR/zback/model")
        fi
        t=${R% *}
        rss=${R#* }
        [ -z "$one" ] && one=$t
        echo "$codec $chunk $thr $dir $t $BYTES $ZB $CPS $ZCPS $one $rss" | awk '{
          printf "%-5s %-5s %-3s %-4s %8.3f %8.1f %7.3f %8.2fx %8.2fx %7.2fx %8.1f\n", $1, $2, $3,
            ($4 == "th" ? "tf>h5" : "h5>tf"), $5, $6 / $5 / 1e6, $7 / $6, $8 / $5, $9 / $5, $10 / $5, $11 / 1024 }'
      done
    done
  done
done
rm -rf "$DIR/z.h5" "$DIR/zback" "$DIR/cp.data" "$DIR/zsrc.h5" "$DIR/stat"
