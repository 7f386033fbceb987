#!/usr/bin/python3
"""Hostile and odd HDF5 files (issue 7), crafted here with h5py, against the tools.

Each case either converts with values equal to what h5py reads, or is refused with
exit 1, a message naming the file, the dataset and the reason, and no output left
behind. Never a signal, never another file's bytes. Prints TAP."""
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from urllib.parse import quote

import h5py
import numpy as np

TOOLS = sys.argv[1]
T = tempfile.mkdtemp(prefix="ckptd-hostile.")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from taplib import ok, plan, bundle_tensors  # noqa: E402
import taplib  # noqa: E402


def run(*args):
    return taplib.run(TOOLS, *args, timeout=float(os.environ.get("CKPTD_HOSTILE_TIMEOUT", "120")))


def convert(path, *opts):
    prefix = os.path.join(T, os.path.basename(path) + "-out", "model")
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    rc, so, se = run("h5-to-tensorflow", "--quiet", "--no-checkpoint-file", *opts, path, prefix)
    return rc, se.strip(), prefix


def tensors(prefix):
    """name -> (dtype, stored bytes), read back through ckpt ls --format json."""
    return bundle_tensors(TOOLS, prefix)


def refused(label, path, *words, opts=()):
    rc, se, prefix = convert(path, *opts)
    ok(rc == 1 and os.path.basename(path) in se and all(w in se for w in words),
       "%s: refused with exit 1 (%d): %s" % (label, rc, se[-300:]))
    left = os.listdir(os.path.dirname(prefix))
    ok(left == [], "%s: nothing left behind %s" % (label, left))


def accepted(label, path, expect, opts=()):
    rc, se, prefix = convert(path, *opts)
    if not ok(rc == 0, "%s: converts (%d) %s" % (label, rc, se[-300:])):
        return
    got = tensors(prefix)
    bad = [k for k in expect if got is None or got.get(k) != expect[k]]
    if got is not None and set(got) != set(expect):
        bad.append("names %s" % sorted(got)[:4])
    ok(not bad, "%s: names, dtypes and values as h5py reads them %s" % (label, bad[:3]))


def new(name, **kw):
    return h5py.File(os.path.join(T, name), "w", **kw)


rng = np.random.default_rng(11)
w = rng.standard_normal(6).astype(np.float32)

# ---- 1. storage in other files ----
secret = os.path.join(T, "secret.txt")
with open(secret, "wb") as f:
    f.write(b"root:x:0:0:secret\n" * 4)
with new("external.h5") as f:
    f.create_dataset("x", shape=(72,), dtype="u1", external=[(secret, 0, 72)])
refused("external raw storage", os.path.join(T, "external.h5"), "/x", "external storage refers to another file")
with new("vsrc.h5") as f:
    f["d"] = np.arange(10, dtype=np.float32)
with new("vds.h5") as f:
    layout = h5py.VirtualLayout(shape=(10,), dtype="f4")
    layout[:] = h5py.VirtualSource(os.path.join(T, "vsrc.h5"), "d", shape=(10,))
    f.create_virtual_dataset("v", layout)
refused("virtual dataset", os.path.join(T, "vds.h5"), "/v", "virtual dataset maps other files")
with new("links.h5") as f:
    f["w"] = w
    f["soft"] = h5py.SoftLink("/w")
    f["ext"] = h5py.ExternalLink(os.path.join(T, "vsrc.h5"), "/d")
accepted("soft and external links skipped", os.path.join(T, "links.h5"), {"w": ("DT_FLOAT", w.tobytes())})

# ---- 2. attributes of any shape ----
with new("arrays.h5") as f:
    f.attrs["__version__"] = [0, 1, 2]
    f.attrs["__SUCCESS__"] = [1, 1, 1]
    d = f.create_dataset("w", data=w)
    d.attrs["tf_dtype"] = [b"DT_FLOAT", b"DT_INT32"]
    d.attrs["tf_crc32c"] = np.arange(8, dtype=np.uint32)
    d.attrs["ckptd_order"] = np.arange(8, dtype=np.int64)
    i = f.create_dataset("i", data=np.arange(4, dtype=np.int16))
    i.attrs["is_bfloat16"] = [True, True]
    f.attrs["__H5_TYPE__"] = np.zeros((3, 3))
