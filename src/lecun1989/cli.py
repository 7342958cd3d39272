"""The `lecun1989` command: data, info, repro, paper, modern, sweep, plot, reject, predict, zipcodes, demo,
report, study, docs, bench."""

from __future__ import annotations

import argparse
import math
import os
import re
import shlex
import signal
import sys
import time
from pathlib import Path

from . import __version__, paper
from .errors import Diverged, LecunError, OutputError, handle_sigterm, interrupt_behind, interrupted_line

# More runs than this in one command is a typo (a range like 0-100000), refused before anything is made.
MAX_RUNS = 1_000_000
MAX_PASSES = 10_000  # the paper trains 23; a larger count is a typo that would run for days


def parse_int_list(text: str) -> tuple[int, ...]:
    """'0-31' or '1,2,5' or '0-3,10' -> a tuple of ints."""
    out = []
    try:
        for part in text.split(","):
            if "-" in part.strip()[1:]:
                lo, hi = part.strip().split("-", 1) if not part.strip().startswith("-") else (None, None)
                lo, hi = int(lo), int(hi)
                if hi < lo:
                    raise ValueError
                out.extend(range(lo, hi + 1))
            else:
                out.append(int(part))
    except (ValueError, TypeError):
        raise argparse.ArgumentTypeError(f"{text!r} is not a list of integers like 0-31 or 1,2,5") from None
    return tuple(out)


def finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def parse_float_list(text: str) -> tuple[float, ...]:
    try:
        return tuple(finite_float(part) for part in text.split(","))
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of finite numbers") from None


def seed_list(text: str) -> tuple[int, ...]:
    """Seeds as parse_int_list gives them, each in 0 .. 2^32-1, and not so many that expanding a range
    alone fills the memory (the trainer checks what the runs need before it allocates them)."""
    from .train import MAX_SEED
    ranges = re.findall(r"(\d+)\s*-\s*(\d+)", text)
    if sum(int(hi) - int(lo) + 1 for lo, hi in ranges) > MAX_RUNS:
        raise argparse.ArgumentTypeError(f"{text!r} names more than {MAX_RUNS:,} seeds; train fewer at a time")
    seeds = parse_int_list(text)
    bad = [v for v in seeds if not 0 <= v <= MAX_SEED]
    if bad:
        raise argparse.ArgumentTypeError(f"seed {bad[0]} is outside 0 .. {MAX_SEED}")
    return seeds


def seed(text: str) -> int:
    seeds = seed_list(text)
    if len(seeds) != 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not one seed; use --seeds for several")
    return seeds[0]


def positive_int(text: str, most: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    if most is not None and value > most:
        raise argparse.ArgumentTypeError(f"{text!r} is more than {most:,}")
    return value


def at_most(most: int):
    """A positive whole number up to `most`: a count that is a typo when larger (--passes 1000000)."""
    def count(text: str) -> int:
        return positive_int(text, most)
    count.__name__ = f"integer up to {most:,}"
    return count


def add_data_args(p: argparse.ArgumentParser, positional: bool = False) -> None:
    from .data import DEFAULT_DATA_SEED, SOURCES
    if positional:
        p.add_argument("data", nargs="?", default="usps", choices=SOURCES,
                       help="usps: the real 1989 digits; mnist: the MNIST-derived approximation; mnist50k: the same "
                            "with 50,000 training digits; mnist-published: the approximation in the draw order behind "
                            "the best-known reproduction's published figures (test digits drawn first) (default usps)")
    else:
        p.add_argument("--data", default="usps", choices=SOURCES,
                       help="usps: the real 1989 digits; mnist: the MNIST-derived approximation; mnist50k: the same "
                            "with 50,000 training digits; mnist-published: the approximation in the draw order behind "
                            "the best-known reproduction's published figures (test digits drawn first) (default usps)")
    p.add_argument("--data-seed", type=seed, default=DEFAULT_DATA_SEED,
                   help=f"seed of the MNIST-derived draw (default {DEFAULT_DATA_SEED})")
    add_data_location_args(p)


def add_data_location_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-home", help="where downloads and processed data are kept "
                                       "(default: $LECUN1989_HOME or the user cache dir)")
    p.add_argument("--raw-dir", help="read the raw files from this folder, never download "
                                     "(default: $LECUN1989_RAW_DIR)")
    p.add_argument("--offline", action="store_true", default=None,
                   help="never download; use the data home only (or set LECUN1989_OFFLINE=1)")
    p.add_argument("--allow-modified-data", action="store_true",
                   help="use raw files whose digits differ from the published sets (recorded in config.json)")


