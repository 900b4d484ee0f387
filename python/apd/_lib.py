"""apd._lib: locate libapd.so and declare the C functions used by the binding (ctypes).

Search order for the shared library:
  1. the environment variable APD_LIBRARY (a path to libapd.so),
  2. paths relative to this package: the repository's build directory
     (python/apd/../../build/libapd.so, or $APD_BUILD_DIR/libapd.so) and the install tree
     (PREFIX/share/apd/python/apd -> PREFIX/lib*, and sys.prefix/lib*),
  3. ctypes.util.find_library("apd") (ldconfig's cache, LD_LIBRARY_PATH).
"""
import ctypes
import ctypes.util
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
        ("has_index_model", _c.c_int),
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


class LoaderState(_c.Structure):
    _fields_ = [("seed", _c.c_uint64), ("epoch", _c.c_uint64), ("cursor", _c.c_uint64),
                ("n", _c.c_uint64)]


def _candidates():
    env = os.environ.get("APD_LIBRARY")
    if env:
        yield env
    here = os.path.dirname(os.path.abspath(__file__))
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
_decl("apd_loader_get_state", None, [_P, _c.POINTER(LoaderState)])
_decl("apd_loader_set_state", _c.c_int, [_P, _c.POINTER(LoaderState)])
_decl("apd_loader_set_epoch", _c.c_int, [_P, _u64])


def strerror(status):
    s = _lib.apd_strerror(int(status))
    return s.decode("utf-8", "replace") if s else "unknown status"


def text(b):
    return b.decode("utf-8", "replace") if b else ""
