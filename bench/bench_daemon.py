#!/usr/bin/python3
"""ckptd benchmark: detection latency, idle CPU and memory with 10,000 watched directories.

  latency   20 TensorFlow saves dropped as TensorFlow does (data renamed, then the index):
            time from the index rename (the save's completion) to the job's start in
            ckptd's log; median and spread. It includes settle_seconds by definition,
            so the detection overhead (latency - settle) is printed too.
  idle      ckptd watching DIRS directories (default 10,000) sits idle for SECONDS
            (default 60): CPU time used, from /proc/PID/stat, against the same daemon
            watching one directory over the same time (the baseline of this run).
  memory    resident memory (VmRSS) with DIRS directories watched against one.
  rescan    a tree of CKPTS (default 10,000) converted checkpoints, rescanned every 2 s:
            CPU time per rescan (from /proc/PID/stat, the walk's threads included) and
            completeness checks per rescan (ckptd's checks_since_start), against the same
            daemon on a tree of one converted checkpoint.
usage: bench_daemon.py BUILD_DIR [--dirs N] [--seconds S] [--settle S] [--ckpts N]"""
import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import tempfile
import time

ap = argparse.ArgumentParser()
ap.add_argument("build")
ap.add_argument("--dirs", type=int, default=10000)
ap.add_argument("--seconds", type=float, default=60)
ap.add_argument("--settle", type=float, default=1.0)
ap.add_argument("--drops", type=int, default=20)
ap.add_argument("--ckpts", type=int, default=10000)
a = ap.parse_args()
CKPTD = os.path.join(a.build, "daemon", "ckptd")
CKPT = os.path.join(a.build, "tools", "ckpt")
T = tempfile.mkdtemp(prefix="ckptd-bench.", dir=os.environ.get("BENCH_DIR"))
HZ = os.sysconf("SC_CLK_TCK")


def status(name):
    import json
    with open(os.path.join(T, name + "-state", "status.json")) as f:
        return json.load(f)


def start(name, tree, settle, rescan=60):
    conf = os.path.join(T, name + ".ini")
    with open(conf, "w") as f:
        f.write(f"[ckptd]\nworkers = 2\nstate_dir = {T}/{name}-state\nsettle_seconds = {settle}\n"
                f"rescan_seconds = {rescan}\n[watch t]\npath = {tree}\ndirection = saver-to-h5\n")
    log = open(os.path.join(T, name + ".log"), "w")
    p = subprocess.Popen([CKPTD, "--config", conf], stderr=log, stdout=log)
    status = os.path.join(T, name + "-state", "status.json")
    while not os.path.exists(status):
        time.sleep(0.05)
    return p


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def stop(p):
    p.send_signal(signal.SIGTERM)
    p.wait(30)