accepted("array attributes (version [0,1,2], tf_dtype[2], ...) are not read as scalars", os.path.join(T, "arrays.h5"),
         {"w": ("DT_FLOAT", w.tobytes()), "i": ("DT_INT16", np.arange(4, dtype="<i2").tobytes())})

with new("meta_array.h5") as f:
    f.attrs["__version__"] = "0.5"
    f["i"] = np.arange(4, dtype=np.int16)
    f.attrs["i.__metadata__"] = [b'{"dtypes": ["torch.bfloat16"]}', b"x"]
    f.attrs["__SUCCESS__"] = True
accepted("a Cerebras 0.5 metadata attribute that is an array is not read", os.path.join(T, "meta_array.h5"),
         {"i": ("DT_INT16", np.arange(4, dtype="<i2").tobytes())})

# ---- 3. deep nesting ----
with new("deep.h5") as f:
    f.create_group("/".join(["g"] * 8000))
refused("8,000 nested groups", os.path.join(T, "deep.h5"), "nested deeper than 1024 levels")
with new("deep_ok.h5") as f:
    g = f.create_group("/".join(["g"] * 300))
    g["w"] = w
    g["loop"] = f["g"]  # a hard link back up: a cycle
accepted("300 nested groups and a cycle", os.path.join(T, "deep_ok.h5"),
         {"/".join(["g"] * 300 + ["w"]): ("DT_FLOAT", w.tobytes())})

# ---- 5. filters ----
try:
    import hdf5plugin
    with new("bz2.h5") as f:
        f.create_dataset("w", data=w, **hdf5plugin.BZip2())
    refused("bzip2 filter (installed, not allowed)", os.path.join(T, "bz2.h5"), "/w", "HDF5 filter 307 (bzip2)",
            "does not allow")
    # zstd (32015) needs no plugin: ckptd decodes it itself (tests/h5_chunks.py)
except ImportError:
    ok(True, "# SKIP python3-hdf5plugin not installed")
with new("scaleoffset.h5") as f:
    f.create_dataset("w", data=np.arange(100, dtype=np.int32), scaleoffset=0)
refused("scaleoffset filter", os.path.join(T, "scaleoffset.h5"), "/w", "filter 6 (scaleoffset")
with new("gzip.h5") as f:
    f.create_dataset("w", data=w, compression="gzip", shuffle=True, fletcher32=True)
accepted("deflate + shuffle + fletcher32 allowed", os.path.join(T, "gzip.h5"), {"w": ("DT_FLOAT", w.tobytes())})

# ---- 7. format detection ----
with new("legacy03.h5") as f:
    f.attrs["__version__"] = 0.3
    f[quote("bert/embeddings/w", safe="")] = w
accepted("float __version__ 0.3: Cerebras legacy, names unquoted", os.path.join(T, "legacy03.h5"),
         {"bert/embeddings/w": ("DT_FLOAT", w.tobytes())})
with new("c05_unfinished.h5") as f:
    f.attrs["__version__"] = 0.5
    f["w"] = w
refused("float __version__ 0.5 without __SUCCESS__", os.path.join(T, "c05_unfinished.h5"), "__SUCCESS__",
        "Cerebras 0.5")
with new("wrighttools.h5") as f:
    f.attrs["__version__"] = "1.0.0"
    f["a%2Fb"] = w
accepted("string __version__ '1.0.0' (WrightTools): plain h5py, names verbatim", os.path.join(T, "wrighttools.h5"),
         {"a%2Fb": ("DT_FLOAT", w.tobytes())})
with new("marks.h5") as f:
    d = f.create_dataset(quote("m/w", safe=""), data=np.arange(3, dtype=np.int16))
    d.attrs["__H5_TYPE__"] = "TorchTensorH5Type"
    d.attrs["is_bfloat16"] = True
accepted("no version, Cerebras dataset attributes and escaped names: legacy", os.path.join(T, "marks.h5"),
         {"m/w": ("DT_BFLOAT16", np.arange(3, dtype="<i2").tobytes())})
with new("plain_pct.h5") as f:
    f["50%25"] = w
