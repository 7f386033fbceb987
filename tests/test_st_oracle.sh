#!/bin/sh
# ckptd's safetensors writer against an independent reader: tests/test_safetensors --write
# writes a file of every dtype with values and a spec, and the tensors and metadata it
# meant to write; tests/st_oracle.py (numpy, written from the format's description)
# must read the file and find exactly that. TAP output.
PY=/usr/bin/python3
HERE=$(dirname "$0")
if ! $PY -c 'import numpy' 2>/dev/null; then
  echo "ok 1 - # SKIP python3-numpy not installed"
  echo "1..1"
  exit 0
fi
DIR=$(mktemp -d "${TMPDIR:-/tmp}/ckptd-st-oracle.XXXXXX") || exit 99
trap 'rm -rf "$DIR"' EXIT
F=$DIR/demo.safetensors
n=0
check() { # check DESCRIPTION COMMAND...: ok when COMMAND succeeds, its output as comments
  desc=$1; shift
  n=$((n + 1))
  if out=$("$@" 2>&1); then echo "ok $n - $desc"; else echo "not ok $n - $desc"; fi
  printf '%s\n' "$out" | sed 's/^/# /'
}
check "the sink writes the demo file" ./tests/test_safetensors --write "$F"
check "st_oracle.py reads it and finds every tensor, value and the spec" $PY "$HERE/st_oracle.py" "$F" "$F.expect.json"
# The oracle is not a rubber stamp: one changed data byte, one changed offset.
$PY - "$F" <<'PYEOF'
import sys, struct
b = bytearray(open(sys.argv[1], "rb").read())
open(sys.argv[1] + ".byte", "wb").write(b[:-1] + bytes([b[-1] ^ 1]))
n = struct.unpack("<Q", b[:8])[0]
h = b[8:8 + n].replace(b'"data_offsets":[0,4]', b'"data_offsets":[0,5]', 1)
open(sys.argv[1] + ".offset", "wb").write(b[:8] + h + b[8 + n:])
PYEOF
check "the oracle notices a changed data byte" sh -c "! $PY '$HERE/st_oracle.py' '$F.byte' '$F.expect.json'"
check "the oracle refuses a changed offset" sh -c "! $PY '$HERE/st_oracle.py' '$F.offset'"
echo "1..$n"
