"""PyTorch and safetensors conversions checked with Debian's python3-torch as the oracle.

  torch_oracle.py TOOLS FIXTURES WORKDIR

1. A real training state (nn.Sequential with Embedding, Linear and LayerNorm; Adam after two
   steps; bf16, fp16, bool tensors; an int64 scalar; a transposed view; a slice view with a
   storage offset; two tensors sharing a storage; ints, a string, None) saved by torch.save,
   converted torch -> h5 -> torch and torch -> safetensors -> torch by `ckpt convert`, and
   compared with the original value by value, structure and container types included.
2. The same state's model weights alone (no Python floats, which torch 1.13's weights_only
   loader refuses) load with torch.load(weights_only=True) after each route.
3. Every shared TF fixture converted to safetensors and to torch: each tensor's dtype,
   shape and bytes checked against MANIFEST.tsv (TensorFlow's own checkpoint), strings
   and variants skipped and listed.
TAP output.
"""
import collections
import hashlib
import os
import subprocess
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import st_oracle  # noqa: E402

TOOLS, FX, WORK = sys.argv[1], sys.argv[2], sys.argv[3]
CKPT = os.path.join(TOOLS, "ckpt")
N = 0
FAILED = 0


def ok(cond, what):
    global N, FAILED
    N += 1
    if not cond:
        FAILED += 1
    print("%s %d - %s" % ("ok" if cond else "not ok", N, what), flush=True)
    return cond


