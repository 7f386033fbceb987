#!/usr/bin/python3
"""Check a torch.save file that ckptd's torch sink wrote (tests/test_torch_write.c).

usage: torch_check.py FILE.pt EXPECT.json

The zip, with Python's zipfile and by hand: one top folder holding data.pkl, version "3\\n",
byteorder "little" and data/<k> entries; CRCs right (testzip); every entry's data 64-byte
aligned (header_offset + 30 + name + local extra); each data descriptor after the data agreeing
with the central directory (16 bytes, 24 with zip64); zip64 fields present when expected.
Then torch.load: with weights_only=True unless the tree holds floats, where torch 1.x must
refuse weights_only=True because of BINFLOAT alone and weights_only=False loads it; the loaded
object against EXPECT (tree structure and types, dtypes, shapes, contiguous strides, every byte
of every tensor, every value). With same_pickle, torch.save of the loaded object must produce
the very same data.pkl bytes. Exit status 0 when everything holds; messages on stdout.
"""
import collections
import io
import json
import struct
import sys
import zipfile

import torch

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL:", what)


def check_zip(path, expect):
    f = open(path, "rb")  # not read whole: the zip64 case starts after a 4 GiB hole

    def raw(off, n):
        f.seek(off if off >= 0 else f.seek(0, 2) + off)
        return f.read(n)

    z = zipfile.ZipFile(path)
    check(z.testzip() is None, "zipfile.testzip: every CRC right")
    names = z.namelist()
    tops = {n.split("/", 1)[0] for n in names}
    check(len(tops) == 1, f"one top folder: {tops}")
    top = names[0].split("/", 1)[0]
    first = 1 if expect.get("hole") else 0  # the test hole, then data.pkl
    check(names[first] == top + "/data.pkl", f"data.pkl first: {names[first]}")
    check(z.read(top + "/version") == b"3\n", "version is 3")
    check(z.read(top + "/byteorder") == b"little", "byteorder is little")
    nz64 = 0
    for info in z.infolist():
        h = info.header_offset
        check(raw(h, 4) == b"PK\x03\x04", f"{info.filename}: local header")
        nlen, xlen = struct.unpack("<HH", raw(h + 26, 4))
        start = h + 30 + nlen + xlen
        check(start % 64 == 0, f"{info.filename}: data at {start}, not 64-byte aligned")
        wide = raw(h + 30 + nlen, 2) == b"\x01\x00"
        nz64 += info.extra[:2] == b"\x01\x00"
        end = start + info.file_size
        if info.file_size == 0:
            check(info.flag_bits & 8 == 0, f"{info.filename}: empty, no descriptor")
            continue
        check(info.flag_bits & 8 == 8, f"{info.filename}: data descriptor flag")
        if wide:
            sig, crc, csize, usize = struct.unpack("<IIQQ", raw(end, 24))
        else:
            sig, crc, csize, usize = struct.unpack("<IIII", raw(end, 16))
        check(sig == 0x08074B50 and crc == info.CRC and csize == usize == info.file_size,
              f"{info.filename}: descriptor {hex(sig)} {hex(crc)} {csize} {usize}")
    if expect["zip64"]:
        check(nz64 > 0, "zip64 extra fields in the central directory")
        check(raw(-22 + 16, 4) == b"\xff" * 4, "end record defers to the zip64 end record")
    else:
        check(nz64 == 0, "no zip64 extra fields")
    return z, top


