#!/bin/sh
# Runs tests/test_publish.py (both converters under strace) with Debian's python3.
exec /usr/bin/python3 "$(dirname "$0")/test_publish.py" "${BUILD:-.}"
