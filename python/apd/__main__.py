"""python3 -m apd: convert distilled sets between .npz / .pt and .apd.

    python3 -m apd import syn.npz syn.apd [--mean M M M --std S S S] [--quantizer Q --k K]
    python3 -m apd export syn.apd syn.pt [--dtype float|uint8] [--normalize]
    python3 -m apd info syn.apd
"""
import argparse
import json
import sys

import apd
from apd import interop


def _meta(pairs):
    out = {}
    for p in pairs or []:
        key, sep, val = p.partition("=")
        if not sep or not key:
            raise ValueError("--meta wants KEY=JSON, got %r" % p)
        try:
            out[key] = json.loads(val)
        except ValueError:
            out[key] = val  # a bare word is a string
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python3 -m apd", description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    im = sub.add_parser("import", help=".npz / .pt -> .apd",
                        description="Write the images (N,C,H,W) and labels (N,) of a .npz or .pt "
                        "file to an .apd. Float images are pixels/255 in [0, 1] unless --mean "
                        "and --std say how they were normalised; uint8 images are stored as is. "
                        "Labels (N, classes) of floats are stored as soft labels (format 1.1, "
                        "hard label = argmax).")
    im.add_argument("src", help="input .npz or .pt")
    im.add_argument("dst", help="output .apd")
    im.add_argument("--images-key", help="entry holding the images (default: images, "
                    "image_syn, x, data, X)")
    im.add_argument("--labels-key", help="entry holding the labels (default: labels, "
                    "label_syn, y, targets, Y)")
    im.add_argument("--experiment", type=int, default=0,
                    help='.pt with {"data": [[images, labels], ...]}: which entry (default 0)')
    im.add_argument("--mean", type=float, nargs="+", help="per-channel mean the float images "
                    "were normalised with (pixels/255 scale)")
    im.add_argument("--std", type=float, nargs="+", help="per-channel std, as --mean")
    im.add_argument("--layout", choices=["nchw", "nhwc"], help="when the shape is ambiguous")
    im.add_argument("--quantizer", help="store palette records: median-cut, octree or kmeans")
    im.add_argument("-k", "--colors", type=int, dest="k", help="colours per image (--quantizer)")
    im.add_argument("--class-names", help="comma-separated class names")
    im.add_argument("--dataset", help="dataset name for the header")
    im.add_argument("--meta", action="append", metavar="KEY=JSON",
                    help="extra metadata (repeatable), e.g. --meta method=\"dm\" --meta seed=0")
    im.add_argument("--trust-pickle", action="store_true",
                    help=".pt: load objects beyond tensors and plain containers (runs the "
                    "file's pickle code: only for files you trust)")
    im.add_argument("-f", "--force", action="store_true", help="overwrite DST")
    ex = sub.add_parser("export", help=".apd -> .npz / .pt",
                        description="Write an .apd as images (N,C,H,W), labels (N,), "
                        "class_names, mean, std, normalized and meta to a .npz or .pt file; "
                        "a file with soft labels gives labels (N, classes) float32 and "
                        "hard_labels (N,).")
    ex.add_argument("src", help="input .apd")
    ex.add_argument("dst", help="output .npz or .pt")
    ex.add_argument("--dtype", choices=["float", "uint8"], default="float",
                    help="float32 pixels/255 in [0, 1] (default) or uint8")
    ex.add_argument("--normalize", action="store_true",
                    help="float images as (v/255 - mean) / std with the file's mean/std")
    ex.add_argument("--mean", type=float, nargs="+", help="override the file's mean")
    ex.add_argument("--std", type=float, nargs="+", help="override the file's std")
    ex.add_argument("-f", "--force", action="store_true", help="overwrite DST")
    inf = sub.add_parser("info", help="geometry, classes and metadata of an .apd (JSON)")
    inf.add_argument("src")
    a = ap.parse_args(argv)
    try:
        if a.cmd == "import":
            names = a.class_names.split(",") if a.class_names else None
            n = interop.import_file(a.src, a.dst, a.images_key, a.labels_key, a.mean, a.std,
                                    a.layout, a.quantizer, a.k, names, _meta(a.meta), a.force,
                                    a.dataset, a.experiment, a.trust_pickle)
            print("apd import: %s: %d records from %s" % (a.dst, n, a.src))
        elif a.cmd == "export":
            n = interop.export_file(a.src, a.dst, a.dtype, a.normalize, a.mean, a.std, a.force)
            print("apd export: %s: %d records from %s" % (a.dst, n, a.src))
        else:
            with apd.open(a.src) as ds:
                print(json.dumps({"info": ds.info, "classes": ds.classes, "meta": ds.meta},
                                 indent=1))
    except (ValueError, TypeError, KeyError, OSError, ImportError, apd.ApdError) as e:
        print("apd %s: error: %s" % (a.cmd, e), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
