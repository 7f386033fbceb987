#!/bin/sh
# Runs tests/test_daemon.py (a real ckptd on temporary trees) with Debian's python3.
exec /usr/bin/python3 "$(dirname "$0")/test_daemon.py" "${BUILD:-.}"