def load_data(args):
    from . import data
    return data.load(args.data, data_seed=args.data_seed, home=args.data_home, raw_dir=args.raw_dir,
                     offline=args.offline, allow_modified=args.allow_modified_data)


def add_net_args(p: argparse.ArgumentParser, net=None) -> None:
    from .model import ACTIVATIONS, INITS, LOSSES, TABLES, NetConfig
    net = net or NetConfig()
    p.add_argument("--activation", default=net.activation, choices=list(ACTIVATIONS),
                   help=f"tanh, or scaled_tanh = 1.7159 tanh(2a/3) (default {net.activation})")
    p.add_argument("--init", default=net.init, choices=INITS,
                   help=f"weights ~ U(+-2.4/sqrt(F)) (sqrt) or U(+-2.4/F) (linear); default {net.init}")
    p.add_argument("--output-bias", type=finite_float, default=net.output_bias,
                   help=f"initial output biases (default {net.output_bias:g})")
    p.add_argument("--table", default=net.table, choices=list(TABLES),
                   help=f"H1->H2 connection table (default {net.table}; see `lecun1989 info --table NAME`)")
    p.add_argument("--loss", default=net.loss, choices=LOSSES,
                   help=f"mse: tanh outputs and the MSE (the paper); ce: linear outputs and softmax "
                        f"cross-entropy (default {net.loss})")
    p.add_argument("--dropout", type=finite_float, default=net.dropout,
                   help=f"training only: drop each of H2's outputs with this probability (default {net.dropout:g})")
    p.add_argument("--shift", type=int, default=net.shift,
                   help=f"training only: roll each image by up to this many pixels in x and y (default {net.shift})")


def net_from_args(args):
    from .model import NetConfig
    return NetConfig(args.activation, args.init, args.output_bias, args.table, args.loss, args.dropout, args.shift)


def add_optim_args(p: argparse.ArgumentParser, optim, lr: float) -> None:
    from .optim import HESSIAN_MODES, OPTIMIZERS, SCHEDULES
    p.add_argument("--optimizer", default=optim.name, choices=OPTIMIZERS,
                   help=f"sgd: w -= lr g; sdlm: the paper's diagonal Newton method, w -= lr / (mu + h) g; "
                        f"momentum: dw = momentum dw - lr g, w += dw (Rumelhart, Hinton & Williams 1986); "
                        f"adamw (default {optim.name})")
    p.add_argument("--lr", type=finite_float, help=f"learning rate; eps for sdlm (default {lr:g})")
    p.set_defaults(default_lr=lr)
    p.add_argument("--lrs", type=parse_float_list, help="several learning rates, e.g. 0.01,0.03 (one run each)")
    p.add_argument("--schedule", default=optim.schedule,
                   help=f"per-pass factor of the learning rate: {' or '.join(SCHEDULES)} (LeNet-5's eps "
                        f"schedule), or factor:passes,...,last factor, e.g. 1:2,0.4:3,0.2 (default {optim.schedule})")
    p.add_argument("--mu", type=finite_float, default=optim.mu, help=f"sdlm: the step is lr / (mu + h) (default {optim.mu:g})")
    p.add_argument("--hessian-samples", type=positive_int, default=optim.hessian_samples,
                   help=f"sdlm: examples h is averaged over before each pass (default {optim.hessian_samples})")
    p.add_argument("--hessian", default=optim.hessian, choices=HESSIAN_MODES,
                   help="sdlm: re-estimate h before each pass (pass), or keep a running average updated "
                        f"after every example (running); default {optim.hessian}")
    p.add_argument("--hessian-decay", type=finite_float, default=optim.decay,
                   help=f"sdlm --hessian running: weight of the newest example (default {optim.decay:g})")
    p.add_argument("--momentum", type=finite_float, default=optim.momentum,
                   help=f"momentum: the fraction of the last change kept (default {optim.momentum:g})")
    p.add_argument("--weight-decay", type=finite_float, default=optim.weight_decay,
                   help=f"adamw: decoupled weight decay (default {optim.weight_decay:g}, PyTorch's)")


