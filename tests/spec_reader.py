#!/usr/bin/python3
"""spec_reader.py: an independent .apd reader written from spec/apd-format.md alone (no libapd
code), with Debian's python3-lmdb and python3-zstandard. It is the conformance test of the spec:

    spec_reader.py FILE.apd                 decode and validate every record, print a summary
    spec_reader.py FILE.apd --compare DUMP  ... and require byte equality with DUMP, the C
                                            decoder's output (tests/format/spec_dump.c)
    spec_reader.py --dir DIR                every DIR/*.apd against DIR/*.dump
    spec_reader.py --bad DIR                DIR/MANIFEST (tests/data/bad): every file marked
                                            "ok" must read, every other file must be rejected
    spec_reader.py --examples               only the self-checks: the worked examples of
                                            section 13 and the index-map orders of 7.4.2
                                            (--dir runs them too)

Exit codes: 0 ok, 1 mismatch or invalid file, 2 usage, 77 python3-lmdb or python3-zstandard
missing (ctest SKIP_RETURN_CODE).
"""
import json
import os
import struct
import sys

try:
    import lmdb
    import zstandard
except ImportError as e:  # pragma: no cover
    print("spec_reader: skipped, missing module: %s" % e)
    sys.exit(77)

MAGIC = b"\x89APD\r\n\x1a\n"  # spec section 4
# Format 1.1 features this reader implements (section 12): header flag bit -> name. Tests
# remove one to act as a reader without it, which must refuse by version, naming the feature.
FEATURES_11 = {2: "soft labels", 4: "entropy-coded index maps"}
# Index model versions this reader implements (section 8.1; version 2 is format 1.2). Tests
# remove 2 to act as a reader of format 1.1, which must refuse a version 2 model by version.
MODEL_VERSIONS = {1, 2}


class Bad(Exception):
    """The file violates the spec."""


# ---- spec section 9: CRC-32C (reflected 0x82F63B78, init and xorout 0xFFFFFFFF) ----------
def _crc_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ (0x82F63B78 if c & 1 else 0)
        t.append(c)
    return t


