#!/usr/bin/python3
"""--verify checks the output before it gets its final name: run both converters under
strace and check that every read of the output (the verification pass, on the
temporary) comes before the rename that publishes it. Prints TAP.
usage: test_publish.py BUILD_DIR"""
import os
import re
import shutil
import subprocess
import sys
import tempfile

B = sys.argv[1]
TOOLS = os.path.join(B, "tools")
T = tempfile.mkdtemp(prefix="ckptd-publish.")
n = 0


def ok(cond, what):
    global n
    n += 1
    print(("ok %d - %s" if cond else "not ok %d - %s") % (n, what), flush=True)


def traced(argv):
    log = os.path.join(T, "trace")
    env = dict(os.environ)  # LeakSanitizer cannot run under ptrace: leaks are the other tests' business
    env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":detect_leaks=0").lstrip(":")
    r = subprocess.run(["strace", "-f", "-qq", "-e", "trace=openat,rename,renameat,renameat2", "-o", log] + argv,
                       capture_output=True, text=True, env=env)
    with open(log) as f:
        return r, f.read().splitlines()


def order(lines, final_names):
    """(index of the last read-only open of a temporary, index of the first rename onto a final name)"""
    last_read, first_pub = -1, None
    for i, l in enumerate(lines):
        m = re.search(r'openat\(AT_FDCWD, "([^"]+)", O_RDONLY', l)
        if m and ".ckptd-tmp." in m.group(1):
            last_read = i
        m = re.search(r'rename(?:at2?)?\(.*"([^"]+)"(?:, \w+)?\) = 0', l)
        if m and first_pub is None and os.path.basename(m.group(1)) in final_names:
            first_pub = i
    return last_read, first_pub


subprocess.run([os.path.join(TOOLS, "ckpt"), "synth", os.path.join(T, "m"), "--size", "4M", "--tensors", "8"], check=True)
if shutil.which("strace") is None:
    ok(False, "strace is installed (quickstart installs it)")
else:
    r, lines = traced([os.path.join(TOOLS, "tensorflow-to-h5"), "--verify", "--quiet", os.path.join(T, "m"), os.path.join(T, "m.h5")])
    read, pub = order(lines, {"m.h5"})
    ok(r.returncode == 0, "tensorflow-to-h5 --verify succeeds (%s)" % r.stderr.strip()[-100:])
    ok(read >= 0 and pub is not None and read < pub,
       "tensorflow-to-h5: the output is read back (line %d) before it is renamed into place (line %s)" % (read, pub))
    os.makedirs(os.path.join(T, "out"))
    r, lines = traced([os.path.join(TOOLS, "h5-to-tensorflow"), "--verify", "--quiet", os.path.join(T, "m.h5"),
                       os.path.join(T, "out", "m")])
    read, pub = order(lines, {"m.index", "m.data-00000-of-00001"})
    ok(r.returncode == 0, "h5-to-tensorflow --verify succeeds (%s)" % r.stderr.strip()[-100:])
    ok(read >= 0 and pub is not None and read < pub,
       "h5-to-tensorflow: the bundle is verified under a temporary prefix (line %d) before its first file is renamed "
       "into place (line %s)" % (read, pub))
    left = [f for f in os.listdir(os.path.join(T, "out")) if ".ckptd-tmp." in f]
    ok(not left and sorted(os.listdir(os.path.join(T, "out"))) == ["checkpoint", "m.data-00000-of-00001", "m.index"],
       "and only the bundle and its checkpoint file remain (%s)" % sorted(os.listdir(os.path.join(T, "out"))))
    r = subprocess.run([os.path.join(TOOLS, "ckpt"), "diff", os.path.join(T, "m"), os.path.join(T, "out", "m")],
                       capture_output=True, text=True)
    ok(r.returncode == 0, "the published bundle equals the source")
print("1..%d" % n)
shutil.rmtree(T, ignore_errors=True)