def expected_tree(expect):
    leaves = expect["leaves"]

    def leaf(name):
        return leaves.get(name, {"t": "none"})

    if expect["spec"] is None:
        return {"t": "dict", "items": [(n, leaf(n)) for n in expect["order"]]}
    spec = json.loads(expect["spec"])
    check(spec[0] == 1, "treespec protocol 1")

    def node(n, prefix):
        kind = n["type"]
        if kind is None:
            return leaf(prefix)
        kids = n["children_spec"]
        if kind in ("builtins.dict", "collections.OrderedDict"):
            keys = json.loads(n["context"])
        else:
            keys = list(range(len(kids)))
        items = []
        for k, c in zip(keys, kids):
            items.append((k, node(c, f"{prefix}.{k}" if prefix else str(k))))
        t = {"builtins.dict": "dict", "collections.OrderedDict": "odict",
             "builtins.list": "list", "builtins.tuple": "tuple"}[kind]
        return {"t": t, "items": items}

    return node(spec[1], "")


def contiguous_strides(shape):
    st, acc = [], 1
    for d in reversed(shape):
        st.append(acc)
        acc *= max(d, 1)
    return tuple(reversed(st))


def tensor_bytes(t):
    if t.dtype == torch.bfloat16:
        t = t.view(torch.int16)
    return t.numpy().tobytes()


def compare(got, exp, where):
    t = exp["t"]
    types = {"dict": dict, "odict": collections.OrderedDict, "list": list, "tuple": tuple}
    if t in types:
        check(type(got) is types[t], f"{where}: {type(got).__name__}, expected {t}")
        if t in ("dict", "odict"):
            check(list(got.keys()) == [k for k, _ in exp["items"]], f"{where}: keys {list(got.keys())}")
            for k, e in exp["items"]:
                if k in got:
                    compare(got[k], e, f"{where}[{k!r}]")
        else:
            check(len(got) == len(exp["items"]), f"{where}: {len(got)} items")
            for (i, e), g in zip(exp["items"], got):
                compare(g, e, f"{where}[{i}]")
    elif t == "tensor":
        ok = isinstance(got, torch.Tensor)
        check(ok, f"{where}: {type(got).__name__}, expected a tensor")
        if ok:
            check(got.dtype == getattr(torch, exp["dtype"]), f"{where}: dtype {got.dtype}")
            check(tuple(got.shape) == tuple(exp["shape"]), f"{where}: shape {tuple(got.shape)}")
            check(got.stride() == contiguous_strides(exp["shape"]), f"{where}: stride {got.stride()}")
            check(not got.requires_grad and got.storage_offset() == 0, f"{where}: plain tensor")
            check(tensor_bytes(got) == bytes.fromhex(exp["hex"]), f"{where}: bytes differ")
    elif t == "none":
        check(got is None, f"{where}: {got!r}, expected None")
    else:
        want = {"int": int, "str": str, "bool": bool, "float": float}[t]
        check(type(got) is want and got == exp["v"], f"{where}: {got!r}, expected {t} {exp['v']!r}")


def main():
    path, exp_path = sys.argv[1], sys.argv[2]
    expect = json.load(open(exp_path))
    z, top = check_zip(path, expect)
    major = int(torch.__version__.split(".")[0])
    if expect["floats"] and major < 2:
        try:
            torch.load(path, weights_only=True)
            check(False, "torch 1.x loaded floats with weights_only=True")
        except Exception as e:  # pickle.UnpicklingError: "Unsupported operand 71" (BINFLOAT)
            check("71" in str(e), f"weights_only=True refused for another reason: {e}")
    if not expect.get("torch", True):
        print(f"{path}: zipfile only (a lowered zip64 limit: miniz checks 32-bit offsets against the size)")
        return 1 if failures else 0
    obj = torch.load(path, weights_only=expect["weights_only"] or (expect["floats"] and major >= 2))
    compare(obj, expected_tree(expect), "obj")
    if expect["same_pickle"]:
        buf = io.BytesIO()
        torch.save(obj, buf)
        ref = zipfile.ZipFile(buf)
        ours = z.read(top + "/data.pkl")
        theirs = ref.read(ref.namelist()[0])
        check(ours == theirs, f"data.pkl differs from torch.save's ({len(ours)} vs {len(theirs)} bytes)")
    print(f"torch {torch.__version__}: {path}: {'ok' if not failures else 'FAILED'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
