#!/usr/bin/python3
"""Regenerates the seed corpora of fuzz-zip and fuzz-unpickle from small real torch.save
files (Debian's python3 with python3-torch): /usr/bin/python3 tests/fuzz/torch_seeds.py"""
import collections
import os
import zipfile

import torch

here = os.path.dirname(os.path.abspath(__file__))
zdir, pdir = os.path.join(here, "corpus-zip"), os.path.join(here, "corpus-unpickle")
os.makedirs(zdir, exist_ok=True)
os.makedirs(pdir, exist_ok=True)
base = torch.arange(12, dtype=torch.float32).reshape(3, 4)
shared = torch.arange(6, dtype=torch.int64)
trees = {
    "flat": {"w": torch.ones(2, 3), "b": torch.zeros(3, dtype=torch.float16), "m": torch.tensor([True, False])},
    "views": {"t": base.t(), "s": base[1:, ::2], "x": shared[:3], "y": shared[3:]},
    "nested": {"model": [torch.ones(1, dtype=torch.bfloat16), (torch.tensor(3), 4)],
               "opt": collections.OrderedDict(step=1, name="sgd", on=True, off=None, lr=0.5), 7: "k"},
    "param": {"p": torch.nn.Parameter(torch.ones(2)), "dev": torch.device("cpu"), "dt": torch.float32},
    "list": [torch.ones(1, dtype=torch.int8), [], {}, ()],
    "module": {"model": torch.nn.Linear(2, 1).state_dict(), "epoch": 1},  # BUILD of _metadata
}
for name, tree in trees.items():
    path = os.path.join(zdir, name + ".pt")
    torch.save(tree, path)
    with zipfile.ZipFile(path) as z:
        pkl = [n for n in z.namelist() if n.endswith("/data.pkl")][0]
        with open(os.path.join(pdir, name + ".pkl"), "wb") as f:
            f.write(z.read(pkl))
