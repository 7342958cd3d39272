"""The `lecun1989` command: data, info, repro."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from . import __version__, paper
from .errors import LecunError


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


def parse_float_list(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of numbers") from None


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive integer")
    return value


def add_data_args(p: argparse.ArgumentParser, positional: bool = False) -> None:
    from .data import DEFAULT_DATA_SEED, SOURCES
    if positional:
        p.add_argument("data", nargs="?", default="usps", choices=SOURCES,
                       help="usps: the real 1989 digits; mnist: the MNIST-derived approximation (default usps)")
    else:
        p.add_argument("--data", default="usps", choices=SOURCES,
                       help="usps: the real 1989 digits; mnist: the MNIST-derived approximation (default usps)")
    p.add_argument("--data-seed", type=int, default=DEFAULT_DATA_SEED,
                   help=f"seed of the MNIST-derived draw (default {DEFAULT_DATA_SEED})")
    p.add_argument("--data-home", help="where downloads and processed data are kept "
                                       "(default: $LECUN1989_HOME or the user cache dir)")
    p.add_argument("--raw-dir", help="read the raw files from this folder, never download "
                                     "(default: $LECUN1989_RAW_DIR)")
    p.add_argument("--offline", action="store_true", default=None,
                   help="never download; use the data home only (or set LECUN1989_OFFLINE=1)")


def load_data(args):
    from . import data
    return data.load(args.data, data_seed=args.data_seed, home=args.data_home, raw_dir=args.raw_dir,
                     offline=args.offline)


def add_net_args(p: argparse.ArgumentParser) -> None:
    from .model import ACTIVATIONS, INITS, TABLES
    p.add_argument("--activation", default="tanh", choices=list(ACTIVATIONS),
                   help="tanh, or scaled_tanh = 1.7159 tanh(2a/3) (default tanh)")
    p.add_argument("--init", default="sqrt", choices=INITS,
                   help="weights ~ U(+-2.4/sqrt(F)) (sqrt) or U(+-2.4/F) (linear); default sqrt")
    p.add_argument("--output-bias", type=float, default=0.0, help="initial output biases (default 0)")
    p.add_argument("--table", default="block", choices=list(TABLES), help="H1->H2 connection table")


# --- commands ---------------------------------------------------------------------------------

def cmd_data(args) -> None:
    import numpy as np
    t0 = time.perf_counter()
    ds = load_data(args)
    print(f"data {ds.source}" + (f" (seed {ds.seed})" if ds.seed is not None else "") +
          f": loaded in {time.perf_counter() - t0:.1f}s")
    for name, split in (("train", ds.train), ("test", ds.test)):
        counts = np.bincount(split.labels, minlength=paper.N_CLASSES)
        print(f"  {name:5s} {len(split):5d} images {tuple(split.images.shape[1:])} {split.images.dtype}, "
              f"values {split.images.min():+.3f} .. {split.images.max():+.3f}")
        print(f"        class counts 0..9: {' '.join(str(c) for c in counts)}")
    print(f"  sha256 {ds.sha256}")


def cmd_info(args) -> None:
    from .model import Net1989, NetConfig
    net = Net1989(NetConfig(args.activation, args.init, args.output_bias, args.table))
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
        f"H2 planes {','.join(map(str, planes))} read H1 planes {','.join(map(str, row))}"
        for row, planes in groups.items()))


def cmd_repro(args) -> None:
    from .model import NetConfig
    from .train import Recipe, train
    recipe = Recipe(passes=args.passes, lrs=args.lrs or (args.lr,), seeds=args.seeds or (args.seed,),
                    optimizer=args.optimizer, engine=args.engine, dtype=args.dtype,
                    net=NetConfig(args.activation, args.init, args.output_bias, args.table))
    ds = load_data(args)
    if args.train_size or args.test_size:
        ds = ds.subset(args.train_size, args.test_size)
    out = Path(args.out) if args.out else Path("runs") / time.strftime(f"repro-{ds.source}-%Y%m%d-%H%M%S")
    t0 = time.perf_counter()
    train(recipe, ds, out, force=args.force, quiet=args.quiet)
    print(f"run saved to {out} ({time.perf_counter() - t0:.1f}s)", file=sys.stderr)


def cmd_bench(args) -> None:
    from .bench import bench
    bench(load_data(args), ref_steps=args.ref_steps, runs=args.runs, passes=args.passes, dtype=args.dtype)


def build_parser() -> argparse.ArgumentParser:
    from .engines import ENGINE_NAMES
    from .optim import OPTIMIZERS
    parser = argparse.ArgumentParser(prog="lecun1989", description=f"Reproduce {paper.CITATION}.")
    parser.add_argument("--version", action="version", version=f"lecun1989 {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("data", help="get, check and summarize a data set")
    add_data_args(p, positional=True)
    p.set_defaults(func=cmd_data)

    p = sub.add_parser("info", help="the network, layer by layer, beside the paper's figures")
    add_net_args(p)
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("repro", help="the paper's training run: online SGD, 23 passes")
    add_data_args(p)
    add_net_args(p)
    p.add_argument("--lr", type=float, default=paper.REPRO_LR, help=f"learning rate (default {paper.REPRO_LR})")
    p.add_argument("--lrs", type=parse_float_list, help="several learning rates, e.g. 0.01,0.03 (one run each)")
    p.add_argument("--passes", type=positive_int, default=paper.PASSES,
                   help=f"passes over the training set (default {paper.PASSES})")
    p.add_argument("--seed", type=int, default=paper.REPRO_SEED,
                   help=f"seed of the initial weights (default {paper.REPRO_SEED})")
    p.add_argument("--seeds", type=parse_int_list, help="several seeds, e.g. 0-31 or 1,2,5 (one run each)")
    p.add_argument("--optimizer", default="sgd", choices=OPTIMIZERS)
    p.add_argument("--engine", default="fast", choices=ENGINE_NAMES,
                   help="fast: the compiled engine (default); torch: the PyTorch reference")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--train-size", type=positive_int, help="use only the first N training examples")
    p.add_argument("--test-size", type=positive_int, help="use only the first N test examples")
    p.add_argument("--out", help="run directory (default runs/repro-DATA-DATE-TIME)")
    p.add_argument("--force", action="store_true", help="overwrite an existing run directory")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_repro)

    p = sub.add_parser("bench", help="time the compiled engine against the PyTorch reference")
    add_data_args(p)
    p.add_argument("--ref-steps", type=positive_int, default=2000, help="steps to time the reference on")
    p.add_argument("--runs", type=positive_int, default=32, help="runs trained at once for the many-runs figure")
    p.add_argument("--passes", type=positive_int, default=paper.PASSES, help="passes of the timed fast run")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except LecunError as e:
        print(f"lecun1989 {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"lecun1989 {args.command}: interrupted; files written so far are complete", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
