#!/bin/sh
# Runs tests/torch_oracle.py with Debian's python3 (python3-torch, numpy). TAP output.
PY=/usr/bin/python3
FX=${CKPTD_FIXTURES:-../shared/fixtures}
HERE=$(dirname "$0")
if ! $PY -c 'import torch, numpy' 2>/dev/null; then
  if [ "${CKPTD_REQUIRE_FIXTURES:-0}" != 0 ]; then
    echo "not ok 1 - python3-torch is required (apt-get install python3-torch)"
  else
    echo "ok 1 - # SKIP python3-torch not installed"
  fi
  echo "1..1"
  exit 0
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ckptd-torch.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
$PY "$HERE/torch_oracle.py" "${TOOLS:-./tools}" "$FX" "$WORK"
