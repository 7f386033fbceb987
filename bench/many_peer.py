"""The numpy + h5py peer of bench_many.sh: what a Python script does with the same
checkpoint, for time and peak RSS against ckptd's tools.

  many_peer.py to-h5 LISTING DATA OUT.h5   every tensor of the bundle's data file (from
      `ckpt ls --format tsv`, made outside the timing) read with numpy and written as
      an h5py dataset with ckptd's three attributes, in data order; then fsync.
  many_peer.py from-h5 IN.h5 OUT.data      every dataset read with h5py, in creation
      order, its bytes appended to one file; then fsync. No index and no checksums
      (numpy has no crc32c): a lower bound of the Python route's cost.
"""
import os
import sys
from urllib.parse import quote

import h5py
import numpy as np

DTYPES = {"DT_FLOAT": np.float32, "DT_DOUBLE": np.float64, "DT_INT32": np.int32, "DT_INT64": np.int64,
          "DT_INT16": np.int16, "DT_INT8": np.int8, "DT_UINT8": np.uint8, "DT_BFLOAT16": np.int16,
          "DT_HALF": np.float16}


def to_h5(listing, data, out):
    rows = []
    with open(listing) as f:
        next(f)
        for line in f:
            name, dtype, shape, nbytes, _shard, offset, crc = line.rstrip("\n").split("\t")
            dims = () if shape == "scalar" else tuple(int(d) for d in shape.split("x"))
            rows.append((int(offset), name, dtype, dims, int(nbytes), int(crc, 16)))
    rows.sort()
    with open(data, "rb") as src, h5py.File(out, "w", track_order=True) as h:
        for offset, name, dtype, dims, nbytes, crc in rows:
            src.seek(offset)
            a = np.frombuffer(src.read(nbytes), dtype=DTYPES[dtype]).reshape(dims)
            d = h.create_dataset(quote(name, safe=""), data=a)
            d.attrs["__H5_TYPE__"] = "NumpyArrayH5Type"
            d.attrs["tf_dtype"] = dtype
            d.attrs["tf_crc32c"] = np.uint32(crc)
            if dtype == "DT_BFLOAT16":
                d.attrs["is_bfloat16"] = True
    fd = os.open(out, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)


def from_h5(src, out):
    with h5py.File(src, "r") as h, open(out, "wb") as o:
        for name in h:
            o.write(np.ascontiguousarray(h[name][()]).tobytes())
        o.flush()
        os.fsync(o.fileno())


if __name__ == "__main__":
    if sys.argv[1] == "to-h5":
        to_h5(*sys.argv[2:5])
    else:
        from_h5(*sys.argv[2:4])
