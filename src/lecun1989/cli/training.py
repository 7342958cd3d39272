"""The commands that get data and train: data, info, repro, paper, modern, reader, sweep."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .. import paper
from ..errors import LecunError
from .args import (MAX_PASSES, add_cluster_arg, add_data_args, add_data_location_args, add_net_args, add_run_args, add_train_args, at_most, data_from_args,
                   default_out, given_out, load_data, location, net_from_args, parse_float_list, positive_int,
                   recipe_from_args, seed, seed_list)


def cmd_data(args) -> None:
    import numpy as np
    t0 = time.perf_counter()
    ds = load_data(args)
    from ..data import DRAW_ORDER
    order = f", the {DRAW_ORDER[ds.source]} draw order" if ds.source in DRAW_ORDER else ""
    print(f"data {ds.source}" + (f" (seed {ds.seed}{order})" if ds.seed is not None else "") +
          f": loaded in {time.perf_counter() - t0:.1f}s")
    for name, split in (("train", ds.train), ("test", ds.test)):
        counts = np.bincount(split.labels, minlength=paper.N_CLASSES)
        print(f"  {name:5s} {len(split):5d} images {tuple(split.images.shape[1:])} {split.images.dtype}, "
              f"values {split.images.min():+.3f} .. {split.images.max():+.3f}")
        print(f"        class counts 0..9: {' '.join(str(c) for c in counts)}")
    print(f"  sha256 {ds.sha256}")


def cmd_info(args) -> None:
    from ..model import Net1989
    net = Net1989(net_from_args(args))
    rows = net.describe()
    print(f"{'layer':8s} {'shape':>8s} {'units':>7s} {'connections':>12s} {'parameters':>11s} {'multiply-adds':>14s}")
    for r in rows:
        print(f"{r['layer']:8s} {r['shape']:>8s} {r['units']:7,d} {r['connections']:12,d} "
              f"{r['parameters']:11,d} {r['multiply_adds']:14,d}")
    total = {k: sum(r[k] for r in rows) for k in ("units", "connections", "parameters", "multiply_adds")}
    print(f"{'total':8s} {'':>8s} {total['units']:7,d} {total['connections']:12,d} {total['parameters']:11,d} "
          f"{total['multiply_adds']:14,d}")
    print(f"{'paper':8s} {'':>8s} {paper.UNITS:7,d} {paper.CONNECTIONS:12,d} {paper.PARAMETERS:11,d}")
    same = (total["units"], total["connections"], total["parameters"]) == (paper.UNITS, paper.CONNECTIONS,
                                                                            paper.PARAMETERS)
    print("matches the paper" if same else "DIFFERS from the paper")
    groups: dict[tuple, list[int]] = {}
    for plane, row in enumerate(net.table.tolist()):
        groups.setdefault(tuple(row), []).append(plane)
    print(f"H1->H2 table ({args.table}): " + "; ".join(
        f"H2 plane{'s' * (len(planes) > 1)} {','.join(map(str, planes))} read{'s' * (len(planes) == 1)} "
        f"H1 planes {','.join(map(str, row))}"
        for row, planes in groups.items()))


def cmd_repro(args) -> None:
    from ..train import raise_if_diverged, train
    recipe = recipe_from_args(args)
    ds = data_from_args(args)
    out = default_out(args, "repro", ds.source)
    t0 = time.perf_counter()
    summaries = train(recipe, ds, out, force=args.force, resume=args.resume, quiet=args.quiet)
    print(f"run saved to {out} ({time.perf_counter() - t0:.1f}s)", file=sys.stderr)
    raise_if_diverged(summaries)


def run_study(args, recipe, ds, name: str, extra_lines=(), compare: bool = True, table_lines=None,
              extra_config: dict | None = None) -> dict:
    """Train every run of the recipe, then write curves.csv and study.json and print the final
    figures beside the paper's (when `compare`), with the lines `table_lines(out)` gives below them.
    The folder stays locked until the last of them is read: nothing replaces it under the command."""
    from ..results import comparison_lines, write_study
    from ..store.folders import Lock, check_output
    from ..train import raise_if_diverged, run_dirs, train
    out = default_out(args, name, ds.source)
    t0 = time.perf_counter()
    check_output(out, args.force, args.resume, command=args.command)   # before the lock makes the folder
    with Lock(out, echo=lambda line: print(line, file=sys.stderr)):
        summaries = train(recipe, ds, out, force=args.force, resume=args.resume, quiet=args.quiet,
                          command=args.command, extra_config=extra_config)
        study = write_study(out, run_dirs(out, recipe.runs()), {"command": args.command_line, "data": ds.source,
                                                                  "held_out": ds.held_out})
        print()
        if compare and not ds.held_out and study["final"]:
            for line in comparison_lines(study["final"]) + (table_lines(out) if table_lines else []):
                print(line)
        for line in extra_lines:
            print(line)
        print(f"runs, curves.csv (per-pass mean and std) and study.json saved to {out} "
              f"({time.perf_counter() - t0:.1f}s)", file=sys.stderr)
    raise_if_diverged(summaries)
    return study


def cmd_paper(args) -> None:
    from ..engines import ahead
    from ..trained import FORWARD_TARGET, forward_missing
    if forward_missing():   # the rejection measure's forward pass, compiled while the runs train
        ahead.also(FORWARD_TARGET)
    run_study(args, recipe_from_args(args), data_from_args(args), "paper", table_lines=lambda out: [
        reject_table_line(out, location(args))])


def reject_table_line(out: Path, where) -> str:
    """The rejection for 1% error of the study's runs, as a line of its comparison table; what kept
    it from being measured, in its place, rather than losing the table."""
    from ..reading.rejection import measure, table_line
    try:
        return table_line(measure([out], 0.01, where))
    except LecunError as e:
        return f"{'reject for 1%':14s} {'~9% (NIPS)':>14s}   not measured: {e}"


def cmd_modern(args) -> None:
    from dataclasses import replace
    from ..recipes import LADDER, STEPS
    upto = args.upto or (LADDER[-1].name if args.data != "usps" else LADDER[-2].name)
    step = STEPS[upto]
    if step.data is not None and args.data == "usps":
        raise LecunError(f"step {upto} trains on 50,000 MNIST digits; the USPS set has no more than 7,291 "
                         f"training digits: use --data mnist")
    if step.data is not None:
        args.data = step.data
    recipe = replace(step.recipe, seeds=args.seeds or step.recipe.seeds, engine=args.engine, dtype=args.dtype)
    ds = data_from_args(args)
    published = "" if step.published != step.published else f"{step.published * 100:.2f}%"
    run_study(args, recipe, ds, f"modern-{upto}",
              [f"step {upto}: {step.what}"] +
              ([f"published (the best-known reproduction, one seed, its own MNIST draw): test error {published}"]
               if published else []), compare=False)


def cmd_reader(args) -> None:
    from dataclasses import replace
    from .. import data, reader_data
    from ..recipes import READER
    recipe = replace(READER, seeds=args.seeds or READER.seeds, passes=args.passes or READER.passes,
                     engine=args.engine, dtype=args.dtype)
    from ..store.folders import check_output
    where = location(args)
    for flag, n, there, source in (("--usps-digits", args.usps_digits, paper.N_TRAIN, "USPS"),
                                   ("--mnist-digits", args.mnist_digits, data.MNIST_TRAIN_FILE, "MNIST")):
        if n is not None and n > there:   # a slice would quietly take all of them
            raise LecunError(f"{flag} {n}: there are {there:,} {source} training digits; give at most {there}")
    out = default_out(args, "reader", "reader")
    check_output(out, args.force, args.resume, command=args.command)   # before a minute spent on the data
    t0 = time.perf_counter()
    ds = reader_data.load(where, args.data_seed, args.usps_digits, args.mnist_digits)
    print(f"reader data: {len(ds.train):,} training examples ({int((ds.train.labels == reader_data.NONE).sum()):,} "
          f"of them not a digit), built or read in {time.perf_counter() - t0:.1f}s; tested on the "
          f"{len(ds.test):,} USPS test digits", file=sys.stderr)
    args.out = str(out)   # one folder, named once, for the training and the committee's figures after it
    study = run_study(args, recipe, ds, "reader", compare=False, extra_config={"reader": {"usps_digits": args.usps_digits, "mnist_digits": args.mnist_digits,
                                       "test_sha256": reader_data.test_digest(ds.test)}})
    if study["final"]:
        for line in committee_lines(out, where):
            print(line)


def committee_lines(out: Path, where) -> list[str]:
    """How the study's runs read together (`predict FOLDER`): their error and rejection on the USPS test
    digits, and how the 1% promise holds on MNIST's test digits, other writers than any it trained on."""
    from ..reading.benchmark import accepted_error, mnist_inputs
    from ..reading.images import reader, run_folders
    from ..trained import run_test_split
    r = reader(out, where=where)
    test = run_test_split(run_folders(out)[0], where)
    u, m = accepted_error(r, test.images, test.labels), accepted_error(r, *mnist_inputs(where))
    pct = lambda v: "n/a" if v is None else f"{100 * v:.2f}%"
    return ["(the training error above counts every not-digit as a miss: none has a right label, only no "
            "class preferred)",
            f"read together (lecun1989 predict {out}): USPS test error {pct(u['error'])}; "
            f"margin threshold {r.threshold:.3f} for 1% error rejects {pct(u['rejected'])} of those digits",
            f"MNIST's 10,000 test digits (other writers): error {pct(m['error'])}; at that threshold "
            f"{pct(m['rejected'])} rejected, the accepted err {pct(m['accepted_error'])}"]


