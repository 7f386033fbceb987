"""crc32c and TensorFlow's stored layouts of strings and variants, written from
TensorFlow's tensor_bundle.cc independently of ckptd's C code: the Python tests' oracle."""
import struct

_TABLE = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    _TABLE.append(c)


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def mask(c):
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def varint(v):
    out = bytearray()
    while v >= 0x80:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def tf_strings(elems):
    lens, crc = b"", 0
    for e in elems:
        lens += varint(len(e))
        crc = crc32c(struct.pack("<I", len(e)) if len(e) <= 0xFFFFFFFF else struct.pack("<Q", len(e)), crc)
    return lens + struct.pack("<I", mask(crc)) + b"".join(elems)


def tf_variants(elems):
    out, crc = b"", 0
    for e in elems:
        crc = crc32c(struct.pack("<Q", len(e)), crc)
        crc = crc32c(e, crc)
        ck = struct.pack("<I", mask(crc))
        crc = crc32c(ck, crc)
        out += varint(len(e)) + e + ck
    return out
