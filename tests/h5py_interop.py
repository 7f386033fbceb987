#!/usr/bin/python3
"""HDF5 interoperability, checked with h5py as an independent reader and writer.

Part A: every TensorFlow fixture -> tensorflow-to-h5 -> h5py: names, dtypes, shapes and
values equal the TF side (values through MANIFEST.tsv's sha256 of the stored bytes,
recomputed here from what h5py reads), then back with h5-to-tensorflow, equal per ckpt diff.
Part B: files written by h5py (every dtype, nested groups, Cerebras legacy and 0.5 layouts,
Keras trees) -> h5-to-tensorflow: the bytes in the data files equal what numpy says.
Prints TAP."""
import hashlib
import json
import os
import struct
import subprocess
import sys
import tempfile
from urllib.parse import quote, unquote

import h5py
import numpy as np

TOOLS = sys.argv[1]
FIX = os.path.join(sys.argv[2], "tf")
T = tempfile.mkdtemp(prefix="ckptd-h5py.")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from taplib import ok, plan, skip  # noqa: E402
import taplib  # noqa: E402


def run(*args):
    return taplib.run(TOOLS, *args)


from tf_oracle import tf_strings, tf_variants  # noqa: E402  (beside this script)


def elements(ds):
    vals = ds[()]
    if ds.shape == ():  # a scalar: the one element itself (an array of uint8, or bytes)
        flat = [vals]
    else:
        flat = list(np.asarray(vals, dtype=object).reshape(-1))
    return [bytes(bytearray(v)) if not isinstance(v, (bytes, str)) else (v.encode() if isinstance(v, str) else v)
            for v in flat]


def stored_bytes(ds, tf_dtype):
    if tf_dtype == "DT_STRING":
        return tf_strings(elements(ds))
    if tf_dtype == "DT_VARIANT":
        return tf_variants(elements(ds))
    return np.ascontiguousarray(ds[()]).tobytes()


# ---- Part A ----
manifest = {}
with open(os.path.join(FIX, "MANIFEST.tsv")) as f:
    for line in f:
        row = line.rstrip("\n").split("\t")
        if row[0] == "fixture":
            continue
        manifest.setdefault((row[0], row[1]), []).append(row)

checked = 0
for (fixture, prefix), rows in sorted(manifest.items()):
    src = os.path.join(FIX, fixture, prefix)
    if not any(os.path.exists(src + ".data-00000-of-0000%d" % k) for k in (1, 2)):
        continue  # index-only fixtures
    for layout in ("flat", "nested"):
        out = os.path.join(T, "%s-%s.h5" % (fixture, layout))
        rc, so, se = run("tensorflow-to-h5", "--quiet", "--layout", layout, src, out)
        if layout == "nested" and rc == 1 and "is both a tensor and a group" in se:
            ok(True, "%s (nested): refused with a clear error: %s" % (fixture, se.strip()[-80:]))
            continue
        if not ok(rc == 0, "%s (%s): tensorflow-to-h5 exits 0 %s" % (fixture, layout, se.strip())):
            continue
        bad = []
        with h5py.File(out, "r") as h:
            names = set()
            h.visititems(lambda k, v: names.add(k) if isinstance(v, h5py.Dataset) else None)
            for row in rows:
                key, dtype, shape, size, sha = row[2], row[3], row[4], int(row[7]), row[9]
                path = quote(key, safe="") if layout == "flat" else key
                if path not in h:
                    bad.append("%s missing" % key)
                    continue
                ds = h[path]
                want_shape = () if shape == "scalar" else tuple(int(x) for x in shape.split("x"))
                data = stored_bytes(ds, dtype)
                got = hashlib.sha256(data).hexdigest()[:16]
                if ds.attrs["tf_dtype"] != dtype or ds.shape != want_shape or len(data) != size or got != sha:
                    bad.append("%s: %s %s %d %s" % (key, ds.attrs["tf_dtype"], ds.shape, len(data), got))
            if len(names) != len(rows):
                bad.append("%d datasets for %d tensors" % (len(names), len(rows)))
            if not h.attrs.get("__SUCCESS__", False):
                bad.append("no __SUCCESS__")
        ok(not bad, "%s (%s): h5py reads %d tensors equal to TensorFlow's (names, dtypes, shapes, sha256) %s"
           % (fixture, layout, len(rows), "; ".join(bad[:3])))
        back = os.path.join(T, "%s-%s-back" % (fixture, layout))
        os.mkdir(back)
        rc, so, se = run("h5-to-tensorflow", "--quiet", "--verify", out, os.path.join(back, prefix))
        rc2, so2, se2 = run("ckpt", "diff", src, os.path.join(back, prefix))
        ok(rc == 0 and rc2 == 0, "%s (%s): back to TF, ckpt diff finds it equal %s%s" % (fixture, layout, se.strip(),
                                                                                        so2.strip()[-200:]))
        checked += 1