def convert(src, dst, *extra):
    p = subprocess.run([CKPT, "convert", "-q", "--force", *extra, src, dst], capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


def training_state():
    torch.manual_seed(7)
    model = torch.nn.Sequential(torch.nn.Embedding(16, 8), torch.nn.Linear(8, 8), torch.nn.LayerNorm(8))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(2):
        opt.zero_grad()
        model(torch.randint(0, 16, (4, 3))).sum().backward()
        opt.step()
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    shared = torch.arange(10, dtype=torch.int32)
    extra = {
        "bf16": torch.randn(3, 5).to(torch.bfloat16),
        "fp16": torch.randn(7).to(torch.float16),
        "mask": torch.tensor([True, False, True, True]),
        "count": torch.tensor(12345678901, dtype=torch.int64),
        "transposed": base.t(),
        "slice": base[1:3, 2:5],
        "first_half": shared[:5],
        "second_half": shared[5:],
        "rate%41": torch.ones(2),  # a key that looks quote()-escaped stays as it is
    }
    return {"model": model.state_dict(), "optimizer": opt.state_dict(), "extra": extra, "epoch": 3,
            "run": "run-1", "note": None, "flags": (True, 2), "best_loss": float("inf")}


def same(a, b, path="state"):
    """'' if a and b are equal (types, structure, values, dtypes, shapes), else where not."""
    if isinstance(a, torch.Tensor):
        if not isinstance(b, torch.Tensor):
            return "%s: tensor became %s" % (path, type(b).__name__)
        if a.dtype != b.dtype or tuple(a.shape) != tuple(b.shape):
            return "%s: %s%s vs %s%s" % (path, a.dtype, tuple(a.shape), b.dtype, tuple(b.shape))
        if not torch.equal(a.contiguous(), b.contiguous()):
            return "%s: values differ" % path
        return ""
    if type(a) is not type(b):
        return "%s: %s became %s" % (path, type(a).__name__, type(b).__name__)
    if isinstance(a, dict):
        if list(a.keys()) != list(b.keys()):
            return "%s: keys %r vs %r" % (path, list(a.keys()), list(b.keys()))
        for k in a:
            w = same(a[k], b[k], "%s[%r]" % (path, k))
            if w:
                return w
        return ""
    if isinstance(a, (list, tuple)):
        if len(a) != len(b):
            return "%s: length %d vs %d" % (path, len(a), len(b))
        for i, (x, y) in enumerate(zip(a, b)):
            w = same(x, y, "%s[%d]" % (path, i))
            if w:
                return w
        return ""
    return "" if a == b else "%s: %r vs %r" % (path, a, b)


def state_routes():
    state = training_state()
    src = os.path.join(WORK, "train.pt")
    torch.save(state, src)
    ok(isinstance(state["optimizer"]["state"][0]["exp_avg"], torch.Tensor), "the state holds Adam's moments")
    for mid in ("h5", "safetensors"):
        m = os.path.join(WORK, "train." + mid)
        back = os.path.join(WORK, "train_from_%s.pt" % mid)
        rc, out = convert(src, m)
        if not ok(rc == 0, "torch -> %s: %s" % (mid, out.strip()[:300])):
            continue
        rc, out = convert(m, back)
        if not ok(rc == 0, "%s -> torch: %s" % (mid, out.strip()[:300])):
            continue
        got = torch.load(back, weights_only=False)
        w = same(state, got)
        ok(w == "", "torch -> %s -> torch keeps every value, dtype, shape and container%s" % (mid, ": " + w if w else ""))
        rc, out = subprocess.run([CKPT, "diff", src, back], capture_output=True, text=True).returncode, ""
        ok(rc == 0, "ckpt diff finds the original and the round trip through %s equal" % mid)
    # safetensors written by ckptd, read by an independent reader
    _, tensors, meta = st_oracle.read(os.path.join(WORK, "train.safetensors"))
    names = {t[0]: t for t in tensors}
    ref = state["extra"]["transposed"].contiguous()
    t = names.get("extra.transposed")
    ok(t is not None and t[2] == [6, 4] and t[3] == ref.numpy().tobytes(),
       "the transposed view is stored contiguous in row-major order (independent reader)")
    t = names.get("extra.bf16")
    ok(t is not None and t[1] == "BF16" and t[3] == state["extra"]["bf16"].view(torch.int16).numpy().tobytes(),
       "bfloat16 stays BF16, bytes equal")
    ok(meta.get("epoch") == "3" and meta.get("run") == "run-1", "non-tensor values travel in __metadata__")


def weights_only_routes():
    model = training_state()["model"]
    src = os.path.join(WORK, "weights.pt")
    torch.save(model, src)
    for mid in ("h5", "safetensors"):
        m, back = os.path.join(WORK, "weights." + mid), os.path.join(WORK, "weights_from_%s.pt" % mid)
        if convert(src, m)[0] != 0 or convert(m, back)[0] != 0:
            ok(False, "weights through %s convert" % mid)
            continue
        try:
            got = torch.load(back, weights_only=True)
            w = same(model, got)
        except Exception as e:  # noqa: BLE001 - the message is the test's finding
            w = "torch.load(weights_only=True) refused it: %s" % e
        ok(w == "", "weights through %s load with weights_only=True and are equal%s" % (mid, ": " + w if w else ""))


def manifest():
    rows = collections.defaultdict(dict)
    with open(os.path.join(FX, "tf", "MANIFEST.tsv")) as f:
        head = f.readline().rstrip("\n").split("\t")
        for line in f:
            r = dict(zip(head, line.rstrip("\n").split("\t")))
            rows[(r["fixture"], r["prefix"])][r["key"]] = r
    return rows


TORCH_OF = {"DT_FLOAT": torch.float32, "DT_DOUBLE": torch.float64, "DT_INT32": torch.int32, "DT_INT64": torch.int64,
            "DT_BOOL": torch.bool, "DT_HALF": torch.float16, "DT_BFLOAT16": torch.bfloat16, "DT_INT8": torch.int8,
            "DT_UINT8": torch.uint8, "DT_INT16": torch.int16}


def tensor_bytes(t):
    t = t.contiguous()
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def fixture_routes():
    for (fx, prefix), entries in sorted(manifest().items()):
        src = os.path.join(FX, "tf", fx, prefix)
        if not os.path.exists(src + ".data-00000-of-00001") and not any(
                n.startswith(prefix + ".data-") for n in os.listdir(os.path.join(FX, "tf", fx))):
            continue  # an index-only fixture: nothing to convert
        tensors = {k: r for k, r in entries.items() if r["dtype"] in TORCH_OF and "\x00" not in k}
        stringy = sorted(k for k, r in entries.items() if r["dtype"] in ("DT_STRING", "DT_VARIANT"))
        pt, st = os.path.join(WORK, fx + ".pt"), os.path.join(WORK, fx + ".safetensors")
        rc, out = convert(src, pt)
        if not ok(rc == 0, "%s -> torch: %s" % (fx, out.strip()[:200])):
            continue
        got = torch.load(pt, weights_only=True)
        bad = []
        for k, r in tensors.items():
            t = got.get(k)
            shape = [] if r["shape"] == "scalar" else [int(x) for x in r["shape"].split("x")]
            if t is None or t.dtype != TORCH_OF[r["dtype"]] or list(t.shape) != shape or \
                    hashlib.sha256(tensor_bytes(t)).hexdigest()[:16] != r["sha256_16"]:
                bad.append(k)
        ok(not bad and len(got) == len(tensors),
           "%s: torch.load(weights_only=True) gives %d tensors equal to TensorFlow's %s" % (fx, len(got), bad[:3]))
        ok(all(s in out for s in stringy[:3]), "%s: the %d string/variant tensors are listed as skipped" % (fx, len(stringy)))
        rc, out = convert(src, st)
        if not ok(rc == 0, "%s -> safetensors: %s" % (fx, out.strip()[:200])):
            continue
        _, ts, _ = st_oracle.read(st)
        bad = [n for n, dt, shape, raw in ts if n not in tensors or
               hashlib.sha256(raw).hexdigest()[:16] != tensors[n]["sha256_16"]]
        ok(not bad and len(ts) == len(tensors), "%s: safetensors holds %d tensors equal to TensorFlow's %s" % (
            fx, len(ts), bad[:3]))


def refusals():
    legacy = os.path.join(WORK, "legacy.pt")
    torch.save({"w": torch.ones(2)}, legacy, _use_new_zipfile_serialization=False)
    rc, out = convert(legacy, os.path.join(WORK, "legacy.safetensors"))
    ok(rc == 1 and "legacy" in out and "legacy.pt" in out, "a pre-1.6 torch file is refused by name: %s" % out.strip()[:200])
    ok(not os.path.exists(os.path.join(WORK, "legacy.safetensors")), "nothing is left under the output's name")


def main():
    os.makedirs(WORK, exist_ok=True)
    state_routes()
    weights_only_routes()
    fixture_routes()
    refusals()
    print("1..%d" % N)
    sys.exit(1 if FAILED else 0)


main()
