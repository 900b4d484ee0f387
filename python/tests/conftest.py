"""Shared fixtures for the apd binding tests.

The library comes from APD_LIBRARY (scripts/test.sh sets it) or the repository's build/
directory; test files are written by the C helper tests/loader/apd_mktest of the build
directory (APD_BUILD_DIR, default ../build relative to python/)."""
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
BUILD = os.environ.get("APD_BUILD_DIR") or os.path.join(REPO, "build")
os.environ.setdefault("APD_BUILD_DIR", BUILD)
sys.path.insert(0, os.path.join(REPO, "python"))

MKTEST = os.path.join(BUILD, "tests", "loader", "apd_mktest")


def mktest(*args):
    if not os.path.exists(MKTEST):
        pytest.skip("apd_mktest not built (%s)" % MKTEST)
    subprocess.run([MKTEST] + [str(a) for a in args], check=True)


@pytest.fixture(scope="session")
def synth(tmp_path_factory):
    """600 palette records, 3x8x8, K=16, label i % 10 (no padding for 1-4 ranks x B=25)."""
    p = tmp_path_factory.mktemp("apd") / "synth.apd"
    mktest("synth", p, 600, "--k", 16)
    return str(p)


@pytest.fixture(scope="session")
def corrupt(tmp_path_factory):
    p = tmp_path_factory.mktemp("apd") / "corrupt.apd"
    mktest("synth", p, 100, "--k", 16, "--corrupt", 18)
    return str(p)


@pytest.fixture(scope="session")
def synth1800(tmp_path_factory):
    """1800 = 25 x 72 records: divides evenly for every world size x worker count in
    {1..4} x {1..3} (lcm 72), so no padding: every sample exactly once."""
    p = tmp_path_factory.mktemp("apd") / "synth1800.apd"
    mktest("synth", p, 1800, "--k", 16)
    return str(p)


def pytest_configure(config):
    # torch's advice for a 2-core machine when a test starts 3 workers; harmless here
    config.addinivalue_line("filterwarnings", "ignore:This DataLoader will create:UserWarning")
    config.addinivalue_line("markers", "slow: builds or installs things (still part of the suite)")
