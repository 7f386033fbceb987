"""TAP output, tool runs and bundle reading shared by the Python tests of the tools
(h5py_interop.py, h5_hostile.py, h5_chunks.py). Import it from beside the script."""
import json
import os
import subprocess
import sys

count = 0
failed = 0


def ok(cond, what):
    """One TAP line; returns cond."""
    global count, failed
    count += 1
    print(("ok %d - %s" if cond else "not ok %d - %s") % (count, what))
    if not cond:
        failed += 1
    sys.stdout.flush()
    return cond


def skip(why):
    global count
    count += 1
    print("ok %d - # SKIP %s" % (count, why))
    sys.stdout.flush()


def plan():
    print("1..%d" % count)


def run(tools, name, *args, timeout=None):
    """(exit status, stdout, stderr) of tools/name args; -999 when it ran past timeout seconds."""
    try:
        p = subprocess.run([os.path.join(tools, name)] + list(args), capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        return -999, "", "timed out"
    return p.returncode, p.stdout, p.stderr


def bundle_tensors(tools, prefix, nshards=1):
    """name -> (dtype, stored bytes) of a bundle, at the offsets `ckpt ls --format json` reports;
    None if it cannot be listed."""
    rc, so, se = run(tools, "ckpt", "ls", "--format", "json", prefix)
    if rc != 0:
        return None
    out = {}
    for t in json.loads(so)["tensors"]:
        with open("%s.data-%05d-of-%05d" % (prefix, t["shard"], nshards), "rb") as f:
            f.seek(t["offset"])
            out[t["name"]] = (t["dtype"], f.read(t["bytes"]))
    return out