def add_train_args(p: argparse.ArgumentParser, recipe, out_help: str) -> None:
    """Every setting of a training run, with the recipe's values as defaults."""
    add_data_args(p)
    add_net_args(p, recipe.net)
    add_optim_args(p, recipe.optim, recipe.lrs[0])
    p.add_argument("--passes", type=at_most(MAX_PASSES), default=recipe.passes,
                   help=f"passes over the training set (default {recipe.passes})")
    if len(recipe.seeds) == 1:
        p.add_argument("--seed", type=seed, default=None,
                       help=f"seed of the initial weights (default {recipe.seeds[0]})")
    seeds_default = format_int_list(recipe.seeds)
    p.add_argument("--seeds", type=seed_list, default=None if len(recipe.seeds) == 1 else recipe.seeds,
                   help="several seeds, e.g. 0-31 or 1,2,5 (one run each)" +
                        ("" if len(recipe.seeds) == 1 else f"; default {seeds_default}"))
    add_run_args(p, out_help)


def add_run_args(p: argparse.ArgumentParser, out_help: str) -> None:
    """How and where a recipe runs: engine, precision, which data, the output folder."""
    from .engines import ENGINE_NAMES
    p.add_argument("--engine", default="fast", choices=ENGINE_NAMES,
                   help="fast: the compiled engine (default); torch: the PyTorch reference")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--validation", type=positive_int, metavar="N",
                   help="hold out the last N training examples and evaluate on them instead of the test set "
                        "(for choosing settings)")
    p.add_argument("--train-size", type=positive_int, help="use only the first N training examples")
    p.add_argument("--test-size", type=positive_int,
                   help="use only the first N test examples (with --validation: of the validation examples)")
    p.add_argument("--out", help=out_help)
    p.add_argument("--force", action="store_true",
                   help="replace an existing output folder (only one this program made)")
    p.add_argument("--resume", action="store_true",
                   help="continue an interrupted command in its output folder from its last completed pass")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def format_int_list(values) -> str:
    values = list(values)
    if values == list(range(values[0], values[0] + len(values))) and len(values) > 1:
        return f"{values[0]}-{values[-1]}"
    return ",".join(map(str, values))


def recipe_from_args(args, default_seeds=(paper.REPRO_SEED,)):
    from .optim import OptimConfig
    from .train import Recipe
    if getattr(args, "seed", None) is not None and args.seeds is not None:
        raise LecunError("give --seed or --seeds, not both")
    if args.lr is not None and args.lrs is not None:
        raise LecunError("give --lr or --lrs, not both")
    seeds = args.seeds or ((args.seed,) if getattr(args, "seed", None) is not None else default_seeds)
    optim = OptimConfig(args.optimizer, args.schedule, args.mu, args.hessian_samples, args.hessian,
                        args.hessian_decay, weight_decay=args.weight_decay, momentum=args.momentum)
    lrs = args.lrs or (args.default_lr if args.lr is None else args.lr,)
    return Recipe(passes=args.passes, lrs=lrs, seeds=seeds, optim=optim, engine=args.engine, dtype=args.dtype,
                  net=net_from_args(args))


def data_from_args(args):
    ds = load_data(args)
    if args.validation:
        ds = ds.validation(args.validation)
    for flag, n, split in (("--train-size", args.train_size, ds.train), ("--test-size", args.test_size, ds.test)):
        if n and n > len(split):
            raise LecunError(f"{flag} {n} is more than the {len(split)} examples there are")
    if args.train_size or args.test_size:
        ds = ds.subset(args.train_size, args.test_size)
    return ds


