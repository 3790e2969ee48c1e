#!/usr/bin/env python3
"""flip.py -- change one byte of a checkpoint, with h5py (no weft code), for
tests/ckpt/test_sign.sh:

  flip.py FILE tensor NAME [AT] a byte of dataset NAME's data (byte AT of it,
                               5 by default), in place in the file
  flip.py FILE table NAME      a byte of dataset NAME's xxh3_64 attribute (the
                               checksum table), rewritten through HDF5
  flip.py FILE signature       a hex digit of the signature's Ed25519 part,
                               changed to another, rewritten through HDF5
  flip.py FILE raw-table NAME  the table's byte flipped in place in the file

Attributes live in HDF5 object headers, which carry their own checksums in
weft's files: a byte flipped in place there (raw-table) is caught by HDF5 as
a damaged file before weft reads the value. A tamperer rewrites the value
through HDF5 instead, which is what table and signature do.
"""
import sys

import h5py


def flip_at(path, off, new=None):
    with open(path, "r+b") as f:
        f.seek(off)
        b = f.read(1)[0]
        f.seek(off)
        f.write(bytes([new if new is not None else b ^ 0x01]))


def find_once(path, needle, what):
    data = open(path, "rb").read()
    at = data.find(needle)
    if at < 0 or data.find(needle, at + 1) >= 0:
        sys.exit(f"flip.py: {what} is not stored exactly once in {path}")
    return at


def main():
    path, kind = sys.argv[1], sys.argv[2]
    if kind in ("table", "signature"):
        import numpy
        with h5py.File(path, "r+") as f:
            if kind == "table":
                a = f[sys.argv[3]].attrs
                a.modify("xxh3_64", numpy.uint64(int(a["xxh3_64"]) ^ (0xFF << 24)))
            else:
                v = f.attrs["signature"]
                v = bytearray(v.encode() if isinstance(v, str) else bytes(v))
                v[100] = ord("0") if v[100] != ord("0") else ord("1")
                f.attrs.create("signature", numpy.bytes_(bytes(v)))
        return
    if kind == "raw-table":
        kind = "table"
    with h5py.File(path, "r") as f:
        if kind == "tensor":
            off = f[sys.argv[3]].id.get_offset() + (int(sys.argv[4]) if len(sys.argv) > 4 else 5)
            value = None
        elif kind == "table":
            value = int(f[sys.argv[3]].attrs["xxh3_64"]).to_bytes(8, "little")
        else:
            value = f.attrs["signature"]
            value = value.encode() if isinstance(value, str) else bytes(value)
    if kind == "tensor":
        flip_at(path, off)
    elif kind == "table":
        flip_at(path, find_once(path, value, "the checksum") + 3)
    else:
        at = find_once(path, value, "the signature") + 100  # inside the 128 hex digits of the signature
        flip_at(path, at, ord("0") if value[100] != ord("0") else ord("1"))


if __name__ == "__main__":
    main()
