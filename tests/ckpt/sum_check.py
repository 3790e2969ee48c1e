#!/usr/bin/env python3
"""sum_check.py -- a checkpoint's checksums, computed here from
docs/checkpoint-format.md with h5py and python3-xxhash (no weft code):

  sum_check.py FILE              every dataset's xxh3_64 attribute against
                                 the format's definition; the file must be
                                 format 2 with checksum_block = 1 MiB and hold
                                 at least one dataset of several blocks
  sum_check.py FILE format-1 OUT  OUT: a copy of FILE as format 1 writes it
                                 (format_version 1, no checksum_block, each
                                 xxh3_64 of the dataset's whole bytes)

Format 2: XXH3-64 (seed 0) of each checksum_block bytes of the dataset's
row-major little-endian bytes (the last block shorter); one block: that
hash; more: XXH3-64 of the block hashes as 8 little-endian bytes each.
"""
import shutil
import sys

import h5py
import numpy as np
import xxhash


def data_bytes(d):
    a = d[...]
    return a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes()


def blocked(b, block):
    if len(b) <= block:
        return xxhash.xxh3_64_intdigest(b)
    hashes = b"".join(xxhash.xxh3_64_intdigest(b[i:i + block]).to_bytes(8, "little")
                      for i in range(0, len(b), block))
    return xxhash.xxh3_64_intdigest(hashes)


def datasets(f):
    out = []
    f.visititems(lambda name, obj: out.append(name) if isinstance(obj, h5py.Dataset) else None)
    return out


def check(path):
    bad, multi = [], 0
    with h5py.File(path, "r") as f:
        if int(f.attrs["format_version"]) != 2 or int(f.attrs["checksum_block"]) != 1 << 20:
            sys.exit(f"{path}: format_version {f.attrs.get('format_version')}, checksum_block "
                     f"{f.attrs.get('checksum_block')}: wanted 2 and 1048576")
        block = int(f.attrs["checksum_block"])
        for name in datasets(f):
            b = data_bytes(f[name])
            multi += len(b) > block
            want, have = blocked(b, block), int(f[name].attrs["xxh3_64"])
            if want != have:
                bad.append(f"{name}: stored {have:016x}, the format's definition gives {want:016x}")
    if bad:
        sys.exit("\n".join(bad))
    if multi == 0:
        sys.exit(f"{path}: no dataset spans two checksum blocks: the test checks nothing of the blocks")
    print(f"{path}: every checksum as the format defines it ({multi} datasets of several blocks)")


def to_format_1(path, out):
    shutil.copyfile(path, out)
    with h5py.File(out, "r+") as f:
        f.attrs.modify("format_version", np.int64(1))
        del f.attrs["checksum_block"]
        for name in datasets(f):
            f[name].attrs.modify("xxh3_64", np.uint64(xxhash.xxh3_64_intdigest(data_bytes(f[name]))))


def main():
    if len(sys.argv) == 2:
        check(sys.argv[1])
    elif len(sys.argv) == 4 and sys.argv[2] == "format-1":
        to_format_1(sys.argv[1], sys.argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
