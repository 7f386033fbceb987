#!/usr/bin/python3
"""ckptd benchmark: several instances sharing one tree through claims_dir.

The same CKPTS (default 20) TensorFlow checkpoints of SIZE (default 64M) each are
dropped at once into a tree watched by 1, 2 and 3 ckptd instances (each with its own
state_dir, `workers = 1`, one shared claims_dir). Reported per run: the time from the
drop to the last output, conversions per instance, and duplicate conversions (job_done
lines beyond one per checkpoint: must be 0). The baseline, measured in the same run
just before each: `cp` of the same source bytes into a fresh directory plus `sync`
(ckptd's outputs are fsynced), and each run's ratio to it. On one machine the
instances share its disk and cores, so this measures the claims' overhead and their
exactly-once guarantee, not a cluster's aggregate bandwidth.
usage: bench_cluster.py BUILD_DIR [--ckpts N] [--size SIZE] [--instances 1,2,3]"""
import argparse
import glob
import os
import re
import shutil
import subprocess
import tempfile
import time

ap = argparse.ArgumentParser()
ap.add_argument("build")
ap.add_argument("--ckpts", type=int, default=20)
ap.add_argument("--size", default="64M")
ap.add_argument("--instances", default="1,2,3")
a = ap.parse_args()
CKPTD = os.path.abspath(os.path.join(a.build, "daemon", "ckptd"))
CKPT = os.path.abspath(os.path.join(a.build, "tools", "ckpt"))
T = tempfile.mkdtemp(prefix="ckptd-bench-cluster.", dir=os.environ.get("BENCH_DIR"))
STAGE = os.path.join(T, "stage")
os.makedirs(STAGE)


def conf(name, tree, claims):
    return (f"[ckptd]\nworkers = 1\nmemory_budget = 64M\nstate_dir = {T}/{name}-state\n"
            f"control_socket = {T}/{name}.sock\nsettle_seconds = 0.2\nrescan_seconds = 5\n"
            f"claims_dir = {claims}\nlease_seconds = 10\n[watch t]\npath = {tree}\ndirection = saver-to-h5\n")


def staged():
    return sorted(glob.glob(os.path.join(STAGE, "*.index")))


def copy_baseline(dst):
    os.makedirs(dst)
    t0 = time.time()
    for idx in staged():
        for f in (idx, idx[:-6] + ".data-00000-of-00001"):
            subprocess.run(["cp", f, dst], check=True)
    subprocess.run(["sync"], check=True)
    return time.time() - t0


def run(k, tree, claims):
    os.makedirs(tree)
    procs, logs = [], []
    for i in range(k):
        name = f"k{k}-i{i}"
        with open(os.path.join(T, name + ".ini"), "w") as f:
            f.write(conf(name, tree, claims))
        logs.append(os.path.join(T, name + ".log"))
        procs.append(subprocess.Popen([CKPTD, "--config", os.path.join(T, name + ".ini")],
                                      stderr=open(logs[-1], "w"), stdout=subprocess.DEVNULL))
    for i in range(k):
        while not os.path.exists(os.path.join(T, f"k{k}-i{i}-state", "status.json")):
            time.sleep(0.05)
    # hard links: the same source bytes every run, published as a trainer does (data, then index)
    t0 = time.time()
    for idx in staged():
        base = os.path.basename(idx)[:-6]
        os.link(idx[:-6] + ".data-00000-of-00001", os.path.join(tree, base + ".data-00000-of-00001"))
        os.link(idx, os.path.join(tree, base + ".index"))
    outs = [os.path.join(tree, os.path.basename(i)[:-6] + ".h5") for i in staged()]
    while not all(os.path.exists(o) for o in outs):
        time.sleep(0.05)
    elapsed = time.time() - t0
    time.sleep(2)  # let the others notice and adopt
    for p in procs:
        p.terminate()
    for p in procs:
        p.wait()
    per = []
    for path in logs:
        with open(path) as f:
            per.append(sum(1 for l in f if "event=job_done " in l))
    shutil.rmtree(tree)
    return elapsed, per


for i in range(a.ckpts):
    subprocess.run([CKPT, "synth", os.path.join(STAGE, f"model.ckpt-{i}"), "--size", a.size, "--tensors", "8",
                    "--seed", str(i)], check=True, capture_output=True)
total_bytes = sum(os.path.getsize(f) for f in glob.glob(os.path.join(STAGE, "*")))
print(f"{a.ckpts} checkpoints of {a.size} ({total_bytes / 1e6:.0f} MB in all), saver-to-h5, "
      "each instance workers = 1, one claims_dir; baseline: cp + sync of the same bytes")
print(f"{'instances':>9} {'time':>8} {'cp+sync':>8} {'ratio':>6}  {'conversions per instance':<26} duplicates")
dups_total = 0
for k in [int(x) for x in a.instances.split(",")]:
    base = copy_baseline(os.path.join(T, f"copy-{k}"))
    shutil.rmtree(os.path.join(T, f"copy-{k}"))
    elapsed, per = run(k, os.path.join(T, f"tree-{k}"), os.path.join(T, f"claims-{k}"))
    dups = sum(per) - a.ckpts
    dups_total += max(dups, 0)
    print(f"{k:>9} {elapsed:>7.2f}s {base:>7.2f}s {base / elapsed:>5.2f}x  {str(per):<26} {dups}"
          + ("" if sum(per) >= a.ckpts else f"  (only {sum(per)} conversions logged)"))
shutil.rmtree(T, ignore_errors=True)
if dups_total:
    raise SystemExit("duplicate conversions: claims failed")