def cmd_sweep(args) -> None:
    from dataclasses import replace
    from .. import recipes
    from ..sweep import log_grid, sweep
    base = recipes.REPRO if args.recipe == "repro" else recipes.PAPER if args.recipe == "paper" else \
        recipes.STEPS[args.recipe].recipe
    if args.recipe in recipes.STEPS and recipes.STEPS[args.recipe].data is not None:
        args.data = recipes.STEPS[args.recipe].data
    if args.lrs and args.lr_grid:
        raise LecunError("give --lrs or --lr-grid, not both")
    lrs = args.lrs or (log_grid(args.lr_grid) if args.lr_grid else None)
    if not lrs:
        raise LecunError("give the learning rates to sweep: --lrs 0.01,0.03 or --lr-grid 1e-3:1e-1:10")
    base = replace(base, passes=args.passes or base.passes, engine=args.engine, dtype=args.dtype)
    ds = load_data(args)
    out = given_out(args) or Path("runs") / f"sweep-{args.recipe}-{ds.source}"
    sweep(base, args.recipe, lrs, args.mus, args.seeds, ds, args.validation, out, force=args.force, quiet=args.quiet)
    print(f"sweep saved to {out} (sweep.csv, sweep.json); `lecun1989 plot {out}` draws it", file=sys.stderr)


