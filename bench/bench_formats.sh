#!/bin/sh
# PyTorch and safetensors benchmark (issue 10): a generated 1 GiB checkpoint (TF bundle,
# 130 tensors from KiBs to ~100 MiB, float32/bfloat16) converted to torch and to
# safetensors and back, each timed against `cp` + `sync FILE` of the same bytes (our
# outputs are fsynced), median of BENCH_ROUNDS, with peak RSS. Then, for the record, the
# Python route the issue names: h5py reads the whole checkpoint into a dict and
# torch.save writes it (one run). Prints ratios measured in this run.
set -eu
TOOLS=${TOOLS:-./tools}
RUNSTAT=${RUNSTAT:-./bench/runstat}
DIR=${BENCH_DIR:-bench/out}
SIZE=${BENCH_FORMATS_SIZE:-1G}
ROUNDS=${BENCH_ROUNDS:-5}
PY=${PYTHON:-/usr/bin/python3}
mkdir -p "$DIR"

# once OUT CMD...: one run, OUT (a file or a prefix) removed first and dirty pages
# written back -> "T RSS".
once() {
  out=$1
  shift
  rm -rf "$out" "$out".index "$out".data-* "$DIR/checkpoint"
  sync
  "$RUNSTAT" "$@" 2>"$DIR/stat" >/dev/null || { cat "$DIR/stat" >&2; exit 1; }
  tail -n 1 "$DIR/stat" | cut -d' ' -f1,2
}

median() { tr ' ' '\n' | grep . | sort -n | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

# paired OUT CMD...: ROUNDS runs of CMD, each right after a durable copy of the same bytes
# (the shared machine's disk drifts: a baseline taken minutes apart is no baseline)
# -> "T_cmd RSS_cmd T_copy RATIO": medians of the times, largest RSS, and the median of
# the rounds' own copy/cmd ratios (each against the copy made just before it).
paired() {
  out=$1
  shift
  tc="" tb="" tr="" rss=0 i=0
  while [ $i -lt "$ROUNDS" ]; do
    b=$(once "$DIR/cp.data" sh -c "cp '$P.data-00000-of-00001' '$DIR/cp.data' && sync '$DIR/cp.data'")
    rm -f "$DIR/cp.data"
    c=$(once "$out" "$@")
    tb="$tb ${b%% *}" tc="$tc ${c%% *}"
    tr="$tr $(echo "${b%% *} ${c%% *}" | awk '{ printf "%.4f", $1 / $2 }')"
    r=${c##* }
    [ "$r" -gt "$rss" ] && rss=$r
    i=$((i + 1))
  done
  echo "$(echo "$tc" | median) $rss $(echo "$tb" | median) $(echo "$tr" | median)"
}

P="$DIR/fmt.ckpt-1"
if [ ! -f "$P.index" ]; then
  echo "generating a $SIZE checkpoint (130 tensors, float32/bfloat16) in $DIR"
  "$TOOLS/ckpt" synth "$P" --size "$SIZE" --tensors 130 --spread 30000 --dtypes float32,bfloat16
fi
BYTES=$(cat "$P".data-* | wc -c)
# the sources of the way back, made once outside the timing
rm -f "$DIR/src.pt" "$DIR/src.safetensors"
"$TOOLS/ckpt" convert -q "$P" "$DIR/src.pt"
"$TOOLS/ckpt" convert -q "$P" "$DIR/src.safetensors"
cat "$P".index "$P".data-* "$DIR/src.pt" "$DIR/src.safetensors" >/dev/null

TP=$(paired "$DIR/out.pt" "$TOOLS/ckpt" convert -q "$P" "$DIR/out.pt")
PT=$(paired "$DIR/back" "$TOOLS/ckpt" convert -q --no-checkpoint-file "$DIR/src.pt" "$DIR/back")
TS=$(paired "$DIR/out.safetensors" "$TOOLS/ckpt" convert -q "$P" "$DIR/out.safetensors")
ST=$(paired "$DIR/back" "$TOOLS/ckpt" convert -q --no-checkpoint-file "$DIR/src.safetensors" "$DIR/back")
echo
echo "1 GiB-class checkpoint: $BYTES tensor bytes, warm source cache, median of $ROUNDS;"
echo "each run paired with a durable copy (cp + sync FILE) of the same bytes just before it;"
echo "ratio of the medians, and (pairs) the median of each pair's own ratio"
for row in "saver -> torch (.pt)|$TP" "torch -> saver|$PT" "saver -> safetensors|$TS" "safetensors -> saver|$ST"; do
  echo "${row#*|}" | awk -v b="$BYTES" -v name="${row%%|*}" '{
    printf "  %-22s %7.3f s %7.1f MB/s   cp+sync %7.3f s   %5.2fx cp+sync (pairs: %4.2fx)   peak RSS %6.1f MiB\n",
      name, $1, b/$1/1e6, $3, $3/$1, $4, $2/1024 }'
done

# The Python route, for the record: load everything with h5py, torch.save it.
if "$PY" -c 'import torch, h5py' 2>/dev/null; then
  rm -f "$DIR/src.h5" && "$TOOLS/tensorflow-to-h5" --quiet "$P" "$DIR/src.h5" && cat "$DIR/src.h5" >/dev/null
  cat >"$DIR/route.py" <<'PYEOF'
import sys, h5py, numpy as np, torch, os
src, dst = sys.argv[1], sys.argv[2]
state = {}
with h5py.File(src, "r") as f:
    def take(name, obj):
        if isinstance(obj, h5py.Dataset):
            a = obj[()]
            if obj.attrs.get("is_bfloat16"):
                state[name] = torch.from_numpy(np.ascontiguousarray(a).view(np.int16)).view(torch.bfloat16)
            else:
                state[name] = torch.from_numpy(np.ascontiguousarray(a))
    f.visititems(take)
torch.save(state, dst)
fd = os.open(dst, os.O_RDONLY); os.fsync(fd); os.close(fd)
PYEOF
  ROUNDS=1
  PYR=$(paired "$DIR/py.pt" "$PY" "$DIR/route.py" "$DIR/src.h5" "$DIR/py.pt")
  echo "$PYR $TP" | awk -v b="$BYTES" '{
    printf "  %-22s %7.3f s %7.1f MB/s   cp+sync %7.3f s   %5.2fx cp+sync   peak RSS %6.1f MiB (one run; ckptd saver -> torch: %.1fx faster, %.0fx less memory)\n",
      "python h5py+torch.save", $1, b/$1/1e6, $3, $3/$1, $2/1024, $1/$5, $2/$6 }'
else
  echo "  (python route not measured: $PY cannot import torch and h5py)"
fi
rm -rf "$DIR/out.pt" "$DIR/out.safetensors" "$DIR/back" "$DIR/back".* "$DIR/cp.data" "$DIR/src.pt" \
  "$DIR/src.safetensors" "$DIR/src.h5" "$DIR/py.pt" "$DIR/route.py" "$DIR/stat" "$DIR/checkpoint"
