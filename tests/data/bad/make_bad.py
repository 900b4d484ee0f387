#!/usr/bin/python3
"""make_bad.py: write the committed corpus of .apd files that conforming readers must reject
(tests/data/bad/*.apd) and MANIFEST, which says, for each file, where it must fail ("open",
or "record N" = opens but record N must fail) and with which libapd status.

The files are built from spec/apd-format.md with py-lmdb (python3-lmdb), not with libapd, so
they also exercise the spec. Run from anywhere: /usr/bin/python3 tests/data/bad/make_bad.py
Every file is a small LMDB environment (a few 4 KiB pages) written in one transaction.
"""
import os
import struct
import sys

import lmdb

HERE = os.path.dirname(os.path.abspath(__file__))
MAGIC = b"\x89APD\r\n\x1a\n"


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def header(kind=1, c=3, bits=2, flags=0, k=4, h=2, w=3, N=4, n_classes=10, n=1, major=1,
           minor=0, magic=MAGIC, fix_crc=True):
    b = bytearray(magic + struct.pack("<HHIBBBBHHIIIIQ", major, minor, 64, kind, c, bits, flags, k,
                                      0, h, w, N, n_classes, n) + bytes(12))
    b += struct.pack("<I", crc32c(bytes(b)) if fix_crc else 0)
    assert len(b) == 64
    return bytes(b)


def pack(indices, bits):
    acc, have, out = 0, 0, bytearray()
    for v in indices:
        acc |= v << have
        have += bits
        while have >= 8:
            out.append(acc & 0xFF)
            acc >>= 8
            have -= 8
    if have:
        out.append(acc)
    return bytes(out)


def record(pal, indices, bits, k, label=7, sid=None, fix_crc=True, body=None, soft=None):
    flags = 1 | (4 if sid is not None else 0) | (0x20 if soft is not None else 0)
    r = bytearray(struct.pack("<BBHI", flags, k - 1, 0, label))
    if sid is not None:
        r += struct.pack("<Q", sid)
    if soft is not None:  # spec 7.5: n_classes float32 after the source id
        r += struct.pack("<%df" % len(soft), *soft)
    r += body if body is not None else bytes(pal) + pack(indices, bits)
    return struct.pack("<I", crc32c(bytes(r)) if fix_crc else 0) + bytes(r)


def chunk(records, chunk_no=0):
    n = len(records)
    table = 24 + 4 * (n + 1)
    offs, pos = [], table
    for r in records:
        offs.append(pos)
        pos += len(r)
    offs.append(pos)
    head = b"APDK" + struct.pack("<IIQ", n, 0, chunk_no) + struct.pack("<%dI" % (n + 1), *offs)
    return struct.pack("<I", crc32c(head)) + head + b"".join(records)


def meta_json(n=1, counts=None, k=4, bits=2, h=2, w=3, c=3, N=4, extra=""):
    counts = counts if counts is not None else [0] * 7 + [n] + [0] * 2
    doc = ('{"format": "apd", "format_version": "1.0", "kind": "palette", "c": %d, "h": %d, '
           '"w": %d, "k": %d, "bits": %d, "records_per_chunk": %d, "n_records": %d, '
           '"n_classes": 10, "class_counts": [%s]%s}\n' % (c, h, w, k, bits, N, n,
                                                          ", ".join(map(str, counts)), extra))
    d = doc.encode()
    return struct.pack("<I", crc32c(d)) + d


# ---- format 1.1 index coding (spec 7.4, 8.1), encoded here from the spec ----------------
EDGES = (1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 17, 20, 24, 30)
LANES, NCTX, M, L = 8, 192, 1024, 1 << 16


def ctx_pred(a, b, c):
    mn, mx = min(a, b), max(a, b)
    case, pred = (0, mn) if c >= mx else (1, mx) if c <= mn else (2, a + b - c)
    rng = max(a, b, c) - min(a, b, c)
    d = mx - mn
    return 4 * (3 * sum(1 for e in EDGES if rng >= e) + case) + (d >= 1) + (d >= 2) + (d >= 4), pred


