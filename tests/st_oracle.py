#!/usr/bin/python3
"""An independent safetensors reader, written from the format's description
(huggingface/safetensors README and safetensors/src/tensor.rs), not from ckptd's code
and without the safetensors package: numpy decodes the data.

  st_oracle.py FILE                 print every tensor and the metadata
  st_oracle.py FILE EXPECT.json     also compare with what the writer meant to write
                                    (tests/test_safetensors --write makes both)
Exit status 0 if the file is valid (and matches), 1 otherwise."""
import json
import struct
import sys

import numpy as np

DTYPES = {  # name -> (numpy dtype or None for raw bytes, element size)
    "F64": ("<f8", 8), "F32": ("<f4", 4), "F16": ("<f2", 2), "BF16": (None, 2),
    "I64": ("<i8", 8), "I32": ("<i4", 4), "I16": ("<i2", 2), "I8": ("i1", 1),
    "U64": ("<u8", 8), "U32": ("<u4", 4), "U16": ("<u2", 2), "U8": ("u1", 1),
    "BOOL": ("?", 1), "F8_E5M2": (None, 1), "F8_E4M3": (None, 1),
}


def no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate key in %r" % keys)
    return dict(pairs)


def read(path):
    """(tensors in data order as (name, dtype, shape, raw bytes), metadata) or ValueError."""
    blob = open(path, "rb").read()
    if len(blob) < 8:
        raise ValueError("shorter than 8 bytes")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > 100_000_000 or n > len(blob) - 8:
        raise ValueError("bad header length %d" % n)
    header = json.loads(blob[8:8 + n].decode("utf-8"), object_pairs_hook=no_duplicates)
    if not isinstance(header, dict):
        raise ValueError("header is not an object")
    meta = header.pop("__metadata__", None) or {}
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items()):
        raise ValueError("metadata is not str -> str")
    data = blob[8 + n:]
    tensors, at = [], 0
    for name, info in sorted(header.items(), key=lambda kv: tuple(kv[1]["data_offsets"])):
        if set(info) != {"dtype", "shape", "data_offsets"} or info["dtype"] not in DTYPES:
            raise ValueError("%s: bad entry %r" % (name, info))
        begin, end = info["data_offsets"]
        size = DTYPES[info["dtype"]][1] * int(np.prod(info["shape"], dtype=np.int64))
        if begin != at or end - begin != size:
            raise ValueError("%s: offsets %r, expected start %d size %d" % (name, info["data_offsets"], at, size))
        tensors.append((name, info["dtype"], list(info["shape"]), data[begin:end]))
        at = end
    if at != len(data):
        raise ValueError("data is %d bytes, tensors cover %d" % (len(data), at))
    return n, tensors, meta


def as_numbers(dtype, raw, shape):
    np_type = DTYPES[dtype][0]
    if dtype == "BF16":  # the top half of a float32
        return (np.frombuffer(raw, "<u2").astype(np.uint32) << 16).view(np.float32).reshape(shape)
    if np_type is None:
        return None
    return np.frombuffer(raw, np_type).reshape(shape)


def compare(tensors, meta, expect):
    bad = []
    if [t[0] for t in tensors] != [e["name"] for e in expect["tensors"]]:
        bad.append("tensor names or order differ")
    for (name, dtype, shape, raw), e in zip(tensors, expect["tensors"]):
        if dtype != e["dtype"] or shape != e["shape"] or raw.hex() != e["hex"]:
            bad.append("%s: dtype, shape or bytes differ" % name)
            continue
        got = as_numbers(dtype, raw, shape)
        if got is None or not e["values"]:
            continue
        if got.dtype.kind in "fb":  # floats (BF16 decoded to float32) and bools
            want = np.array(e["values"], dtype=got.dtype).reshape(shape)
        else:  # integers: the writer's values wrap to the dtype as two's complement
            want = np.array(e["values"], dtype=np.int64).astype(got.dtype).reshape(shape)
        if not np.array_equal(got, want):
            bad.append("%s: values %r, expected %r" % (name, got.ravel()[:8], want.ravel()[:8]))
    for k, v in expect["metadata"].items():
        if meta.get(k) != v:
            bad.append("metadata %r: %r, expected %r" % (k, meta.get(k), v))
    kinds = json.loads(meta.get("__ckptd_values__", "{}"))
    if kinds.get("step") != "int" or kinds.get("optimizer.lr") != "float" or kinds.get("note") != "str":
        bad.append("__ckptd_values__ %r lacks the value kinds" % kinds)
    return bad


def main():
    try:
        n, tensors, meta = read(sys.argv[1])
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        print("invalid: %s" % e)
        return 1
    print("header %d bytes (%s a multiple of 8), %d tensors" % (n, "is" if n % 8 == 0 else "NOT", len(tensors)))
    for name, dtype, shape, raw in tensors:
        v = as_numbers(dtype, raw, shape)
        print("  %-24r %-8s %-10s %s" % (name, dtype, shape, raw.hex()[:32] if v is None else v.ravel()[:6]))
    print("metadata: %s" % json.dumps(meta, sort_keys=True)[:400])
    if len(sys.argv) > 2:
        bad = compare(tensors, meta, json.load(open(sys.argv[2])))
        bad += [] if n % 8 == 0 else ["header length not a multiple of 8"]
        for b in bad:
            print("MISMATCH: %s" % b)
        if bad:
            return 1
        print("matches %s" % sys.argv[2])
    return 0


if __name__ == "__main__":
    sys.exit(main())
