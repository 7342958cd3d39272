"""The argument types and groups the commands share: counts, seeds and finite numbers; where the data
is; the network's, the optimizer's and the run's settings; the output folder."""

from __future__ import annotations

import argparse
import math
import re
import time
from pathlib import Path

from .. import paper
from ..errors import LecunError
from ..results import format_int_list


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
    from ..train import MAX_SEED
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


def margin_threshold(text: str) -> float:
    """A margin to accept digits at: finite and at least 0, as every margin is (the largest output
    minus the second largest); a negative one would only mean 0."""
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} is below 0: a margin (the largest output minus the second "
                                         f"largest) is never negative; 0 accepts every digit by its margin")
    return value


def at_most(most: int):
    """A positive whole number up to `most`: a count that is a typo when larger (--passes 1000000)."""
    def count(text: str) -> int:
        return positive_int(text, most)
    count.__name__ = f"integer up to {most:,}"
    return count


def add_data_args(p: argparse.ArgumentParser, positional: bool = False) -> None:
    from ..data import DEFAULT_DATA_SEED, SOURCES
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


def location(args):
    """Where the data is, as the command's --data-home, --raw-dir, --offline and --allow-modified-data
    say (a data.Location)."""
    from ..data import Location
    return Location(args.data_home, args.raw_dir, args.offline, args.allow_modified_data)


def load_data(args):
    return location(args).load(args.data, args.data_seed)


def add_net_args(p: argparse.ArgumentParser, net=None) -> None:
    from ..config import ACTIVATION_NAMES, INITS, LOSSES, TABLES, NetConfig
    net = net or NetConfig()
    p.add_argument("--activation", default=net.activation, choices=list(ACTIVATION_NAMES),
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
    from ..config import NetConfig
    return NetConfig(args.activation, args.init, args.output_bias, args.table, args.loss, args.dropout, args.shift)


def add_optim_args(p: argparse.ArgumentParser, optim, lr: float) -> None:
    from ..config import HESSIAN_MODES, OPTIMIZERS, SCHEDULES
    p.add_argument("--optimizer", default=optim.name, choices=OPTIMIZERS,
                   help=f"sgd: w -= lr g; sdlm: the paper's diagonal Newton method, w -= lr / (mu + h) g; "
                        f"momentum: dw = momentum dw - lr g, w += dw (Rumelhart, Hinton & Williams 1986); "
                        f"adamw (default {optim.name})")
    p.add_argument("--lr", type=finite_float, help=f"learning rate; eps for sdlm (default {lr:g})")
    # The optimizer's own settings default to None, so that one given for an optimizer that does not
    # use it is refused (optim_from_args), and take the recipe's values (default_optim) otherwise.
    p.set_defaults(default_lr=lr, default_optim=optim)
    p.add_argument("--lrs", type=parse_float_list, help="several learning rates, e.g. 0.01,0.03 (one run each)")
    p.add_argument("--schedule", default=optim.schedule,
                   help=f"per-pass factor of the learning rate: {' or '.join(SCHEDULES)} (LeNet-5's eps "
                        f"schedule), or factor:passes,...,last factor, e.g. 1:2,0.4:3,0.2 (default {optim.schedule})")
    p.add_argument("--mu", type=finite_float, help=f"sdlm: the step is lr / (mu + h) (default {optim.mu:g})")
    p.add_argument("--hessian-samples", type=positive_int,
                   help=f"sdlm: examples h is averaged over before each pass (default {optim.hessian_samples})")
    p.add_argument("--hessian", choices=HESSIAN_MODES,
                   help="sdlm: re-estimate h before each pass (pass), or keep a running average updated "
                        f"after every example (running); default {optim.hessian}")
    p.add_argument("--hessian-decay", type=finite_float,
                   help=f"sdlm --hessian running: weight of the newest example (default {optim.decay:g})")
    p.add_argument("--momentum", type=finite_float,
                   help=f"momentum: the fraction of the last change kept (default {optim.momentum:g})")
    p.add_argument("--weight-decay", type=finite_float,
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
    from ..engines import ENGINE_NAMES
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
    add_cluster_arg(p)


def add_cluster_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cluster", metavar="ADDRESS",
                   help="train on a Ray cluster: auto, HOST:PORT or ray://HOST:PORT as Ray takes them, or local to "
                        "start one on this machine; the same files as without it (docs/CLUSTER.md; needs "
                        "pip install 'lecun1989[cluster]')")


# The settings of one optimizer only (args' name -> the flag, the optimizer, OptimConfig's field): given
# for another optimizer they would be ignored without a word, so they are refused.
OPTIMIZER_SETTINGS = {"mu": ("--mu", "sdlm", "mu"), "hessian_samples": ("--hessian-samples", "sdlm", "hessian_samples"),
                      "hessian": ("--hessian", "sdlm", "hessian"), "hessian_decay": ("--hessian-decay", "sdlm", "decay"),
                      "momentum": ("--momentum", "momentum", "momentum"),
                      "weight_decay": ("--weight-decay", "adamw", "weight_decay")}


def optim_from_args(args):
    """The optimizer's settings: the recipe's, with those given on the command line; a setting given for
    an optimizer that does not use it is refused."""
    from dataclasses import replace
    given = {name: getattr(args, name) for name in OPTIMIZER_SETTINGS if getattr(args, name) is not None}
    for name in given:
        flag, owner, _ = OPTIMIZER_SETTINGS[name]
        if args.optimizer != owner:
            raise LecunError(f"{flag} is a setting of the {owner} optimizer, not of {args.optimizer}; drop it or add "
                             f"--optimizer {owner}")
    if "hessian_decay" in given and given.get("hessian", args.default_optim.hessian) != "running":
        raise LecunError("--hessian-decay is a setting of sdlm's running curvature, not of its estimate before each "
                         "pass; drop it or add --hessian running")
    return replace(args.default_optim, name=args.optimizer, schedule=args.schedule,
                   **{OPTIMIZER_SETTINGS[name][2]: value for name, value in given.items()})


def recipe_from_args(args, default_seeds=(paper.REPRO_SEED,)):
    from ..train import Recipe
    if getattr(args, "seed", None) is not None and args.seeds is not None:
        raise LecunError("give --seed or --seeds, not both")
    if args.lr is not None and args.lrs is not None:
        raise LecunError("give --lr or --lrs, not both")
    seeds = args.seeds or ((args.seed,) if getattr(args, "seed", None) is not None else default_seeds)
    optim = optim_from_args(args)
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
    # The recipe's count is cut to the training examples there are (train.fitted: the log and config.json
    # say so); a count given is what the user asked for, and cannot be had.
    samples = getattr(args, "hessian_samples", None)
    if samples is not None and samples > len(ds.train):
        raise LecunError(f"--hessian-samples {samples} is more than the {len(ds.train)} training examples there are; "
                         f"give at most {len(ds.train)}")
    return ds


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
    return Path("runs") / time.strftime(f"{name}-{source}-%Y%m%d-%H%M%S" if source != name else f"{name}-%Y%m%d-%H%M%S")