def ic_order(h, w, version):
    """(lane, y, x) of the index map in decoding order (spec 7.4.2): version 1 in row groups,
    version 2 one continuous wavefront (lane l: rows l, l + 8, ... back to back)."""
    if version == 1:
        for y0 in range(0, h, LANES):
            nl = min(LANES, h - y0)
            for t in range(w + nl - 1):
                for lane in range(nl):
                    if 0 <= t - lane < w:
                        yield lane, y0 + lane, t - lane
        return
    W, left, t = max(w, LANES), h * w, 0
    while left:
        for lane in range(LANES):
            u = t - lane
            if u >= 0 and u % W < w and lane + LANES * (u // W) < h:
                left -= 1
                yield lane, lane + LANES * (u // W), u % W
        t += 1


def ic_symbols(pal, idx, k, c, h, w, bits, version=1):
    """(lane, table, symbol) in decoding order (spec 7.4.2)."""
    out = []
    for j in range(k * c):
        out.append((j % LANES, NCTX + j % c, (pal[j] - (pal[j - c] if j >= c else 0)) % 256))
    get = lambda y, x: idx[y * w + x] if y >= 0 and x >= 0 else 0  # noqa: E731
    for lane, y, x in ic_order(h, w, version):
        ctx, pred = ctx_pred(get(y, x - 1), get(y - 1, x), get(y - 1, x - 1))
        out.append((lane, ctx, (idx[y * w + x] - pred) % (1 << bits)))
    return out


def ic_model_and_body(pal, idx, k, c, h, w, version=1):
    """A model built from this one image (meta/imodel value, CRC included) and its body."""
    bits = max(1, (k - 1).bit_length())
    syms = ic_symbols(pal, idx, k, c, h, w, bits, min(version, 2))
    freq = []
    for t, n in enumerate([1 << bits] * NCTX + [256] * c):
        cnt = [0] * n
        for _, tt, sy in syms:
            if tt == t:
                cnt[sy] += 1
        if t >= NCTX:
            cnt = [v + 1 for v in cnt]
        tot = sum(cnt)
        f = [max(1, v * M // tot) if v else 0 for v in cnt] if tot else [0] * n
        if tot:
            f[f.index(max(f))] += M - sum(f)
        freq.append(f)
    payload = b"APDM" + bytes([version, c, bits, LANES, 10, NCTX, 0, 0])
    for f in freq:
        for v in f:
            payload += bytes([v]) if v < 128 else bytes([(v & 0x7F) | 0x80, v >> 7])
    model = struct.pack("<I", crc32c(payload)) + payload
    x, words = [L] * LANES, []
    for lane, t, sy in reversed(syms):
        f, cum = freq[t][sy], sum(freq[t][:sy])
        if x[lane] >= f << 22:
            words.append(x[lane] & 0xFFFF)
            x[lane] >>= 16
        x[lane] = (x[lane] // f << 10) + x[lane] % f + cum
    body = struct.pack("<%dI" % LANES, *x) + b"".join(struct.pack("<H", v) for v in reversed(words))
    return model, body


def coded_record(body, k, label=7, fix_crc=True):
    r = bytearray(struct.pack("<BBHI", 1 | 0x40, k - 1, 0, label)) + body
    return struct.pack("<I", crc32c(bytes(r)) if fix_crc else 0) + bytes(r)


PAL = bytes([255, 0, 0, 0, 128, 0, 0, 0, 255])
IDX = [0, 1, 2, 2, 1, 0]


def write_env(name, items, plain=None):
    """items: {(db, key): value}; plain: {key: value} in the main database (foreign env)."""
    path = os.path.join(HERE, name)
    for p in (path, path + "-lock"):
        if os.path.exists(p):
            os.remove(p)
    env = lmdb.open(path, subdir=False, max_dbs=4, map_size=1 << 20, lock=False)
    with env.begin(write=True) as txn:
        if plain:
            for k, v in plain.items():
                txn.put(k, v)
        dbs = {}
        for (db, key), val in items.items():
            if db not in dbs:
                dbs[db] = env.open_db(db.encode(), txn=txn)
            txn.put(key, val, db=dbs[db])
    env.close()
    if os.path.exists(path + "-lock"):
        os.remove(path + "-lock")


def valid_items(rec=None, hdr=None, js=None, ch=None):
    rec = rec if rec is not None else record(PAL, IDX, 2, 3, sid=42)
    return {("meta", b"header"): hdr if hdr is not None else header(),
            ("meta", b"json"): js if js is not None else meta_json(),
            ("chunks", (0).to_bytes(8, "big")): ch if ch is not None else chunk([rec])}


def main():
    manifest = []

    def add(name, where, status, items=None, plain=None, raw=None, why=""):
        if raw is not None:
            with open(os.path.join(HERE, name), "wb") as f:
                f.write(raw)
        else:
            write_env(name, items or {}, plain)
        manifest.append((name, where, status, why))

    add("valid.apd", "ok", "APD_OK", valid_items(), why="control: a valid file")
    add("empty.apd", "open", "APD_ETRUNC", raw=b"", why="zero-length file")
    add("not_lmdb.apd", "open", "APD_EMAGIC", raw=b"this is not an LMDB environment\n" * 300,
        why="text file")
    add("foreign.apd", "open", "APD_EFOREIGN", plain={b"hello": b"world"},
        why="plain LMDB environment without the .apd databases")
    add("foreign_nohdr.apd", "open", "APD_EFOREIGN",
        {("meta", b"other"): b"x", ("chunks", b"k"): b"y"}, why="meta database without a header")
    add("bad_magic.apd", "open", "APD_EMAGIC", valid_items(hdr=header(magic=b"\x89APX\r\n\x1a\n")),
        why="header magic wrong (CRC valid)")
    add("bad_version.apd", "open", "APD_EVERSION", valid_items(hdr=header(major=2)),
        why="major version 2")
    h = bytearray(header())
    h[25] ^= 0x01
    add("header_crc.apd", "open", "APD_ECHECKSUM", valid_items(hdr=bytes(h)),
        why="one bit of h flipped, CRC not updated")
    add("header_short.apd", "open", "APD_ETRUNC", valid_items(hdr=header()[:40]),
        why="header value cut to 40 bytes")
    add("header_reserved.apd", "open", "APD_ECORRUPT", valid_items(hdr=header(flags=0x80)),
        why="reserved header flag bit set")
    add("bits_mismatch.apd", "open", "APD_ECORRUPT", valid_items(hdr=header(bits=3)),
        why="bits != ceil(log2 k)")
    add("hostile_dims.apd", "open", "APD_ELIMIT",
        valid_items(hdr=header(h=100000, w=100000), js=meta_json(h=100000, w=100000)),
        why="100000 x 100000 images (above the default limit 4096)")
    add("hostile_count.apd", "open", "APD_ELIMIT",
        valid_items(hdr=header(n=1 << 40), js=meta_json(n=1 << 40)),
        why="2^40 records claimed")
    items = valid_items()
    del items[("meta", b"json")]
    add("meta_missing.apd", "open", "APD_EMETA", items, why="no metadata document")
    add("meta_mismatch.apd", "open", "APD_EMETA", valid_items(js=meta_json(h=5)),
        why="metadata h disagrees with the header")
    add("meta_counts.apd", "open", "APD_EMETA", valid_items(js=meta_json(counts=[1] * 10)),
        why="class_counts do not sum to n_records")
    add("meta_not_json.apd", "open", "APD_EMETA",
        valid_items(js=struct.pack("<I", crc32c(b"{not json")) + b"{not json"),
        why="metadata is not JSON")
    js = bytearray(meta_json())
    js[10] ^= 0x20
    add("meta_crc.apd", "open", "APD_ECHECKSUM", valid_items(js=bytes(js)),
        why="metadata byte changed, CRC not updated")
    add("chunk_count.apd", "open", "APD_ECORRUPT",
        valid_items(hdr=header(n=5), js=meta_json(n=5)),
        why="header says 5 records (2 chunks of N=4) but one chunk is stored")
    rec = bytearray(record(PAL, IDX, 2, 3, sid=42))
    rec[-2] ^= 0x10
    add("record_crc.apd", "record 0", "APD_ECHECKSUM", valid_items(rec=bytes(rec)),
        why="palette byte changed, record CRC not updated")
    add("record_trunc.apd", "record 0", "APD_ETRUNC",
        valid_items(rec=record(PAL, IDX, 2, 3, sid=42, body=PAL + pack(IDX, 2)[:1])),
        why="body one byte short (record CRC valid)")
    add("record_index.apd", "record 0", "APD_ECORRUPT",
        valid_items(rec=record(PAL, [0, 1, 2, 3, 1, 0], 2, 3)),
        why="index 3 >= the record's palette size 3 (CRC valid)")
    add("record_padding.apd", "record 0", "APD_ECORRUPT",
        valid_items(rec=record(PAL, IDX, 2, 3, body=PAL + bytes([0xA4, 0x81]))),
        why="nonzero padding bit after the last index (CRC valid)")
    add("record_label.apd", "record 0", "APD_ECORRUPT",
        valid_items(rec=record(PAL, IDX, 2, 3, label=10)),
        why="label 10 >= n_classes 10 (CRC valid)")
    add("record_k.apd", "record 0", "APD_ECORRUPT",
        valid_items(rec=record(PAL + bytes(6), IDX, 2, 5)),
        why="record palette of 5 entries > file k 4 (CRC valid)")
    ch = bytearray(chunk([record(PAL, IDX, 2, 3)]))
    ch[8] ^= 0x02
    add("chunk_crc.apd", "record 0", "APD_ECHECKSUM", valid_items(ch=bytes(ch)),
        why="chunk count field changed, chunk CRC not updated")
    add("chunk_number.apd", "record 0", "APD_ECORRUPT",
        valid_items(ch=chunk([record(PAL, IDX, 2, 3)], chunk_no=7)),
        why="chunk number 7 stored under key 0")
    # document 1.1: completeness, normalisation ranges, the LMDB container
    add("complete.apd", "ok", "APD_OK", valid_items(js=meta_json(extra=', "complete": true')),
        why='a valid file with "complete": true')
    add("incomplete.apd", "open", "APD_EMETA", valid_items(js=meta_json(extra=', "complete": false')),
        why='"complete": false: its writer never finished it')
    add("complete_type.apd", "open", "APD_EMETA", valid_items(js=meta_json(extra=', "complete": 1')),
        why='"complete" is not a boolean')
    add("std_range.apd", "open", "APD_EMETA",
        valid_items(js=meta_json(extra=', "mean": [0.5, 0.5, 0.5], "std": [1e300, 0.2, 0.2]'), ),
        why="std 1e300 (finite JSON, outside 0 or [1e-6, 1])")
    add("mean_range.apd", "open", "APD_EMETA",
        valid_items(js=meta_json(extra=', "mean": [-0.5, 0.5, 0.5], "std": [0.2, 0.2, 0.2]')),
        why="mean -0.5 (outside [0, 1])")
    with open(os.path.join(HERE, "valid.apd"), "rb") as f:
        good = f.read()
    psize = struct.unpack_from("<I", good, 40)[0]
    add("truncated.apd", "open", "APD_ETRUNC", raw=good[:-psize],
        why="the valid file without its last LMDB page (interrupted copy)")
    bad = bytearray(good)
    for pg in range(2, len(good) // psize):  # the leaf page holding chunk 0
        page = good[pg * psize:(pg + 1) * psize]
        if struct.unpack_from("<QHH", page)[0] == pg and page[10] == 0x02 and b"APDK" in page:
            struct.pack_into("<Q", bad, pg * psize, pg + 100)
            break
    else:
        raise SystemExit("make_bad: no leaf page with chunk 0 in valid.apd")
    add("page_number.apd", "open", "APD_ECORRUPT", raw=bytes(bad),
        why="the LMDB leaf page holding chunk 0 names another page in its header")

    # format 1.1 index coding: the valid record's palette and indices, coded
    model, body = ic_model_and_body(PAL, IDX, 3, 3, 2, 3)
    h11 = header(minor=1, flags=4)

    def coded_items(mv=model, rec=None, hdr=h11):
        it = valid_items(rec=rec if rec is not None else coded_record(body, 3), hdr=hdr)
        if mv is not None:
            it[("meta", b"imodel")] = mv
        return it

    add("coded_valid.apd", "ok", "APD_OK", coded_items(), why="control: a valid format 1.1 coded file")
    add("coded_model_missing.apd", "open", "APD_ECORRUPT", coded_items(mv=None),
        why="header flag bit 2 but no meta/imodel")
    mv = bytearray(model)
    mv[40] ^= 0x01
    add("coded_model_crc.apd", "open", "APD_ECHECKSUM", coded_items(mv=bytes(mv)),
        why="index model byte changed, model CRC not updated")
    add("coded_valid_v2.apd", "ok", "APD_OK",
        coded_items(mv=ic_model_and_body(PAL, IDX, 3, 3, 2, 3, version=2)[0], hdr=header(minor=2, flags=4)),
        why="control: a valid format 1.2 coded file (index model version 2; h = 2, so the order of 1.1)")
    add("coded_model_version.apd", "open", "APD_EVERSION",
        coded_items(mv=ic_model_and_body(PAL, IDX, 3, 3, 2, 3, version=3)[0], hdr=header(minor=2, flags=4)),
        why="index model version 3 (CRC valid): a newer format feature")
    add("coded_model_v2_minor1.apd", "open", "APD_ECORRUPT",
        coded_items(mv=ic_model_and_body(PAL, IDX, 3, 3, 2, 3, version=2)[0]),
        why="index model version 2 in a format 1.1 header (needs version_minor 2)")
    mv = bytearray(model)
    mv[16] = (mv[16] + 1) & 0x7F
    mv[0:4] = struct.pack("<I", crc32c(bytes(mv[4:])))
    add("coded_model_sum.apd", "open", "APD_ECORRUPT", coded_items(mv=bytes(mv)),
        why="index model table does not sum to 1024 (CRC valid)")
    add("coded_flag_v10.apd", "open", "APD_ECORRUPT", coded_items(hdr=header(minor=0, flags=4)),
        why="header flag bit 2 in a format 1.0 header")
    # format 1.1 soft labels (spec 7.5): the valid record with a vector, label 7 the largest
    h_soft = header(minor=1, flags=2)
    good = [0.0] * 10
    good[1], good[7] = 0.25, 0.75

    def soft_items(soft, hdr=h_soft, trunc=0):
        rec = record(PAL, IDX, 2, 3, sid=42, soft=soft)
        if trunc:  # cut inside the vector, CRC fixed (the body is gone too)
            r = rec[4:4 + 20 + 4 * 10 - trunc]
            rec = struct.pack("<I", crc32c(r)) + r
        return valid_items(rec=rec, hdr=hdr)

    add("soft_labels.apd", "ok", "APD_OK", soft_items(good),
        why="control: a valid format 1.1 file with a soft-label vector (spec 13.2)")
    add("soft_flag_v10.apd", "open", "APD_ECORRUPT", soft_items(good, hdr=header(minor=0, flags=2)),
        why="header flag bit 1 (soft labels) in a format 1.0 header")
    add("soft_no_classes.apd", "open", "APD_ECORRUPT", valid_items(hdr=header(minor=1, flags=2, n_classes=0)),
        why="header flag bit 1 (soft labels) with n_classes 0")
    add("soft_future_flag.apd", "open", "APD_EVERSION", valid_items(hdr=header(minor=3, flags=8)),
        why="unknown header flag bit 3 with version_minor 3: a newer format feature")
    add("future_flag_minor2.apd", "open", "APD_ECORRUPT", valid_items(hdr=header(minor=2, flags=8)),
        why="unknown header flag bit 3 with version_minor 2: a reserved bit of format 1.2")
    add("soft_no_header_flag.apd", "record 0", "APD_ECORRUPT", soft_items(good, hdr=header(minor=1)),
        why="record flag bit 5 (soft labels) without header flag bit 1")
    nan = list(good)
    nan[3] = float("nan")
    add("soft_nan.apd", "record 0", "APD_ECORRUPT", soft_items(nan),
        why="soft label of class 3 is NaN (CRC valid)")
    neg = list(good)
    neg[1], neg[2] = 0.5, -0.25
    add("soft_negative.apd", "record 0", "APD_ECORRUPT", soft_items(neg),
        why="soft label of class 2 is -0.25, the vector sums to 1 (CRC valid)")
    add("soft_sum.apd", "record 0", "APD_ECORRUPT", soft_items([0.0] * 7 + [0.75] + [0.0] * 2),
        why="soft labels sum to 0.75 (CRC valid)")
    arg = [0.0] * 10
    arg[1], arg[7] = 0.75, 0.25
    add("soft_argmax.apd", "record 0", "APD_ECORRUPT", soft_items(arg),
        why="label 7 has soft label 0.25 < 0.75 of class 1 (CRC valid)")
    add("soft_trunc.apd", "record 0", "APD_ETRUNC", soft_items(good, trunc=6),
        why="record ends inside its soft-label vector (CRC valid)")
    add("coded_no_model_flag.apd", "record 0", "APD_ECORRUPT", coded_items(hdr=header()),
        why="coded record (flag bit 6) in a file without header flag bit 2")
    add("coded_trunc.apd", "record 0", "APD_ETRUNC", coded_items(rec=coded_record(body[:-2], 3)),
        why="coded body one word short (record CRC valid)")
    add("coded_leftover.apd", "record 0", "APD_ECORRUPT", coded_items(rec=coded_record(body + b"\0\0", 3)),
        why="coded body with a word after its last symbol (record CRC valid)")
    m4, b4 = ic_model_and_body(PAL, [0, 1, 2, 3, 1, 0], 3, 3, 2, 3)
    add("coded_index.apd", "record 0", "APD_ECORRUPT", coded_items(mv=m4, rec=coded_record(b4, 3)),
        why="coded index 3 >= record palette size 3")
    r = bytearray(coded_record(body, 3))
    r[20] ^= 0x10
    add("coded_crc.apd", "record 0", "APD_ECHECKSUM", coded_items(rec=bytes(r)),
        why="coded body bit flipped, record CRC not updated")

    with open(os.path.join(HERE, "MANIFEST"), "w") as f:
        f.write("# file  where(open|ok|record N)  expected-status  # why (generated by make_bad.py)\n")
        for name, where, status, why in manifest:
            f.write("%s\t%s\t%s\t# %s\n" % (name, where, status, why))
    print("wrote %d files to %s" % (len(manifest), HERE))


if __name__ == "__main__":
    sys.exit(main())
