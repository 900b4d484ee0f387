#!/usr/bin/python3
"""corrupt_python.py DIR: the Python binding on every damaged .apd file in DIR (written by
corrupt_campaign). Each file is opened and read in a forked child (apd.open, every record,
labels, metadata, one Loader epoch): the child must end with success or apd.ApdError naming
the file, never a signal or another exception. Prints the counts; exit 0 iff 0 failures,
77 (skip) when numpy or the library is missing.

The library comes from APD_LIBRARY; the package from PYTHONPATH (the repository's python/).
"""
import glob
import os
import sys


def read_one(apd, path):
    try:
        ds = apd.open(path)
    except apd.ApdError as e:
        return 10 if path in str(e) else 3
    errors = 0
    try:
        _ = ds.meta
        for i in range(len(ds)):
            try:
                ds[i]
                ds.label(i)
            except apd.ApdError as e:
                errors += 1
                if path not in str(e):
                    return 3
        ds.close()
        try:
            loader = apd.Loader(path, batch_size=32, shuffle=True, seed=1)
            for _x, _y in loader:
                pass
            loader.close()
        except apd.ApdError as e:
            errors += 1
            if path not in str(e):
                return 3
    except Exception as e:  # noqa: BLE001  (anything but ApdError is a binding bug)
        print("%s: %s: %s" % (path, type(e).__name__, e), file=sys.stderr)
        return 4
    return 11 if errors else 0


def main():
    try:
        import apd
    except Exception as e:  # noqa: BLE001
        print("corrupt_python: skipped: cannot import apd (%s)" % e)
        return 77
    files = sorted(glob.glob(os.path.join(sys.argv[1], "*.apd")))
    counts = {"clean": 0, "open error": 0, "record errors": 0, "crash": 0, "bad": 0}
    for path in files:
        pid = os.fork()
        if pid == 0:
            code = 4
            try:
                code = read_one(apd, path)
            finally:
                os._exit(code)
        _, st = os.waitpid(pid, 0)
        if os.WIFSIGNALED(st):
            counts["crash"] += 1
            print("CRASH (signal %d): %s" % (os.WTERMSIG(st), path), file=sys.stderr)
            continue
        code = os.WEXITSTATUS(st)
        key = {0: "clean", 10: "open error", 11: "record errors"}.get(code, "bad")
        counts[key] += 1
        if key == "bad":
            print("FAILURE (exit %d): %s" % (code, path), file=sys.stderr)
    print("python: %d damaged files: %s" % (len(files), ", ".join("%d %s" % (v, k) for k, v in counts.items())))
    return 1 if counts["crash"] or counts["bad"] else 0


if __name__ == "__main__":
    sys.exit(main())