_T = _crc_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = _T[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283


def bits_for_k(k):
    b = 1
    while (1 << b) < k:
        b += 1
    return b


# ---- sections 3.1-3.2: the LMDB container, checked before LMDB maps the file --------------
def _u16(b, o):
    return struct.unpack_from("<H", b, o)[0]


def _u64(b, o):
    return struct.unpack_from("<Q", b, o)[0]


def _db_record(b):
    flags, depth, branch, leaf, overflow, entries, root = struct.unpack_from("<HHQQQQQ", b, 4)
    return dict(flags=flags, depth=depth, branch=branch, leaf=leaf, overflow=overflow,
                entries=entries, root=root)


def _key_lt(a, b):  # byte-wise lexicographic (a shorter prefix first)
    return a < b


class _Container:
    """Section 3.2 walk of one snapshot."""

    def __init__(self, f, psize, last):
        self.f, self.psize, self.last, self.seen, self.subs = f, psize, last, {0, 1}, {}

    def page(self, pg):
        if not 2 <= pg <= self.last:
            raise Bad("container: page %d outside 2..%d" % (pg, self.last))
        if pg in self.seen:
            raise Bad("container: page %d reached twice" % pg)
        self.seen.add(pg)
        self.f.seek(pg * self.psize)
        p = self.f.read(self.psize)
        if len(p) != self.psize:
            raise Bad("container: page %d past the end of the file" % pg)
        if _u64(p, 0) != pg:
            raise Bad("container: page %d names page %d in its header" % (pg, _u64(p, 0)))
        return p

    def overflow(self, pg, size):
        if not 2 <= pg <= self.last:
            raise Bad("container: overflow page %d outside 2..%d" % (pg, self.last))
        self.f.seek(pg * self.psize)
        h = self.f.read(16)
        pages = struct.unpack_from("<I", h, 12)[0]
        if _u64(h, 0) != pg or _u16(h, 10) != 0x04:
            raise Bad("container: page %d is not an overflow page" % pg)
        if pages < -(-(16 + size) // self.psize) or pg + pages - 1 > self.last:
            raise Bad("container: overflow run at page %d has %d pages" % (pg, pages))
        run = set(range(pg, pg + pages))
        if run & self.seen:
            raise Bad("container: overflow run at page %d overlaps reached pages" % pg)
        self.seen |= run
        self.count["overflow"] += pages

    def tree(self, db, is_main):
        self.count = dict(branch=0, leaf=0, overflow=0, entries=0)
        if db["root"] == 2 ** 64 - 1:
            if db["depth"] or db["entries"] or db["branch"] or db["leaf"] or db["overflow"]:
                raise Bad("container: empty database with nonzero counts")
            return
        if not 1 <= db["depth"] <= 31:
            raise Bad("container: depth %d" % db["depth"])
        self.walk(db["root"], 1, db["depth"], None, None, is_main)
        for k in ("branch", "leaf", "overflow", "entries"):
            if self.count[k] != db[k]:
                raise Bad("container: %s count %d, the tree has %d" % (k, db[k], self.count[k]))

    def walk(self, pg, level, depth, lo, hi, is_main):
        p = self.page(pg)
        branch = level < depth
        flags, lower, upper = struct.unpack_from("<HHH", p, 10)
        n = (lower - 16) // 2
        if flags != (1 if branch else 2) or lower < 16 or lower % 2 or not lower <= upper <= self.psize \
                or n < (2 if branch else 1):
            raise Bad("container: page %d is not a valid %s page" % (pg, "branch" if branch else "leaf"))
        nodes, prev = [], None
        for i in range(n):
            off = _u16(p, 16 + 2 * i)
            if off < upper or off + 8 > self.psize:
                raise Bad("container: page %d node %d outside the node area" % (pg, i))
            lo16, hi16, nflags, ksize = struct.unpack_from("<HHHH", p, off)
            if off + 8 + ksize > self.psize:
                raise Bad("container: page %d node %d key outside the page" % (pg, i))
            key = p[off + 8:off + 8 + ksize]
            if not (branch and i == 0):
                if (prev is not None and not _key_lt(prev, key)) or (lo is not None and _key_lt(key, lo)) \
                        or (hi is not None and not _key_lt(key, hi)):
                    raise Bad("container: page %d keys out of order" % pg)
                prev = key
            nodes.append((off, lo16, hi16, nflags, ksize, key))
        for i, (off, lo16, hi16, nflags, ksize, key) in enumerate(nodes):
            if branch:
                child = lo16 | hi16 << 16 | nflags << 32
                self.walk(child, level + 1, depth, key if i else lo,
                          nodes[i + 1][5] if i + 1 < n else hi, is_main)
                continue
            size = lo16 | hi16 << 16
            big, sub = nflags & 1, nflags & 2
            if nflags & ~3 or (big and sub) or (sub and (not is_main or size != 48)):
                raise Bad("container: page %d node %d flags 0x%x" % (pg, i, nflags))
            end = off + 8 + ksize + (8 if big else size)
            if end > self.psize:
                raise Bad("container: page %d node %d data outside the page" % (pg, i))
            self.count["entries"] += 1
            if big:
                self.overflow(_u64(p, off + 8 + ksize), size)
            elif sub and key in (b"meta", b"chunks"):
                self.subs[key] = _db_record(p[off + 8 + ksize:end])
        self.count["branch" if branch else "leaf"] += 1


def check_container(path):
    """Section 3.1 (file size against the newest meta page) and 3.2 (the pages LMDB follows)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        metas, off = [], 0
        for i in range(2):
            f.seek(off)
            m = f.read(152)
            if len(m) < 152:
                raise Bad("container: truncated before meta page %d" % i)
            if not _u16(m, 10) & 0x08 or struct.unpack_from("<I", m, 16)[0] != 0xBEEFC0DE:
                raise Bad("container: not an LMDB file (meta page %d)" % i)
            if struct.unpack_from("<I", m, 20)[0] != 1:
                raise Bad("container: LMDB data version")
            psize = struct.unpack_from("<I", m, 40)[0]
            if psize < 512 or psize > 65536 or psize & (psize - 1):
                raise Bad("container: page size %d" % psize)
            metas.append(dict(psize=psize, last=_u64(m, 136), txnid=_u64(m, 144), main=_db_record(m[88:136])))
            off = metas[0]["psize"]
        if metas[0]["psize"] != metas[1]["psize"]:
            raise Bad("container: meta pages disagree on the page size")
        m = metas[1] if metas[0]["txnid"] < metas[1]["txnid"] else metas[0]
        if m["last"] < 1 or size < (m["last"] + 1) * m["psize"]:
            raise Bad("container: truncated: %d bytes, the newest meta page needs %d"
                      % (size, (m["last"] + 1) * m["psize"]))
        if m["main"]["flags"]:
            raise Bad("not an .apd (LMDB main database flags)")
        c = _Container(f, m["psize"], m["last"])
        c.tree(m["main"], True)
        for name, db in sorted(c.subs.items()):
            if db["flags"]:
                raise Bad("container: database %s has flags" % name.decode())
            c.tree(db, False)


# ---- section 4: header --------------------------------------------------------------------
def parse_header(v):
    if len(v) < 16 or v[:8] != MAGIC:
        raise Bad("header: wrong magic")
    major, minor, hlen = struct.unpack_from("<HHI", v, 8)
    if major != 1:
        raise Bad("header: unsupported major version %d" % major)
    if hlen < 64 or hlen != len(v) or (minor == 0 and hlen != 64):
        raise Bad("header: bad length")
    if struct.unpack_from("<I", v, hlen - 4)[0] != crc32c(v[:hlen - 4]):
        raise Bad("header: CRC mismatch")
    (kind, c, bits, flags, k, rsv0, h, w, N, n_classes, n) = struct.unpack_from("<BBBBHHIIIIQ", v, 16)
    for bit, name in ((2, "soft labels"), (4, "entropy-coded index maps")):
        if flags & bit and bit not in FEATURES_11:
            raise Bad("header: file uses format 1.1 feature %s (header flag bit %d), which this reader "
                      "does not support" % (name, bit.bit_length() - 1))
    if flags & ~7 and minor > 2:
        raise Bad("header: file uses a format feature newer than 1.2 (unknown flag bit); this reader reads "
                  "1.0 to 1.2")
    if rsv0 or any(v[48:60]) or flags & ~7:
        raise Bad("header: reserved bytes not zero")
    if flags & 4 and (minor < 1 or kind != 1):
        raise Bad("header: index model flag needs minor >= 1 and palette records")
    if flags & 2 and (minor < 1 or n_classes == 0):
        raise Bad("header: soft-label flag needs minor >= 1 and n_classes >= 1")
    if kind not in (1, 2) or c not in (1, 3):
        raise Bad("header: kind or c invalid")
    if kind == 1 and not (1 <= k <= 256 and bits == bits_for_k(k)):
        raise Bad("header: k/bits invalid")
    if kind == 2 and (k or bits):
        raise Bad("header: direct file with k or bits")
    if not (h and w and N) or h > 4096 or w > 4096:
        raise Bad("header: size invalid or above the limit")
    return dict(major=major, minor=minor, kind=kind, c=c, bits=bits, has_dict=flags & 1,
                has_imodel=flags & 4, has_soft=flags & 2, k=k,
                h=h, w=w, N=N, n_classes=n_classes, n=n)


# ---- section 5: metadata ------------------------------------------------------------------
def parse_meta(v, hd):
    if len(v) < 4 or struct.unpack_from("<I", v)[0] != crc32c(v[4:]):
        raise Bad("metadata: CRC mismatch")
    doc = json.loads(v[4:].decode("utf-8"))
    if not isinstance(doc, dict) or doc.get("format") != "apd":
        raise Bad("metadata: not an apd document")
    if doc.get("kind") != ("palette" if hd["kind"] == 1 else "direct"):
        raise Bad("metadata: kind disagrees")
    for key, hk in (("c", "c"), ("h", "h"), ("w", "w"), ("k", "k"), ("bits", "bits"),
                    ("records_per_chunk", "N"), ("n_records", "n"), ("n_classes", "n_classes")):
        if doc.get(key) != hd[hk]:
            raise Bad("metadata: %s disagrees with the header" % key)
    counts = doc.get("class_counts")
    if not isinstance(counts, list) or len(counts) != hd["n_classes"] or sum(counts) != hd["n"]:
        raise Bad("metadata: class_counts")
    if "complete" in doc and doc["complete"] is not True:  # 5.1: absent = written before the key
        raise Bad("metadata: incomplete file (complete is %r)" % (doc["complete"],))
    for key, lo, hi in (("mean", 0.0, 1.0), ("std", 1e-6, 1.0)):  # 5.2 ranges
        vals = doc.get(key)
        if vals is None:
            continue
        if not isinstance(vals, list) or len(vals) != hd["c"] or \
                any(isinstance(x, bool) or not isinstance(x, (int, float)) for x in vals):
            raise Bad("metadata: %s is not an array of c numbers" % key)
        if any(not (x == 0 or lo <= x <= hi) for x in vals):
            raise Bad("metadata: %s out of range" % key)
    return doc


# ---- section 8.1: index model (meta/imodel) -----------------------------------------------
NCTX, M, L, LANES = 192, 1024, 1 << 16, 8
EDGES = (1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 17, 20, 24, 30)


def parse_imodel(v, c, bits, minor):
    """Returns (model version, tables); minor is the header's version_minor."""
    if len(v) < 16 or struct.unpack_from("<I", v)[0] != crc32c(v[4:]):
        raise Bad("index model: short or CRC mismatch")
    if v[4:8] != b"APDM":
        raise Bad("index model: magic")
    version = v[8]
    if version not in MODEL_VERSIONS:
        raise Bad("index model version %d%s, which this reader does not support (it reads model versions %s)"
                  % (version, " (format 1.2)" if version == 2 else "",
                     ", ".join(str(m) for m in sorted(MODEL_VERSIONS))))
    if version == 2 and minor < 2:
        raise Bad("index model version 2 with header version_minor %d (needs >= 2)" % minor)
    if (v[9], v[10], v[11], v[12], v[13]) != (c, bits, LANES, 10, NCTX) or v[14] or v[15]:
        raise Bad("index model: header fields")
    pos, tables = 16, []
    for t in range(NCTX + c):
        freqs = []
        for _ in range((1 << bits) if t < NCTX else 256):
            if pos >= len(v):
                raise Bad("index model: truncated")
            f = v[pos] & 0x7F
            if v[pos] & 0x80:
                if pos + 1 >= len(v) or not 1 <= v[pos + 1] <= 8:
                    raise Bad("index model: bad varint")
                f |= v[pos + 1] << 7
                pos += 1
            pos += 1
            freqs.append(f)
        total = sum(freqs)
        if total != M and not (t < NCTX and total == 0):
            raise Bad("index model: table %d sums to %d" % (t, total))
        cum = [sum(freqs[:s]) for s in range(len(freqs))]
        tables.append((freqs, cum))
    if pos != len(v):
        raise Bad("index model: trailing bytes")
    return version, tables


# ---- section 7.4: coded palette body ------------------------------------------------------
def context(a, b, cc):
    """Section 7.4.2: MED prediction and context of a pixel from left, up, up-left."""
    mn, mx = min(a, b), max(a, b)
    if cc >= mx:
        case, pred = 0, mn
    elif cc <= mn:
        case, pred = 1, mx
    else:
        case, pred = 2, a + b - cc
    rng = max(a, b, cc) - min(a, b, cc)
    cls = sum(1 for e in EDGES if rng >= e)
    d = mx - mn
    return 4 * (3 * cls + case) + (d >= 1) + (d >= 2) + (d >= 4), pred


def index_order(version, h, w):
    """Section 7.4.2 item 2: the pixels of the index map in decoding order, as (step, lane, y, x)."""
    if version == 1:  # rows in groups of eight; steps counted on across groups
        base = 0
        for y0 in range(0, h, LANES):
            nl = min(LANES, h - y0)
            for t in range(w + nl - 1):
                for lane in range(nl):
                    xx = t - lane
                    if 0 <= xx < w:
                        yield base + t, lane, y0 + lane, xx
            base += w + nl - 1
        return
    if version != 2:
        raise Bad("index model version %d" % version)
    # version 2: a continuous wavefront, lane l decodes rows l, l + 8, l + 16, ...
    ww, done, t = max(w, 8), 0, 0
    while done < h * w:
        for lane in range(LANES):
            u = t - lane
            if u >= 0:
                s, xx = divmod(u, ww)
                y = lane + 8 * s
                if xx < w and y < h:
                    yield t, lane, y, xx
                    done += 1
        t += 1


def decode_coded(body, version, tables, k, c, h, w, bits):
    hb = 4 * LANES
    if len(body) < hb or (len(body) - hb) % 2:
        raise Bad("coded body length")
    x = list(struct.unpack_from("<%dI" % LANES, body))
    if any(s < L for s in x):
        raise Bad("coded body: state below 2^16")
    words = [struct.unpack_from("<H", body, hb + 2 * i)[0] for i in range((len(body) - hb) // 2)]
    pos = [0]

    def sym(lane, t):
        freqs, cum = tables[t]
        if not any(freqs):
            raise Bad("coded body uses an empty context")
        slot = x[lane] % M
        s = max(i for i in range(len(freqs)) if freqs[i] and cum[i] <= slot)
        xn = freqs[s] * (x[lane] >> 10) + slot - cum[s]
        if xn < L:
            if pos[0] >= len(words):
                raise Bad("coded body ends early")
            xn = (xn << 16) | words[pos[0]]
            pos[0] += 1
        x[lane] = xn
        return s

    pal, prev = bytearray(k * c), [0] * c
    for j in range(k * c):
        prev[j % c] = (prev[j % c] + sym(j % LANES, NCTX + j % c)) % 256
        pal[j] = prev[j % c]
    idx = [[0] * w for _ in range(h)]
    get = lambda y, xx: idx[y][xx] if y >= 0 and xx >= 0 else 0  # noqa: E731
    for _, lane, y, xx in index_order(version, h, w):
        ctx, pred = context(get(y, xx - 1), get(y - 1, xx), get(y - 1, xx - 1))
        v = (pred + sym(lane, ctx)) % (1 << bits)
        if v >= k:
            raise Bad("coded index >= palette size")
        idx[y][xx] = v
    if pos[0] != len(words) or x != [L] * LANES:
        raise Bad("coded body: words left over or final states not 2^16")
    return bytes(pal), [v for row in idx for v in row]


# ---- sections 6-7: chunks and records ------------------------------------------------------
def unpack_indices(packed, npix, b):
    """Section 7.1: LSB-first little-endian bit stream; padding bits must be zero."""
    x = int.from_bytes(packed, "little")
    m = (1 << b) - 1
    out = [(x >> (p * b)) & m for p in range(npix)]
    if x >> (npix * b):
        raise Bad("nonzero padding bits")
    return out


def parse_soft(rec, off, hd, label):
    """Section 7.5: n_classes float32 after the source id; returns (values, new offset)."""
    if not hd["has_soft"]:
        raise Bad("record soft labels without header flag bit 1")
    n = hd["n_classes"]
    if len(rec) < off + 4 * n:
        raise Bad("record shorter than its soft-label vector")
    vals = struct.unpack_from("<%df" % n, rec, off)
    for j, v in enumerate(vals):
        if v != v or v in (float("inf"), float("-inf")):
            raise Bad("soft label of class %d is not finite" % j)
        if v < 0:
            raise Bad("soft label of class %d is negative" % j)
    if abs(sum(vals) - 1.0) > 1e-3:
        raise Bad("soft labels sum to %r, not 1" % sum(vals))
    if vals[label] < max(vals):
        raise Bad("label %d is not a class of largest soft label" % label)
    return vals, off + 4 * n


def decode_record(rec, hd, zdict, imodel=None):
    if len(rec) < 12:
        raise Bad("record shorter than its header")
    if struct.unpack_from("<I", rec)[0] != crc32c(rec[4:]):
        raise Bad("record CRC mismatch")
    flags, km1, rsv, label = struct.unpack_from("<BBHI", rec, 4)
    if flags & 0x80 or (flags & 3) != hd["kind"] or rsv or ((flags & 0x10) and not (flags & 0x08)):
        raise Bad("record flags/reserved")
    if flags & 0x40 and (not hd["has_imodel"] or flags & 0x08):
        raise Bad("coded record without index model, or also zstd")
    if hd["n_classes"] and label >= hd["n_classes"]:
        raise Bad("label out of range")
    off, sid = 12, None
    if flags & 4:
        (sid,) = struct.unpack_from("<Q", rec, 12)
        if sid == 2 ** 64 - 1:
            raise Bad("reserved source id")
        off = 20
    soft = None
    if flags & 0x20:  # section 7.5
        soft, off = parse_soft(rec, off, hd, label)
    c, h, w = hd["c"], hd["h"], hd["w"]
    npix = h * w
    if hd["kind"] == 1:
        k = km1 + 1
        if k > hd["k"]:
            raise Bad("record palette larger than k")
        raw_len = k * c + (npix * hd["bits"] + 7) // 8
    else:
        if km1:
            raise Bad("direct record with k field")
        raw_len = c * npix
    body = rec[off:]
    coded = None
    if flags & 0x40:
        version, tables = imodel
        coded = decode_coded(body, version, tables, k, c, h, w, hd["bits"])
    elif flags & 8:
        params = zstandard.get_frame_parameters(body)
        if params.content_size != raw_len:
            raise Bad("zstd frame content size")
        if flags & 0x10:
            if zdict is None:
                raise Bad("record needs the dictionary")
            d = zstandard.ZstdDecompressor(dict_data=zstandard.ZstdCompressionDict(zdict))
        else:
            d = zstandard.ZstdDecompressor()
        # decompressobj().decompress + unused_data: the frame must span the body exactly
        dobj = d.decompressobj()
        body = dobj.decompress(body)
        if dobj.unused_data or len(body) != raw_len:
            raise Bad("zstd frame does not span the body / wrong size")
    elif len(body) != raw_len:
        raise Bad("body length")
    if coded:
        pal, idx = coded
    elif hd["kind"] == 1:
        pal = body[:k * c]
        idx = unpack_indices(body[k * c:], npix, hd["bits"])
    if hd["kind"] == 1:
        if any(i >= k for i in idx):
            raise Bad("index >= palette size")
        hwc = bytearray(npix * c)
        for p, i in enumerate(idx):
            hwc[p * c:(p + 1) * c] = pal[i * c:(i + 1) * c]
    else:  # section 7.2: CHW -> HWC
        hwc = bytearray(npix * c)
        for ch in range(c):
            hwc[ch::c] = body[ch * npix:(ch + 1) * npix]
    return label, sid, soft, bytes(hwc)


def read_file(path):
    check_container(path)
    env = lmdb.open(path, subdir=False, readonly=True, lock=False, max_dbs=2)
    try:
        try:
            meta = env.open_db(b"meta", create=False)
            chunks = env.open_db(b"chunks", create=False)
        except lmdb.NotFoundError:
            raise Bad("not an .apd (foreign LMDB)")
        with env.begin(buffers=False) as txn:
            hv = txn.get(b"header", db=meta)
            if hv is None:
                raise Bad("no header")
            hd = parse_header(hv)
            jv = txn.get(b"json", db=meta)
            if jv is None:
                raise Bad("no metadata")
            doc = parse_meta(jv, hd)
            zdict = None
            if hd["has_dict"]:
                dv = txn.get(b"zdict", db=meta)
                if dv is None or struct.unpack_from("<I", dv)[0] != crc32c(dv[4:]):
                    raise Bad("dictionary missing or CRC mismatch")
                zdict = dv[4:]
            imodel = None
            if hd["has_imodel"]:
                mv = txn.get(b"imodel", db=meta)
                if mv is None:
                    raise Bad("index model missing")
                imodel = parse_imodel(mv, hd["c"], hd["bits"], hd["minor"])
            n, N = hd["n"], hd["N"]
            nchunks = (n + N - 1) // N
            if txn.stat(chunks)["entries"] != nchunks:
                raise Bad("number of chunks")
            records = []
            for cno in range(nchunks):
                cv = txn.get(cno.to_bytes(8, "big"), db=chunks)
                if cv is None:
                    raise Bad("chunk %d missing" % cno)
                cn = struct.unpack_from("<I", cv, 8)[0]
                expect = N if cno + 1 < nchunks else n - cno * N
                table = 24 + 4 * (cn + 1)
                if table > len(cv) or struct.unpack_from("<I", cv)[0] != crc32c(cv[4:table]):
                    raise Bad("chunk %d CRC" % cno)
                magic = cv[4:8]
                rsv, chunk_no = struct.unpack_from("<IQ", cv, 12)
                if magic != b"APDK" or rsv or chunk_no != cno or cn != expect:
                    raise Bad("chunk %d header" % cno)
                offs = struct.unpack_from("<%dI" % (cn + 1), cv, 24)
                if offs[0] != table or offs[-1] != len(cv) or any(b - a < 12 for a, b in zip(offs, offs[1:])):
                    raise Bad("chunk %d offsets" % cno)
                for j in range(cn):
                    records.append(decode_record(cv[offs[j]:offs[j + 1]], hd, zdict, imodel))
    finally:
        env.close()
    return hd, doc, records, zdict


def compare(path, dump):
    hd, doc, records, zdict = read_file(path)
    with open(dump, "rb") as f:
        d = f.read()
    if d[:8] != b"APDDUMP2":
        raise Bad("bad dump")
    n, c, h, w, ns = struct.unpack_from("<QIIII", d, 8)
    if (n, c, h, w) != (hd["n"], hd["c"], hd["h"], hd["w"]):
        raise Bad("dump geometry/count differs from the file")
    if ns != (hd["n_classes"] if hd["has_soft"] else 0):
        raise Bad("dump soft-label width differs from the file")
    pos, ib, n_soft = 32, c * h * w, 0
    for i, (label, sid, soft, px) in enumerate(records):
        dl, ds = struct.unpack_from("<IQ", d, pos)
        pos += 12
        if ns:
            present = d[pos]
            dsoft = d[pos + 1:pos + 1 + 4 * ns]
            pos += 1 + 4 * ns
            # a record without a vector reads as the one-hot vector of its label (section 7.5)
            want = soft if soft is not None else [1.0 if j == label else 0.0 for j in range(ns)]
            if present != (soft is not None) or dsoft != struct.pack("<%df" % ns, *want):
                raise Bad("record %d soft labels differ from the C decoder" % i)
            n_soft += soft is not None
        dp = d[pos:pos + ib]
        pos += ib
        if dl != label or ds != (2 ** 64 - 1 if sid is None else sid) or dp != px:
            raise Bad("record %d differs from the C decoder" % i)
    if pos != len(d):
        raise Bad("dump has extra bytes")
    print("%s: %d records identical to the C decoder (format 1.%d, %s, c=%d %dx%d, k=%d, %d classes, "
          "dictionary: %s, soft-label vectors: %d)"
          % (path, len(records), hd["minor"], "palette" if hd["kind"] == 1 else "direct", c, h, w, hd["k"],
             hd["n_classes"], "yes" if zdict else "no", n_soft))


def example_13_1():
    """Spec section 13.1: the worked example of a coded record, built from its description."""
    def varint(f):
        return bytes([f]) if f < 128 else bytes([(f & 0x7F) | 0x80, f >> 7])
    idx_tables = [[0, 0, 0, 0] for _ in range(NCTX)]
    idx_tables[0] = [512, 256, 256, 0]
    idx_tables[17] = [0, 512, 512, 0]
    idx_tables[29] = [0, 0, 0, 1024]
    tables = b"".join(varint(f) for t in idx_tables for f in t) + bytes([4]) * 256
    body = bytes.fromhex("00000410 00020b08 fc010001".replace(" ", "")) + bytes.fromhex("00000100") * 5
    # the model as the spec gives it (version 1, header minor 1), then the same model with
    # version byte 2 (format 1.2, header minor 2): h = 2 <= 8, so both orders coincide
    for mv, minor, crc in ((1, 1, 0xCA76A649), (2, 2, 0x6A588F4D)):
        payload = b"APDM" + bytes([mv, 1, 2, 8, 10, 192, 0, 0]) + tables
        model = struct.pack("<I", crc32c(payload)) + payload
        if len(model) != 1046 or crc32c(payload) != crc:
            raise Bad("section 13.1: model version %d bytes differ from the spec" % mv)
        version, tabs = parse_imodel(model, 1, 2, minor)
        if version != mv:
            raise Bad("section 13.1: model version read as %d" % version)
        pal, idx = decode_coded(body, version, tabs, 3, 1, 2, 3, 2)
        if pal != bytes([0, 128, 255]) or idx != [0, 1, 2, 2, 1, 0]:
            raise Bad("section 13.1: example (model version %d) decodes to %r %r" % (mv, pal, idx))
        print("section 13.1 example, model version %d: palette 0 128 255, indices 0 1 2 / 2 1 0 "
              "(as the spec says)" % mv)
    def refused(what, needle, *args):
        """parse_imodel(*args) must raise Bad naming needle."""
        try:
            parse_imodel(*args)
        except Bad as e:
            if needle not in str(e):
                raise
            print("section 13.1 example, %s: refused (%s)" % (what, e))
            return
        raise Bad("section 13.1: %s was accepted" % what)

    # model version 2 needs header version_minor >= 2 (section 8.1)
    refused("model version 2 with header minor 1", "minor", model, 1, 2, 1)
    MODEL_VERSIONS.discard(2)  # a reader of format 1.1 must refuse it by version
    try:
        refused("model version 2, reader without it", "index model version 2", model, 1, 2, 2)
    finally:
        MODEL_VERSIONS.add(2)
    bad = b"APDM" + bytes([3, 1, 2, 8, 10, 192, 0, 0]) + tables
    refused("model version 3", "version", struct.pack("<I", crc32c(bad)) + bad, 1, 2, 2)


def check_index_orders():
    """Section 7.4.2 item 2: both orders visit every pixel once, after its left, up and up-left
    neighbours (at an earlier step when on another lane); version 2 equals version 1 for h <= 8;
    the step counts and the h = 10, w = 3 example of the spec."""
    for h in range(1, 21):
        for w in range(1, 21):
            orders = {}
            for version in (1, 2):
                order = list(index_order(version, h, w))
                at = {}
                for i, (t, lane, y, xx) in enumerate(order):
                    if (y, xx) in at or not (0 <= y < h and 0 <= xx < w) or lane != y % 8:
                        raise Bad("7.4.2: order %d, %dx%d: pixel (%d,%d) twice, outside or on lane %d"
                                  % (version, h, w, y, xx, lane))
                    for ny, nx in ((y, xx - 1), (y - 1, xx), (y - 1, xx - 1)):
                        if ny < 0 or nx < 0:
                            continue
                        if (ny, nx) not in at:
                            raise Bad("7.4.2: order %d, %dx%d: (%d,%d) before its neighbour (%d,%d)"
                                      % (version, h, w, y, xx, ny, nx))
                        nt, nlane = at[(ny, nx)][1:]
                        if nt >= t and (nlane != lane or nt > t):
                            raise Bad("7.4.2: order %d, %dx%d: neighbour (%d,%d) of (%d,%d) not at an "
                                      "earlier step" % (version, h, w, ny, nx, y, xx))
                    at[(y, xx)] = (i, t, lane)
                if len(at) != h * w:
                    raise Bad("7.4.2: order %d, %dx%d misses pixels" % (version, h, w))
                orders[version] = order
            if h <= 8 and orders[1] != orders[2]:
                raise Bad("7.4.2: for h = %d <= 8 the two orders differ (w = %d)" % (h, w))
            ww = max(w, 8)
            if orders[2][-1][0] != (h - 1) % 8 + ww * ((h - 1) // 8) + w - 1:
                raise Bad("7.4.2: order 2, %dx%d: last step %d" % (h, w, orders[2][-1][0]))
    steps = lambda v, h, w: list(index_order(v, h, w))[-1][0] + 1  # noqa: E731
    if (steps(1, 32, 32), steps(2, 32, 32), steps(1, 10, 3), steps(2, 10, 3)) != (156, 135, 14, 12):
        raise Bad("7.4.2: step counts differ from the spec")
    ex = {(lane, t): (y, xx) for t, lane, y, xx in index_order(2, 10, 3)}
    if ex.get((0, 8)) != (8, 0) or ex.get((1, 9)) != (9, 0) or any(ex[key][0] >= 8 for key in ex if key[0] >= 2) \
            or any(ex.get((0, t)) for t in range(3, 8)):
        raise Bad("7.4.2: the version 2 example h = 10, w = 3 differs from the spec")
    print("section 7.4.2 orders: every pixel once, neighbours first, for h, w in 1..20; version 2 = version 1 "
          "for h <= 8; 32x32 takes 135 steps (version 1: 156); the h = 10, w = 3 example (as the spec says)")


def run_examples():
    check_index_orders()
    example_13_1()
    example_13_2()


def example_13_2():
    """Spec section 13.2: the worked example of soft labels, built from its description."""
    hb = bytearray(MAGIC + struct.pack("<HHIBBBBHHIIIIQ", 1, 1, 64, 1, 3, 2, 2, 4, 0, 2, 3, 10381, 10, 1)
                   + bytes(12))
    hb += struct.pack("<I", crc32c(bytes(hb)))
    soft = [0.0] * 10
    soft[1], soft[7] = 0.25, 0.75
    r = (struct.pack("<BBHIQ", 0x25, 2, 0, 7, 42) + struct.pack("<10f", *soft)
         + bytes([255, 0, 0, 0, 128, 0, 0, 0, 255, 0xA4, 0x01]))
    rec = struct.pack("<I", crc32c(r)) + r
    head = b"APDK" + struct.pack("<IIQII", 1, 0, 0, 32, 32 + len(rec))
    ch = struct.pack("<I", crc32c(head)) + head + rec
    if (crc32c(bytes(hb[:60])), crc32c(head), crc32c(r), len(ch)) != (0x60BA6733, 0xFFF33EB4, 0x45BECC0D, 103):
        raise Bad("section 13.2: bytes differ from the spec")
    if ch[0x30:0x40] != bytes.fromhex("0000000000000000" "0000803e00000000"):
        raise Bad("section 13.2: the soft-label bytes differ from the spec")
    label, sid, got, px = decode_record(rec, parse_header(bytes(hb)), None)
    want_px = bytes([255, 0, 0, 0, 128, 0, 0, 0, 255, 0, 0, 255, 0, 128, 0, 255, 0, 0])
    if (label, sid, list(got), px) != (7, 42, soft, want_px):
        raise Bad("section 13.2: example decodes to %r" % ((label, sid, got, px),))
    FEATURES_11.pop(2)
    try:
        parse_header(bytes(hb))
        raise Bad("section 13.2: a reader without soft labels read the header")
    except Bad as e:
        if "format 1.1 feature soft labels" not in str(e):
            raise
        print("section 13.2 example without soft labels: refused (%s)" % e)
    finally:
        FEATURES_11[2] = "soft labels"
    print("section 13.2 example: label 7, source id 42, soft labels 0.25 (class 1), 0.75 (class 7) "
          "(as the spec says)")


def check_bad(d):
    failures = 0
    with open(os.path.join(d, "MANIFEST")) as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            name, where, status = line.split("\t")[:3]
            try:
                read_file(os.path.join(d, name))
                ok, why = True, ""
            except (Bad, lmdb.Error, zstandard.ZstdError, ValueError) as e:
                ok, why = False, str(e)
            want_ok = where == "ok"
            print("%-24s %-9s %-14s -> %s %s" % (name, where, status, "read" if ok else "rejected:", why))
            failures += ok != want_ok
    print("spec_reader --bad: %d disagreements" % failures)
    return 1 if failures else 0


def main(argv):
    try:
        if len(argv) == 2 and argv[1] == "--examples":
            run_examples()
            return 0
        if len(argv) == 3 and argv[1] == "--dir":
            run_examples()
            files = sorted(f for f in os.listdir(argv[2]) if f.endswith(".apd"))
            if not files:
                print("spec_reader: no .apd files in %s" % argv[2])
                return 1
            for f in files:
                p = os.path.join(argv[2], f)
                compare(p, p[:-4] + ".dump")
            return 0
        if len(argv) == 3 and argv[1] == "--bad":
            return check_bad(argv[2])
        if len(argv) == 4 and argv[2] == "--compare":
            compare(argv[1], argv[3])
            return 0
        if len(argv) == 2:
            hd, doc, records, _ = read_file(argv[1])
            print("%s: valid, %d records, dataset %s" % (argv[1], len(records), doc.get("dataset")))
            return 0
    except (Bad, lmdb.Error, zstandard.ZstdError, ValueError) as e:
        print("spec_reader: %s: %s" % (argv[-1], e))
        return 1
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
