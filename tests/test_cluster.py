#!/usr/bin/python3
"""Beyond one machine, on one machine: real ckptd processes sharing one tree through a
claims_dir, and ckptd submitting its conversions to a real one-node Slurm cluster
(tests/slurm_cluster.sh starts it from Debian's slurmctld, slurmd and munge). Prints TAP.
usage: test_cluster.py BUILD_DIR [claims|slurm]"""
import glob
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

B = sys.argv[1]
ONLY = sys.argv[2] if len(sys.argv) > 2 else os.environ.get("CKPTD_CLUSTER_ONLY", "")
HERE = os.path.dirname(os.path.abspath(__file__))
CKPTD = os.path.abspath(os.path.join(B, "daemon", "ckptd"))
CKPT = os.path.abspath(os.path.join(B, "tools", "ckpt"))
T = tempfile.mkdtemp(prefix="ckptd-cluster.")
STAGE = os.path.join(T, "staging")
os.makedirs(STAGE)
n = 0
procs = {}
slurm_dir = None


def cleanup():
    for p in procs.values():
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
    if slurm_dir:
        subprocess.run([os.path.join(HERE, "slurm_cluster.sh"), "stop", slurm_dir], capture_output=True)
    if not os.environ.get("CKPTD_KEEP_TEST_DIR"):
        shutil.rmtree(T, ignore_errors=True)


import atexit
atexit.register(cleanup)


def ok(cond, what):
    global n
    n += 1
    print(("ok %d - %s" if cond else "not ok %d - %s") % (n, what), flush=True)
    return cond


def wait_for(cond, timeout, step=0.05):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return True
        time.sleep(step)
    return cond()


def synth(prefix, *args):
    subprocess.run([CKPT, "synth", prefix] + list(args), check=True, capture_output=True)


def drop(prefix, into):
    """Publish a staged bundle as a trainer does: data first, then the index, each renamed in."""
    base = os.path.basename(prefix)
    for suffix in (".data-00000-of-00001", ".index"):
        os.rename(prefix + suffix, os.path.join(into, base + suffix))


def same(a, b):
    return subprocess.run([CKPT, "diff", a, b], capture_output=True).returncode == 0


def conf_text(name, tree, extra="", slurm="", more=""):
    return f"""[ckptd]
workers = 2
memory_budget = 64M
state_dir = {T}/state-{name}
control_socket = {T}/ctl-{name}.sock
settle_seconds = 0.5
rescan_seconds = 2
stop_timeout = 5
log_level = debug
{extra}
{slurm}
[watch m]
path = {tree}
direction = saver-to-h5
{more}"""


def start(name, text, env=None):
    conf = os.path.join(T, f"{name}.ini")
    with open(conf, "w") as f:
        f.write(text)
    logf = open(os.path.join(T, f"{name}.log"), "a")
    # its own session: kill -9 of the group is a host crash (daemon and workers at once)
    procs[name] = subprocess.Popen([CKPTD, "--config", conf], stderr=logf, stdout=logf, start_new_session=True,
                                   env=dict(os.environ, **(env or {})))
    wait_for(lambda: os.path.exists(os.path.join(T, f"state-{name}", "status.json")), 10)
    return procs[name]


def stop(name, sig=signal.SIGTERM):
    p = procs.pop(name)
    if p.poll() is None:
        p.send_signal(sig)
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return p.returncode


def log(name):
    try:
        with open(os.path.join(T, f"{name}.log")) as f:
            return f.read()
    except OSError:
        return ""


def events(name, kind, path=None):
    # whole lines only: a line being written shows up in pieces
    return [l for l in log(name).split("\n")[:-1]
            if f"event={kind} " in l and (path is None or f'path="{path}"' in l)]


def temporaries(d):
    return [f for f in os.listdir(d) if ".ckptd-tmp." in f]


# ---------------------------------------------------------------- claims

