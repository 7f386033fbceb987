#!/bin/sh
# Many small tensors (issue 12): a generated checkpoint of BENCH_MANY_TENSORS (default
# 200,000) tensors from 4 B to 64 KiB (BENCH_MANY_SIZE in all, default 1300M: log-uniform
# sizes, spread 16384) converted TF -> HDF5 and back, median of BENCH_ROUNDS, with peak
# RSS. Measured in the same run, from a warm page cache:
#   cp + sync of the tensor bytes (what the data alone costs; the rest is metadata),
#   tensorflow-to-h5 --layout nested (the same datasets written by libhdf5: the flat
#   layout is written directly, common/h5/h5_flat.c),
#   the numpy + h5py peer (bench/many_peer.py, one run each way: it writes the same
#   datasets and attributes, and reads them back without writing an index).
set -eu
TOOLS=${TOOLS:-./tools}
RUNSTAT=${RUNSTAT:-./bench/runstat}
DIR=${BENCH_DIR:-bench/out}
N=${BENCH_MANY_TENSORS:-200000}
SIZE=${BENCH_MANY_SIZE:-1300M}
ROUNDS=${BENCH_ROUNDS:-3}
PY=${PYTHON:-/usr/bin/python3}
PEER="$(dirname "$0")/many_peer.py"
mkdir -p "$DIR"

bench_reset() { rm -rf "$DIR/m.h5" "$DIR/mback" "$DIR/cp.data" "$DIR/peer.h5" "$DIR/peer.data" && mkdir -p "$DIR/mback"; }
. "$(dirname "$0")/timed.sh"

P="$DIR/many$N.ckpt-1"
if [ ! -f "$P.index" ]; then
  echo "generating a checkpoint of $N tensors from 4 B to 64 KiB ($SIZE) in $DIR"
  "$TOOLS/ckpt" synth "$P" --tensors "$N" --size "$SIZE" --spread 16384 --seed 7
fi
BYTES=$(cat "$P".data-* | wc -c)
cat "$P".index "$P".data-* >/dev/null
CPS=$(timed sh -c "cp '$P.data-00000-of-00001' '$DIR/cp.data' && sync '$DIR/cp.data'" | cut -d' ' -f1)
# the way back's source, made once outside the timing
rm -f "$DIR/msrc.h5"
"$TOOLS/tensorflow-to-h5" --quiet "$P" "$DIR/msrc.h5"

echo
echo "$N tensors, $BYTES bytes, warm source cache, median of $ROUNDS; cp + sync of the bytes: $CPS s"
printf '%-34s %8s %9s %9s %8s\n' "" seconds "tensors/s" "x cp+sync" "RSS MiB"
row() { # LABEL "T RSS"
  echo "$2" | awk -v l="$1" -v n="$N" -v c="$CPS" '{ printf "%-34s %8.2f %9.0f %9.2f %8.1f\n", l, $1, n / $1, c / $1, $2 / 1024 }'
}
OURS_W=$(timed "$TOOLS/tensorflow-to-h5" --quiet "$P" "$DIR/m.h5")
row "tensorflow-to-h5" "$OURS_W"
# the same datasets through libhdf5 (the nested layout is not written directly)
LIB_W=$(timed "$TOOLS/tensorflow-to-h5" --quiet --layout nested "$P" "$DIR/m.h5")
row "tensorflow-to-h5 --layout nested" "$LIB_W"
OURS_R=$(timed "$TOOLS/h5-to-tensorflow" --quiet "$DIR/msrc.h5" "$DIR/mback/m.ckpt-1")
row "h5-to-tensorflow" "$OURS_R"
if "$PY" -c 'import h5py, numpy' 2>/dev/null; then
  "$TOOLS/ckpt" ls "$P" --format tsv >"$DIR/many.tsv"
  SAVE=$ROUNDS
  ROUNDS=1
  PEER_W=$(timed "$PY" "$PEER" to-h5 "$DIR/many.tsv" "$P.data-00000-of-00001" "$DIR/peer.h5")
  row "peer: numpy + h5py, to .h5" "$PEER_W"
  PEER_R=$(timed "$PY" "$PEER" from-h5 "$DIR/msrc.h5" "$DIR/peer.data")
  row "peer: h5py + numpy, from .h5" "$PEER_R"
  ROUNDS=$SAVE
  echo
  echo "$OURS_W $LIB_W" | awk '{ printf "tensorflow-to-h5: %.2fx the speed of libhdf5 writing the same datasets (nested)\n", $3 / $1 }'
  echo "$OURS_W $PEER_W" | awk '{ printf "tensorflow-to-h5: %.2fx the peer'"'"'s speed, %.2fx its peak RSS\n", $3 / $1, $2 / $4 }'
  echo "$OURS_R $PEER_R" | awk '{ printf "h5-to-tensorflow: %.2fx the peer'"'"'s speed, %.2fx its peak RSS\n", $3 / $1, $2 / $4 }'
  rm -f "$DIR/many.tsv"
else
  echo "  (peer not measured: $PY cannot import h5py and numpy)"
fi
bench_reset
