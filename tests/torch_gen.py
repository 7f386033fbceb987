#!/usr/bin/python3
"""Writes real torch.save files into DIR (argument) and DIR/expected.tsv: what the torch
reader must produce for them, computed by torch itself. Run with Debian's python3 (which
has python3-torch): /usr/bin/python3 tests/torch_gen.py DIR

expected.tsv rows:
  T <file> <name> <dtype> <shape, comma-separated> <zlib.crc32 of t.contiguous() bytes, 8 hex>
  V <file> <name> <kind> <value: ints decimal, floats as the 16 hex digits of their bits>
"""
import collections
import os
import struct
import sys
import zlib

import torch

DTYPES = {torch.float32: "float32", torch.float64: "float64", torch.float16: "float16",
          torch.bfloat16: "bfloat16", torch.int64: "int64", torch.int32: "int32", torch.int16: "int16",
          torch.int8: "int8", torch.uint8: "uint8", torch.bool: "bool", torch.complex64: "complex64"}


def flatten(obj, name, out):
    if isinstance(obj, (dict, collections.OrderedDict)):
        for k, v in obj.items():
            flatten(v, f"{name}.{k}" if name else str(k), out)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            flatten(v, f"{name}.{i}" if name else str(i), out)
    else:
        out.append((name, obj))


def row(fname, name, obj):
    if isinstance(obj, torch.Tensor):
        t = obj.detach().contiguous()
        data = t.view(torch.int16).numpy().tobytes() if t.dtype == torch.bfloat16 else t.numpy().tobytes()
        shape = ",".join(str(d) for d in t.shape)
        return f"T\t{fname}\t{name}\t{DTYPES[t.dtype]}\t{shape}\t{zlib.crc32(data):08x}"
    if obj is None:
        return f"V\t{fname}\t{name}\tnone\t-"
    if isinstance(obj, bool):
        return f"V\t{fname}\t{name}\tbool\t{int(obj)}"
    if isinstance(obj, int):
        return f"V\t{fname}\t{name}\tint\t{obj}"
    if isinstance(obj, float):
        return f"V\t{fname}\t{name}\tfloat\t{struct.unpack('<Q', struct.pack('<d', obj))[0]:016x}"
    if isinstance(obj, str):
        return f"V\t{fname}\t{name}\tstr\t{obj}"
    raise TypeError(type(obj))


def trees():
    g = torch.Generator().manual_seed(10)
    base = torch.randn(6, 8, generator=g)
    shared = torch.arange(40, dtype=torch.float32)
    big = torch.randn(64, 48, generator=g)
    state = collections.OrderedDict([
        ("w32", torch.randn(3, 5, generator=g)),
        ("w16", torch.randn(4, 4, generator=g).half()),
        ("bf", torch.randn(7, 3, generator=g).to(torch.bfloat16)),
        ("mask", torch.rand(9, generator=g) > 0.5),
        ("ids", torch.randint(-10**12, 10**12, (5, 2), generator=g, dtype=torch.int64)),
        ("step", torch.tensor(12345678901, dtype=torch.int64)),
        ("f64", torch.randn(2, 3, 2, generator=g, dtype=torch.float64)),
        ("i8", torch.randint(-128, 127, (10,), generator=g, dtype=torch.int8)),
        ("u8", torch.randint(0, 255, (3, 3), generator=g, dtype=torch.uint8)),
        ("c64", torch.randn(3, generator=g, dtype=torch.complex64)),
        ("empty", torch.zeros(0, 4)),
    ])
    views = {
        "t": base.t(),                          # transposed
        "slice": base[2:5, 1:7:2],              # strided slice with a storage offset
        "row": base[3],                         # contiguous, offset, part of the storage
        "a": shared[:20].view(4, 5),            # two tensors sharing a storage
        "b": shared[20:],
        "big_t": big.t(),                       # transposed, bigger than small buffers
        "perm": torch.randn(3, 4, 5, generator=g).permute(2, 0, 1),
        "expand_like": torch.randn(4, 1, generator=g).expand(4, 6),  # stride 0
    }
    nested = {
        "model": {"0": {"weight": torch.ones(2, 2), "bias": torch.zeros(2)},
                  "layers": [torch.full((3,), 2.0), (torch.eye(2), torch.tensor([1, 2, 3]))]},
        "optimizer": collections.OrderedDict([("step", 7), ("name", "adam"), ("betas", (0.9, 0.999)),
                                              ("amsgrad", False), ("foreach", None), ("on", True)]),
        3: "int key",
        "param": torch.nn.Parameter(torch.randn(2, 3, generator=g)),
    }
    # what training scripts save: a module's state_dict() (an OrderedDict carrying a
    # _metadata attribute) and an optimizer's state_dict() (int keys, floats, tensors)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(2, 4, generator=g)).sum().backward()
    opt.step()
    train = {"model": model.state_dict(), "optimizer": opt.state_dict(), "epoch": 3}
    return {"state.pt": state, "views.pt": views, "nested.pt": nested, "train.pt": train}


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    rows = []
    for fname, tree in trees().items():
        torch.save(tree, os.path.join(out, fname))
        leaves = []
        flatten(tree, "", leaves)
        rows += [row(fname, n, o) for n, o in leaves]
    with open(os.path.join(out, "expected.tsv"), "w") as f:
        f.write("\n".join(rows) + "\n")


if __name__ == "__main__":
    main()
