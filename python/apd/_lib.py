"""apd._lib: locate libapd.so and declare the C functions used by the binding (ctypes).

Search order for the shared library:
  1. the environment variable APD_LIBRARY (a path to libapd.so),
  2. the copy inside this package (apd/libapd.so, put there by `pip install ./python`),
  3. paths relative to this package: the repository's build directory
     (python/apd/../../build/libapd.so, or $APD_BUILD_DIR/libapd.so) and the install tree
     (PREFIX/share/apd/python/apd -> PREFIX/lib*, and sys.prefix/lib*),
  4. ctypes.util.find_library("apd") (ldconfig's cache, LD_LIBRARY_PATH).

Every integer handed to C goes through u32()/u64() (range-checked, no silent wrap-around)
and every path through path_bytes() (no NUL bytes).
"""
import ctypes
import ctypes.util
import operator
import os
import sys

_c = ctypes


class ApdError(Exception):
    """An error reported by libapd. .status is the apd_status value, .name its symbol-like
    name (apd_strerror text), and str(e) the library's message (file, record, reason)."""

    def __init__(self, status, message):
        self.status = int(status)
        self.name = strerror(status) if _lib is not None else str(status)
        super().__init__("%s [%s, status %d]" % (message, self.name, self.status))


class Err(_c.Structure):
    _fields_ = [("code", _c.c_int), ("sys_errno", _c.c_int), ("msg", _c.c_char * 512)]


class FileInfo(_c.Structure):
    _fields_ = [
        ("version_major", _c.c_uint32), ("version_minor", _c.c_uint32),
        ("n_records", _c.c_uint64),
        ("c", _c.c_uint32), ("h", _c.c_uint32), ("w", _c.c_uint32),
        ("kind", _c.c_uint32), ("k", _c.c_uint32), ("bits", _c.c_uint32),
        ("n_classes", _c.c_uint32),
        ("mean", _c.c_float * 3), ("std", _c.c_float * 3),
        ("records_per_chunk", _c.c_uint32), ("n_chunks", _c.c_uint64),
        ("has_dictionary", _c.c_int), ("dataset_name", _c.c_char * 64),
        ("has_index_model", _c.c_int), ("has_soft_labels", _c.c_int),
        # room for fields the library may append later (it writes sizeof its struct)
        ("_reserved", _c.c_uint8 * 512),
    ]


class LoaderOpts(_c.Structure):
    """Mirror of apd_loader_opts (include/apd/loader.h)."""
    _fields_ = [
        ("batch_size", _c.c_uint32), ("shuffle", _c.c_uint32),
        ("seed", _c.c_uint64), ("epoch", _c.c_uint64),
        ("drop_last", _c.c_uint32), ("rank", _c.c_uint32), ("world_size", _c.c_uint32),
        ("threads", _c.c_uint32), ("prefetch", _c.c_uint32), ("output", _c.c_uint32),
        ("skip_corrupt", _c.c_uint32), ("custom_norm", _c.c_uint32),
        ("mean", _c.c_float * 3), ("std", _c.c_float * 3),
        ("classes", _c.POINTER(_c.c_uint32)), ("n_classes_subset", _c.c_uint32),
        ("reserved", _c.c_uint32),
    ]


class Limits(_c.Structure):
    """Mirror of apd_limits (include/apd/format.h)."""
    _fields_ = [("max_dim", _c.c_uint32), ("max_value_bytes", _c.c_uint64),
                ("max_records", _c.c_uint64)]


class WriterOpts(_c.Structure):
    """Mirror of apd_writer_opts (include/apd/format.h)."""
    _fields_ = [
        ("c", _c.c_uint32), ("h", _c.c_uint32), ("w", _c.c_uint32),
        ("kind", _c.c_uint32), ("k", _c.c_uint32), ("n_classes", _c.c_uint32),
        ("class_names", _c.c_void_p), ("force", _c.c_int),
        ("mean", _c.c_float * 3), ("std", _c.c_float * 3),
        ("dataset_name", _c.c_char_p),
        ("compress", _c.c_int), ("zstd_level", _c.c_int), ("dictionary", _c.c_int),
        ("records_per_chunk", _c.c_uint32), ("limits", Limits),
        ("no_sync", _c.c_int), ("no_compact", _c.c_int),
        ("index_coding", _c.c_int), ("soft_labels", _c.c_int),
        ("index_model_version", _c.c_uint32),
        # room for fields the library may append later (opts_default writes sizeof its struct)
        ("_reserved", _c.c_uint8 * 256),
    ]


