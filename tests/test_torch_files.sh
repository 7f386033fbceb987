#!/bin/sh
# The torch reader on real torch.save files: tests/torch_gen.py (Debian's python3 with
# python3-torch) writes them and what torch computes for each leaf; tests/torch_dump
# must print the same rows (dtype, shape, CRC-32 of the streamed row-major bytes, values)
# with a 1 MiB buffer and with tiny ones (gathers of strided views in many pieces).
PY=${CKPTD_TORCH_PYTHON:-/usr/bin/python3}
srcdir=${srcdir:-$(dirname "$0")/..}
n=0
fail=0
t() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fail=1; fi; }

if ! "$PY" -c 'import torch' 2>/dev/null; then
  echo "1..0 # SKIP $PY cannot import torch (Debian: apt install python3-torch)"
  exit 0
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/torchfiles.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
"$PY" "$srcdir/tests/torch_gen.py" "$tmp/gen" >"$tmp/gen.log" 2>&1
t $? "torch_gen.py writes torch files"
sort "$tmp/gen/expected.tsv" >"$tmp/want"
for b in 1048576 4096 64 8; do
  ./tests/torch_dump -b $b "$tmp/gen/state.pt" "$tmp/gen/views.pt" "$tmp/gen/nested.pt" "$tmp/gen/train.pt" >"$tmp/out" 2>"$tmp/err"
  t $? "torch_dump -b $b reads every file"
  grep -E '^(T|V)	' "$tmp/out" | sort >"$tmp/got"
  if diff -u "$tmp/want" "$tmp/got" >"$tmp/diff"; then t 0 "buffer $b: tensors and values as torch has them"
  else sed 's/^/# /' "$tmp/diff" "$tmp/err" | head -40; t 1 "buffer $b: tensors and values as torch has them"; fi
done
# the spec of nested.pt: dict with an int key, an OrderedDict, a list holding a tuple
grep -q '^S	nested.pt	\[1, {"type": "builtins.dict", "context": "\[\\"model\\", \\"optimizer\\", 3, \\"param\\"\]"' "$tmp/out"
t $? "nested.pt's spec is a dict keyed model, optimizer, 3, param"
grep -q '"collections.OrderedDict"' "$tmp/out" && grep -q '"builtins.tuple"' "$tmp/out"
t $? "the spec keeps OrderedDict and tuple nodes"
# storages' data order: in views.pt, a (offset 0 of the shared storage) comes before b
awk -F'\t' '$1 == "T" && $2 == "views.pt" { printf "%s ", $3 }' "$tmp/out" >"$tmp/order"
grep -q 'a b' "$tmp/order"
t $? "tensors sharing a storage come in storage-offset order ($(cat "$tmp/order"))"
# a corrupted storage byte: CRC-32 mismatch naming the entry
cp "$tmp/gen/state.pt" "$tmp/bad.pt"
off=$("$PY" -c "import zipfile,sys; z=zipfile.ZipFile(sys.argv[1]); i=z.getinfo('state/data/0'); \
  import struct; f=open(sys.argv[1],'rb'); f.seek(i.header_offset); h=f.read(30); \
  print(i.header_offset+30+struct.unpack('<H',h[26:28])[0]+struct.unpack('<H',h[28:30])[0])" "$tmp/bad.pt")
printf '\377' | dd of="$tmp/bad.pt" bs=1 seek="$off" conv=notrunc 2>/dev/null
./tests/torch_dump "$tmp/bad.pt" >/dev/null 2>"$tmp/err"
grep -q 'state/data/0: CRC-32' "$tmp/err"
t $? "a flipped storage byte is a CRC-32 mismatch naming state/data/0 ($(cat "$tmp/err"))"
echo "1..$n"
exit 0
