"""`lecun1989 bench`: both engines on the paper's recipe, side by side in one process.

Prints microseconds per training step for the PyTorch reference and the compiled engine, the
many-runs throughput, and last `speedup: <N>x` (compiled single run vs reference, per step).
"""

from __future__ import annotations

import os
import time

from . import paper
from .data import Dataset
from .engines import engine_class, initial_runs
from .model import NetConfig


def _engine(name: str, net: NetConfig, n_runs: int, data: Dataset, dtype: str):
    runs = initial_runs(net, [(seed, paper.REPRO_LR) for seed in range(n_runs)])
    return engine_class(name)(net, runs, data, dtype=dtype)


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench(data: Dataset, ref_steps: int = 2000, runs: int = 32, passes: int = paper.PASSES,
          dtype: str = "float32", echo=print) -> float:
    net = NetConfig()
    echo(f"bench: data {data.source} ({len(data.train)} train / {len(data.test)} test), {dtype}, "
         f"{os.cpu_count()} cores")

    ref = _engine("torch", net, 1, data.subset(ref_steps), dtype)
    ref.train_pass()                                   # warm-up pass over the same examples
    ref_us = _time(ref.train_pass) / ref_steps * 1e6
    echo(f"torch reference: {ref_us:9.1f} us/step  ({ref_steps} steps timed; the 23-pass run would take "
         f"about {ref_us * 1e-6 * len(data.train) * paper.PASSES / 60:.1f} min of training)")

    fast = _engine("fast", net, 1, data, dtype)
    fast.train_pass()                                  # warm-up (and compilation, when not cached)
    fast.evaluate()
    fast = _engine("fast", net, 1, data, dtype)
    train_s = eval_s = 0.0
    for _ in range(passes):
        train_s += _time(fast.train_pass)
        eval_s += _time(fast.evaluate)
    fast_us = train_s / (passes * len(data.train)) * 1e6
    echo(f"fast, 1 run:     {fast_us:9.1f} us/step  ({passes} passes: {train_s:.1f}s training + "
         f"{eval_s:.1f}s evaluating both splits after each pass = {train_s + eval_s:.1f}s)")

    if runs > 1:
        many = _engine("fast", net, runs, data, dtype)
        many_s = _time(many.train_pass)
        one_pass_s = train_s / passes
        echo(f"fast, {runs} runs:   {many_s / len(data.train) * 1e6:9.1f} us/step for all runs = "
             f"{many_s / len(data.train) / runs * 1e6:.1f} us/step/run; one pass of {runs} runs takes "
             f"{many_s / one_pass_s:.1f}x the wall time of one run")
    speedup = ref_us / fast_us
    echo(f"speedup: {speedup:.0f}x")
    return speedup
