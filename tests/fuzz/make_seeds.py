#!/usr/bin/python3
"""make_seeds.py: write the seed inputs of tests/fuzz/corpus/{record,meta}/ (named seed-*).
The input layouts are described at the top of fuzz_record.c and fuzz_meta.c. Records are
built from the spec by tests/data/bad/make_bad.py's helpers. Inputs found by running the
fuzzers are added next to the seeds (named by libFuzzer's hash)."""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "data", "bad"))
import make_bad as mb  # noqa: E402

# zstd frame of the example palette body, built with python3-zstandard when available
try:
    import zstandard
except ImportError:
    zstandard = None


def put(kind, name, data):
    with open(os.path.join(HERE, "corpus", kind, "seed-" + name), "wb") as f:
        f.write(data)


def main():
    pal, idx = mb.PAL, mb.IDX
    rec = mb.record(pal, idx, 2, 3, sid=42)
    # palette, c=3, 2x3, k=4: opt bit1 (c=3)
    put("record", "pal-rgb-2x3", bytes([2, 1, 2, 3, 0]) + rec)
    put("record", "pal-rgb-2x3-chw-fixcrc", bytes([2 | 4 | 16, 1, 2, 3, 0]) + rec)
    put("record", "chunk-1", bytes([2 | 8, 1, 2, 3, 0]) + mb.chunk([rec]))
    put("record", "chunk-2-fixcrc", bytes([2 | 8 | 4, 1, 2, 3, 1]) +
        mb.chunk([rec, mb.record(pal, [2, 2, 2, 1, 1, 0], 2, 3, label=3)]))
    # grey K=64 8x8 (6-bit)
    g_idx = [(i * 7) % 64 for i in range(64)]
    put("record", "pal-grey-8x8-k64", bytes([0, 7, 7, 63, 0]) +
        mb.record(bytes(range(64)), g_idx, 6, 64, label=1))
    # K=256 4x4 RGB
    put("record", "pal-rgb-4x4-k256", bytes([2, 3, 3, 255, 0]) +
        mb.record(bytes(range(256)) * 3, list(range(0, 256, 16)), 8, 256, label=2))
    # direct grey 3x3 (kind bit)
    d = bytearray(struct.pack("<BBHI", 2, 0, 0, 5)) + bytes(range(9))
    put("record", "direct-grey-3x3", bytes([1, 2, 2, 0, 0]) + struct.pack("<I", mb.crc32c(bytes(d))) + bytes(d))
    if zstandard is not None:
        body = bytes(pal) + mb.pack(idx, 2)
        fr = zstandard.ZstdCompressor(level=3, write_content_size=True).compress(body)
        r = bytearray(struct.pack("<BBHI", 1 | 8, 2, 0, 7)) + fr
        put("record", "pal-rgb-2x3-zstd", bytes([2, 1, 2, 3, 0]) + struct.pack("<I", mb.crc32c(bytes(r))) + bytes(r))
    # metadata documents: byte0 = n_records % 8 | (n_classes % 4) << 3
    doc = (b'{"format": "apd", "format_version": "1.0", "kind": "palette", "c": 3, "h": 32, "w": 32, '
           b'"k": 64, "bits": 6, "records_per_chunk": 997, "n_records": 2, "n_classes": 2, '
           b'"class_counts": [1, 1], "class_names": ["a\\u00e9", "b\\"q"], "mean": [0.5, 0.25, 1e-3], '
           b'"std": [1, 2, 3], "dataset": "x", "budget": {"ipc": 10, "nested": [[1], {"a": null}]}, '
           b'"ok": true, "no": false}')
    put("meta", "full", bytes([2 | (2 << 3)]) + doc)
    put("meta", "empty-obj", bytes([0]) + b"{}")
    put("meta", "escapes", bytes([0]) + b'["\\ud83d\\ude00", "\\n\\t\\/", -0.5e+10, 0]')
    put("meta", "header", b"H" + mb.header())
    put("meta", "header-v2", b"H" + mb.header(major=2))
    print("seeds written")


if __name__ == "__main__":
    main()
