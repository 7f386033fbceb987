#!/bin/sh
# Runs tests/test_cluster.py (ckptd instances sharing a tree through claims_dir, and
# ckptd on a private one-node Slurm cluster) with Debian's python3.
exec /usr/bin/python3 "$(dirname "$0")/test_cluster.py" "${BUILD:-.}"