def claims():
    tree = os.path.join(T, "shared")
    cdir = os.path.join(T, "claims")
    os.makedirs(tree)
    extra = f"claims_dir = {cdir}\nlease_seconds = 3"
    names = ("i1", "i2", "i3")
    for name in names:
        start(name, conf_text(name, tree, extra))
    ok(all(procs[x].poll() is None for x in names), "three instances run on one tree with one claims_dir")

    # 30 checkpoints dropped at once
    for i in range(30):
        synth(os.path.join(STAGE, f"model.ckpt-{i}"), "--size", "2M", "--tensors", "6", "--seed", str(i))
    for i in range(30):
        drop(os.path.join(STAGE, f"model.ckpt-{i}"), tree)
    outs = [os.path.join(tree, f"model.ckpt-{i}.h5") for i in range(30)]
    done = wait_for(lambda: all(os.path.exists(o) for o in outs), 120, 0.2)
    ok(done, "all 30 outputs appear")
    # the others adopt what one converted; give them a few leases to settle
    wait_for(lambda: sum(len(events(x, "adopt")) for x in names) + sum(len(events(x, "job_done")) for x in names)
             >= 60, 40, 0.2)
    per = {x: len(events(x, "job_done")) for x in names}
    total = sum(per.values())
    ok(total == 30, f"exactly 30 conversions across the three logs ({per})")
    srcs = [re.search(r'path="([^"]+)"', l).group(1) for x in names for l in events(x, "job_done")]
    ok(len(set(srcs)) == 30, "each checkpoint converted once, by one instance")
    ok(sum(1 for v in per.values() if v > 0) >= 2, f"the work is shared: {sum(1 for v in per.values() if v > 0)} "
       "instances converted")
    ok(all(same(os.path.join(tree, f"model.ckpt-{i}"), outs[i]) for i in range(30)), "every output equals its source")
    held = sum(len(events(x, "claimed_elsewhere")) for x in names)
    ok(held > 0, f"instances found sources claimed by others ({held} times) and left them alone")
    ok(wait_for(lambda: not glob.glob(os.path.join(cdir, "*.claim")), 10), "every claim is released at the end")
    for x in ("i2", "i3"):
        stop(x)
    with open(os.path.join(T, "i1.ini"), "w") as f:
        f.write(conf_text("i1", tree, f"claims_dir = {cdir}2\nlease_seconds = 9"))
    procs["i1"].send_signal(signal.SIGHUP)
    ok(wait_for(lambda: [l for l in events("i1", "reload") if "claims_dir" in l], 10),
       "a reload that changes claims_dir or lease_seconds keeps the running ones until a restart, and says so")
    with open(os.path.join(T, "i1.ini"), "w") as f:
        f.write(conf_text("i1", tree, extra))

    # a 1.5 GB checkpoint: i1 converts it; i2 starts meanwhile and does not disturb it
    synth(os.path.join(STAGE, "big.ckpt-1"), "--size", "1536M", "--tensors", "40", "--seed", "7")
    drop(os.path.join(STAGE, "big.ckpt-1"), tree)
    big1 = os.path.join(tree, "big.ckpt-1")
    ok(wait_for(lambda: events("i1", "job_start", big1), 30, 0.02), "i1 starts converting the 1.5 GB checkpoint")
    start("i2", conf_text("i2", tree, extra))
    wait_for(lambda: events("i2", "claimed_elsewhere", big1) or events("i1", "job_done", big1), 30, 0.05)
    ok(events("i2", "claimed_elsewhere", big1) or events("i1", "job_done", big1),
       "i2, started during the job, finds it claimed")
    ok(wait_for(lambda: events("i1", "job_done", big1), 120, 0.1), "i1's job finishes undisturbed")
    ok(not events("i2", "job_start", big1) and not events("i2", "cleanup"),
       "i2 neither converts it nor removes i1's temporaries")
    ok(same(big1, big1 + ".h5"), "the output is right")
    ok(wait_for(lambda: events("i2", "adopt", big1), 20, 0.1), "i2 then adopts i1's output as done")

    # kill -9 the instance converting a 1.5 GB checkpoint (daemon and worker at once:
    # a host crash): another instance finishes it after the lease
    synth(os.path.join(STAGE, "big.ckpt-2"), "--size", "1536M", "--tensors", "40", "--seed", "8")
    stop("i2")
    drop(os.path.join(STAGE, "big.ckpt-2"), tree)
    big2 = os.path.join(tree, "big.ckpt-2")
    started = wait_for(lambda: events("i1", "job_start", big2), 30, 0.01)
    ok(started, "i1 starts converting the second 1.5 GB checkpoint")
    wait_for(lambda: temporaries(tree), 10, 0.01)
    had_tmp = len(temporaries(tree))
    os.killpg(procs["i1"].pid, signal.SIGKILL)
    procs.pop("i1").wait()
    claim_left = glob.glob(os.path.join(cdir, "*.claim"))
    ok(had_tmp > 0 and claim_left, f"killed mid-way: {had_tmp} temporaries and its claim are left")
    t_kill = time.time()
    start("i3", conf_text("i3", tree, extra))
    ok(wait_for(lambda: events("i3", "job_done", big2), 180, 0.1), "i3 converts it")
    took = events("i3", "claim_takeover", big2)
    ok(took and time.time() - t_kill >= 2.5, "after taking over the expired claim: " + (took[0] if took else "none"))
    ok(took and re.search(r"removed [1-9]\d* temporar", took[0]), "and removing the temporaries the crashed one left")
    ok(not os.path.exists(big2 + ".h5") or same(big2, big2 + ".h5"), "the output is right")
    ok(not temporaries(tree), "no temporary is left")
    ok(procs["i3"].poll() is None, "i3 is alive")
    stop("i3")
    for f in glob.glob(os.path.join(tree, "big.ckpt-*")):
        os.unlink(f)