ok(checked >= 60, "%d fixture conversions checked with h5py" % checked)



# ---- Part C: the direct writer (flat, uncompressed, fixed-size dtypes; h5_flat.c) ----
# against libhdf5's own writer (the nested layout), both read by h5py: every name looked
# up through the B-tree, dtypes, shapes, bytes and attributes equal; then libhdf5 itself
# adds to the file (its heap and B-tree) and reads it all back.
src = os.path.join(T, "direct_src")
rc, so, se = run("ckpt", "synth", src, "--tensors", "9000", "--size", "12M", "--spread", "100000", "--seed", "7",
                 "--dtypes", "float32,bfloat16,float16,float64,int8,int16,int32,int64,uint8,bool,complex64")
ok(rc == 0, "synth 9,000 tensors of 11 dtypes (a B-tree of 3 levels): %s" % se.strip())
flat = os.path.join(T, "direct.h5")
nested = os.path.join(T, "nested.h5")
rc1, _, se1 = run("tensorflow-to-h5", "--verify", src, flat)
rc2, _, se2 = run("tensorflow-to-h5", "--layout", "nested", src, nested)
ok(rc1 == 0 and rc2 == 0, "written directly (flat) and by libhdf5 (nested): %s %s" % (se1.strip(), se2.strip()))
with open(flat, "rb") as f:
    sb = f.read(16)
ok(sb[:8] == b"\x89HDF\r\n\x1a\n" and sb[8] == 0, "the flat file has the original superblock (version 0)")
with h5py.File(flat, "r") as a, h5py.File(nested, "r") as b:
    names = list(a.keys())
    ok(len(names) == 9000 and names == sorted(names, key=lambda n: n.encode()),
       "h5py lists 9,000 names, in name order: %d" % len(names))
    bad = []
    kinds = set()
    for n in names:
        da = a[n]  # a lookup by name: the B-tree's keys
        db = b[unquote(n)]
        kinds.add((str(da.dtype), len(da.shape), da.size == 0))
        same = (da.dtype == db.dtype and da.shape == db.shape and
                np.ascontiguousarray(da[()]).tobytes() == np.ascontiguousarray(db[()]).tobytes() and
                dict(da.attrs) == dict(db.attrs))
        if not same:
            bad.append(n)
    ok(not bad, "every dataset equals libhdf5's: dtype, shape, bytes, attributes with ckptd_order (%d differ: %s)" %
       (len(bad), bad[:3]))
    ok(any(k[1] == 0 for k in kinds) and any(k[2] for k in kinds) and len({k[0] for k in kinds}) >= 10,
       "scalars, empty tensors and 10+ element types among them: %s" % sorted({k[0] for k in kinds}))
    ok(dict(a.attrs) == dict(b.attrs), "root attributes equal: %s" % sorted(a.attrs.keys()))
    try:
        a["layer_00001%2Fkernelx"]
        ok(False, "a missing name is not found")
    except KeyError:
        ok(True, "a missing name is not found")
with h5py.File(flat, "r+") as a:
    a["added/by_libhdf5"] = np.arange(5, dtype=np.int32)
    a["layer_00000%2Fkernel"].attrs["note"] = "x" * 100
    a.attrs["more"] = 1
with h5py.File(flat, "r") as a:
    ok(len(a.keys()) == 9001 and list(a["added/by_libhdf5"][()]) == list(range(5)) and
       a["layer_00000%2Fkernel"].attrs["note"] == "x" * 100 and
       all(a[n].shape == a[n][()].shape for n in names),
       "libhdf5 adds a group, a dataset and attributes to it, and reads everything back")

# ---- Part B ----
def tf_side(prefix):
    rc, so, se = run("ckpt", "ls", "--format", "json", prefix)
    if rc != 0:
        return None, se
    info = json.loads(so)
    out = {}
    for t in info["tensors"]:
        shards = len({x["shard"] for x in info["tensors"]}) if info["tensors"] else 1
        out[t["name"]] = t
    return out, ""


def stored_at(prefix, t, nshards):
    path = "%s.data-%05d-of-%05d" % (prefix, t["shard"], nshards)
    with open(path, "rb") as f:
        f.seek(t["offset"])
        return f.read(t["bytes"])


