"""`lecun1989 bench`: the compiled engine timed against the PyTorch reference."""

from __future__ import annotations

from .. import paper
from .args import MAX_PASSES, add_data_args, at_most, load_data


def cmd_bench(args) -> None:
    from ..bench import bench
    bench(load_data(args), ref_steps=args.ref_steps, runs=args.runs, passes=args.passes, dtype=args.dtype,
          breakdown=args.breakdown)


def add_commands(sub) -> None:
    """bench."""
    p = sub.add_parser("bench", help="time the compiled engine against the PyTorch reference")
    add_data_args(p)
    p.add_argument("--ref-steps", type=at_most(1_000_000), default=2000, help="steps to time the reference on")
    p.add_argument("--runs", type=at_most(1024), default=32, help="runs trained at once for the many-runs figure")
    p.add_argument("--passes", type=at_most(MAX_PASSES), default=paper.PASSES, help="passes of the timed fast run")
    p.add_argument("--dtype", default="float32", choices=("float32", "float64"))
    p.add_argument("--breakdown", action="store_true",
                   help="also time each part of a step alone (forward, backward, steps, second derivatives) and an "
                        "example's evaluation, on both kernel sets (compiles for about a minute)")
    p.set_defaults(func=cmd_bench)