def add_commands(sub) -> None:
    """data, info, repro, paper, modern, reader, sweep."""
    from .. import recipes
    from ..engines import ENGINE_NAMES
    p = sub.add_parser("data", help="get, check and summarize a data set")
    add_data_args(p, positional=True)
    p.set_defaults(func=cmd_data)

    p = sub.add_parser("info", help="the network, layer by layer, beside the paper's figures")
    add_net_args(p)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("repro", help="one training run (or a seed x learning-rate grid); default: the "
                                     "best-known reproduction's recipe, online SGD for 23 passes")
    add_train_args(p, recipes.REPRO, "run directory (default runs/repro-DATA-DATE-TIME)")
    p.set_defaults(func=cmd_repro)

    p = sub.add_parser("paper", help="the most faithful configuration (the paper's diagonal Newton optimizer) "
                                     "over 10 seeds, beside the paper's figures")
    add_train_args(p, recipes.PAPER, "study directory, one run directory per seed inside "
                                     "(default runs/paper-DATA-DATE-TIME)")
    p.set_defaults(func=cmd_paper)

    p = sub.add_parser("modern", help="the modernized recipe, or any step of the ladder from 1989 to today "
                                      "(--upto STEP), over 5 seeds")
    from ..recipes import LADDER, STEPS
    p.add_argument("--upto", choices=list(STEPS),
                   help="the last step of the ladder to include: " + "; ".join(f"{s.name}: {s.what}" for s in LADDER) +
                        f"; or baseline50k: the baseline on 50,000 MNIST digits (default: {LADDER[-1].name} "
                        f"with --data mnist, {LADDER[-2].name} with --data usps)")
    add_data_args(p)
    p.add_argument("--seeds", type=seed_list, help="seeds of the initial weights and the noise (default 0-4)")
    add_run_args(p, "study directory (default runs/modern-STEP-DATA-DATE-TIME)")
    p.set_defaults(func=cmd_modern)

    p = sub.add_parser("reader", help="train the paper's network for reading images: on every USPS and MNIST "
                                      "training digit, drawn with many pens and poses, and on ink that is no digit",
                       description="Train the paper's network (the same 9,760 parameters) for `predict`, with the "
                                   "modern recipe without dropout (ReLU, cross-entropy, AdamW): on the 7,291 USPS and 60,000 MNIST training digits, each drawn again "
                                   "with another pen, rotation, slant, width and blur, and on pieces of ink that "
                                   "are not a digit (halves, pairs, dots), over 8 seeds. Tested, and its "
                                   "rejection threshold set, on the 2,007 USPS test digits (docs/READING.md).")
    p.add_argument("--seeds", type=seed_list, help="seeds of the initial weights (default 0-7; the runs read "
                                                   "together as a committee: predict FOLDER)")
    p.add_argument("--passes", type=at_most(MAX_PASSES), help=f"passes (default {recipes.READER.passes})")
    p.add_argument("--data-seed", type=seed, default=0, help="the seed of the drawn training set (default 0)")
    p.add_argument("--usps-digits", type=positive_int, metavar="N", help="use only the first N USPS training digits")
    p.add_argument("--mnist-digits", type=positive_int, metavar="N", help="use only the first N MNIST training digits")
    p.add_argument("--engine", default="fast", choices=ENGINE_NAMES)
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--out", help="study directory, one run directory per seed inside (one seed: the run itself; "
                                 "default runs/reader-DATE-TIME)")
    p.add_argument("--force", action="store_true", help="replace an existing output folder (only one this program made)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted command in its output folder from its last completed pass")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_cluster_arg(p)
    add_data_location_args(p)
    p.set_defaults(func=cmd_reader)

    p = sub.add_parser("sweep", help="a learning-rate (and mu) x seed grid, chosen on a validation split, "
                                     "the choice retrained and tested")
    p.add_argument("--recipe", default="repro", choices=["repro", "paper", *STEPS],
                   help="the recipe whose settings are swept (default repro)")
    add_data_args(p)
    p.add_argument("--lrs", type=parse_float_list, help="learning rates, e.g. 0.003,0.01,0.03")
    p.add_argument("--lr-grid", help="LOW:HIGH:N learning rates evenly spaced in log, e.g. 1e-3:1e-1:10")
    p.add_argument("--mus", type=parse_float_list, help="sdlm's mu values to sweep as well, e.g. 0.01,0.02,0.1")
    p.add_argument("--seeds", type=seed_list, default=tuple(range(5)), help="seeds (default 0-4)")
    p.add_argument("--validation", type=positive_int, default=1000, metavar="N",
                   help="choose on the last N training digits (default 1000)")
    p.add_argument("--passes", type=at_most(MAX_PASSES), help="passes (default: the recipe's)")
    p.add_argument("--engine", default="fast", choices=ENGINE_NAMES)
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--out", help="sweep folder (default runs/sweep-RECIPE-DATA); an interrupted sweep re-run "
                                 "with the same settings skips the finished grid points")
    p.add_argument("--force", action="store_true", help="start over, deleting what the folder holds")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_cluster_arg(p)
    p.set_defaults(func=cmd_sweep)