accepted("plain h5py name with an escape-like '%25' stays verbatim", os.path.join(T, "plain_pct.h5"),
         {"50%25": ("DT_FLOAT", w.tobytes())})


# ---- 8. non-standard stored types ----
def custom(f, name, tid, data, memtype=None):
    space = h5py.h5s.create_simple(data.shape)
    ds = h5py.h5d.create(f.id, name.encode(), tid, space)
    ds.write(h5py.h5s.ALL, h5py.h5s.ALL, data, mtype=memtype)


odd = rng.standard_normal(5).astype(np.float32)
ints = np.array([-5, 0, 7, 1000, -1000], dtype=np.int32)
path = os.path.join(T, "types.h5")
with new("types.h5") as f:
    t = h5py.h5t.IEEE_F32LE.copy()
    t.set_ebias(100)  # not IEEE: bits copied raw would be wrong
    custom(f, "ebias", t, odd)
    t = h5py.h5t.STD_I32LE.copy()
    t.set_precision(20)
    t.set_offset(4)
    custom(f, "prec", t, ints)
    f["be"] = odd.astype(">f4")
    f["mixed"] = np.array([(1.5, -2.25), (3.0, 4.0)], dtype=[("r", "<f4"), ("i", ">f4")])
    bf = np.array([0x3F80, 0xBF80, 0xC000, 0x7F80], dtype=np.uint16)
    d = f.create_dataset("bf16u", data=bf, chunks=(2,), compression="gzip")
    d.attrs["tf_dtype"] = "DT_BFLOAT16"
with h5py.File(path, "r") as f:
    expect = {
        "ebias": ("DT_FLOAT", f["ebias"][()].astype("<f4").tobytes()),
        "prec": ("DT_INT32", f["prec"][()].astype("<i4").tobytes()),
        "be": ("DT_FLOAT", odd.astype("<f4").tobytes()),
        "mixed": ("DT_COMPLEX64", np.array([1.5 - 2.25j, 3 + 4j], dtype="<c8").tobytes()),
        "bf16u": ("DT_BFLOAT16", bf.astype("<u2").tobytes()),
    }
    ok(np.allclose(f["ebias"][()], odd) and list(f["prec"][()]) == list(ints), "h5py reads the odd types back")
accepted("non-IEEE float, 20-bit int at offset 4, big-endian, mixed-endian complex, bfloat16 in uint16",
         path, expect)
with new("narrow.h5") as f:
    t = h5py.h5t.IEEE_F64LE.copy()
    t.set_fields(31, 21, 10, 0, 21)  # 10 exponent bits: does not fit float32
    t.set_size(4)
    t.set_ebias(511)
    custom(f, "wide_exp", t, np.array([1.0, 2.0]))
refused("a 4-byte float with 10 exponent bits", os.path.join(T, "narrow.h5"), "/wide_exp", "without rounding")
with new("tfdt_float.h5") as f:
    d = f.create_dataset("x", data=ints)
    d.attrs["tf_dtype"] = "DT_FLOAT"
refused("tf_dtype DT_FLOAT on int32 data", os.path.join(T, "tfdt_float.h5"), "/x", "DT_FLOAT", "does not match")
with new("tfdt_bool.h5") as f:
    d = f.create_dataset("x", data=np.array([0, 1, 2], dtype=np.uint8))
    d.attrs["tf_dtype"] = "DT_BOOL"
refused("tf_dtype DT_BOOL on uint8 data", os.path.join(T, "tfdt_bool.h5"), "/x", "DT_BOOL", "does not match")

# ---- 13. declared size beyond storage ----
with new("huge.h5") as f:
    f.create_dataset("x", shape=(2 ** 40,), dtype="f4")
t0 = time.time()
refused("2^40 unwritten elements", os.path.join(T, "huge.h5"), "/x", "no storage")
ok(time.time() - t0 < 20, "refused at once (%.1f s)" % (time.time() - t0))
with new("sparse.h5") as f:
    d = f.create_dataset("x", shape=(100000,), chunks=(1000,), dtype="f4", compression="gzip")
    d[0:1000] = 1
refused("chunked with 1 of 100 chunks written", os.path.join(T, "sparse.h5"), "/x", "100 chunks", "only 1")

