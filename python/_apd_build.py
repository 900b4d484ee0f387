"""In-tree PEP 517 build backend of the apd Python package (pyproject.toml names it).

`pip install ./python` builds a wheel that CARRIES libapd.so next to the Python modules
(apd/libapd.so, found first by apd._lib). The library comes from:
  - APD_PREBUILT_LIBRARY=/path/to/libapd.so: that file is copied in (no compiler needed);
  - otherwise cmake builds the `apd` target of this repository (python/..) in a temporary
    directory (APD_CMAKE_BUILD_DIR=DIR keeps and reuses one; APD_CMAKE_ARGS adds options,
    e.g. "-DAPD_NATIVE=OFF" for a library that runs on other CPUs of the architecture).

The backend needs nothing but the standard library (and cmake + a C compiler + the libapd
build dependencies when it builds), so it works offline and with pip's build isolation:
pyproject.toml requires no build packages. Editable installs (pip install -e ./python) add
a .pth file pointing at python/; the library is then found as in a checkout (APD_LIBRARY or
build/libapd.so).
"""
import base64
import hashlib
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipfile

NAME = "apd"
HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)


def _version():
    # the project version of CMakeLists.txt (project(apd VERSION x.y.z ...)), else 0.0.0
    try:
        with open(os.path.join(REPO, "CMakeLists.txt")) as f:
            for line in f:
                if line.startswith("project(apd VERSION "):
                    return line.split()[2]
    except OSError:
        pass
    return "0.0.0"


VERSION = _version()
DIST = "%s-%s" % (NAME, VERSION)
INFO = DIST + ".dist-info"


def _metadata():
    return ("Metadata-Version: 2.1\nName: %s\nVersion: %s\n"
            "Summary: Python binding of libapd: .apd datasets (palette images), fast loader, "
            "PyTorch datasets, writer and .npz/.pt conversion\n"
            "Requires-Python: >=3.9\nRequires-Dist: numpy\nProvides-Extra: torch\n"
            "Requires-Dist: torch ; extra == \"torch\"\n" % (NAME, VERSION))


def _tag(pure):
    if pure:
        return "py3-none-any"
    return "py3-none-" + sysconfig.get_platform().replace("-", "_").replace(".", "_")


def _wheel_text(pure):
    return ("Wheel-Version: 1.0\nGenerator: apd _apd_build\nRoot-Is-Purelib: %s\nTag: %s\n"
            % ("true" if pure else "false", _tag(pure)))


def _log(msg):
    print("apd build: " + msg, file=sys.stderr, flush=True)


def _build_library(out_dir):
    """Path of a libapd.so for the wheel: the prebuilt one, or one built by cmake."""
    pre = os.environ.get("APD_PREBUILT_LIBRARY")
    if pre:
        if not os.path.isfile(pre):
            raise RuntimeError("APD_PREBUILT_LIBRARY=%s: no such file" % pre)
        _log("using the prebuilt %s" % pre)
        return os.path.realpath(pre)
    if not os.path.isfile(os.path.join(REPO, "CMakeLists.txt")):
        raise RuntimeError("cannot find the libapd sources at %s (the package builds "
                           "libapd.so from the repository it sits in); build libapd.so "
                           "yourself and set APD_PREBUILT_LIBRARY=/path/to/libapd.so" % REPO)
    cmake = shutil.which("cmake")
    if not cmake:
        raise RuntimeError("cmake not found: install cmake and a C compiler (Debian: "
                           "scripts/setup.sh), or set APD_PREBUILT_LIBRARY=/path/to/libapd.so")
    bdir = os.environ.get("APD_CMAKE_BUILD_DIR") or os.path.join(out_dir, "cmake-build")
    args = [cmake, "-S", REPO, "-B", bdir, "-DCMAKE_BUILD_TYPE=Release",
            "-DAPD_BUILD_TESTS=OFF", "-DAPD_BUILD_BENCH=OFF"]
    args += shlex.split(os.environ.get("APD_CMAKE_ARGS", ""))
    jobs = str(os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL") or os.cpu_count() or 2)
    _log("building libapd.so with cmake in %s" % bdir)
    for cmd in (args, [cmake, "--build", bdir, "--target", "apd", "-j", jobs]):
        r = subprocess.run(cmd, stdout=sys.stderr, stderr=sys.stderr)
        if r.returncode != 0:
            raise RuntimeError("%s failed (exit %d); see the output above"
                               % (" ".join(cmd[:2]), r.returncode))
    lib = os.path.join(bdir, "libapd.so")
    if not os.path.exists(lib):
        raise RuntimeError("cmake did not produce %s" % lib)
    return os.path.realpath(lib)


def _record_line(arc, data):
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return "%s,sha256=%s,%d" % (arc, digest, len(data))


def _write_wheel(wheel_directory, files, pure):
    """files: list of (archive name, bytes). Adds the dist-info and returns the file name."""
    files = list(files) + [(INFO + "/METADATA", _metadata().encode()),
                           (INFO + "/WHEEL", _wheel_text(pure).encode()),
                           (INFO + "/top_level.txt", (NAME + "\n").encode())]
    record = [_record_line(a, d) for a, d in files] + [INFO + "/RECORD,,"]
    files.append((INFO + "/RECORD", ("\n".join(record) + "\n").encode()))
    name = "%s-%s.whl" % (DIST, _tag(pure))
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w", zipfile.ZIP_DEFLATED) as z:
        for arc, data in files:
            info = zipfile.ZipInfo(arc, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = (0o755 if arc.endswith(".so") else 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    return name


def _package_files():
    pkg = os.path.join(HERE, NAME)
    out = []
    for fn in sorted(os.listdir(pkg)):
        if fn.endswith(".py"):
            with open(os.path.join(pkg, fn), "rb") as f:
                out.append(("%s/%s" % (NAME, fn), f.read()))
    return out


# ---- PEP 517 hooks -------------------------------------------------------------------------

def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    d = os.path.join(metadata_directory, INFO)
    os.makedirs(d, exist_ok=True)
    for fn, text in (("METADATA", _metadata()), ("WHEEL", _wheel_text(False))):
        with open(os.path.join(d, fn), "w") as f:
            f.write(text)
    return INFO


prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    with tempfile.TemporaryDirectory(prefix="apd-build-") as tmp:
        lib = _build_library(tmp)
        with open(lib, "rb") as f:
            so = f.read()
    return _write_wheel(wheel_directory, _package_files() + [(NAME + "/libapd.so", so)], False)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    return _write_wheel(wheel_directory, [("_apd_editable.pth", (HERE + "\n").encode())], True)


def build_sdist(sdist_directory, config_settings=None):
    raise RuntimeError("the apd package has no source distribution of its own: it builds "
                       "libapd.so from the repository; install with `pip install ./python` "
                       "from a checkout")