# --- commands ---------------------------------------------------------------------------------

def cmd_data(args) -> None:
    import numpy as np
    t0 = time.perf_counter()
    ds = load_data(args)
    from .data import DRAW_ORDER
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
    from .model import Net1989
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


def refuse_empty(**folders) -> None:
    """A folder option given as "" (flag name -> value) is refused rather than taken as left out."""
    for name, value in folders.items():
        if value == "":
            flag = "--" + name.replace("_", "-")
            raise LecunError(f"{flag} is empty: name a folder, or leave {flag} out for its default")


def given_out(args) -> Path | None:
    """--out as given (None when left out); an empty one is refused rather than taken as left out."""
    refuse_empty(out=args.out)
    return Path(args.out) if args.out is not None else None


def default_out(args, name: str, source: str) -> Path:
    out = given_out(args)
    if out:
        return out
    if args.resume:
        raise LecunError("--resume continues the command in --out DIR: name the folder")
    return Path("runs") / time.strftime(f"{name}-{source}-%Y%m%d-%H%M%S")


def cmd_repro(args) -> None:
    from .train import raise_if_diverged, train
    recipe = recipe_from_args(args)
    ds = data_from_args(args)
    out = default_out(args, "repro", ds.source)
    t0 = time.perf_counter()
    summaries = train(recipe, ds, out, force=args.force, resume=args.resume, quiet=args.quiet)
    print(f"run saved to {out} ({time.perf_counter() - t0:.1f}s)", file=sys.stderr)
    raise_if_diverged(summaries)


def run_study(args, recipe, ds, name: str, extra_lines=(), compare: bool = True, table_lines=None) -> dict:
    """Train every run of the recipe, then write curves.csv and study.json and print the final
    figures beside the paper's (when `compare`), with the lines `table_lines(out)` gives below them."""
    from .results import comparison_lines, write_study
    from .rundir import Lock, check_output
    from .train import raise_if_diverged, run_dirs, train
    out = default_out(args, name, ds.source)
    t0 = time.perf_counter()
    check_output(out, args.force, args.resume)   # before the lock makes the folder
    with Lock(out, echo=lambda line: print(line, file=sys.stderr)):
        summaries = train(recipe, ds, out, force=args.force, resume=args.resume, quiet=args.quiet,
                          command=args.command)
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
    run_study(args, recipe_from_args(args), data_from_args(args), "paper", table_lines=lambda out: [
        reject_table_line(out, load_kwargs(args))])


def reject_table_line(out: Path, load: dict) -> str:
    """The rejection for 1% error of the study's runs, as a line of its comparison table; what kept
    it from being measured, in its place, rather than losing the table."""
    from .reject import measure, table_line
    try:
        return table_line(measure([out], 0.01, load))
    except LecunError as e:
        return f"{'reject for 1%':14s} {'~9% (NIPS)':>14s}   not measured: {e}"


def cmd_modern(args) -> None:
    from dataclasses import replace
    from .recipes import LADDER, STEPS
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


def cmd_sweep(args) -> None:
    from dataclasses import replace
    from . import recipes
    from .sweep import log_grid, sweep
    base = recipes.REPRO if args.recipe == "repro" else recipes.PAPER if args.recipe == "paper" else \
        recipes.STEPS[args.recipe].recipe
    if args.recipe in recipes.STEPS and recipes.STEPS[args.recipe].data is not None:
        args.data = recipes.STEPS[args.recipe].data
    lrs = args.lrs or (log_grid(args.lr_grid) if args.lr_grid else None)
    if not lrs:
        raise LecunError("give the learning rates to sweep: --lrs 0.01,0.03 or --lr-grid 1e-3:1e-1:10")
    base = replace(base, passes=args.passes or base.passes, engine=args.engine, dtype=args.dtype)
    ds = load_data(args)
    out = given_out(args) or Path("runs") / f"sweep-{args.recipe}-{ds.source}"
    sweep(base, args.recipe, lrs, args.mus, args.seeds, ds, args.validation, out, force=args.force, quiet=args.quiet)
    print(f"sweep saved to {out} (sweep.csv, sweep.json); `lecun1989 plot {out}` draws it", file=sys.stderr)


