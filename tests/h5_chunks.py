#!/usr/bin/python3
"""Compressed HDF5 through direct chunk I/O (issue 12), against independent codecs.

A. Files written by h5py (libhdf5's own deflate and shuffle, hdf5plugin's LZ4, chunks of
   every shape: partial edges, chunks that cut rows, one-element chunks) and zstd chunks
   made by the zstd command-line tool -> h5-to-tensorflow with 1 and 2 threads: the bytes
   in the data files equal what numpy says. A pipeline ckptd does not run itself
   (fletcher32) goes through libhdf5 and gives the same bytes.
B. tensorflow-to-h5 --compression gzip|lz4 at chunk sizes 4K, 1M, 16M -> h5py (libhdf5's
   filters, hdf5plugin's LZ4) reads back exactly the source's values.
C. Hostile chunks: a corrupt deflate stream, an LZ4 header that lies about the size, a
   stored chunk larger than its codec can produce: a clear error naming file and
   dataset, nothing published.
Prints TAP."""
import os
import subprocess
import sys
import tempfile

import h5py
import numpy as np

TOOLS = sys.argv[1]
T = tempfile.mkdtemp(prefix="ckptd-h5chunks.")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from taplib import ok, plan, bundle_tensors  # noqa: E402
import taplib  # noqa: E402


def run(*args):
    return taplib.run(TOOLS, *args)


def tf_bytes(prefix):
    """name -> bytes of each tensor in the bundle."""
    return {k: v[1] for k, v in (bundle_tensors(TOOLS, prefix) or {}).items()}


def to_tf(label, path, expect, threads):
    prefix = os.path.join(T, "%s-t%d" % (label, threads), "model")
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    rc, so, se = run("h5-to-tensorflow", "-q", "--threads", str(threads), path, prefix)
    if not ok(rc == 0, "%s, %d thread(s): h5-to-tensorflow exits 0 %s" % (label, threads, se.strip()[-300:])):
        return
    got = tf_bytes(prefix)
    bad = [k for k, v in expect.items() if got.get(k) != v]
    ok(not bad and len(got) == len(expect),
       "%s, %d thread(s): %d tensors byte-equal to numpy's %s" % (label, threads, len(expect), bad[:3]))


rng = np.random.default_rng(12)


def weights(shape, dtype):
    a = rng.standard_normal(shape).astype(np.float32) * 0.02
    if dtype == "bf16":  # bfloat16: the top half of float32, stored as uint16 like Cerebras
        return (a.view(np.uint32) >> 16).astype(np.uint16)
    return a.astype(dtype)


# ---- A. other writers' chunks ----
shapes = [  # (shape, chunks): partial edges, chunks cutting rows and columns, contiguous rows
    ((1000,), (300,)), ((64, 33), (8, 11)), ((50, 70), (50, 16)), ((7, 9, 13), (2, 4, 5)),
    ((16, 1024), (1, 1024)), ((5, 6), (1, 1)), ((300, 200), (300, 200)),
]
expect = {}
path = os.path.join(T, "h5py_gzip.h5")
with h5py.File(path, "w") as f:
    for i, (shape, chunks) in enumerate(shapes):
        for dt, tfdt in (("f4", "DT_FLOAT"), ("f8", "DT_DOUBLE"), ("i1", "DT_INT8")):
            a = weights(shape, dt) if dt != "i1" else rng.integers(-100, 100, size=shape, dtype=np.int8)
            name = "g%d/%s" % (i, dt)
            f.create_dataset(name, data=a, chunks=chunks, compression="gzip", compression_opts=(i % 9) + 1,
                             shuffle=(i % 2 == 0))
            expect[name] = a.tobytes()
    # an empty extendible dataset: chunked and filtered, nothing stored
    f.create_dataset("empty", shape=(0, 128), maxshape=(None, 128), dtype="f4", compression="gzip")
    expect["empty"] = b""
for th in (1, 2):
    to_tf("h5py gzip (+shuffle on half), 21 chunk shapes and an empty one", path, expect, th)

# a user block before the superblock: chunk addresses are relative to it
path = os.path.join(T, "userblock.h5")
expect = {}
with h5py.File(path, "w", userblock_size=512) as f:
    a = weights((300, 70), "f4")
    f.create_dataset("w", data=a, chunks=(32, 70), compression="gzip", shuffle=True)
    expect["w"] = a.tobytes()
to_tf("gzip behind a 512-byte user block", path, expect, 2)

path = os.path.join(T, "h5py_fletcher.h5")
expect = {}
with h5py.File(path, "w") as f:
    a = weights((40, 30), "f4")
    f.create_dataset("w", data=a, chunks=(7, 30), compression="gzip", shuffle=True, fletcher32=True)
    expect["w"] = a.tobytes()
to_tf("gzip + fletcher32 (through libhdf5)", path, expect, 2)

try:
    import hdf5plugin
    path = os.path.join(T, "lz4.h5")
    expect = {}
    with h5py.File(path, "w") as f:
        for i, (shape, chunks) in enumerate(shapes):
            a = weights(shape, "bf16")
            f.create_dataset("l%d" % i, data=a, chunks=chunks, **hdf5plugin.LZ4())
            expect["l%d" % i] = a.tobytes()
            b = weights(shape, "f4")
            # several LZ4 blocks per chunk
            f.create_dataset("b%d" % i, data=b, chunks=chunks, **hdf5plugin.LZ4(nbytes=512))
            expect["b%d" % i] = b.tobytes()
    for th in (1, 2):
        to_tf("hdf5plugin LZ4 (one and many blocks per chunk)", path, expect, th)
