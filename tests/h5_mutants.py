#!/usr/bin/python3
"""Seeded mutants of a small h5py checkpoint, the same files on every run: the oldest
format (v1 object headers, attributes in the header, some chunked or gzip datasets),
then N copies with 1-8 random bytes changed each. With libhdf5 1.10.8, numbers
300-499 hold mutants that crash libhdf5 itself (which ones depends on the heap layout).
usage: h5_mutants.py OUT_DIR FIRST N   (writes OUT_DIR/base.h5 and OUT_DIR/mNNNN.h5)"""
import os
import random
import sys

import h5py
import numpy as np

out, first, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
base = os.path.join(out, "base.h5")
with h5py.File(base, "w", libver="earliest") as f:
    f.attrs["__version__"] = 1
    for j in range(12):
        f.attrs["meta%d" % j] = "value %d" % j
    g = f.create_group("model")
    for i in range(6):
        d = g.create_dataset("layer%d/kernel" % i, data=np.arange(16 * (i + 1), dtype=np.float32).reshape(-1, 4),
                             track_times=False, chunks=(2, 4) if i % 2 else None,
                             compression="gzip" if i % 3 == 0 and i else None)
        for j in range(10 if i % 2 else 2):
            d.attrs["a%d" % j] = np.arange(j + 1, dtype=np.int64)
        d.attrs["name"] = "w%d" % i
data = open(base, "rb").read()
for k in range(first, first + n):
    r = random.Random(7 * 100003 + k)
    m = bytearray(data)
    for _ in range(r.randint(1, 8)):
        m[r.randrange(8, len(m))] = r.randrange(256)
    open(os.path.join(out, "m%04d.h5" % k), "wb").write(m)
