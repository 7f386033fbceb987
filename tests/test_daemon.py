#!/usr/bin/python3
"""A real ckptd process on temporary trees. Prints TAP.
usage: test_daemon.py BUILD_DIR"""
import glob
import json
import re
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

B = sys.argv[1]
CKPTD = os.path.join(B, "daemon", "ckptd")
CKPT = os.path.join(B, "tools", "ckpt")
T = tempfile.mkdtemp(prefix="ckptd-daemon.")
A = os.path.join(T, "a")        # direction both, inotify
R = os.path.join(T, "r")        # saver-to-h5, rescans only
S = os.path.join(T, "staging")  # where checkpoints are made before they are dropped in
for d in (A, R, S):
    os.makedirs(d)
CONF = os.path.join(T, "ckptd.ini")
LOG = os.path.join(T, "ckptd.log")
PROM = os.path.join(T, "ckptd.prom")
GOOD_CONF = f"""[ckptd]
workers = 2
memory_budget = 64M
state_dir = {T}/state
prometheus_file = {PROM}
control_socket = {T}/ctl.sock
settle_seconds = 0.5
rescan_seconds = 2
stop_timeout = 10
log_level = debug

[watch a]
path = {A}
direction = both

[watch r]
path = {R}
direction = saver-to-h5
events = false
"""
n = 0
proc = None


def cleanup():
    """Whatever happens (a failed assertion's exception too): no daemon, mount or GBs left behind."""
    if proc is not None and proc.poll() is None:
        proc.kill()
    for d in ("full", "blocked", "guard"):
        subprocess.run(["umount", "-l", os.path.join(T, d)], capture_output=True)
        subprocess.run(["umount", "-l", os.path.join(T, "a", d)], capture_output=True)
    if not os.environ.get("CKPTD_KEEP_TEST_DIR"):
        shutil.rmtree(T, ignore_errors=True)


import atexit
atexit.register(cleanup)


def ok(cond, what):
    global n
    n += 1
    print(("ok %d - %s" if cond else "not ok %d - %s") % (n, what), flush=True)
    return cond


# a stand-in for systemd's notification socket
import socket
NOTIFY = os.path.join(T, "notify.sock")
nsock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
nsock.bind(NOTIFY)
notes = []


def drain():  # as systemd does: always reading, so the daemon never blocks on a full socket
    while True:
        notes.append(nsock.recv(4096).decode())


import threading
threading.Thread(target=drain, daemon=True).start()


def notifications():
    return list(notes)


def start():
    global proc
    with open(CONF, "w") as f:
        f.write(GOOD_CONF)
    logf = open(LOG, "a")
    env = dict(os.environ, NOTIFY_SOCKET=NOTIFY, WATCHDOG_USEC="400000")
    proc = subprocess.Popen([CKPTD, "--config", CONF], stderr=logf, stdout=logf, env=env)
    wait_for(lambda: os.path.exists(os.path.join(T, "state", "status.json")), 10)


def log():
    with open(LOG) as f:
        return f.read()


def events(kind, path=None):
    return [l for l in log().splitlines() if f"event={kind} " in l and (path is None or f'path="{path}"' in l)]


def wait_for(cond, timeout):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def reload(text):
    """Replace the running ckptd's configuration with text and wait until it has reloaded."""
    with open(CONF, "w") as f:
        f.write(text)
    before = len(events("reload"))
    proc.send_signal(signal.SIGHUP)
    wait_for(lambda: len(events("reload")) > before, 5)


def synth(prefix, *args):
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    subprocess.run([CKPT, "synth", prefix] + list(args), check=True)


def drop(prefix, into):
    """Copy a staged bundle into a watched directory as a trainer would publish it: data, then index."""
    for suffix in (".data-00000-of-00001", ".index"):
        shutil.copy(prefix + suffix, into)


def same(a, b):
    return subprocess.run([CKPT, "diff", a, b], capture_output=True).returncode == 0


