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

# timed OUT CMD...: median wall time and largest peak RSS of ROUNDS runs -> "T RSS";
# OUT (a file or a prefix) is removed before each run, dirty pages written back first.
timed() {
  out=$1
  shift
  times="" rss=0 i=0
  while [ $i -lt "$ROUNDS" ]; do
    rm -rf "$out" "$out".index "$out".data-* "$DIR/checkpoint"
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

CPS=$(timed "$DIR/cp.data" sh -c "cp '$P.data-00000-of-00001' '$DIR/cp.data' && sync '$DIR/cp.data'")
TP=$(timed "$DIR/out.pt" "$TOOLS/ckpt" convert -q "$P" "$DIR/out.pt")
PT=$(timed "$DIR/back" "$TOOLS/ckpt" convert -q --no-checkpoint-file "$DIR/src.pt" "$DIR/back")
TS=$(timed "$DIR/out.safetensors" "$TOOLS/ckpt" convert -q "$P" "$DIR/out.safetensors")
ST=$(timed "$DIR/back" "$TOOLS/ckpt" convert -q --no-checkpoint-file "$DIR/src.safetensors" "$DIR/back")
echo
echo "1 GiB-class checkpoint: $BYTES tensor bytes, warm source cache, median of $ROUNDS"
echo "$CPS $TP $PT $TS $ST" | awk -v b="$BYTES" '
  function row(name, t, r, base) {
    printf "  %-30s %7.3f s %8.1f MB/s  %5.2fx cp+sync  peak RSS %6.1f MiB\n", name, t, b/t/1e6, base/t, r/1024 }
  { row("cp + sync FILE (durable)", $1, $2, $1); row("saver -> torch (.pt)", $3, $4, $1);
    row("torch -> saver", $5, $6, $1); row("saver -> safetensors", $7, $8, $1);
    row("safetensors -> saver", $9, $10, $1) }'

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
  PYR=$(timed "$DIR/py.pt" "$PY" "$DIR/route.py" "$DIR/src.h5" "$DIR/py.pt")
  echo "$CPS $PYR $TP" | awk -v b="$BYTES" '{
    printf "  %-30s %7.3f s %8.1f MB/s  %5.2fx cp+sync  peak RSS %6.1f MiB  (one run; ckptd saver -> torch is %.1fx faster)\n",
      "python: h5py + torch.save", $3, b/$3/1e6, $1/$3, $4/1024, $3/$5 }'
else
  echo "  (python route not measured: $PY cannot import torch and h5py)"
fi
rm -rf "$DIR/out.pt" "$DIR/out.safetensors" "$DIR/back" "$DIR/back".* "$DIR/cp.data" "$DIR/src.pt" \
  "$DIR/src.safetensors" "$DIR/src.h5" "$DIR/py.pt" "$DIR/route.py" "$DIR/stat" "$DIR/checkpoint"