def check_b(label, h5path, expect, skipped=0):
    """expect: name -> (tf dtype, bytes the data file must hold)."""
    prefix = os.path.join(T, label + "-out", "model")
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    rc, so, se = run("h5-to-tensorflow", "--verify", h5path, prefix)
    if not ok(rc == 0, "%s: h5-to-tensorflow exits 0 %s" % (label, se.strip())):
        return
    ok((skipped == 0 and "skipped" not in so) or ("%d leaves skipped" % skipped) in so,
       "%s: %d non-tensor leaves reported skipped (%s)" % (label, skipped, so.strip()[-60:]))
    tf, err = tf_side(prefix)
    nshards = 1
    bad = []
    for name, (dtype, data) in expect.items():
        t = tf.get(name)
        if t is None:
            bad.append("%s missing (have %s)" % (name, sorted(tf)[:4]))
            continue
        got = stored_at(prefix, t, nshards)
        if t["dtype"] != dtype or got != data:
            bad.append("%s: %s, %d bytes" % (name, t["dtype"], len(got)))
    if len(tf) != len(expect):
        bad.append("%d tensors, expected %d" % (len(tf), len(expect)))
    ok(not bad, "%s: every tensor has the expected dtype and bytes %s" % (label, "; ".join(bad[:3])))
    ckpt_file = os.path.join(os.path.dirname(prefix), "checkpoint")
    ok(os.path.exists(ckpt_file) and 'model_checkpoint_path: "model"' in open(ckpt_file).read(),
       "%s: the checkpoint file names the new bundle" % label)


rng = np.random.default_rng(7)
LE = {"f2": "<f2", "f4": "<f4", "f8": "<f8"}
numeric = {
    "DT_HALF": np.float16, "DT_FLOAT": np.float32, "DT_DOUBLE": np.float64, "DT_INT8": np.int8,
    "DT_INT16": np.int16, "DT_INT32": np.int32, "DT_INT64": np.int64, "DT_UINT8": np.uint8,
    "DT_UINT16": np.uint16, "DT_UINT32": np.uint32, "DT_UINT64": np.uint64,
}
path = os.path.join(T, "all_dtypes.h5")
expect = {}
with h5py.File(path, "w") as f:
    for dt, npt in numeric.items():
        a = (rng.standard_normal((3, 4)) * 50).astype(npt)
        f.create_dataset("num/" + dt, data=a)
        expect["num/" + dt] = (dt, a.astype(np.dtype(npt).newbyteorder("<")).tobytes())
    b = rng.standard_normal((5,)) > 0
    f["bool"] = b
    expect["bool"] = ("DT_BOOL", b.astype(np.uint8).tobytes())
    c64 = (rng.standard_normal(4) + 1j * rng.standard_normal(4)).astype(np.complex64)
    c128 = c64.astype(np.complex128)
    f["c64"] = c64
    f["c128"] = c128
    expect["c64"] = ("DT_COMPLEX64", c64.tobytes())
    expect["c128"] = ("DT_COMPLEX128", c128.tobytes())
    be = np.arange(6, dtype=">f4").reshape(2, 3)
    f["bigendian"] = be
    expect["bigendian"] = ("DT_FLOAT", be.astype("<f4").tobytes())
    bel = np.arange(3, dtype=">i8")
    f["bigendian_i64"] = bel
    expect["bigendian_i64"] = ("DT_INT64", bel.astype("<i8").tobytes())
    g = (rng.standard_normal((64, 33))).astype(np.float32)
    f.create_dataset("deep/nested/group/gzip", data=g, compression="gzip", chunks=(8, 11))
    expect["deep/nested/group/gzip"] = ("DT_FLOAT", g.tobytes())
    f["scalar"] = np.float64(2.5)
    expect["scalar"] = ("DT_DOUBLE", np.float64(2.5).tobytes())
    f.create_dataset("zero", shape=(0, 3), dtype=np.float32)
    expect["zero"] = ("DT_FLOAT", b"")
    vb = [b"", b"\x00\xffbinary", b"x" * 70000]
    ds = f.create_dataset("vbytes", (3,), dtype=h5py.vlen_dtype(np.uint8))
    for i, v in enumerate(vb):
        ds[i] = np.frombuffer(v, dtype=np.uint8)
    expect["vbytes"] = ("DT_STRING", tf_strings(vb))
    vs = ["hello", "", "h\u00e9llo w\u00f6rld"]
    f.create_dataset("vstr", data=vs, dtype=h5py.string_dtype())
    expect["vstr"] = ("DT_STRING", tf_strings([s.encode() for s in vs]))
    fs = np.array([b"ab", b"abcdef", b""], dtype="S6")
    f["fixedstr"] = fs
    expect["fixedstr"] = ("DT_STRING", tf_strings([b"ab", b"abcdef", b""]))
    f.create_dataset("empty_leaf", data=h5py.Empty("f"))
