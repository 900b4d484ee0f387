"""`pip install ./python` in a fresh venv (--system-site-packages: Debian's numpy and torch),
offline (PIP_NO_INDEX), with pip's default build isolation: the installed package carries
libapd.so (built by cmake from this repository, or copied from APD_PREBUILT_LIBRARY) and
works from anywhere without APD_LIBRARY or PYTHONPATH.
Needs python3-venv and python3-pip (scripts/test.sh installs them), cmake and a compiler."""
import os
import subprocess

import pytest

from conftest import BUILD, REPO

CHECK = r"""
import json, os, sys
import numpy as np
import apd, apd._lib
site = sys.argv[1]
assert apd.__file__.startswith(site), apd.__file__
assert apd._lib.path == os.path.join(os.path.dirname(apd.__file__), "libapd.so"), apd._lib.path
x = (np.arange(4 * 3 * 5 * 5) % 251).astype(np.uint8).reshape(4, 3, 5, 5)
apd.write("w.apd", x, [0, 1, 2, 1], class_names=["a", "b", "c"])
ds = apd.open("w.apd", layout="chw")
assert all((ds[i][0] == x[i]).all() for i in range(4)) and ds.targets.tolist() == [0, 1, 2, 1]
other = apd.open(sys.argv[2])
print(json.dumps({"lib": apd._lib.path, "n": len(other), "label7": other[7][1]}))
"""


def venv_install(tmp_path, extra_env):
    venv = tmp_path / "venv"
    r = subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", str(venv)],
                       capture_output=True, text=True)
    assert r.returncode == 0, "python3 -m venv failed (needs python3-venv): " + r.stderr
    env = {k: v for k, v in os.environ.items()
           if k not in ("APD_LIBRARY", "APD_BUILD_DIR", "PYTHONPATH", "APD_PREBUILT_LIBRARY")}
    env.update(PIP_NO_INDEX="1", PIP_DISABLE_PIP_VERSION_CHECK="1",
               CMAKE_BUILD_PARALLEL_LEVEL="2", **extra_env)
    r = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install",
                        os.path.join(REPO, "python")], env=env, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return venv, env


def run_installed(venv, env, tmp_path, synth):
    site = subprocess.run([str(venv / "bin" / "python"), "-c",
                           "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          env=env, capture_output=True, text=True).stdout.strip()
    work = tmp_path / "elsewhere"
    work.mkdir()
    r = subprocess.run([str(venv / "bin" / "python"), "-c", CHECK, site, synth], env=env,
                       cwd=str(work), capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = r.stdout.strip().splitlines()[-1]
    print("installed package:", out)
    assert '"n": 600' in out and '"label7": 7' in out
    r = subprocess.run([str(venv / "bin" / "python"), "-m", "apd", "info", synth], env=env,
                       cwd=str(work), capture_output=True, text=True)
    assert r.returncode == 0 and '"n_records": 600' in r.stdout, r.stderr
    return site


@pytest.mark.slow
def test_pip_install_builds_libapd(tmp_path, synth):
    venv, env = venv_install(tmp_path, {})
    site = run_installed(venv, env, tmp_path, synth)
    lib = os.path.join(site, "apd", "libapd.so")
    assert os.path.isfile(lib) and not os.path.islink(lib)
    # apd.torch works in the venv with Debian's torch
    r = subprocess.run([str(venv / "bin" / "python"), "-c",
                        "import apd.torch as t, sys; print(len(t.ApdDataset(sys.argv[1])))", synth],
                       env=env, cwd=str(tmp_path), capture_output=True, text=True)
    if "No module named 'torch'" not in r.stderr:
        assert r.returncode == 0 and r.stdout.strip() == "600", r.stderr


@pytest.mark.slow
def test_pip_install_prebuilt_library(tmp_path, synth):
    lib = os.path.join(BUILD, "libapd.so")
    if not os.path.exists(lib):
        pytest.skip("no built libapd.so in %s" % BUILD)
    venv, env = venv_install(tmp_path, {"APD_PREBUILT_LIBRARY": lib})
    site = run_installed(venv, env, tmp_path, synth)
    with open(os.path.join(site, "apd", "libapd.so"), "rb") as a, open(lib, "rb") as b:
        assert a.read() == b.read()
