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


def icode_seed(name, c, h, w, k, pal, idx, opt=0, version=1):
    model, body = mb.ic_model_and_body(pal, idx, k, c, h, w, version=version)
    put("icode", name, bytes([(c == 3) | opt, h - 1, w - 1, k - 1]) + struct.pack("<H", len(model)) + model + body)


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
    # format 1.1 soft labels (opt bit 6): the example record with a vector, and one that fails
    soft = [0.0] * 10
    soft[1], soft[7] = 0.25, 0.75
    put("record", "pal-rgb-2x3-soft", bytes([2 | 64, 1, 2, 3, 0]) + mb.record(pal, idx, 2, 3, sid=42, soft=soft))
    put("record", "chunk-2-soft-fixcrc", bytes([2 | 8 | 4 | 64, 1, 2, 3, 1]) +
        mb.chunk([mb.record(pal, idx, 2, 3, soft=soft), mb.record(pal, idx, 2, 3, label=1, soft=soft)]))
    d = bytearray(struct.pack("<BBHI", 2 | 0x20, 0, 0, 7)) + struct.pack("<10f", *soft) + bytes(range(9))
    put("record", "direct-grey-3x3-soft", bytes([1 | 64, 2, 2, 0, 0]) + struct.pack("<I", mb.crc32c(bytes(d))) + bytes(d))
    put("meta", "header-soft", b"H" + mb.header(minor=1, flags=2))
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
    # index coding (format 1.1): model + coded body per seed
    os.makedirs(os.path.join(HERE, "corpus", "icode"), exist_ok=True)
    icode_seed("grey-2x3-k3", 1, 2, 3, 3, [0, 128, 255], [0, 1, 2, 2, 1, 0])
    ramp = [((y // 2 + x // 3) + (7 * y * x) % 5) % 64 for y in range(32) for x in range(32)]
    icode_seed("rgb-32x32-k64", 3, 32, 32, 64, [(37 * j) % 256 for j in range(192)], ramp)
    icode_seed("grey-9x13-k5-fixcrc", 1, 9, 13, 5, [0, 60, 120, 180, 240],
               [(y + x) % 5 for y in range(9) for x in range(13)], opt=2)
    icode_seed("rgb-17x3-k256", 3, 17, 3, 256, [(j * 11) % 256 for j in range(768)],
               [(y * 3 + x) * 5 % 256 for y in range(17) for x in range(3)])
    icode_seed("grey-1x1-k1", 1, 1, 1, 1, [9], [0])
    # index model version 2 (format 1.2): the continuous wavefront, h > 8
    icode_seed("rgb-32x32-k64-v2", 3, 32, 32, 64, [(37 * j) % 256 for j in range(192)], ramp, version=2)
    icode_seed("grey-9x13-k5-fixcrc-v2", 1, 9, 13, 5, [0, 60, 120, 180, 240],
               [(y + x) % 5 for y in range(9) for x in range(13)], opt=2, version=2)
    icode_seed("rgb-17x3-k256-v2", 3, 17, 3, 256, [(j * 11) % 256 for j in range(768)],
               [(y * 3 + x) * 5 % 256 for y in range(17) for x in range(3)], version=2)
    print("seeds written")


if __name__ == "__main__":
    main()
