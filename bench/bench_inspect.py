#!/usr/bin/python3
"""Inspection benchmark: `ckpt diff`, `ckpt verify` and `ckpt ls` against reading the
same files once with `cat`, in the same run.

Checkpoints generated: one 2 GiB tensor, and 1 GiB in 130 tensors (float32 and
bfloat16), each as a TensorFlow bundle and as ckptd's HDF5. Each round reads from
a cold page cache (sync; echo 3 > /proc/sys/vm/drop_caches) when run as root,
else from a warm one (said in the output): `cat` of the inputs first, then the
command. Printed per command: median times and the median of each round's own
ratio (cat / command, 1.00x = the speed of reading the inputs once). ROUNDS
(default 3) rounds.
usage: bench_inspect.py BUILD_DIR"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

B = sys.argv[1]
CKPT = os.path.join(B, "tools", "ckpt")
T2H = os.path.join(B, "tools", "tensorflow-to-h5")
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
T = tempfile.mkdtemp(prefix="ckptd-bench-inspect.", dir=os.environ.get("BENCH_DIR"))
COLD = os.geteuid() == 0


def drop():
    subprocess.run(["sync"], check=True)
    if COLD:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")


def timed(argv):
    t0 = time.time()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.time() - t0


def files_of(path):
    if path.endswith(".h5"):
        return [path]
    return [path + ".index", path + ".data-00000-of-00001"]


def bench(label, argv, inputs):
    cats, runs, ratios = [], [], []
    for _ in range(ROUNDS):
        drop()
        c = timed(["cat"] + inputs)
        drop()
        r = timed(argv)
        cats.append(c)
        runs.append(r)
        ratios.append(c / r if r > 0 else 0)
    print(f"  {label:<34} {statistics.median(runs):7.2f} s   cat {statistics.median(cats):6.2f} s   "
          f"{statistics.median(ratios):5.2f}x")


try:
    for name, args in (("one 2 GiB tensor", ["--size", "2G", "--tensors", "1"]),
                       ("1 GiB in 130 tensors", ["--size", "1G", "--tensors", "130", "--spread", "1000",
                                                 "--dtypes", "float32,bfloat16"])):
        prefix = os.path.join(T, "c")
        for f in os.listdir(T):
            os.unlink(os.path.join(T, f))
        subprocess.run([CKPT, "synth", prefix] + args, check=True, capture_output=True)
        subprocess.run([T2H, prefix, prefix + ".h5"], check=True, capture_output=True)
        print(f"{name} ({'cold' if COLD else 'warm'} page cache, median of {ROUNDS}; ratio = cat time / command time):")
        bench("ckpt diff BUNDLE H5", [CKPT, "diff", prefix, prefix + ".h5"], files_of(prefix) + [prefix + ".h5"])
        bench("ckpt verify H5", [CKPT, "verify", prefix + ".h5"], [prefix + ".h5"])
        bench("ckpt verify BUNDLE", [CKPT, "verify", prefix], files_of(prefix))
        bench("ckpt ls --format tsv H5 (no data)", [CKPT, "ls", "--format", "tsv", prefix + ".h5"], [prefix + ".h5"])
finally:
    shutil.rmtree(T, ignore_errors=True)