check_b("h5py all dtypes, nested groups", path, expect, skipped=1)

# Cerebras legacy: flat escaped names, bfloat16 as int16 + is_bfloat16, empty typed leaves
path = os.path.join(T, "cerebras_legacy.h5")
expect = {}
with h5py.File(path, "w") as f:
    f.attrs["__version__"] = "0.4"
    bf = rng.integers(-30000, 30000, size=(4, 3), dtype=np.int16)
    d = f.create_dataset(quote("model/layer.0/weight", safe=""), data=bf)
    d.attrs["__H5_TYPE__"] = "TorchTensorH5Type"
    d.attrs["is_bfloat16"] = True
    expect["model/layer.0/weight"] = ("DT_BFLOAT16", bf.tobytes())
    w = rng.standard_normal(7).astype(np.float32)
    d = f.create_dataset(quote("model/layer.0/bias", safe=""), data=w)
    d.attrs["__H5_TYPE__"] = "NumpyArrayH5Type"
    expect["model/layer.0/bias"] = ("DT_FLOAT", w.tobytes())
    e = f.create_dataset(quote("optimizer/state/none", safe=""), data=h5py.Empty("f"))
    e.attrs["__H5_TYPE__"] = "NoneH5Type"
    e = f.create_dataset(quote("lr_scheduler/name", safe=""), data=h5py.Empty("f"))
    e.attrs["__H5_TYPE__"] = "StringH5Type"
    e.attrs["string_value"] = "linear"
check_b("Cerebras legacy", path, expect, skipped=2)


def write_c05(path, success):
    expect = {}
    with h5py.File(path, "w", track_order=True) as f:
        f.attrs["__version__"] = "0.5"
        bf = rng.integers(-30000, 30000, size=(8, 16), dtype=np.int16)
        f.create_dataset("model/layer.0/weight", data=bf, **hdf5plugin.LZ4())
        f.attrs["model/layer.0/weight.__metadata__"] = json.dumps({"dtypes": ["torch.bfloat16"], "shapes": [[8, 16]]})
        expect["model/layer.0/weight"] = ("DT_BFLOAT16", bf.tobytes())
        w = rng.standard_normal((16,)).astype(np.float32)
        f.create_dataset("model/layer.0/bias", data=w, **hdf5plugin.LZ4())
        f.attrs["model/layer.0/bias.__metadata__"] = json.dumps({"dtypes": ["torch.float32"], "shapes": [[16]]})
        expect["model/layer.0/bias"] = ("DT_FLOAT", w.tobytes())
        f.attrs["global_step.__metadata__"] = json.dumps({"dtypes": ["int"], "value": 100})
        if success:
            f.attrs["__SUCCESS__"] = True
    return expect


try:
    import hdf5plugin
    path = os.path.join(T, "cerebras05.h5")
    expect = write_c05(path, True)
    check_b("Cerebras 0.5 (LZ4, JSON metadata)", path, expect, skipped=1)
    path = os.path.join(T, "cerebras05_incomplete.h5")
    write_c05(path, False)
    rc, so, se = run("h5-to-tensorflow", path, os.path.join(T, "incomplete"))
    ok(rc == 1 and "__SUCCESS__" in se and "cerebras05_incomplete.h5" in se,
       "Cerebras 0.5 without __SUCCESS__ is refused: %s" % se.strip())
    ok(not os.path.exists(os.path.join(T, "incomplete.index")), "and nothing is written")
except ImportError:
    skip("hdf5plugin not installed (python3-hdf5plugin)")

# Keras weight file: a plain h5py tree
path = os.path.join(T, "keras.h5")
expect = {}
with h5py.File(path, "w") as f:
    g = f.create_group("model_weights/dense/dense")
    f["model_weights"].attrs["layer_names"] = [b"dense"]
    k = rng.standard_normal((4, 2)).astype(np.float32)
    b = np.zeros(2, dtype=np.float32)
    g["kernel:0"] = k
    g["bias:0"] = b
    expect["model_weights/dense/dense/kernel:0"] = ("DT_FLOAT", k.tobytes())
    expect["model_weights/dense/dense/bias:0"] = ("DT_FLOAT", b.tobytes())
check_b("Keras weight tree", path, expect)

# an unsupported element type names the dataset and the type
path = os.path.join(T, "compound.h5")
with h5py.File(path, "w") as f:
    f["pairs"] = np.zeros(3, dtype=[("a", "<i4"), ("b", "<f8")])
rc, so, se = run("h5-to-tensorflow", path, os.path.join(T, "compound"))
ok(rc == 1 and "/pairs" in se and "compound" in se, "unsupported type refused naming it: %s" % se.strip())

plan()
subprocess.run(["rm", "-rf", T])