# ---- latency ----
tree = os.path.join(T, "lat")
stage = os.path.join(T, "stage")
os.makedirs(tree)
os.makedirs(stage)
p = start("lat", tree, a.settle)
lat = []
subprocess.run([CKPT, "synth", os.path.join(stage, "m"), "--size", "256K", "--tensors", "4"], check=True)
for i in range(a.drops):
    d = os.path.join(tree, "run%02d" % i)
    os.makedirs(d)
    shutil.copy(os.path.join(stage, "m.data-00000-of-00001"), os.path.join(d, ".m.data.tempstate1"))
    shutil.copy(os.path.join(stage, "m.index"), os.path.join(d, ".m.index.tempstate2"))
    os.rename(os.path.join(d, ".m.data.tempstate1"), os.path.join(d, "model.ckpt-%d.data-00000-of-00001" % i))
    done = time.time()
    os.rename(os.path.join(d, ".m.index.tempstate2"), os.path.join(d, "model.ckpt-%d.index" % i))
    pat = 'event=job_start path="%s"' % os.path.join(d, "model.ckpt-%d" % i)
    while True:
        text = open(os.path.join(T, "lat.log")).read()
        m = [l for l in text.splitlines() if pat in l]
        if m:
            ts = re.search(r"ts=(\S+)Z", m[0]).group(1)
            t = time.mktime(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone + float(ts[19:])
            lat.append(t - done)
            break
        time.sleep(0.01)
stop(p)
med = statistics.median(lat)
print("latency: completion (index renamed) -> job start, %d drops, settle_seconds = %g" % (len(lat), a.settle))
print("  median %.3f s (min %.3f, max %.3f); detection overhead beyond settle: median %.3f s"
      % (med, min(lat), max(lat), med - a.settle))

# ---- idle CPU and memory: DIRS directories against one ----
big = os.path.join(T, "dirs")
side = max(1, int(a.dirs ** 0.5))
made = 0
for i in range(side):
    for j in range(side):
        if made >= a.dirs:
            break
        os.makedirs(os.path.join(big, "d%03d" % i, "e%03d" % j))
        made += 1
one = os.path.join(T, "one")
os.makedirs(one)
res = {}
for name, path in (("one", one), ("dirs", big)):
    p = start(name, path, 5)
    time.sleep(2)
    c0 = cpu_ticks(p.pid)
    time.sleep(a.seconds)
    c1 = cpu_ticks(p.pid)
    res[name] = ((c1 - c0) / HZ, rss_kib(p.pid))
    stop(p)
watched = made + side + 1
print("idle for %.0f s (rescan_seconds = 60, settle_seconds = 5):" % a.seconds)
print("  1 directory watched:      CPU %.3f s (%.3f%% of a core), RSS %.1f MiB"
      % (res["one"][0], 100 * res["one"][0] / a.seconds, res["one"][1] / 1024))
print("  %d directories watched: CPU %.3f s (%.3f%% of a core), RSS %.1f MiB"
      % (watched, res["dirs"][0], 100 * res["dirs"][0] / a.seconds, res["dirs"][1] / 1024))
print("  memory per watched directory: %.0f bytes; RSS ratio to the 1-directory baseline: %.2fx"
      % ((res["dirs"][1] - res["one"][1]) * 1024 / watched, res["dirs"][1] / res["one"][1]))

# ---- rescan cost: CKPTS converted checkpoints against one ----
subprocess.run([CKPT, "synth", os.path.join(stage, "tiny"), "--size", "1K", "--tensors", "1"], check=True)
def make_tree(path, n):
    for i in range(n):
        d = os.path.join(path, "r%03d" % (i // 100))
        os.makedirs(d, exist_ok=True)
        pre = os.path.join(d, "model.ckpt-%d" % i)
        shutil.copy(os.path.join(stage, "tiny.index"), pre + ".index")
        shutil.copy(os.path.join(stage, "tiny.data-00000-of-00001"), pre + ".data-00000-of-00001")
        open(pre + ".h5", "w").close()  # its output is there: settled after one check
rres = {}
RESCANS = 5
for name, n in (("rone", 1), ("rmany", a.ckpts)):
    path = os.path.join(T, name)
    make_tree(path, n)
    p = start(name, path, 0.2, rescan=2)
    last, stable_since = -1, time.time()
    while time.time() - stable_since < 5:  # the first checks of every checkpoint finish
        c = status(name).get("checks_since_start", 0)
        if c != last:
            last, stable_since = c, time.time()
        time.sleep(0.2)
    k0, c0 = status(name)["checks_since_start"], cpu_ticks(p.pid)
    time.sleep(2 * RESCANS)
    k1, c1 = status(name)["checks_since_start"], cpu_ticks(p.pid)
    rres[name] = ((c1 - c0) / HZ / RESCANS, (k1 - k0) / RESCANS, k0)
    stop(p)
print("rescan every 2 s, %d rescans, after every checkpoint's first check:" % RESCANS)
print("  1 converted checkpoint:      CPU %.4f s per rescan, %.1f checks per rescan"
      % (rres["rone"][0], rres["rone"][1]))
print("  %d converted checkpoints: CPU %.4f s per rescan, %.1f checks per rescan (%d first checks)"
      % (a.ckpts, rres["rmany"][0], rres["rmany"][1], rres["rmany"][2]))
print("  CPU per rescan ratio to the 1-checkpoint baseline: %.1fx for %dx the files; per checkpoint: %.1f us"
      % (rres["rmany"][0] / max(rres["rone"][0], 1.0 / HZ), a.ckpts, 1e6 * rres["rmany"][0] / a.ckpts))
shutil.rmtree(T, ignore_errors=True)