# ---------------------------------------------------------------- slurm

def slurm():
    global slurm_dir
    slurm_dir = os.path.join(T, "slurm")
    r = subprocess.run([os.path.join(HERE, "slurm_cluster.sh"), "start", slurm_dir], capture_output=True, text=True)
    if not ok(r.returncode == 0, "a one-node Slurm cluster starts (slurmctld, slurmd, munged)"):
        print("# " + (r.stdout + r.stderr).replace("\n", "\n# "))
        return
    env = {}
    with open(os.path.join(slurm_dir, "env")) as f:
        for line in f:
            m = re.match(r"export (\w+)=(.*)", line.strip())
            if m:
                env[m.group(1)] = m.group(2).strip("'\"")
    os.environ.update(env)
    tree = os.path.join(T, "sl")
    os.makedirs(tree)
    slurm = "[slurm]\noptions = --partition=debug --time=10:00\npoll_seconds = 1"
    slow = os.path.join(T, "slow")  # gzip:9 output: a conversion long enough to fail mid-way
    os.makedirs(slow)
    start("s1", conf_text("s1", tree, "executor = slurm", slurm,
                          f"[watch slow]\npath = {slow}\ndirection = saver-to-h5\ncompression = gzip:9\n"))

    # a conversion through sbatch
    synth(os.path.join(STAGE, "sl.ckpt-1"), "--size", "8M", "--tensors", "10", "--seed", "3")
    drop(os.path.join(STAGE, "sl.ckpt-1"), tree)
    src = os.path.join(tree, "sl.ckpt-1")
    ok(wait_for(lambda: events("s1", "job_done", src), 90, 0.1), "a checkpoint is converted as a Slurm job")
    st = events("s1", "job_start", src)
    m = re.search(r"slurm_job=(\d+)", st[0]) if st else None
    ok(m, "job_start names the job: " + (st[0] if st else "none"))
    jid = m.group(1) if m else "0"
    dn = events("s1", "job_done", src)
    ok(dn and f"slurm_job={jid}" in dn[0], "and so does job_done")
    ok(same(src, src + ".h5"), "the output is right")
    q = subprocess.run(["scontrol", "show", "job", jid], capture_output=True, text=True).stdout
    ok("JobState=COMPLETED" in q and "JobName=ckptd:sl.ckpt-1" in q, f"Slurm's records show job {jid} completed")
    ok(not temporaries(tree), "no run file or temporary is left")

    # a node failure mid-way (the node set DOWN: Slurm kills the job, NODE_FAIL) is
    # retried; nothing under the final name meanwhile
    synth(os.path.join(STAGE, "sl.ckpt-2"), "--size", "128M", "--tensors", "16", "--seed", "4")
    drop(os.path.join(STAGE, "sl.ckpt-2"), slow)
    src2 = os.path.join(slow, "sl.ckpt-2")
    ok(wait_for(lambda: events("s1", "job_start", src2), 60, 0.05), "a second conversion is submitted")
    jid2 = re.search(r"slurm_job=(\d+)", events("s1", "job_start", src2)[0]).group(1)
    wait_for(lambda: json.load(open(os.path.join(T, "state-s1", "status.json"))).get("running_jobs"), 10, 0.1)
    status = json.load(open(os.path.join(T, "state-s1", "status.json")))
    ok(any(j.get("slurm_job") == int(jid2) for j in status.get("running_jobs", [])),
       "the status file shows the running job's slurm_job")
    node = subprocess.run(["sinfo", "-h", "-o", "%N"], capture_output=True, text=True).stdout.strip()
    ok(wait_for(lambda: subprocess.run(["squeue", "-h", "-j", jid2, "-o", "%T"], capture_output=True,
                                       text=True).stdout.strip() == "RUNNING", 30, 0.1), f"job {jid2} runs on {node}")
    subprocess.run(["scontrol", "update", f"nodename={node}", "state=down", "reason=ckptd-test"], capture_output=True)
    retried = wait_for(lambda: events("s1", "job_retry", src2), 60, 0.1)
    subprocess.run(["scontrol", "update", f"nodename={node}", "state=resume"], capture_output=True)
    ok(retried, "its node failed: the job is retried: " + (events("s1", "job_retry", src2) or ["none"])[0])
    ok(retried and "NODE_FAIL" in events("s1", "job_retry", src2)[0], "saying Slurm's NODE_FAIL")
    ok(not os.path.exists(src2 + ".h5") and not temporaries(slow), "nothing under the final name after the kill")
    ok(wait_for(lambda: events("s1", "job_done", src2), 120, 0.1), "the retry converts it")
    ok(same(src2, src2 + ".h5"), "the output is right")

    # someone else's scancel: failed, saying who; the daemon stays up; ckpt ctl retry
    synth(os.path.join(STAGE, "sl.ckpt-3"), "--size", "128M", "--tensors", "16", "--seed", "5")
    drop(os.path.join(STAGE, "sl.ckpt-3"), slow)
    src3 = os.path.join(slow, "sl.ckpt-3")
    ok(wait_for(lambda: events("s1", "job_start", src3), 60, 0.05), "a third conversion is submitted")
    jid3 = re.search(r"slurm_job=(\d+)", events("s1", "job_start", src3)[0]).group(1)
    subprocess.run(["scancel", jid3], capture_output=True)
    ok(wait_for(lambda: events("s1", "job_failed", src3), 60, 0.1), "cancelled by someone else: the job failed")
    fl = events("s1", "job_failed", src3)
    ok(fl and "reason=cancelled" in fl[0] and "cancelled by" in fl[0], "logged as cancelled, by whom: " + fl[0])
    ok(wait_for(lambda: not os.path.exists(src3 + ".h5") and not temporaries(slow), 10, 0.1),
       "nothing under the final name, nothing left: %s" % temporaries(slow))
    ok(procs["s1"].poll() is None, "the daemon is alive")
    r = subprocess.run([CKPT, "ctl", "--socket", os.path.join(T, "ctl-s1.sock"), "retry", src3], capture_output=True)
    ok(r.returncode == 0 and wait_for(lambda: events("s1", "job_done", src3), 120, 0.1) and same(src3, src3 + ".h5"),
       "ckpt ctl retry converts it")

    # the controller unreachable: logged once per outage, retried, converted once it is back
    ctld_pid = int(open(os.path.join(slurm_dir, "slurmctld.pid")).read())
    os.kill(ctld_pid, signal.SIGTERM)
    wait_for(lambda: not os.path.exists(f"/proc/{ctld_pid}") or
             open(f"/proc/{ctld_pid}/stat").read().split()[2] == "Z", 15, 0.1)
    synth(os.path.join(STAGE, "sl.ckpt-5"), "--size", "4M", "--tensors", "4", "--seed", "9")
    drop(os.path.join(STAGE, "sl.ckpt-5"), tree)
    src5 = os.path.join(tree, "sl.ckpt-5")
    retries = wait_for(lambda: len(events("s1", "job_retry", src5)) >= 2, 90, 0.2)
    ok(retries and len(events("s1", "slurm_unreachable")) == 1,
       f"the controller down: {len(events('s1', 'job_retry', src5))} retries, "
       f"{len(events('s1', 'slurm_unreachable'))} slurm_unreachable line")
    subprocess.run(["slurmctld", "-f", os.environ["SLURM_CONF"]], capture_output=True)
    ok(wait_for(lambda: events("s1", "job_done", src5), 120, 0.2) and same(src5, src5 + ".h5"),
       "back up: the checkpoint is converted")
    ok(len(events("s1", "slurm_reachable")) == 1, "and its return is logged once")

    # shutdown cancels what waits or runs on Slurm (here: pending on a drained node)
    node = subprocess.run(["sinfo", "-h", "-o", "%N"], capture_output=True, text=True).stdout.strip()
    subprocess.run(["scontrol", "update", f"nodename={node}", "state=drain", "reason=ckptd-test"], capture_output=True)
    synth(os.path.join(STAGE, "sl.ckpt-4"), "--size", "8M", "--tensors", "8", "--seed", "6")
    drop(os.path.join(STAGE, "sl.ckpt-4"), tree)
    src4 = os.path.join(tree, "sl.ckpt-4")
    wait_for(lambda: events("s1", "job_start", src4), 60, 0.05)
    jid4 = re.search(r"slurm_job=(\d+)", (events("s1", "job_start", src4) or ["slurm_job=0"])[0]).group(1)
    rc = stop("s1")
    q = subprocess.run(["scontrol", "show", "job", jid4], capture_output=True, text=True).stdout
    subprocess.run(["scontrol", "update", f"nodename={node}", "state=resume"], capture_output=True)
    ok(rc == 0 and "JobState=CANCELLED" in q, f"a shutdown cancels its pending job {jid4}: " +
       (re.search(r"JobState=\S+", q) or [""])[0])
    ok(not temporaries(tree) and not os.path.exists(src4 + ".h5"), "and leaves no temporary and no output")


if ONLY in ("", "claims"):
    claims()
if ONLY in ("", "slurm"):
    slurm()
print(f"1..{n}")
