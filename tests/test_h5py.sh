#!/bin/sh
# Runs tests/h5py_interop.py with Debian's python3 (which has h5py). TAP output.
PY=/usr/bin/python3
FX=${CKPTD_FIXTURES:-../shared/fixtures}
HERE=$(dirname "$0")
if ! $PY -c 'import h5py, numpy' 2>/dev/null; then
  if [ "${CKPTD_REQUIRE_FIXTURES:-0}" != 0 ]; then
    echo "not ok 1 - python3-h5py is required (apt-get install python3-h5py python3-hdf5plugin)"
  else
    echo "ok 1 - # SKIP python3-h5py not installed"
  fi
  echo "1..1"
  exit 0
fi
if [ ! -d "$FX/tf" ]; then
  if [ "${CKPTD_REQUIRE_FIXTURES:-0}" != 0 ]; then echo "not ok 1 - fixtures missing at $FX"; else echo "ok 1 - # SKIP fixtures missing at $FX"; fi
  echo "1..1"
  exit 0
fi
exec $PY "$HERE/h5py_interop.py" "${TOOLS:-./tools}" "$FX"
