#!/bin/sh
# Bootstrap the autotools build: configure script, Makefile.in, and the TAP test driver.
set -e
cd "$(dirname "$0")"
autoreconf -fi
for d in /usr/share/automake-*; do
  if [ -f "$d/tap-driver.sh" ]; then cp -f "$d/tap-driver.sh" build-aux/tap-driver.sh; break; fi
done
test -f build-aux/tap-driver.sh || { echo "autogen.sh: automake's tap-driver.sh not found" >&2; exit 1; }