except ImportError:
    ok(False, "python3-hdf5plugin is needed (quickstart installs it)")


def zstd(data, level=3):
    return subprocess.run(["zstd", "-q", "-c", "-%d" % level], input=data, capture_output=True, check=True).stdout


# zstd (32015): no plugin here, so the chunks are compressed by the zstd tool and written
# raw; the filter is declared optional so that libhdf5 creates the dataset without it
path = os.path.join(T, "zstd.h5")
expect = {}
with h5py.File(path, "w") as f:
    for i, (shape, chunks) in enumerate(shapes[:4]):
        a = weights(shape, "f4")
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk(chunks)
        dcpl.set_filter(32015, h5py.h5z.FLAG_OPTIONAL, (3,))
        space = h5py.h5s.create_simple(shape)
        ds = h5py.h5d.create(f.id, ("z%d" % i).encode(), h5py.h5t.IEEE_F32LE, space, dcpl=dcpl)
        grid = [range(0, s, c) for s, c in zip(shape, chunks)]
        for off in np.ndindex(*[len(g) for g in grid]):
            o = tuple(k * c for k, c in zip(off, chunks))
            block = np.zeros(chunks, dtype=np.float32)
            sl = tuple(slice(x, min(x + c, s)) for x, c, s in zip(o, chunks, shape))
            part = a[sl]
            block[tuple(slice(0, p) for p in part.shape)] = part
            ds.write_direct_chunk(o, zstd(block.tobytes()), 0)
        expect["z%d" % i] = a.tobytes()
for th in (1, 2):
    to_tf("zstd chunks from the zstd tool, no plugin installed", path, expect, th)

# ---- B. ckptd's chunks, read by h5py ----
src = os.path.join(T, "src", "model")
os.makedirs(os.path.dirname(src))
rc, so, se = run("ckpt", "synth", src, "--size", "24M", "--tensors", "12", "--dtypes", "float32,bfloat16,int64",
                 "--fill", "normal")
ok(rc == 0, "ckpt synth --fill normal %s" % se.strip())
ref = tf_bytes(src)
for comp in ("gzip", "lz4"):
    for chunk in ("4K", "1M", "16M"):
        for th in (1, 2):
            out = os.path.join(T, "ck-%s-%s-%d.h5" % (comp, chunk, th))
            rc, so, se = run("tensorflow-to-h5", "-q", "--compression", comp, "--chunk-size", chunk, "--threads",
                             str(th), src, out)
            if not ok(rc == 0, "tensorflow-to-h5 --compression %s --chunk-size %s --threads %d %s" %
                      (comp, chunk, th, se.strip())):
                continue
            bad = []
            with h5py.File(out, "r") as f:
                for name in ref:
                    from urllib.parse import quote
                    d = f[quote(name, safe="")]
                    if d[()].tobytes() != ref[name]:
                        bad.append(name)
                    if d.chunks is None or d.compression not in (None, "gzip"):
                        bad.append(name + " not chunked")
            ok(not bad, "  h5py reads every tensor back exactly %s" % bad[:3])

# ---- C. hostile chunks ----
def hostile(label, write, why):
    path = os.path.join(T, label.replace(" ", "_") + ".h5")
    with h5py.File(path, "w") as f:
        write(f)
    prefix = os.path.join(T, "hostile-" + label.replace(" ", "_"), "model")
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    rc, so, se = run("h5-to-tensorflow", "-q", path, prefix)
    ok(rc == 1 and os.path.basename(path) in se and "/w" in se and why in se,
       "%s: refused naming file, dataset and why: %s" % (label, se.strip()[-250:]))
    ok(not os.path.exists(prefix + ".index"), "%s: nothing published" % label)


def raw_dataset(f, filt, opts, chunks, payload):
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_chunk(chunks)
    dcpl.set_filter(filt, h5py.h5z.FLAG_OPTIONAL, opts)
    ds = h5py.h5d.create(f.id, b"w", h5py.h5t.IEEE_F32LE, h5py.h5s.create_simple(chunks), dcpl=dcpl)
    ds.write_direct_chunk((0,) * len(chunks), payload, 0)


import zlib  # noqa: E402
good = zlib.compress(weights((256,), "f4").tobytes())  # about 900 bytes: the damage is inside
hostile("corrupt deflate", lambda f: raw_dataset(f, 1, (6,), (256,), good[:20] + b"\xff" * 8 + good[28:]),
        "deflate chunk is corrupt")
import struct  # noqa: E402
lie = struct.pack(">QI", 1 << 40, 1 << 20) + struct.pack(">I", 4) + b"abcd"
hostile("LZ4 size lie", lambda f: raw_dataset(f, 32004, (), (256,), lie), "LZ4 chunk's decoded size")
hostile("oversized stored chunk", lambda f: raw_dataset(f, 32015, (3,), (1024,), b"\0" * 60000),
        "stored size exceeds")

plan()
subprocess.run(["rm", "-rf", T])