class LoaderState(_c.Structure):
    _fields_ = [("seed", _c.c_uint64), ("epoch", _c.c_uint64), ("cursor", _c.c_uint64),
                ("n", _c.c_uint64)]


def _candidates():
    env = os.environ.get("APD_LIBRARY")
    if env:
        yield env
    here = os.path.dirname(os.path.abspath(__file__))
    yield os.path.join(here, "libapd.so")
    bd = os.environ.get("APD_BUILD_DIR")
    if bd:
        yield os.path.join(bd, "libapd.so")
    yield os.path.normpath(os.path.join(here, "..", "..", "build", "libapd.so"))
    # installed: PREFIX/share/apd/python/apd -> PREFIX/lib...
    prefixes = [os.path.normpath(os.path.join(here, "..", "..", "..", "..")), sys.prefix,
                "/usr/local", "/usr"]
    multiarch = getattr(sys.implementation, "_multiarch", None)
    for p in prefixes:
        for sub in ["lib", "lib64"] + (["lib/" + multiarch] if multiarch else []):
            yield os.path.join(p, sub, "libapd.so")
    found = ctypes.util.find_library("apd")
    if found:
        yield found


def _load():
    tried = []
    for path in _candidates():
        if os.path.sep in path and not os.path.exists(path):
            tried.append(path)
            continue
        try:
            return ctypes.CDLL(path)
        except OSError as e:
            tried.append("%s (%s)" % (path, e))
    raise ImportError("apd: cannot find libapd.so; set APD_LIBRARY=/path/to/libapd.so "
                      "(build with cmake first). Tried: " + ", ".join(tried))


_lib = None
_lib = _load()
L = _lib
path = _lib._name  # the libapd.so in use

_P = _c.c_void_p
_u32, _u64, _sz = _c.c_uint32, _c.c_uint64, _c.c_size_t


def _decl(name, res, args):
    f = getattr(_lib, name)
    f.restype = res
    f.argtypes = args
    return f


_decl("apd_strerror", _c.c_char_p, [_c.c_int])
_decl("apd_version", _c.c_char_p, [])
# reader (include/apd/format.h)
_decl("apd_reader_open", _c.c_int, [_c.POINTER(_P), _c.c_char_p, _P, _c.POINTER(Err)])
_decl("apd_reader_close", None, [_P])
_decl("apd_reader_errmsg", _c.c_char_p, [_P])
_decl("apd_reader_info", _c.c_int, [_P, _c.POINTER(FileInfo)])
_decl("apd_reader_count", _u64, [_P])
_decl("apd_reader_meta_json", _c.c_char_p, [_P])
_decl("apd_reader_class_name", _c.c_char_p, [_P, _u32])
_decl("apd_reader_decode", _c.c_int, [_P, _u64, _c.c_int, _P, _sz, _c.POINTER(_u32)])
_decl("apd_reader_label", _c.c_int, [_P, _u64, _c.POINTER(_u32)])
_decl("apd_reader_record", _c.c_int, [_P, _u64, _P, _c.POINTER(_u32), _P, _c.POINTER(_u32)])
_decl("apd_reader_source_id", _c.c_int, [_P, _u64, _c.POINTER(_u64)])
_decl("apd_reader_soft_label", _c.c_int, [_P, _u64, _P, _sz, _c.POINTER(_c.c_int)])
# writer (include/apd/format.h)
_decl("apd_writer_opts_default", None, [_c.POINTER(WriterOpts)])
_decl("apd_writer_create", _c.c_int, [_c.POINTER(_P), _c.c_char_p, _c.POINTER(WriterOpts),
                                      _c.POINTER(Err)])