def load_kwargs(args) -> dict:
    return {"home": args.data_home, "raw_dir": args.raw_dir, "offline": args.offline,
            "allow_modified": args.allow_modified_data}


def cmd_plot(args) -> None:
    from . import plots
    for folder, written in plots.plot_folders([Path(p) for p in args.paths], given_out(args),
                                              load_kwargs(args)):
        print(f"{folder}: " + ", ".join(str(p) for p in written))


def cmd_reject(args) -> None:
    from .reject import lines, reject
    result, written = reject([Path(p) for p in args.paths], given_out(args), args.error,
                             load_kwargs(args), command=args.command_line)
    print("written: " + ", ".join(str(p) for p in written), file=sys.stderr)
    for line in lines(result):
        print(line)


def cmd_report(args) -> None:
    from .report import report
    out = report([Path(p) for p in args.paths], args.output, load=load_kwargs(args))
    print(f"report written to {out}")


def cmd_study(args) -> None:
    from .studies import run, select
    location = [flag for name, flag in (("data_home", "--data-home"), ("raw_dir", "--raw-dir"))
                for flag in ([flag, getattr(args, name)] if getattr(args, name) else [])]
    location += ["--offline"] * bool(args.offline) + ["--allow-modified-data"] * args.allow_modified_data
    refuse_empty(out=args.out, work=args.work)
    run(select(args.names), Path(args.out), Path(args.work), location)


def cmd_docs(args) -> None:
    from .docs import docs
    t0 = time.perf_counter()
    refuse_empty(root=args.root, results=args.results)
    root = Path(args.root)
    found = docs(root, Path(args.results) if args.results else None, check=args.check, load=load_kwargs(args))
    if args.check:
        for d in found:
            print(d.line(), file=sys.stderr)
        if found:
            raise LecunError(f"{len(found)} quoted figure{'s' * (len(found) > 1)} differ from the results; "
                             f"`lecun1989 docs` rewrites them from the results")
        print(f"docs match the results ({time.perf_counter() - t0:.1f}s)")
    else:
        print(f"docs written from the results: {len(found)} table row{'s' * (len(found) != 1)} or figure"
              f"{'s' * (len(found) != 1)} changed, pictures redrawn ({time.perf_counter() - t0:.1f}s)")


def cmd_bench(args) -> None:
    from .bench import bench
    bench(load_data(args), ref_steps=args.ref_steps, runs=args.runs, passes=args.passes, dtype=args.dtype)