def formats():
    """Four formats (issue 10): a tree with saver-to-safetensors, safetensors-to-h5 and one with
    safetensors-to-h5, h5-to-safetensors. Trainer-written files are sources; ckptd's outputs never
    are (no chaining, no ping-pong); a half-written safetensors file waits; an .mdl is HDF5 by
    signature. No torch here: its reader and writer are another branch's (CK_EUNSUP until merged)."""
    FT = os.path.join(T, "fmt")   # saver-to-safetensors, safetensors-to-h5
    PP = os.path.join(T, "pp")    # safetensors-to-h5, h5-to-safetensors: must not ping-pong
    for d in (FT, PP):
        os.makedirs(d)
    TT = os.path.join(T, "torch")  # torch-to-safetensors, safetensors-to-torch (TORCH, below)
    os.makedirs(TT)
    reload(GOOD_CONF + f"\n[watch fmt]\npath = {FT}\ndirection = saver-to-safetensors, safetensors-to-h5\n"
           f"\n[watch pp]\npath = {PP}\ndirection = safetensors-to-h5,h5-to-safetensors\n"
           f"\n[watch torch]\npath = {TT}\ndirection = torch-to-safetensors, safetensors-to-torch\n")
    def tree_dirs():
        try:
            return {r["name"]: r["direction"] for r in json.load(open(os.path.join(T, "state", "status.json")))["roots"]}
        except (ValueError, KeyError):
            return {}
    wait_for(lambda: "fmt" in tree_dirs(), 5)
    dirs = tree_dirs()
    ok(dirs.get("fmt") == "saver-to-safetensors,safetensors-to-h5" and dirs.get("a") == "both",
       "status names each tree's directions: %s" % dirs)
    r = subprocess.run([CKPTD, "--config", CONF, "--check-config"], capture_output=True, text=True, timeout=10)
    ok(r.returncode == 0 and f"watch fmt: {FT} (saver-to-safetensors, safetensors-to-h5, recursive)" in r.stdout
       and f"watch a: {A} (saver-to-h5, h5-to-saver, recursive)" in r.stdout,
       "--check-config shows the directions: %s" % [l for l in r.stdout.splitlines() if l.startswith("watch fmt")])
    stage = os.path.join(S, "fmt")
    # a bundle becomes PREFIX.safetensors, and that output is not chained on into .h5
    synth(os.path.join(stage, "fb.ckpt-1"), "--size", "1M", "--tensors", "5", "--dtypes", "float32,bfloat16")
    drop(os.path.join(stage, "fb.ckpt-1"), FT)
    pb = os.path.join(FT, "fb.ckpt-1")
    ok(wait_for(lambda: os.path.exists(pb + ".safetensors") and events("job_done", pb), 15) and same(pb, pb + ".safetensors"),
       "saver-to-safetensors: a bundle dropped in becomes PREFIX.safetensors equal to it (ckpt diff)")
    ok(any('direction=saver-to-safetensors' in l for l in events("job_done", pb)), "its log line names the direction")
    # a trainer's safetensors file, written elsewhere and renamed in, becomes NAME.h5
    subprocess.run([CKPT, "convert", "-q", os.path.join(stage, "fb.ckpt-1"), os.path.join(stage, "model-7.safetensors")],
                   check=True, capture_output=True)
    os.rename(os.path.join(stage, "model-7.safetensors"), os.path.join(FT, "model-7.safetensors"))
    m7 = os.path.join(FT, "model-7")
    ok(wait_for(lambda: os.path.exists(m7 + ".h5") and events("job_done", m7 + ".safetensors"), 15)
       and same(m7 + ".safetensors", m7 + ".h5"), "safetensors-to-h5: a trainer's .safetensors becomes NAME.h5 equal to it")
    # a safetensors file still being written (its header promises more) waits, then converts
    whole = open(os.path.join(FT, "model-7.safetensors"), "rb").read()
    hw = os.path.join(FT, "half-9.safetensors")
    with open(hw, "wb") as f:
        f.write(whole[:len(whole) // 2])
    time.sleep(3)  # well past settle_seconds and a rescan
    ok(not os.path.exists(os.path.join(FT, "half-9.h5")) and not events("job_start", hw) and not events("job_failed", hw),
       "a half-written .safetensors is not converted (nor failed) while incomplete")
    with open(hw, "ab") as f:
        f.write(whole[len(whole) // 2:])
    ok(wait_for(lambda: os.path.exists(os.path.join(FT, "half-9.h5")), 15) and same(hw, os.path.join(FT, "half-9.h5")),
       "and converted once complete")
    # ping-pong: safetensors-to-h5 and h5-to-safetensors on one tree; a trainer's .h5 and an HDF5 .mdl
    subprocess.run([CKPT, "synth", "--format", "h5", os.path.join(stage, "y.h5"), "--size", "1M", "--tensors", "4"], check=True)
    shutil.copy(os.path.join(stage, "y.h5"), os.path.join(stage, "cs_100.mdl"))
    with open(os.path.join(PP, "junk.mdl"), "wb") as f:
        f.write(b"not HDF5 at all, a Cerebras .mdl must be HDF5" * 100)
    os.rename(os.path.join(stage, "y.h5"), os.path.join(PP, "y.h5"))
    os.rename(os.path.join(stage, "cs_100.mdl"), os.path.join(PP, "cs_100.mdl"))
    y, cs = os.path.join(PP, "y"), os.path.join(PP, "cs_100")
    ok(wait_for(lambda: events("job_done", y + ".h5") and events("job_done", cs + ".mdl"), 15)
       and same(y + ".h5", y + ".safetensors") and same(cs + ".mdl", cs + ".safetensors"),
       "h5-to-safetensors: a trainer's .h5, and an HDF5 file named .mdl, become NAME.safetensors")
    time.sleep(3)  # a rescan or two: nothing converts back
    starts = [l for l in events("job_start") if f'path="{PP}/' in l]
    ok(len(starts) == 2 and not events("job_start", y + ".safetensors") and not events("job_start", cs + ".safetensors")
       and not os.path.exists(cs + ".h5") and not [l for l in events("skip", y + ".safetensors") if "did not write" in l],
       "no ping-pong: ckptd's .safetensors are never sources, known as ckptd's, not as a name taken (%d jobs in the tree)" % len(starts))
    ok(not events("job_start", os.path.join(PP, "junk.mdl")) and not events("job_failed", os.path.join(PP, "junk.mdl")),
       "an .mdl that is not HDF5 is not a checkpoint: neither converted nor failed")
    ok(not events("job_start", pb + ".safetensors") and not os.path.exists(pb + ".h5"),
       "no chaining: saver-to-safetensors' output is not a safetensors-to-h5 source")
    ok(wait_for(lambda: 'ckptd_jobs_total{direction="saver-to-safetensors",outcome="done"} 1' in open(PROM).read(), 5),
       "Prometheus counts jobs by the new directions")
    torch_case(TT)
    reload(GOOD_CONF)


def torch_case(TT):
    """TORCH: needs /usr/bin/python3 with torch to write a real torch.save file (skipped without;
    CI installs python3-torch). The completeness probe is the zip's central directory."""
    global n
    what = ["TORCH: a half-written .pt (no zip central directory yet) is not converted",
            "TORCH: once complete, a torch-to-safetensors job starts",
            "TORCH: its output equals the .pt (ckpt diff)",
            "TORCH: no ping-pong: ckptd's .safetensors is not converted back to .pt"]
    if subprocess.run(["/usr/bin/python3", "-c", "import torch"], capture_output=True).returncode != 0:
        required = os.environ.get("CKPTD_REQUIRE_FIXTURES", "0") != "0"
        for w in what:
            n += 1
            print("%s %d - %s%s: no torch for /usr/bin/python3" % ("not ok" if required else "ok", n,
                                                                   "" if required else "# SKIP ", w))
        return
    stage = os.path.join(S, "torch")
    os.makedirs(stage)
    pt = os.path.join(stage, "m-5.pt")
    subprocess.run(["/usr/bin/python3", "-c", "import torch, sys; torch.save({'w': torch.arange(4000.).reshape(40, 100), "
                    "'b': torch.ones(7, dtype=torch.bfloat16), 'step': 5}, sys.argv[1])", pt], check=True)
    whole = open(pt, "rb").read()
    hw = os.path.join(TT, "m-5.pt")
    with open(hw, "wb") as f:
        f.write(whole[:len(whole) - 100])  # all but its end: torch.save writes the central directory last
    time.sleep(3)
    ok(not events("job_start", hw) and not events("job_failed", hw), what[0])
    with open(hw, "ab") as f:
        f.write(whole[len(whole) - 100:])
    ok(wait_for(lambda: events("job_start", hw), 15) and "direction=torch-to-safetensors" in events("job_start", hw)[0], what[1])
    out = os.path.join(TT, "m-5.safetensors")
    ok(wait_for(lambda: os.path.exists(out), 15) and same(hw, out), what[2])
    time.sleep(3)
    ok(not events("job_start", out) and len(events("job_start", hw)) == 1, what[3])


bad = os.path.join(T, "bad.ini")
with open(bad, "w") as f:
    f.write("[ckptd]\nworkers = 2\nsettle_seconds = soon\n")
r = subprocess.run([CKPTD, "--config", bad], capture_output=True, text=True, timeout=10)
ok(r.returncode == 2 and "bad.ini:3: settle_seconds" in r.stderr, "a bad config at start: exit 2 naming file and line (%s)" % r.stderr.strip())
r = subprocess.run([CKPTD, "--config", bad, "--check-config"], capture_output=True, text=True, timeout=10)
ok(r.returncode == 2, "--check-config rejects it too")
with open(bad, "w") as f:
    f.write("[ckptd]\n[mystery]\nx = 1\n")
r = subprocess.run([CKPTD, "--config", bad], capture_output=True, text=True, timeout=10)
ok(r.returncode == 2 and "unknown section [mystery]" in r.stderr, "an unknown section is refused: %s" % r.stderr.strip())
os.makedirs(os.path.join(A, "inner"), exist_ok=True)
with open(bad, "w") as f:
    f.write(GOOD_CONF + f"\n[watch inner]\npath = {A}/inner\ndirection = h5-to-saver\n")
r = subprocess.run([CKPTD, "--config", bad], capture_output=True, text=True, timeout=10)
ok(r.returncode == 2 and "[watch inner]" in r.stderr and "inside [watch a]" in r.stderr,
   "overlapping trees are refused at start, naming both: %s" % r.stderr.strip())
start()
ok(proc.poll() is None, "ckptd starts and writes its status file")
ok(wait_for(lambda: any("READY=1" in m for m in notifications()), 5), "sd_notify READY=1")
ok(wait_for(lambda: any(m.startswith("STATUS=watching 2 tree(s)") for m in notifications()), 5),
   "sd_notify STATUS= with trees, running, queued, done, failed")
ok(wait_for(lambda: any("WATCHDOG=1" in m for m in notifications()), 5), "sd_notify WATCHDOG=1 at half of WatchdogSec")
r = subprocess.run([CKPTD, "--config", CONF], capture_output=True, text=True, timeout=10)
ok(r.returncode == 2 and "in use by another ckptd with pid %d" % proc.pid in r.stderr and os.path.join(T, "state") in r.stderr,
   "a second instance on the same state_dir exits 2 naming it: %s" % r.stderr.strip()[-120:])
ok(proc.poll() is None, "and the first keeps running")
if os.environ.get("CKPTD_DAEMON_ONLY") == "formats":  # a quick subset: the four-formats case alone
    formats()
    proc.send_signal(signal.SIGTERM)
    proc.wait(30)
    print("1..%d" % n)
    sys.exit(0)

# 1. a TF save staged as TensorFlow does it: temp names, data renamed, index renamed, checkpoint last
synth(os.path.join(S, "s1", "model.ckpt-1"), "--size", "3M", "--tensors", "12", "--dtypes", "float32,bfloat16,string")
run1 = os.path.join(A, "run1")
os.makedirs(run1)
shutil.copy(os.path.join(S, "s1", "model.ckpt-1.data-00000-of-00001"), os.path.join(run1, "model.ckpt-1.data-00000-of-00001.tempstate11"))
shutil.copy(os.path.join(S, "s1", "model.ckpt-1.index"), os.path.join(run1, "model.ckpt-1.index.tempstate12"))
time.sleep(0.2)
os.rename(os.path.join(run1, "model.ckpt-1.data-00000-of-00001.tempstate11"), os.path.join(run1, "model.ckpt-1.data-00000-of-00001"))
os.rename(os.path.join(run1, "model.ckpt-1.index.tempstate12"), os.path.join(run1, "model.ckpt-1.index"))
with open(os.path.join(run1, "checkpoint"), "w") as f:
    f.write('model_checkpoint_path: "model.ckpt-1"\nall_model_checkpoint_paths: "model.ckpt-1"\n')
p1 = os.path.join(run1, "model.ckpt-1")
ok(wait_for(lambda: os.path.exists(p1 + ".h5"), 15), "a staged TF save is converted to HDF5")
ok(same(p1, p1 + ".h5"), "the HDF5 output equals the bundle (ckpt diff)")

# 2. a sharded save whose index is written in place before its shards are whole
synth(os.path.join(S, "s2", "model.ckpt-2"), "--size", "4M", "--tensors", "20", "--shard-size", "1M")
run2 = os.path.join(A, "run2")
os.makedirs(run2)
shards = sorted(glob.glob(os.path.join(S, "s2", "model.ckpt-2.data-*")))
shutil.copy(os.path.join(S, "s2", "model.ckpt-2.index"), run2)
for sh in shards[:-1]:
    shutil.copy(sh, run2)
half = os.path.join(run2, os.path.basename(shards[-1]))
with open(shards[-1], "rb") as src, open(half, "wb") as dst:
    dst.write(src.read(1000))
time.sleep(2.5)
p2 = os.path.join(run2, "model.ckpt-2")
ok(not os.path.exists(p2 + ".h5") and not events("job_start", p2), f"an index with {len(shards)} shards, the last one short: not converted")
shutil.copy(shards[-1], half)
ok(wait_for(lambda: os.path.exists(p2 + ".h5"), 15), "converted once its last shard is whole")
ok(same(p2, p2 + ".h5"), "and the output equals the bundle")

# 3. an HDF5 file dropped in gives a bundle and an updated checkpoint file
subprocess.run([CKPT, "synth", "--format", "h5", os.path.join(S, "w.h5"), "--size", "2M", "--tensors", "6"], check=True)
run3 = os.path.join(A, "run3")
os.makedirs(run3)
shutil.move(os.path.join(S, "w.h5"), os.path.join(run3, "w.h5"))
p3 = os.path.join(run3, "w")
ok(wait_for(lambda: os.path.exists(p3 + ".index"), 15), "an HDF5 file dropped in becomes a bundle")
ok(wait_for(lambda: os.path.exists(os.path.join(run3, "checkpoint")) and 'model_checkpoint_path: "w"' in open(os.path.join(run3, "checkpoint")).read(), 5),
   "and the directory's checkpoint file names it")
ok(same(p3 + ".h5", p3), "the bundle equals the HDF5 file")

# 3f. four formats: other directions, completeness, no chaining or ping-pong
formats()

# 3b. the checkpoint file is the trainer's: latest by step, no lost entries, a producer's file untouched
def ckpt_state(d):
    with open(os.path.join(d, "checkpoint")) as f:
        text = f.read()
    latest = [l.split('"')[1] for l in text.splitlines() if l.startswith("model_checkpoint_path:")]
    listed = [l.split('"')[1] for l in text.splitlines() if l.startswith("all_model_checkpoint_paths:")]
    return text, (latest or [None])[0], listed


hs = os.path.join(A, "h5steps")
os.makedirs(hs)
for step in (200, 100):
    subprocess.run([CKPT, "synth", "--format", "h5", os.path.join(S, "m%d.h5" % step), "--size", "64K", "--tensors", "2"], check=True)
    shutil.move(os.path.join(S, "m%d.h5" % step), os.path.join(hs, "model.ckpt-%d.h5" % step))
    ok(wait_for(lambda: os.path.exists(os.path.join(hs, "model.ckpt-%d.index" % step)), 15), "model.ckpt-%d.h5 converted" % step)
time.sleep(0.3)
text, latest, listed = ckpt_state(hs)
ok(latest == "model.ckpt-200" and listed == ["model.ckpt-100", "model.ckpt-200"],
   "model-200 then model-100 converted: latest stays model-200 (latest %s, listed %s)" % (latest, listed))
ok(text.startswith("# ckptd:"), "a checkpoint file ckptd created carries its marker")
many = os.path.join(A, "h5many")
os.makedirs(os.path.join(S, "many"))
for i in range(30):
    subprocess.run([CKPT, "synth", "--format", "h5", os.path.join(S, "many", "model.ckpt-%d.h5" % (i + 1)), "--size", "16K",
                    "--tensors", "1"], check=True)
os.rename(os.path.join(S, "many"), many)
ok(wait_for(lambda: len(glob.glob(os.path.join(many, "*.index"))) == 30, 120), "30 .h5 files dropped at once: 30 bundles")
time.sleep(0.5)
text, latest, listed = ckpt_state(many)
ok(len(listed) == 30 and latest == "model.ckpt-30", "concurrent jobs lose no checkpoint entry (%d listed, latest %s)" % (len(listed), latest))
with open(os.path.join(run1, "checkpoint")) as f:
    trainers = f.read()
subprocess.run([CKPT, "synth", "--format", "h5", os.path.join(S, "exported.h5"), "--size", "64K", "--tensors", "2"], check=True)
shutil.move(os.path.join(S, "exported.h5"), os.path.join(run1, "exported.h5"))
ok(wait_for(lambda: os.path.exists(os.path.join(run1, "exported.index")), 15), "an exported .h5 beside a trainer's checkpoint converts")
time.sleep(0.3)
with open(os.path.join(run1, "checkpoint")) as f:
    ok(f.read() == trainers, "and the trainer's checkpoint file is left byte for byte as it was")
ok(wait_for(lambda: any("maintained by its producer" in l for l in events("checkpoint_file", os.path.join(run1, "exported.h5"))), 5),
   "the log says why it was left alone")

# 3c. HDF5 writers beside the daemon: probes never take a lock a writer trips over, and a file a
# writer still has open (its superblock says so) is not converted, even without HDF5 file locking
WRITER = r"""
import os, sys, time, h5py, numpy as np
mode, path, pause = sys.argv[1], sys.argv[2], float(sys.argv[3])
if mode == "reopen":      # create, close, let the daemon probe it, reopen to add more
    with h5py.File(path, "w") as f:
        f["a"] = np.arange(1000, dtype="f4")
    time.sleep(pause)
    with h5py.File(path, "r+") as f:
        f["b"] = np.arange(10, dtype="i8")
else:                     # one slow save: the file stays open across the settle time
    with h5py.File(path, "w") as f:
        f["a"] = np.arange(1000, dtype="f4")
        f.flush()
        time.sleep(pause)
        f["b"] = np.arange(10, dtype="i8")
"""
wdir = os.path.join(A, "writers")
os.makedirs(wdir)
procs = [subprocess.Popen(["/usr/bin/python3", "-c", WRITER, "reopen", os.path.join(wdir, "r%02d.h5" % i), "%.2f" % (0.55 + 0.02 * i)],
                          stderr=subprocess.PIPE) for i in range(20)]
errs = [p.communicate()[1].decode() for p in procs]
bad = [e for p, e in zip(procs, errs) if p.returncode != 0]
ok(not bad, "20 h5py writers that create, close and reopen their file beside the daemon: %d failed %s"
   % (len(bad), (bad or [""])[0][-100:]))
slow = os.path.join(wdir, "slow.h5")
sp = subprocess.Popen(["/usr/bin/python3", "-c", WRITER, "slow", slow, "2.5"], env=dict(os.environ, HDF5_USE_FILE_LOCKING="FALSE"))
time.sleep(2.0)
ok(not events("job_start", slow) and not os.path.exists(os.path.join(wdir, "slow.index")),
   "an .h5 still open for writing (HDF5 file locking off) is not converted while open")
sp.wait()
ok(wait_for(lambda: os.path.exists(os.path.join(wdir, "slow.index")), 15), "it is converted once its writer closes it")
r = subprocess.run([CKPT, "ls", os.path.join(wdir, "slow")], capture_output=True, text=True)
ok(r.returncode == 0 and len([l for l in r.stdout.splitlines() if l.strip()]) >= 2 and " b" in r.stdout + " ",
   "with both of its tensors")
ok(len(events("job_start", slow)) == 1, "and only once")
subprocess.run([CKPT, "synth", "--format", "h5", os.path.join(S, "copied.h5"), "--size", "2M", "--tensors", "4"], check=True)
with open(os.path.join(S, "copied.h5"), "rb") as f:
    whole = f.read()
copied = os.path.join(wdir, "copied.h5")
with open(copied, "wb") as f:   # a transfer that stalls half-way for longer than settle_seconds
    f.write(whole[:len(whole) // 2])
time.sleep(2.5)
ok(not events("job_failed", copied) and not events("job_start", copied),
   "a half-copied .h5 stalled past settle_seconds is 'not complete yet', not a failure")
with open(copied, "ab") as f:
    f.write(whole[len(whole) // 2:])
ok(wait_for(lambda: os.path.exists(os.path.join(wdir, "copied.index")), 15), "and it converts once the copy completes")

# 4. no ping-pong in the 'both' tree, and each source converted exactly once
time.sleep(3)
ok(len(events("job_done", p1)) == 1 and len(events("job_done", p2)) == 1 and len(events("job_done", p3 + ".h5")) == 1,
   "each source converted exactly once")
nw = len([l for l in events("job_start") if "/writers/" in l])
nw += len([l for l in events("job_start") if f'path="{T}/fmt/' in l or f'path="{T}/pp/' in l or
           f'path="{T}/torch/' in l])  # 3f's trees
ok(len(events("job_start")) - nw == 3 + 2 + 30 + 1, "no conversion back and forth (%d jobs)" % len(events("job_start")))

# 5. a partial checkpoint is never converted; a corrupt one fails and the daemon keeps serving
run4 = os.path.join(A, "run4")
os.makedirs(run4)
shutil.copy(os.path.join(S, "s2", "model.ckpt-2.index"), os.path.join(run4, "part.index"))
run5 = os.path.join(A, "run5")
os.makedirs(run5)
shutil.copy(os.path.join(S, "s1", "model.ckpt-1.data-00000-of-00001"), os.path.join(run5, "bad.data-00000-of-00001"))
with open(os.path.join(S, "s1", "model.ckpt-1.index"), "rb") as f:
    idx = bytearray(f.read())
idx[20] ^= 0x55
with open(os.path.join(run5, "bad.index"), "wb") as f:
    f.write(idx)
p5 = os.path.join(run5, "bad")
ok(wait_for(lambda: events("job_failed", p5), 10), "a corrupt checkpoint is logged as failed")
ok("bad.index" in (events("job_failed", p5) or [""])[0], "the failure names the file")
time.sleep(1.5)
ok(not glob.glob(os.path.join(run4, "*.h5")) and not events("job_start", os.path.join(run4, "part")),
   "a partial checkpoint (shards missing) is never converted")
synth(os.path.join(A, "run6", "after.ckpt-1"), "--size", "1M", "--tensors", "4")
ok(wait_for(lambda: os.path.exists(os.path.join(A, "run6", "after.ckpt-1.h5")), 15) and proc.poll() is None,
   "the daemon keeps serving after a failure")

# 5b. a worker that crashes mid-conversion (as libhdf5 does on some hostile files) costs that job only
def worker_pids(src):
    pids = []
    for d in glob.glob("/proc/[0-9]*"):
        try:
            with open(os.path.join(d, "cmdline"), "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if b"--worker" in argv and src.encode() in argv:
            pids.append(int(os.path.basename(d)))
    return pids


synth(os.path.join(S, "crash", "crash.ckpt-1"), "--size", "400M", "--tensors", "4", "--spread", "2")
crash = os.path.join(A, "crash")
os.makedirs(crash)
pc = os.path.join(crash, "crash.ckpt-1")
drop(os.path.join(S, "crash", "crash.ckpt-1"), crash)
ok(wait_for(lambda: events("job_start", pc), 20), "a conversion starts in a worker process")
line = (events("job_start", pc) or [""])[0]
wpid = int(line.split("worker pid ")[1].split(")")[0]) if "worker pid " in line else 0
ok(wpid > 0 and wpid != proc.pid and wpid in worker_pids(pc), "the job runs in a child process (pid %d), not in the daemon" % wpid)
if wpid:
    os.kill(wpid, signal.SIGABRT)
ok(wait_for(lambda: events("job_failed", pc), 15), "a worker dying by a signal fails its job")
ok("died by signal 6" in (events("job_failed", pc) or [""])[0], "the log says how the worker died: %s" % (events("job_failed", pc) or [""])[0][-120:])
ok(proc.poll() is None, "the daemon survives its worker's crash")
ok(not os.path.exists(pc + ".h5") and not glob.glob(os.path.join(crash, ".*ckptd-tmp*")),
   "nothing under the final name and the dead worker's temporaries removed")
synth(os.path.join(A, "run5b", "next.ckpt-1"), "--size", "1M", "--tensors", "4")
ok(wait_for(lambda: os.path.exists(os.path.join(A, "run5b", "next.ckpt-1.h5")), 15), "the next checkpoint converts as usual")
time.sleep(1)
ok(len(events("job_start", pc)) == 1, "the crashed source is not retried until it changes")

# 5c. a hostile .h5 that crashes libhdf5 itself (issue 7's mutants): it costs one job, never the daemon
mdir = os.path.join(S, "mutants")
os.makedirs(mdir)
subprocess.run(["/usr/bin/python3", os.path.join(os.path.dirname(os.path.abspath(__file__)), "h5_mutants.py"), mdir, "300", "200"],
               check=True)
crasher = None
senv = dict(os.environ, CKPTD_NO_ISOLATE="1",
            ASAN_OPTIONS=(os.environ.get("ASAN_OPTIONS", "") + ":handle_segv=0:allocator_may_return_null=1:detect_leaks=0").lstrip(":"))
for k in range(300, 500):
    f = os.path.join(mdir, "m%04d.h5" % k)
    try:
        r = subprocess.run([CKPT, "ls", f], capture_output=True, env=senv, timeout=10)
    except subprocess.TimeoutExpired:
        continue
    if r.returncode < 0:  # killed by a signal inside libhdf5, in-process
        crasher = f
        break
ok(crasher is not None, "a seeded mutant that crashes libhdf5 in-process is found (%s)" % crasher)
if crasher:
    hdir = os.path.join(A, "hostile")
    os.makedirs(hdir)
    hostile = os.path.join(hdir, "model.ckpt-7.h5")
    shutil.copy(crasher, hostile)
    ok(wait_for(lambda: events("job_failed", hostile), 20), "the daemon records the crashing file as failed")
    line = (events("job_failed", hostile) or [""])[0]
    ok("worker (pid" in line and "treated as a corrupt file" in line,
       "naming the worker's end: %s" % line[-150:])
    ok(proc.poll() is None, "and keeps running")
    ok(not [f for f in os.listdir(hdir) if f != "model.ckpt-7.h5"], "nothing is written beside the hostile file")
    synth(os.path.join(A, "run5c", "after.ckpt-1"), "--size", "1M", "--tensors", "4")
    ok(wait_for(lambda: os.path.exists(os.path.join(A, "run5c", "after.ckpt-1.h5")), 15), "the next checkpoint still converts")
    time.sleep(2.5)
    ok(len(events("job_failed", hostile)) == 1, "the hostile file is not retried until it changes")

# 6. directories created in a burst
deep = os.path.join(A, "b1", "b2", "b3")
os.makedirs(deep)
synth(os.path.join(deep, "deep.ckpt-1"), "--size", "1M", "--tensors", "3")
ok(wait_for(lambda: os.path.exists(os.path.join(deep, "deep.ckpt-1.h5")), 15), "mkdir -p a/b/c then files at once: seen")

# 6b. directories moved in or renamed, as Orbax and staging scripts do; exact temporary names only.
# Rescans are made rare here, so only inotify events can find these in time.
reload(GOOD_CONF.replace("rescan_seconds = 2", "rescan_seconds = 600"))
orb = os.path.join(A, "orb")
otmp = os.path.join(orb, "ckpt_5.orbax-checkpoint-tmp-1699999999")
synth(os.path.join(otmp, "model.ckpt-5"), "--size", "1M", "--tensors", "3")
time.sleep(1.5)
ok(not glob.glob(os.path.join(otmp, "*.h5")), "nothing is converted inside an Orbax temporary directory")
ofinal = os.path.join(orb, "ckpt_5")
os.rename(otmp, ofinal)
ok(wait_for(lambda: os.path.exists(os.path.join(ofinal, "model.ckpt-5.h5")), 10),
   "a directory renamed into place is scanned at once (not at the next rescan)")
synth(os.path.join(ofinal, "model.ckpt-6"), "--size", "1M", "--tensors", "3")
ok(wait_for(lambda: os.path.exists(os.path.join(ofinal, "model.ckpt-6.h5")), 10),
   "files written later into the renamed directory are seen under its new name")
synth(os.path.join(S, "mvin", "model.ckpt-9"), "--size", "1M", "--tensors", "3")
os.rename(os.path.join(S, "mvin"), os.path.join(A, "run42"))
ok(wait_for(lambda: os.path.exists(os.path.join(A, "run42", "model.ckpt-9.h5")), 10), "mv staging run42 from outside the tree")
synth(os.path.join(A, "temps", "model_temperature.ckpt-5"), "--size", "1M", "--tensors", "3")
ok(wait_for(lambda: os.path.exists(os.path.join(A, "temps", "model_temperature.ckpt-5.h5")), 10),
   "a name with '_temp' inside (model_temperature.ckpt-5) is converted")
reload(GOOD_CONF)

# 7. a tree without events (rescans only)
synth(os.path.join(R, "x", "nfs.ckpt-1"), "--size", "1M", "--tensors", "3")
ok(wait_for(lambda: os.path.exists(os.path.join(R, "x", "nfs.ckpt-1.h5")), 15), "a tree without inotify events is caught by the rescan")

# 7b. rescans of converted, unchanged checkpoints cost stats only: no index parse, no probe
import json
def status():
    with open(os.path.join(T, "state", "status.json")) as f:
        return json.load(f)
def checks_after(seconds):
    time.sleep(seconds)
    return status()["checks_since_start"]
c0 = checks_after(1.0)
c1 = checks_after(4.5)  # two rescans of every tree (rescan_seconds = 2)
ok(c1 == c0, "two rescans of %d settled sources ran no completeness check (%d -> %d)" % (len(events("job_done")), c0, c1))
os.utime(os.path.join(R, "x", "nfs.ckpt-1.index"))
ok(wait_for(lambda: status()["checks_since_start"] > c1, 6), "a touched file is checked again at the next rescan")
w0 = status()["waiting"]
os.unlink(os.path.join(run4, "part.index"))
ok(w0 >= 1 and wait_for(lambda: status()["waiting"] == w0 - 1, 6),
   "a waiting checkpoint whose files are deleted is forgotten at the next rescan (waiting %d -> %d)" % (w0, status()["waiting"]))

# 7c. a path skipped for a reason is logged once, not at every rescan
lk = os.path.join(A, "links")
os.makedirs(lk)
os.symlink("/etc", os.path.join(lk, "etc-link"))
os.symlink(os.path.join(A, "run1", "model.ckpt-1.index"), os.path.join(lk, "model.ckpt-1.index"))
time.sleep(5)  # two rescans at least
sk = [l for l in events("skip_path") if "/links/" in l]
ok(len(sk) == 2 and all("symbolic link" in l for l in sk), "symbolic links are logged once each as skipped (%d lines)" % len(sk))
ok(not glob.glob(os.path.join(lk, "*.h5")), "and never followed")

# 8. SIGHUP with a bad config keeps the running one
with open(CONF, "w") as f:
    f.write(GOOD_CONF + "\n[watch broken]\npath = /nonexistent/xyz\nbogus_key = 1\n")
proc.send_signal(signal.SIGHUP)
ok(wait_for(lambda: events("reload_failed"), 5), "a bad config on SIGHUP is refused")
ok("ckptd.ini:" in (events("reload_failed") or [""])[0], "the message names file and line: %s" % (events("reload_failed") or [""])[0][-90:])
synth(os.path.join(A, "run7", "later.ckpt-1"), "--size", "1M", "--tensors", "3")
ok(wait_for(lambda: os.path.exists(os.path.join(A, "run7", "later.ckpt-1.h5")), 15), "and the old config keeps working")
with open(CONF, "w") as f:
    f.write(GOOD_CONF)
proc.send_signal(signal.SIGHUP)
ok(wait_for(lambda: events("reload"), 5), "a good config reloads")
ok(any("RELOADING=1\nMONOTONIC_USEC=" in m for m in notifications()), "sd_notify RELOADING=1 with MONOTONIC_USEC")

# 9. a tree added by SIGHUP, on a small filesystem that is full: the job waits, then succeeds
FULL = os.path.join(T, "full")
os.makedirs(FULL)
mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", FULL], capture_output=True).returncode == 0
if not mounted:
    for what in ("a tree added by SIGHUP", "a full disk makes the job retry", "it succeeds once there is room", "a tree removed by SIGHUP"):
        n += 1
        print("ok %d - # SKIP %s: cannot mount a small tmpfs here (not root?)" % (n, what))
else:
    with open(CONF, "w") as f:
        f.write(GOOD_CONF + f"\n[watch full]\npath = {FULL}\ndirection = saver-to-h5\nmin_free = 0\n")
    proc.send_signal(signal.SIGHUP)
    ok(wait_for(lambda: any(FULL in l for l in events("watch")), 5), "a tree added by SIGHUP is watched without a restart")
    with open(os.path.join(FULL, "filler"), "wb") as f:
        f.write(b"\0" * (2 << 20))
    synth(os.path.join(S, "fs", "fs.ckpt-1"), "--size", "2500K", "--tensors", "3")
    drop(os.path.join(S, "fs", "fs.ckpt-1"), FULL)
    pf = os.path.join(FULL, "fs.ckpt-1")
    ok(wait_for(lambda: events("disk_guard", pf), 15) and not events("job_start", pf) and not os.path.exists(pf + ".h5")
       and not glob.glob(os.path.join(FULL, ".*ckptd-tmp*")),
       "a disk too full for the output holds the job back (even with min_free = 0), nothing written: %s" % ((events("disk_guard", pf) or [""])[0][-110:]))
    os.unlink(os.path.join(FULL, "filler"))
    ok(wait_for(lambda: os.path.exists(pf + ".h5"), 25) and same(pf, pf + ".h5"), "it succeeds once there is room (the guard looks every 10 s)")
    with open(CONF, "w") as f:
        f.write(GOOD_CONF)
    proc.send_signal(signal.SIGHUP)
    ok(wait_for(lambda: any("no longer watching [watch full]" in l for l in log().splitlines()), 5), "a tree removed by SIGHUP")
    subprocess.run(["umount", "-l", FULL])

# 9-. config lifecycle: a tree whose path does not exist yet is a warning (file:line), watched once
# it appears; a configuration with no [watch] is an error
LATER = os.path.join(T, "later", "run1")
lc = os.path.join(T, "lifecycle.ini")
with open(lc, "w") as f:
    f.write(GOOD_CONF + f"\n[watch later]\ndirection = saver-to-h5\npath = {LATER}\n")
r = subprocess.run([CKPTD, "--config", lc, "--check-config"], capture_output=True, text=True, timeout=10)
line_no = (GOOD_CONF + "\n[watch later]\ndirection = saver-to-h5\n").count("\n") + 1
ok(r.returncode == 0 and ("lifecycle.ini:%d: [watch later]: path %s does not exist yet" % (line_no, LATER)) in r.stderr,
   "--check-config: a missing tree path is a warning naming file and line: %s" % r.stderr.strip()[-150:])
shutil.copy(lc, CONF)
nr = len(events("reload"))
proc.send_signal(signal.SIGHUP)
# the warning is logged just after the reload line: wait for both
ok(wait_for(lambda: len(events("reload")) > nr, 5) and
   wait_for(lambda: any("does not exist yet" in l for l in events("config")), 5),
   "a reload with a missing tree is accepted, the warning logged")
synth(os.path.join(S, "later", "l.ckpt-1"), "--size", "64K", "--tensors", "2")
os.makedirs(LATER)
drop(os.path.join(S, "later", "l.ckpt-1"), LATER)
ok(wait_for(lambda: os.path.exists(os.path.join(LATER, "l.ckpt-1.h5")), 15), "once the path appears it is watched and its checkpoint converted")
with open(lc, "w") as f:
    f.write("[ckptd]\nworkers = 2\n")
r = subprocess.run([CKPTD, "--config", lc, "--check-config"], capture_output=True, text=True, timeout=10)
ok(r.returncode == 2 and "no [watch NAME] section" in r.stderr, "a configuration without [watch] is an error: %s" % r.stderr.strip())
reload(GOOD_CONF)

# 9=. --once converts what is complete now and exits (three pending checkpoints, one still being
# written); --dry-run beside the live daemon prints what it would do and touches nothing
OD = os.path.join(T, "oncetree")
os.makedirs(OD)
for k in (1, 2, 3):
    synth(os.path.join(OD, "o.ckpt-%d" % k), "--size", "256K", "--tensors", "2")
old_time = time.time() - 60
for f in os.listdir(OD):
    os.utime(os.path.join(OD, f), (old_time, old_time))
synth(os.path.join(OD, "o.ckpt-4"), "--size", "64K", "--tensors", "2")  # written just now
once_conf = os.path.join(T, "once.ini")
with open(once_conf, "w") as f:
    f.write(f"[ckptd]\nstate_dir = {T}/once-state\nsettle_seconds = 30\n[watch o]\npath = {OD}\ndirection = saver-to-h5\n")
t0 = time.time()
r = subprocess.run([CKPTD, "--config", once_conf, "--dry-run"], capture_output=True, text=True, timeout=60)
ok(r.returncode == 0 and r.stdout.count("convert ") == 3 and "o.ckpt-4: written to within settle_seconds" in r.stdout
   and not glob.glob(os.path.join(OD, "*.h5")) and not os.path.exists(os.path.join(T, "once-state")),
   "--dry-run lists three conversions and the one still written, converts and writes nothing:\n# " + r.stdout.strip().replace("\n", "\n# "))
r = subprocess.run([CKPTD, "--config", once_conf, "--once"], capture_output=True, text=True, timeout=120)
ok(r.returncode == 0 and all(os.path.exists(os.path.join(OD, "o.ckpt-%d.h5" % k)) for k in (1, 2, 3))
   and not os.path.exists(os.path.join(OD, "o.ckpt-4.h5")) and "once: 3 converted" in r.stdout,
   "--once converts the three complete checkpoints, leaves the one being written, exits 0 in %.1f s: %s" % (time.time() - t0, r.stdout.strip().splitlines()[-1:]))
ok(all(same(os.path.join(OD, "o.ckpt-%d" % k), os.path.join(OD, "o.ckpt-%d.h5" % k)) for k in (1, 2, 3)), "and their outputs equal their bundles")
r = subprocess.run([CKPTD, "--config", once_conf, "--once"], capture_output=True, text=True, timeout=120)
ok(r.returncode == 0 and "once: 0 converted" in r.stdout and r.stdout.count("converted before") == 3, "a second --once redoes nothing")
before = open(os.path.join(T, "state", "status.json")).read()
starts = len(events("job_start"))
r = subprocess.run([CKPTD, "--config", CONF, "--dry-run"], capture_output=True, text=True, timeout=60)
ok(r.returncode in (0, 1) and "dry run:" in r.stdout and proc.poll() is None and len(events("job_start")) == starts,
   "--dry-run beside the live daemon on its own state_dir runs (no lock taken) and starts nothing: %s" % r.stdout.strip().splitlines()[-1:])

# 9+. ckpt ctl through the control socket: pause/resume a tree, skip, retry at once, reconvert
def ctl(*args):
    r = subprocess.run([CKPT, "ctl", "--config", CONF] + list(args), capture_output=True, text=True, timeout=20)
    return r.returncode, (r.stdout + r.stderr).strip()
CT = os.path.join(A, "ctl")
os.makedirs(CT)
rc, out = ctl("pause", "a")
ok(rc == 0 and "paused" in out, "ckpt ctl pause a: %s" % out)
synth(os.path.join(S, "ct", "c.ckpt-1"), "--size", "256K", "--tensors", "2")
synth(os.path.join(S, "ct", "c.ckpt-2"), "--size", "256K", "--tensors", "2")
drop(os.path.join(S, "ct", "c.ckpt-1"), CT)
drop(os.path.join(S, "ct", "c.ckpt-2"), CT)
time.sleep(3)
ok(not glob.glob(os.path.join(CT, "*.h5")) and not events("job_start", os.path.join(CT, "c.ckpt-1")),
   "in a paused tree complete checkpoints wait")
rc, out = ctl("skip", os.path.join(CT, "c.ckpt-2.index"))
ok(rc == 0 and "skipped" in out, "ckpt ctl skip PREFIX.index: %s" % out)
rc, out = ctl("resume", "a")
ok(rc == 0 and wait_for(lambda: os.path.exists(os.path.join(CT, "c.ckpt-1.h5")), 15), "ckpt ctl resume a: the waiting one converts (%s)" % out)
time.sleep(1)
ok(not os.path.exists(os.path.join(CT, "c.ckpt-2.h5")), "the skipped one does not")
rc, out = ctl("retry", p5)
ok(rc == 0 and wait_for(lambda: len(events("job_failed", p5)) >= 2, 10),
   "ckpt ctl retry of a failed checkpoint tries it again at once (still corrupt: failed again): %s" % out)
before = os.stat(os.path.join(CT, "c.ckpt-1.h5")).st_mtime_ns
rc, out = ctl("reconvert", os.path.join(CT, "c.ckpt-1"))
ok(rc == 0 and wait_for(lambda: os.stat(os.path.join(CT, "c.ckpt-1.h5")).st_mtime_ns != before, 15) and same(os.path.join(CT, "c.ckpt-1"), os.path.join(CT, "c.ckpt-1.h5")),
   "ckpt ctl reconvert converts a done checkpoint again: %s" % out)
rc, out = ctl("retry", os.path.join(T, "nowhere", "x.h5"))
ok(rc == 1 and "not a checkpoint ckptd has seen" in out, "an unknown path is refused: %s" % out)
rc, out = ctl("pause", "nosuchtree")
ok(rc == 1 and "no tree [watch nosuchtree]" in out, "an unknown tree is refused: %s" % out)
rc, out = ctl("frobnicate", "x")
ok(rc == 2, "an unknown verb is a usage error")
sockp = os.path.join(T, "ctl.sock")
ok(oct(os.stat(sockp).st_mode & 0o777) == "0o660", "the socket (control_socket) is mode 0660")
r = subprocess.run(["/usr/bin/python3", "-c", """
import socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(b"x" * 100000)
try:
    print(s.recv(200).decode().strip())
except OSError as e:
    print("closed", e)
""", sockp], capture_output=True, text=True, timeout=20)
ok(proc.poll() is None and ("error" in r.stdout or "closed" in r.stdout), "a client sending 100 kB of garbage gets an error, the daemon lives: %s" % r.stdout.strip()[:80])
# 9*. per-tree settings: workers = 1 (one job of the tree at a time), hooks with the job in their
# environment and a timeout, output mode and group
import grp
HK = os.path.join(T, "hooks")
HO = os.path.join(T, "hooks-out")
os.makedirs(HK)
os.makedirs(HO)
group = grp.getgrgid(os.getgid()).gr_name
reload(GOOD_CONF + f"""
[watch hooks]
path = {HK}
direction = saver-to-h5
workers = 1
priority = 3
settle_seconds = 0.2
hook_timeout = 2
output_mode = 0640
output_group = {group}
on_done = env | grep ^CKPTD_ > "{HO}/$(basename "$CKPTD_SOURCE").env"; case "$CKPTD_SOURCE" in *slow*) sleep 30;; esac
on_failed = echo "$CKPTD_REASON|$CKPTD_ERROR" > "{HO}/failed.txt"
""")
for k in (1, 2, 3):
    synth(os.path.join(S, "hk", "h.ckpt-%d" % k), "--size", "40M", "--tensors", "4")
synth(os.path.join(S, "hk", "slow.ckpt-9"), "--size", "64K", "--tensors", "2")
for k in (1, 2, 3):
    drop(os.path.join(S, "hk", "h.ckpt-%d" % k), HK)
ok(wait_for(lambda: all(events("job_done", os.path.join(HK, "h.ckpt-%d" % k)) for k in (1, 2, 3)), 60), "three checkpoints in a workers = 1 tree convert")
seq = [l.split()[2] for l in log().splitlines() if ("event=job_start" in l or "event=job_done" in l) and HK + "/" in l]
ok(seq == ["event=job_start", "event=job_done"] * 3, "one at a time: starts and ends alternate (%s)" % [x[6:] for x in seq])
st = os.stat(os.path.join(HK, "h.ckpt-1.h5"))
ok(st.st_mode & 0o777 == 0o640 and st.st_gid == os.getgid(), "outputs get output_mode 0640 and output_group %s (%o, gid %d)" % (group, st.st_mode & 0o777, st.st_gid))
envf = os.path.join(HO, "h.ckpt-1.env")
ok(wait_for(lambda: os.path.exists(envf), 10), "on_done ran after the conversion")
env = dict(l.strip().split("=", 1) for l in open(envf) if "=" in l)
ok(env.get("CKPTD_EVENT") == "done" and env.get("CKPTD_SOURCE") == os.path.join(HK, "h.ckpt-1") and
   env.get("CKPTD_OUTPUT") == os.path.join(HK, "h.ckpt-1.h5") and env.get("CKPTD_DIRECTION") == "saver-to-h5" and
   env.get("CKPTD_TREE") == "hooks" and int(env.get("CKPTD_BYTES", "0")) > 0 and float(env.get("CKPTD_SECONDS", "-1")) >= 0,
   "its environment has the source, output, direction, tree, bytes and duration: %s" % sorted(env.items())[:4])
ok(wait_for(lambda: any("hook exited with status 0" in l and "h.ckpt-1" in l for l in events("hook")), 10), "its exit status is logged")
drop(os.path.join(S, "hk", "slow.ckpt-9"), HK)
ok(wait_for(lambda: any("killed after its timeout" in l for l in events("hook")), 15) and proc.poll() is None,
   "a hook that outlives hook_timeout is killed (with what it started), logged, the daemon unharmed")
shutil.copy(os.path.join(S, "s1", "model.ckpt-1.data-00000-of-00001"), os.path.join(HK, "bad.ckpt-1.data-00000-of-00001"))
with open(os.path.join(HK, "bad.ckpt-1.index"), "wb") as f:
    f.write(idx)  # the corrupt index of case 5
ok(wait_for(lambda: os.path.exists(os.path.join(HO, "failed.txt")), 15) and open(os.path.join(HO, "failed.txt")).read().startswith("corrupt|"),
   "on_failed runs for a failed checkpoint, with its reason and error: %s" % (open(os.path.join(HO, "failed.txt")).read().strip()[:100] if os.path.exists(os.path.join(HO, "failed.txt")) else None))
# priority: with both workers busy, queued jobs of a higher-priority tree start before older
# ones of a lower-priority tree
PL, PH = os.path.join(T, "plow"), os.path.join(T, "phigh")
os.makedirs(PL)
os.makedirs(PH)
reload(GOOD_CONF + f"""
[watch plow]
path = {PL}
direction = saver-to-h5
settle_seconds = 0.2
min_free = 0
[watch phigh]
path = {PH}
direction = saver-to-h5
settle_seconds = 0.2
priority = 5
min_free = 0
""")
for name in ("big1", "big2"):
    synth(os.path.join(S, "pr", name + ".ckpt-1"), "--size", "2G", "--tensors", "4", "--spread", "2")
for name in ("lo1", "lo2", "hi1", "hi2"):
    synth(os.path.join(S, "pr", name + ".ckpt-1"), "--size", "64K", "--tensors", "2")
for suffix in (".data-00000-of-00001", ".index"):  # both data files first: the two become complete together
    for name in ("big1", "big2"):
        shutil.copy(os.path.join(S, "pr", name + ".ckpt-1" + suffix), PL)
busy = wait_for(lambda: len([l for l in events("job_start") if "/plow/big" in l]) == 2, 20)
for name in ("lo1", "lo2"):
    drop(os.path.join(S, "pr", name + ".ckpt-1"), PL)
wait_for(lambda: all(events("job_queued", os.path.join(PL, n + ".ckpt-1")) for n in ("lo1", "lo2")), 10)
for name in ("hi1", "hi2"):
    drop(os.path.join(S, "pr", name + ".ckpt-1"), PH)
wait_for(lambda: all(events("job_queued", os.path.join(PH, n + ".ckpt-1")) for n in ("hi1", "hi2")), 10)
contended = busy and not any(events("job_done", os.path.join(PL, "big%d.ckpt-1" % k)) for k in (1, 2))
ok(wait_for(lambda: all(events("job_done", os.path.join(d, n + ".ckpt-1")) for d, n in
                        ((PL, "lo1"), (PL, "lo2"), (PH, "hi1"), (PH, "hi2"))), 90), "all of them convert")
order = [re.search(r'/(lo\d|hi\d)\.ckpt-1"', l).group(1) for l in events("job_start") if re.search(r'/(plow|phigh)/(lo|hi)\d\.ckpt-1"', l)]
queued = [re.search(r'/(lo\d|hi\d)\.ckpt-1"', l).group(1) for l in events("job_queued") if re.search(r'/(plow|phigh)/(lo|hi)\d\.ckpt-1"', l)]
ok(contended and sorted(order[:2]) == ["hi1", "hi2"],
   "the higher-priority tree's jobs start first, though queued later (both workers busy while all four queued: %s): queued %s, started %s" % (contended, queued, order))
wait_for(lambda: all(events("job_done", os.path.join(PL, "big%d.ckpt-1" % k)) for k in (1, 2)), 120)
shutil.rmtree(PL)
shutil.rmtree(PH)

reload(GOOD_CONF)

# 9a. progress: during a 2.5 GB conversion the status file is rewritten at least every 2 s with
# the job's bytes done (growing), total, rate, ETA, worker pid and start time; ckpt status shows it
synth(os.path.join(S, "prog", "p.ckpt-1"), "--size", "2560M", "--tensors", "6", "--spread", "2")
pd = os.path.join(A, "prog")
os.makedirs(pd)
drop(os.path.join(S, "prog", "p.ckpt-1"), pd)
pp = os.path.join(pd, "p.ckpt-1")
samples, shown, t_start = [], "", time.time()
while time.time() - t_start < 180 and not events("job_done", pp) and not events("job_failed", pp):
    try:
        st = status()
    except ValueError:
        continue
    for j in st["running_jobs"]:
        if j["source"] == pp:
            samples.append((st["updated_at"], j["bytes_done"], j["bytes_total"], j["pid"], j["rate"], j["eta"], j["started_at"]))
            if not shown:
                shown = subprocess.run([CKPT, "status", os.path.join(T, "state", "status.json")], capture_output=True, text=True).stdout
    time.sleep(0.1)
took = time.time() - t_start
done_values = sorted(set(x[1] for x in samples))
ok(len(done_values) >= 2 and done_values[-1] > done_values[0],
   "progress grows in the status file during the job (%d rewrites seen, bytes done %s, job took %.1f s)"
   % (len(set(x[0] for x in samples)), [d >> 20 for d in done_values][:8], took))
ok(samples and all(x[2] >= (2500 << 20) and x[3] > 0 and x[6] > 0 for x in samples if x[1] > 0) and
   any(x[4] > 0 and x[5] >= 0 for x in samples),
   "each carries the total, the worker's pid, its start time, a rate and an ETA: %s" % (samples[-1:],))
stamps = sorted(set(x[0] for x in samples))
gaps = [b - a for a, b in zip(stamps, stamps[1:])]
ok(len(stamps) >= 2 and max(gaps) <= 2.5, "rewritten at least every 2 s while it runs (%d rewrites seen, largest gap %s s)" % (len(stamps), round(max(gaps), 3) if gaps else None))
ok(pp in shown and "%" in shown and "saver-to-h5" in shown, "ckpt status shows the job in its table:\n# " + shown.replace("\n", "\n# "))
r = subprocess.run([CKPT, "status", "--json", os.path.join(T, "state", "status.json")], capture_output=True, text=True)
ok(r.returncode == 0 and json.loads(r.stdout)["daemon"] == "ckptd", "ckpt status --json prints the status file")

# metrics: Prometheus textfile names and labels, each series with HELP and TYPE
def prom():
    series, helps, types = {}, set(), set()
    with open(PROM) as f:
        for line in f:
            line = line.rstrip("\n")
            if line.startswith("# HELP "):
                helps.add(line.split()[2])
            elif line.startswith("# TYPE "):
                types.add(line.split()[2])
            elif line:
                m = re.match(r'^([a-z_]+)(\{[^}]*\})? (-?[0-9.e+]+|\+Inf)$', line)
                if not m:
                    raise ValueError("bad line: %r" % line)
                series[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return series, helps, types
ok(wait_for(lambda: prom()[0].get('ckptd_last_success_timestamp_seconds{tree="a"}', 0) >= t_start - 1, 5) and
   prom()[0].get('ckptd_jobs_total{direction="saver-to-h5",outcome="done"}', 0) >= 1, "metrics: jobs by direction and outcome, bytes")
series, helps, types = prom()
base = lambda k: re.sub(r'(_bucket|_sum|_count)$', '', k.split("{")[0])
ok(all(base(k) in helps and base(k) in types for k in series), "every series has HELP and TYPE (%d series)" % len(series))
want = ['ckptd_converted_bytes_total{direction="saver-to-h5"}', 'ckptd_job_duration_seconds_count{direction="saver-to-h5"}',
        'ckptd_job_duration_seconds_bucket{direction="saver-to-h5",le="+Inf"}', 'ckptd_queue_length', 'ckptd_jobs_running',
        'ckptd_watched_directories', 'ckptd_rescan_duration_seconds', 'ckptd_last_success_timestamp_seconds{tree="a"}',
        'ckptd_failures_total{reason="corrupt"}', 'ckptd_filesystem_free_bytes{tree="a"}', 'ckptd_disk_guard_total{tree="a"}']
ok(all(k in series for k in want), "the series an operator alerts on are there: %s" % [k for k in want if k not in series])
ok(series['ckptd_converted_bytes_total{direction="saver-to-h5"}'] >= 1400 << 20 and series['ckptd_last_success_timestamp_seconds{tree="a"}'] > t_start - 1
   and series['ckptd_filesystem_free_bytes{tree="a"}'] > 0,
   "bytes converted, last success and free bytes are real values: %s" % [(k, v) for k, v in series.items() if "bytes" in k or "success" in k])
shutil.rmtree(pd)

# blocked: a read-only output directory is job_blocked (not retried for ever); once writable, converted
BL = os.path.join(A, "blocked")
os.makedirs(BL)
as_root = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", BL], capture_output=True).returncode == 0
synth(os.path.join(S, "bl", "b.ckpt-3"), "--size", "1M", "--tensors", "2")
drop(os.path.join(S, "bl", "b.ckpt-3"), BL)
pbl = os.path.join(BL, "b.ckpt-3")
if as_root:
    subprocess.run(["mount", "-o", "remount,ro", BL], check=True)  # root ignores modes: use a read-only mount
else:
    os.chmod(BL, 0o555)
ok(wait_for(lambda: events("job_blocked", pbl), 20), "a %s output directory: job_blocked: %s"
   % ("read-only" if as_root else "non-writable", (events("job_blocked", pbl) or [""])[0][-160:]))
line = (events("job_blocked", pbl) or [""])[0]
ok(("reason=read_only" in line and "Read-only file system" in line) if as_root else ("reason=permission" in line and "Permission denied" in line),
   "the line keeps the errno text, the path and the reason class")
time.sleep(5)  # two rescans: a blocked job is not retried while nothing changes
ok(len(events("job_start", pbl)) == 1 and not events("job_retry", pbl), "and not retried while nothing changes")
ok(status()["blocked"] >= 1, "the status file counts it as blocked")
if as_root:
    subprocess.run(["mount", "-o", "remount,rw", BL], check=True)
else:
    os.chmod(BL, 0o755)
ok(wait_for(lambda: os.path.exists(pbl + ".h5"), 20) and events("unblock", pbl), "once writable again it converts at the next rescan")
if as_root:
    subprocess.run(["umount", "-l", BL])

# 9c. the disk guard, on a 150 MB tmpfs: a job that would leave less than min_free does not
# start; a running job whose output eats into min_free stops, leaving nothing behind
GD = os.path.join(T, "guard")
os.makedirs(GD)
if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=150m", "tmpfs", GD], capture_output=True).returncode != 0:
    for what in ("a job that would eat into min_free does not start", "it starts once min_free allows",
                 "a running job stops when free space falls under min_free"):
        n += 1
        print("ok %d - # SKIP %s: cannot mount a small tmpfs here (not root?)" % (n, what))
else:
    def guard_conf(min_free):
        reload(GOOD_CONF + f"\n[watch guard]\npath = {GD}\ndirection = both\nmin_free = {min_free}\n")
    guard_conf("130M")
    synth(os.path.join(S, "gd", "g.ckpt-1"), "--size", "30M", "--tensors", "3")
    drop(os.path.join(S, "gd", "g.ckpt-1"), GD)
    pg = os.path.join(GD, "g.ckpt-1")
    ok(wait_for(lambda: events("disk_guard", pg), 15) and not events("job_start", pg) and not os.path.exists(pg + ".h5"),
       "a job that would leave less than min_free does not start: %s" % (events("disk_guard", pg) or [""])[0][-150:])
    ok(wait_for(lambda: prom()[0].get('ckptd_disk_guard_total{tree="guard"}', 0) >= 1, 5), "and it is counted")
    guard_conf("80M")
    t_retry = time.time()
    rc, out = ctl("retry", pg)
    ok(rc == 0 and wait_for(lambda: os.path.exists(pg + ".h5"), 30),
       "it starts once min_free allows it; ckpt ctl retry does not wait for the guard's 10 s (%.1f s: %s)" % (time.time() - t_retry, out))
    ok(time.time() - t_retry < 8, "the retry acted at once")
    # a gzip .h5 of 1 MB holding 100 MB of zeros: its bundle outgrows the guard's estimate
    r = subprocess.run(["/usr/bin/python3", "-c", """
import h5py, numpy, sys
with h5py.File(sys.argv[1], "w") as f:
    f.create_dataset("w", data=numpy.zeros(25 << 20, dtype="float32"), chunks=(1 << 20,), compression="gzip")
""", os.path.join(S, "z.ckpt-2.h5")], capture_output=True, text=True)
    shutil.copy(os.path.join(S, "z.ckpt-2.h5"), os.path.join(GD, ".z.copy"))  # a hidden name is never a source
    os.rename(os.path.join(GD, ".z.copy"), os.path.join(GD, "z.ckpt-2.h5"))
    pz = os.path.join(GD, "z.ckpt-2.h5")
    ok(r.returncode == 0 and wait_for(lambda: any("min_free" in l for l in events("job_retry", pz)), 30),
       "a running job stops when free space falls under min_free, and retries later: %s %s" % ((events("job_retry", pz) or [""])[0][-170:], r.stderr[-200:]))
    ok(not glob.glob(os.path.join(GD, "z.ckpt-2.index")) and not glob.glob(os.path.join(GD, ".*ckptd-tmp*")) and
       "reason=no_space" in (events("job_retry", pz) or [""])[0], "nothing published, no temporary left, reason no_space")
    reload(GOOD_CONF)
    subprocess.run(["umount", "-l", GD])

# 9b. mirror_deletes: retention deletes converted sources, their unchanged outputs follow
M = os.path.join(T, "m")
os.makedirs(M)
reload(GOOD_CONF + f"\n[watch m]\npath = {M}\ndirection = both\nmirror_deletes = yes\n")
synth(os.path.join(M, "t", "model.ckpt-1"), "--size", "1M", "--tensors", "3")
synth(os.path.join(M, "t", "model.ckpt-2"), "--size", "1M", "--tensors", "3")
for name in ("x", "y"):
    subprocess.run([CKPT, "synth", "--format", "h5", os.path.join(S, name + ".h5"), "--size", "64K", "--tensors", "2"], check=True)
    os.makedirs(os.path.join(M, "h"), exist_ok=True)
    shutil.move(os.path.join(S, name + ".h5"), os.path.join(M, "h", name + ".h5"))
mt, mh = os.path.join(M, "t"), os.path.join(M, "h")
ok(wait_for(lambda: all(os.path.exists(p) for p in (os.path.join(mt, "model.ckpt-1.h5"), os.path.join(mt, "model.ckpt-2.h5"),
                                                   os.path.join(mh, "x.index"), os.path.join(mh, "y.index"))), 20),
   "a mirror_deletes tree converts both ways")
time.sleep(0.5)
future = time.time() + 30
os.utime(os.path.join(mt, "model.ckpt-2.h5"), (future, future))  # someone changed this output since
for f in glob.glob(os.path.join(mt, "model.ckpt-1.*")) + glob.glob(os.path.join(mt, "model.ckpt-2.*")) + [os.path.join(mh, "x.h5")]:
    if not f.endswith(".h5") or f.endswith("x.h5"):
        os.unlink(f)
ok(wait_for(lambda: not os.path.exists(os.path.join(mt, "model.ckpt-1.h5")), 10),
   "a deleted bundle's .h5 is removed at the next rescan")
ok(wait_for(lambda: any("output removed" in l for l in events("mirror_delete", os.path.join(mt, "model.ckpt-1"))), 5),
   "logged event=mirror_delete")
ok(wait_for(lambda: not os.path.exists(os.path.join(mh, "x.index")) and not glob.glob(os.path.join(mh, "x.data-*")), 10),
   "a deleted .h5's bundle is removed")
time.sleep(0.3)
text, latest, listed = ckpt_state(mh)
ok(listed == ["y"] and latest == "y", "and leaves the checkpoint file ckptd maintains (%s)" % listed)
ok(wait_for(lambda: any("left alone" in l for l in events("mirror_delete", os.path.join(mt, "model.ckpt-2"))), 10) and
   os.path.exists(os.path.join(mt, "model.ckpt-2.h5")), "an output modified since it was written is left alone")
reload(GOOD_CONF)

# 10. SIGTERM exits cleanly; after a restart nothing done is redone
proc.send_signal(signal.SIGTERM)
try:
    rc = proc.wait(15)
except subprocess.TimeoutExpired:
    rc = None
ok(rc == 0, "SIGTERM: exit status 0 (got %s)" % rc)
ok(any("STOPPING=1" in m for m in notifications()), "sd_notify STOPPING=1")
starts_before = len(events("job_start"))
start()
time.sleep(3)
ok(len(events("job_start")) == starts_before, "after a restart nothing done is redone")

# 11. kill -9 during a conversion: nothing under a final name; the work completes after restart
synth(os.path.join(S, "big", "big.ckpt-1"), "--size", "1G", "--tensors", "4", "--spread", "2")
big = os.path.join(A, "big")
os.makedirs(big)
drop(os.path.join(S, "big", "big.ckpt-1"), big)
pb = os.path.join(big, "big.ckpt-1")
ok(wait_for(lambda: events("job_start", pb), 20), "the big conversion starts")
time.sleep(0.1)
proc.kill()
proc.wait()
left = os.path.exists(pb + ".h5")
temps = glob.glob(os.path.join(big, ".*ckptd-tmp*"))
ok(not left, "kill -9 mid-conversion: no file under the final name (temporaries: %d)" % len(temps))
ok(wait_for(lambda: not worker_pids(pb), 10), "the orphaned worker aborts when its daemon dies")
ok(not os.path.exists(pb + ".h5"), "and publishes nothing")


def instance_id(what):
    """ckptd's instance id (common/fileio.c): FNV-1a 64 of the text, folded to 32 bits."""
    h = 0xcbf29ce484222325
    for b in what.encode():
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return "%08x" % ((h ^ (h >> 32)) & 0xFFFFFFFF)


dead = subprocess.Popen(["true"])
dead.wait()
mine = os.path.join(big, ".old.h5.ckptd-tmp.%s-%d.0" % (instance_id(socket.gethostname() + "\n" + os.path.realpath(os.path.join(T, "state"))), dead.pid))
theirs = os.path.join(big, ".old.h5.ckptd-tmp.%s-%d.1" % ("0badc0de", dead.pid))
for t in (mine, theirs):
    open(t, "w").close()
start()
ok(wait_for(lambda: os.path.exists(pb + ".h5"), 60), "after restart the conversion completes")
ok(same(pb, pb + ".h5"), "and its output equals the bundle")
ok(glob.glob(os.path.join(big, ".*ckptd-tmp*")) == [theirs],
   "temporaries of the crashed run are removed (left: %s)" % glob.glob(os.path.join(big, ".*ckptd-tmp*")))
ok(not os.path.exists(mine) and os.path.exists(theirs),
   "start-up removes only its own instance's temporaries: another host's or state_dir's stays")
os.unlink(theirs)

# 11b. SIGTERM during a conversion that outlasts stop_timeout: aborted cleanly, resumed at the next start
reload(GOOD_CONF.replace("stop_timeout = 10", "stop_timeout = 0.5"))
big2 = os.path.join(A, "big2")
os.makedirs(big2)
shutil.copy(os.path.join(S, "big", "big.ckpt-1.data-00000-of-00001"), os.path.join(big2, "big.ckpt-2.data-00000-of-00001"))
shutil.copy(os.path.join(S, "big", "big.ckpt-1.index"), os.path.join(big2, "big.ckpt-2.index"))
pb2 = os.path.join(big2, "big.ckpt-2")
ok(wait_for(lambda: events("job_start", pb2), 20), "another big conversion starts")
t0 = time.time()
proc.send_signal(signal.SIGTERM)
try:
    rc = proc.wait(20)
except subprocess.TimeoutExpired:
    rc = None
ok(rc == 0 and any("stop_timeout reached" in l for l in events("stop")),
   "SIGTERM past stop_timeout aborts it and exits 0 in %.1f s (rc %s)" % (time.time() - t0, rc))
ok(not os.path.exists(pb2 + ".h5") and not glob.glob(os.path.join(big2, ".*ckptd-tmp*")),
   "nothing under the final name, no temporary left")
ok(not worker_pids(pb2), "and no worker outlives the daemon")
with open(CONF, "w") as f:
    f.write(GOOD_CONF)
start()
ok(wait_for(lambda: os.path.exists(pb2 + ".h5"), 60), "the aborted conversion completes after the next start")
proc.send_signal(signal.SIGTERM)
proc.wait(30)
st = subprocess.run([CKPT, "status", os.path.join(T, "state", "status.json")], capture_output=True, text=True)
ok(st.returncode == 0 and "state stopped" in st.stdout and "done" in st.stdout, "ckpt status prints the status file")
lines = log().splitlines()
strays = [l for l in lines if not l.startswith("ts=") or " event=" not in l]
ok(lines and not strays, "every one of the %d log lines is one key=value event (%s)" % (len(lines), (strays or [""])[0][:80]))
# 11c. state_dir lost after retention deleted a converted bundle: its .h5 (ckptd's output) is never
# converted back (that would resurrect the checkpoint and roll a resuming trainer back)
rb = os.path.join(A, "retention")
synth(os.path.join(rb, "model.ckpt-50"), "--size", "1M", "--tensors", "3")
synth(os.path.join(rb, "model.ckpt-60"), "--size", "1M", "--tensors", "3")
with open(os.path.join(rb, "checkpoint"), "w") as f:
    f.write('model_checkpoint_path: "model.ckpt-60"\nall_model_checkpoint_paths: "model.ckpt-60"\n')
start()
ok(wait_for(lambda: os.path.exists(os.path.join(rb, "model.ckpt-50.h5")) and os.path.exists(os.path.join(rb, "model.ckpt-60.h5")), 20),
   "two trainer checkpoints converted")
# the source is rewritten in place: converted again, the output replaced
before = os.stat(os.path.join(rb, "model.ckpt-60.h5")).st_mtime_ns
time.sleep(0.05)
os.utime(os.path.join(rb, "model.ckpt-60.index"))
ok(wait_for(lambda: events("source_changed", os.path.join(rb, "model.ckpt-60")), 15) and
   wait_for(lambda: os.stat(os.path.join(rb, "model.ckpt-60.h5")).st_mtime_ns != before, 15),
   "a rewritten source is logged source_changed and its output replaced")
proc.send_signal(signal.SIGTERM)
proc.wait(30)
for f in glob.glob(os.path.join(rb, "model.ckpt-50.*")):
    if not f.endswith(".h5"):
        os.unlink(f)  # the trainer's retention deletes the old bundle
shutil.rmtree(os.path.join(T, "state"))  # and ckptd's state is lost
with open(os.path.join(rb, "checkpoint")) as f:
    trainers = f.read()
def rb_jobs():
    return [l for l in events("job_start") if "/retention/" in l]
njobs = len(rb_jobs())
start()
time.sleep(3)
ok(not os.path.exists(os.path.join(rb, "model.ckpt-50.index")) and len(rb_jobs()) == njobs,
   "with state_dir lost, ckptd's own .h5 of a deleted bundle is not converted back (%d new jobs there)" % (len(rb_jobs()) - njobs))
with open(os.path.join(rb, "checkpoint")) as f:
    ok(f.read() == trainers, "and the trainer's checkpoint file still names model.ckpt-60")
ok(wait_for(lambda: events("adopt", os.path.join(rb, "model.ckpt-60")), 10) and len(rb_jobs()) == njobs,
   "ckptd's current output of an unchanged source is known from its mark and adopted, not redone")
# state lost again, and the source rewritten meanwhile: the output's mark says it is stale
proc.send_signal(signal.SIGTERM)
proc.wait(30)
shutil.rmtree(os.path.join(T, "state"))
before = os.stat(os.path.join(rb, "model.ckpt-60.h5")).st_mtime_ns
os.utime(os.path.join(rb, "model.ckpt-60.index"))
start()
ok(wait_for(lambda: events("source_changed", os.path.join(rb, "model.ckpt-60")), 15) and
   wait_for(lambda: os.stat(os.path.join(rb, "model.ckpt-60.h5")).st_mtime_ns != before, 15),
   "with state_dir lost too, an output whose source was rewritten is known stale from its mark and replaced")
# h5 -> saver, where ckptd keeps the checkpoint file: a source rewritten into something that
# no longer converts leaves that file at once (it must never list an output of an older source)
hc = os.path.join(A, "h5changed")
os.makedirs(hc)
subprocess.run([CKPT, "synth", "--format", "h5", os.path.join(S, "w.ckpt-7.h5"), "--size", "64K", "--tensors", "2"], check=True)
shutil.copy(os.path.join(S, "w.ckpt-7.h5"), os.path.join(S, "w.ckpt-7.h5.copy"))
os.rename(os.path.join(S, "w.ckpt-7.h5.copy"), os.path.join(hc, "w.ckpt-7.h5"))
ok(wait_for(lambda: os.path.exists(os.path.join(hc, "checkpoint")) and ckpt_state(hc)[1] == "w.ckpt-7", 20),
   "an .h5 converted; ckptd's checkpoint file names it")
r = subprocess.run(["/usr/bin/python3", "-c", """
import h5py, numpy, sys
with h5py.File(sys.argv[1], "w") as f:
    f.create_dataset("c", data=numpy.zeros(4, dtype=[("re", "f4"), ("im", "f4")]))
""", os.path.join(S, "w2.h5")], capture_output=True, text=True)
os.rename(os.path.join(S, "w2.h5"), os.path.join(hc, "w.ckpt-7.h5"))
ok(r.returncode == 0 and wait_for(lambda: events("source_changed", os.path.join(hc, "w.ckpt-7.h5")), 15) and
   wait_for(lambda: events("job_failed", os.path.join(hc, "w.ckpt-7.h5")), 15),
   "the rewritten .h5 is source_changed, and its conversion fails %s" % r.stderr[-200:])
left = ckpt_state(hc)[0] if os.path.exists(os.path.join(hc, "checkpoint")) else "(removed: it listed nothing else)"
ok("w.ckpt-7" not in left, "the checkpoint file no longer lists the stale output: %r" % left)
r = subprocess.run(["/usr/bin/python3", "-c", "import h5py,sys; f=h5py.File(sys.argv[1],'r'); print(f.attrs['ckptd_source_id'])",
                    os.path.join(rb, "model.ckpt-60.h5")], capture_output=True, text=True)
ok(r.returncode == 0 and re.match(r"^\d+:\d+$", r.stdout.strip() if r.stdout else ""),
   "an HDF5 output carries its source's identity (ckptd_source_id = %s)" % r.stdout.strip())
proc.send_signal(signal.SIGTERM)
proc.wait(30)

# 12. journald: structured fields, on a stand-in journal socket (only where no real journald runs)
JS = "/run/systemd/journal/socket"
if os.path.exists(JS) or os.geteuid() != 0:
    n += 1
    print("ok %d - # SKIP journald fields: a real journald owns %s (or not root)" % (n, JS))
else:
    made = [d for d in ("/run/systemd", "/run/systemd/journal") if not os.path.isdir(d)]
    for d in made:
        os.mkdir(d)
    jsock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    jsock.bind(JS)
    jsock.settimeout(0.2)
    jlog = os.path.join(T, "journal-stderr.log")
    with open(CONF, "w") as f:
        f.write(GOOD_CONF)
    errf = open(jlog, "w")
    st = os.fstat(errf.fileno())
    env = dict(os.environ, JOURNAL_STREAM="%d:%d" % (st.st_dev, st.st_ino))
    jp = subprocess.Popen([CKPTD, "--config", CONF], stderr=errf, stdout=errf, env=env)
    synth(os.path.join(A, "jr", "j.ckpt-1"), "--size", "1M", "--tensors", "3")
    entries = []
    jdone = threading.Event()

    def jdrain():  # as journald does: always reading, so the daemon never blocks on a full socket
        while not jdone.is_set():
            try:
                entries.append(jsock.recv(65536).decode(errors="replace"))
            except socket.timeout:
                pass
    jt = threading.Thread(target=jdrain, daemon=True)
    jt.start()
    wait_for(lambda: any("CKPTD_EVENT=job_done" in e for e in list(entries)), 15)
    jp.send_signal(signal.SIGTERM)
    jp.wait(30)
    jdone.set()
    jt.join()
    jsock.close()
    os.unlink(JS)
    for d in reversed(made):
        os.rmdir(d)
    done = [e for e in entries if "CKPTD_EVENT=job_done" in e]
    fields = dict(l.split("=", 1) for l in (done[0].splitlines() if done else []) if "=" in l)
    ok(done and fields.get("CKPT_PATH") == os.path.join(A, "jr", "j.ckpt-1") and fields.get("DIRECTION") == "saver-to-h5"
       and int(fields.get("BYTES", "0")) > 0 and fields.get("DURATION_MS", "").isdigit()
       and fields.get("MESSAGE_ID") == "6f1b7a3e2c9d4e58a1f0b2c3d4e5f609" and fields.get("PRIORITY") == "6",
       "journald entries carry CKPT_PATH, DIRECTION, BYTES, DURATION_MS and a stable MESSAGE_ID (%s)"
       % " ".join(k for k in sorted(fields) if k.isupper()))
    ok(os.path.getsize(jlog) == 0, "and nothing is duplicated on stderr")

print("1..%d" % n)
if os.environ.get("CKPTD_KEEP_TEST_DIR"):
    print("# kept %s" % T)
else:
    shutil.rmtree(T, ignore_errors=True)