_decl("apd_writer_put_palette", _c.c_int, [_P, _P, _u32, _P, _u32, _u64])
_decl("apd_writer_put_direct", _c.c_int, [_P, _P, _u32, _u64])
_decl("apd_writer_put_palette_soft", _c.c_int, [_P, _P, _u32, _P, _u32, _u64, _P])
_decl("apd_writer_put_direct_soft", _c.c_int, [_P, _P, _u32, _u64, _P])
_decl("apd_writer_set_meta", _c.c_int, [_P, _c.c_char_p, _c.c_char_p])
_decl("apd_writer_commit", _c.c_int, [_P])
_decl("apd_writer_close", _c.c_int, [_P])
_decl("apd_writer_count", _u64, [_P])
_decl("apd_writer_errmsg", _c.c_char_p, [_P])
_decl("apd_meta_key_classify", _c.c_int, [_c.c_char_p, _sz])
# quantizers (include/apd/quant.h)
_decl("apd_quantize_image", _c.c_int, [_c.c_int, _P, _u32, _u32, _u32, _u32, _u64, _P, _P,
                                       _c.POINTER(_u32)])
_decl("apd_quantize_put", _c.c_int, [_P, _c.c_int, _P, _u32, _u64, _u64])
_decl("apd_quantizer_from_name", _c.c_int, [_c.c_char_p, _c.POINTER(_c.c_int)])
_decl("apd_quantizer_name", _c.c_char_p, [_c.c_int])
# loader (include/apd/loader.h)
_decl("apd_loader_opts_default", None, [_c.POINTER(LoaderOpts)])
_decl("apd_loader_open", _c.c_int, [_c.POINTER(_P), _c.c_char_p, _c.POINTER(LoaderOpts),
                                    _c.POINTER(Err)])
_decl("apd_loader_close", None, [_P])
_decl("apd_loader_errmsg", _c.c_char_p, [_P])
_decl("apd_loader_shape", None, [_P, _c.POINTER(_u32), _c.POINTER(_u32), _c.POINTER(_u32)])
_decl("apd_loader_image_bytes", _sz, [_P])
_decl("apd_loader_batch_bytes", _sz, [_P])
_decl("apd_loader_num_samples", _u64, [_P])
_decl("apd_loader_batches_per_epoch", _u64, [_P])
_decl("apd_loader_batches_left", _u64, [_P])
_decl("apd_loader_skipped", _u64, [_P])
_decl("apd_loader_norm", None, [_P, _c.POINTER(_c.c_float), _c.POINTER(_c.c_float)])
_decl("apd_loader_next", _c.c_int, [_P, _P, _sz, _P, _P, _c.POINTER(_sz)])
_decl("apd_loader_next_soft", _c.c_int, [_P, _P, _sz, _P, _P, _sz, _P, _c.POINTER(_sz)])
_decl("apd_loader_num_classes", _u32, [_P])
_decl("apd_loader_has_soft_labels", _c.c_int, [_P])
_decl("apd_loader_get_state", None, [_P, _c.POINTER(LoaderState)])
_decl("apd_loader_set_state", _c.c_int, [_P, _c.POINTER(LoaderState)])
_decl("apd_loader_set_epoch", _c.c_int, [_P, _u64])
_decl("apd_loader_partition", _u64, [_u64, _u64, _u32, _u32, _c.c_int, _u32, _u64,
                                     _c.POINTER(_u64), _c.POINTER(_u32)])

U32_MAX = 2 ** 32 - 1
U64_MAX = 2 ** 64 - 1


def integer(value, what, lo, hi, exc=ValueError):
    """value as a Python int in [lo, hi]; anything else (floats, out of range) raises with a
    message naming `what`. ctypes would silently wrap an out-of-range value."""
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError("%s must be an integer, not %s" % (what, type(value).__name__)) from None
    if not lo <= v <= hi:
        raise exc("%s = %d is out of range [%d, %d]" % (what, v, lo, hi))
    return v


def u32(value, what, lo=0):
    return integer(value, what, lo, U32_MAX)


def u64(value, what, lo=0):
    return integer(value, what, lo, U64_MAX)


def path_bytes(path):
    """(str path, bytes for C) of a str/bytes/PathLike path; refuses NUL bytes (C would cut
    the path there and open another file)."""
    p = os.fspath(path)
    b = os.fsencode(p)
    if b"\0" in b:
        raise ValueError("path %r contains a NUL byte" % (p,))
    if not b:
        raise ValueError("empty path")
    return os.fsdecode(p), b


def strerror(status):
    s = _lib.apd_strerror(int(status))
    return s.decode("utf-8", "replace") if s else "unknown status"


def text(b):
    return b.decode("utf-8", "replace") if b else ""