# a chunk index claiming a 2 GB chunk in a small file (found by fuzzing: libhdf5 allocates it)
path = os.path.join(T, "bigclaim.h5")
with new("bigclaim.h5") as f:
    d = f.create_dataset("x", data=np.arange(1000, dtype=np.float32), chunks=(1000,), compression="gzip")
    stored = d.id.get_storage_size()
raw = bytearray(open(path, "rb").read())
key = struct.pack("<II", stored, 0) + bytes(8)  # v1 B-tree chunk key: size, filter mask, offset 0
at = raw.find(key)
if ok(at > 0 and raw.find(key, at + 1) < 0, "found the chunk's size in the B-tree key (%d bytes at %d)" % (stored, at)):
    raw[at:at + 4] = struct.pack("<I", 0x7FFFFFF0)
    open(path, "wb").write(raw)
    refused("a chunk larger than the file", path, "/x", "larger than the file")

# ---- 14. memory bounds (values here; RSS is measured in the report) ----
big = [bytes([65 + k]) * (1 << 20) for k in range(8)]
with new("fixedstr.h5") as f:
    f.create_dataset("s", data=np.array(big, dtype="S%d" % (1 << 20)))
    f.create_dataset("v", data=[b"x" * (k * 100000) for k in range(12)], dtype=h5py.string_dtype("ascii"))


from tf_oracle import tf_strings  # noqa: E402  (beside this script)


accepted("8 x 1 MiB fixed strings and growing vlen elements through a 256 KiB buffer", os.path.join(T, "fixedstr.h5"),
         {"s": ("DT_STRING", tf_strings(big)),
          "v": ("DT_STRING", tf_strings([b"x" * (k * 100000) for k in range(12)]))}, opts=("--buffer-size", "256K"))
with new("hugestr.h5") as f:
    f.create_dataset("s", data=np.array([b"z"], dtype="S%d" % ((64 << 20) + 1)))
refused("a fixed string over 64 MiB", os.path.join(T, "hugestr.h5"), "/s", "64 MiB")
with new("onechunk.h5") as f:
    f.create_dataset("z", data=np.zeros(1 << 22, dtype=np.float32), chunks=(1 << 22,), compression="gzip")
t0 = time.time()
accepted("one 16 MiB gzip chunk through a 64 KiB buffer", os.path.join(T, "onechunk.h5"),
         {"z": ("DT_FLOAT", bytes(1 << 24))}, opts=("--buffer-size", "64K"))
print("# one 16 MiB gzip chunk, 64 KiB buffer: %.2f s" % (time.time() - t0))
with new("bigchunk.h5") as f:
    f.create_dataset("z", shape=(2, 1 << 29), dtype="u1", chunks=(1, 1 << 20), compression="gzip")
    f["z"][0, 0:1] = 1
refused("a row of gzip chunks over 256 MiB", os.path.join(T, "bigchunk.h5"), "/z", "256 MiB limit")

# ---- 16. Cerebras 0.5 metadata: linear in the number of attributes ----
N = 5000
with new("c05_many.h5", track_order=True) as f:
    f.attrs["__version__"] = "0.5"
    for k in range(N):
        f.create_dataset("t%05d" % k, data=np.array([k], dtype=np.int16))
        f.attrs["t%05d.__metadata__" % k] = json.dumps({"dtypes": ["torch.bfloat16"], "shapes": [[1]]})
    for k in range(100):
        f.attrs["s%03d.__metadata__" % k] = json.dumps({"dtypes": ["int"], "value": k})
    f.attrs["__SUCCESS__"] = True
t0 = time.time()
rc, so, se = run("ckpt", "ls", "--format", "json", os.path.join(T, "c05_many.h5"))
dt = time.time() - t0
info = json.loads(so) if rc == 0 else {"tensors": []}
ok(rc == 0 and len(info["tensors"]) == N and all(t["dtype"] == "DT_BFLOAT16" for t in info["tensors"]),
   "Cerebras 0.5 with %d tensors: every one listed as DT_BFLOAT16 from its metadata (%d) %s" % (N, rc, se[-200:]))
print("# ckpt ls on %d tensors + %d metadata attributes: %.2f s" % (N, N + 100, dt))

plan()
subprocess.run(["rm", "-rf", T])
sys.exit(0)