def build_parser() -> argparse.ArgumentParser:
    from . import recipes
    from .engines import ENGINE_NAMES
    parser = Parser(prog="lecun1989", description=f"Reproduce {paper.CITATION}.")
    parser.add_argument("--version", action="version", version=f"lecun1989 {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parser.commands = sub.choices   # each command's parser, for errors in its own name

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
    from .recipes import LADDER, STEPS
    p.add_argument("--upto", choices=list(STEPS),
                   help="the last step of the ladder to include: " + "; ".join(f"{s.name}: {s.what}" for s in LADDER) +
                        f"; or baseline50k: the baseline on 50,000 MNIST digits (default: {LADDER[-1].name} "
                        f"with --data mnist, {LADDER[-2].name} with --data usps)")
    add_data_args(p)
    p.add_argument("--seeds", type=seed_list, help="seeds of the initial weights and the noise (default 0-4)")
    add_run_args(p, "study directory (default runs/modern-STEP-DATA-DATE-TIME)")
    p.set_defaults(func=cmd_modern)

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
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("plot", help="draw the pictures of finished runs, studies and sweeps (PNG and SVG)")
    p.add_argument("paths", nargs="+", help="run, study or sweep folders")
    p.add_argument("--out", help="write into OUT/NAME instead of each folder's plots/")
    add_data_location_args(p)
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("reject", help="the share of test digits finished runs must reject, least sure first, to "
                                      "reach a given error (the zip-code work's figure of merit)")
    p.add_argument("paths", nargs="+", help="run, study or sweep folders; their finished runs are pooled")
    p.add_argument("--out", help="the folder of reject.png, reject.svg and reject.json (default: FOLDER/reject; "
                                 "needed when several folders are given)")
    p.add_argument("--error", type=finite_float, default=0.01,
                   help="the error the accepted digits may have, as a fraction (default 0.01: 1%%)")
    add_data_location_args(p)
    p.set_defaults(func=cmd_reject)

    from . import demo, reading
    reading.add_subcommand(sub)   # predict, zipcodes
    demo.add_subcommand(sub)

    p = sub.add_parser("report", help="one self-contained HTML page for finished runs, studies and sweeps")
    p.add_argument("paths", nargs="+", help="run, study or sweep folders")
    p.add_argument("-o", "--output", default="report.html", help="the HTML file (default report.html)")
    add_data_location_args(p)
    p.set_defaults(func=cmd_report)

    from .studies import DEFAULT_WORK, STUDIES
    p = sub.add_parser("study", help="run the studies behind the docs' tables (resumable: finished rows are "
                                     "skipped) and save each row's results")
    p.add_argument("names", nargs="+", metavar="NAME",
                   help="; ".join(f"{s.name}: {s.what}" for s in STUDIES.values()) + "; or all")
    p.add_argument("--out", default="results", help="where each row's study.json goes (default results)")
    p.add_argument("--work", default=str(DEFAULT_WORK),
                   help=f"where the rows train, weights and logs included (default {DEFAULT_WORK})")
    add_data_location_args(p)
    p.set_defaults(func=cmd_study)

    p = sub.add_parser("docs", help="write the docs' measured tables, figures and pictures from the saved "
                                    "results; --check only compares")
    p.add_argument("--check", action="store_true",
                   help="change nothing; exit non-zero naming each table row or figure that differs")
    p.add_argument("--root", default=".", help="the repository's folder (default: the current one)")
    p.add_argument("--results", help="the results folder (default ROOT/results)")
    add_data_location_args(p)
    p.set_defaults(func=cmd_docs)

    p = sub.add_parser("bench", help="time the compiled engine against the PyTorch reference")
    add_data_args(p)
    p.add_argument("--ref-steps", type=at_most(1_000_000), default=2000, help="steps to time the reference on")
    p.add_argument("--runs", type=at_most(1024), default=32, help="runs trained at once for the many-runs figure")
    p.add_argument("--passes", type=at_most(MAX_PASSES), default=paper.PASSES, help="passes of the timed fast run")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.set_defaults(func=cmd_bench)
    return parser


class Parser(argparse.ArgumentParser):
    def error(self, message):
        """One line, not the usage block: what is wrong, and where to read more."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def main(argv: list[str] | None = None) -> int:
    name = "lecun1989"
    previous = handle_sigterm()
    try:   # everything, imports and parsing included: an interrupt at any moment is one line
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
        if extra:   # named by the command it was given to (`lecun1989 modern: error: ...`), not the program
            parser.commands[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
        name = f"lecun1989 {args.command}"
        args.command_line = shlex.join(["lecun1989", *(sys.argv[1:] if argv is None else argv)])
        args.func(args)
    except LecunError as e:
        print(f"{name}: error: {e}", file=sys.stderr)
        return 3 if isinstance(e, Diverged) else 1 if isinstance(e, OutputError) else 2
    except BrokenPipeError as e:   # `lecun1989 ... | head`: the reader left; stop as if interrupted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # nothing more to flush at exit
        note = getattr(e, "note", None)
        print(f"{name}: output closed" + (f"; {note}" if note else ""), file=sys.stderr)
        return 141
    except OSError as e:
        print(f"{name}: error: {e.filename or 'a file'}: {e.strerror or e}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, SystemError) as e:
        stop = interrupt_behind(e)
        if stop is None:
            raise
        line, status = interrupted_line(name, stop)
        print(line, file=sys.stderr)
        return status
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0


if __name__ == "__main__":
    sys.exit(main())
