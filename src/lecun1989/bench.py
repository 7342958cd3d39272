"""`lecun1989 bench`: both engines on the paper's recipe, side by side in one process.

Prints the compile time of a cold start (an empty cache folder, in a fresh process), microseconds
per training step for the PyTorch reference and the compiled engine, the bound one core sets on a
step (the network's multiply-adds over the fused multiply-adds a core was measured to do a second)
and the share of it each kernel set reaches, the many-runs throughput with the paper's optimizer
(SDLM, running curvature) beside plain SGD, and last `speedup: <N>x` (compiled single run vs
reference, per step).
Each per-step figure is the fastest of several timed repeats, for both engines alike (as timeit
does): on a shared machine the other figures measure the neighbours as much as the code. The
many-runs ratio times passes of one run and of all runs alternately, so that a change in the
machine's load between the two does not show up as a ratio.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

from . import paper
from .data import Dataset
from .errors import LecunError
from .engines import engine_class, initial_runs
from .config import NetConfig, OptimConfig
from .recipes import PAPER


def _engine(name: str, net: NetConfig, n_runs: int, data: Dataset, dtype: str, optim: OptimConfig = OptimConfig(),
            lr: float = paper.REPRO_LR, **engine):
    runs = initial_runs(net, [(seed, lr) for seed in range(n_runs)])
    return engine_class(name)(net, runs, data, optim, dtype=dtype, **engine)


def multiply_adds() -> dict[str, int]:
    """The network's multiply-adds: per layer forward (section 5.1's sizes), and for a training step:
    the forward pass, the derivatives of every layer's inputs but the image's, and the weights'
    gradients (the bias terms, one add each, left out)."""
    per_layer = {"H1": paper.H1_PLANES * paper.H1_SIZE ** 2 * paper.KERNEL ** 2,
                 "H2": paper.H2_PLANES * paper.H2_SIZE ** 2 * paper.H2_INPUTS_PER_PLANE * paper.KERNEL ** 2,
                 "H3": paper.H3_UNITS * paper.H2_PLANES * paper.H2_SIZE ** 2,
                 "output": paper.N_CLASSES * paper.H3_UNITS}
    forward = sum(per_layer.values())
    return {**per_layer, "forward": forward, "step": 3 * forward - per_layer["H1"]}


def _time(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# Fused multiply-adds a core can do: ACCUMULATORS independent chains in a local array, which LLVM
# unrolls into vector registers of the CPU's width, so that neither the FMA's latency nor memory
# limits them (fewer than 64 were not kept in registers: a third of the rate or less).
ACCUMULATORS = 128


def _peak_kernel():
    import numba
    import numpy as np

    @numba.njit(fastmath=True)
    def fma_loop(a, b, n, dtype):
        acc = np.ones(ACCUMULATORS, dtype)
        for _ in range(n):
            for k in range(ACCUMULATORS):
                acc[k] = acc[k] * a + b
        return acc.sum()
    return fma_loop, np


def peak_fma(dtype: str = "float32", repeats: int = 5, n: int = 100_000) -> float:
    """Fused multiply-adds one core did a second in `dtype` (the fastest of `repeats` timings)."""
    fma_loop, np = _peak_kernel()
    t = np.dtype(dtype).type
    fma_loop(t(0.999), t(0.001), 1, t)   # compile
    return n * ACCUMULATORS / min(_time(lambda: fma_loop(t(0.999), t(0.001), n, t)) for _ in range(repeats))


# the parts of a step, timed alone; the lane kernels fuse SGD's step into bprop, and SDLM's into the
# bprop timed with its curvature
FORWARD, BACKWARD, SGD_STEP, BBPROP, SDLM_STEP = range(5)
PARTS = {FORWARD: "forward (fprop)", BACKWARD: "backward (bprop)", SGD_STEP: "SGD's step",
         BBPROP: "second derivatives (bbprop)", SDLM_STEP: "SDLM's curvature and step"}


def _part_loops():
    """Compiled loops that time each part of a training step alone, on one example over and over, for
    both kernel sets: the kernels' own fprop, bprop, bbprop and steps, called as train_chunk calls them.
    Every learning rate is 0, so the weights stay as they are."""
    import numba
    from .engines import lanes, layers, single, steps as S
    # the kernels' flags (the parts inlined here compile as in train_chunk), but not cached
    flags = {**layers.FLAGS, "cache": False}

    @numba.njit(**flags)
    def single_part(part, n, p, x, t, s, ws, ws2, g, h, steps, sgd, sdlm):
        for _ in range(n):
            if part == FORWARD:
                single.fprop(p, x, s, ws, p[:0])
            elif part == BACKWARD:
                single.bprop(p, x, t, s, ws, p[:0])
            elif part == SGD_STEP:
                S.update(S.SGD, p, g, h, h, h, steps, sgd, 1, 1)
            elif part == BBPROP:
                single.bbprop(p, x, s, ws, ws2, p[:0])
            else:
                S.follow_curvature(h, g, steps, sdlm, 1)
                S.update(S.SDLM, p, g, h, h, h, steps, sdlm, 1, 1)

    @numba.njit(**flags)
    def lanes_part(part, n, P, t, s, ws, ws2, hess, h, steps, sgd, sdlm):
        for _ in range(n):
            if part == FORWARD:
                lanes.fprop(P, ws, s, P[:0])
            elif part == BACKWARD:
                lanes.bprop(P, ws, t, s, P[:0], P, sgd, 1)
            elif part == BBPROP:
                lanes.bbprop(P, ws, ws2, s, P[:0], hess)
            elif part == SDLM_STEP:
                S.follow_curvature(h, hess, steps, sdlm, lanes.V)
                lanes.bprop(P, ws, t, s, P[:0], P, steps, 2)
    return single_part, lanes_part


def step_parts(one, group, repeats: int = 3, n: int = 2000) -> dict[str, tuple[float, float | None]]:
    """Microseconds per step of each part (PARTS), for a run on the single-run kernels (engine `one`)
    and per run on the lane kernels (engine `group`, LANES runs), on one core, the fastest of `repeats`
    loops of n steps; then an example's evaluation, from whole evaluations (both engines with one
    thread). The lane arrays are aligned as in training (fast.aligned_zeros)."""
    import numpy as np
    from .engines import lanes, single
    from .engines.fast import aligned_zeros
    single_part, lanes_part = _part_loops()
    V, dt, pad = lanes.V, one.dtype, one.settings.pad
    p, data = one.params[0].copy(), one.splits["train"]
    ws, ws2, g = single.workspace(p, pad), single.workspace(p, pad), np.zeros_like(p)
    sgd, sdlm = np.zeros(1, dt), np.array([0, PAPER.optim.mu, PAPER.optim.decay], dt)
    single_args = (p, data.inputs[0], data.targets[0], one.settings, ws, ws2, g, np.zeros_like(p), np.zeros_like(p),
                   sgd, sdlm)
    arrays = [aligned_zeros(group.params[0].size, dt, skew) for skew in range(0, 20, 5)]
    P, ldata = arrays[0], group.splits["train"]
    P[:] = group.params[0]
    lws, lws2 = lanes.workspace(P, pad), lanes.workspace(P, pad)
    lanes.set_input(lws, ldata.images, 0, 0, 0, ldata.shifts, np.full(V, -1, np.int64))
    lanes_args = (P, ldata.targets[0], group.settings, lws, lws2, *arrays[1:], np.zeros(V, dt), np.repeat(sdlm, V))

    def best(fn, part, args, per):
        fn(part, 1, *args)   # compile, and warm the caches
        return min(_time(lambda: fn(part, n, *args)) for _ in range(repeats)) / n / per * 1e6

    out = {name: (best(single_part, part, single_args, 1),
                  None if part == SGD_STEP else best(lanes_part, part, lanes_args, V)) for part, name in PARTS.items()}
    examples = len(one.labels["train"]) + len(one.labels["test"])
    out["evaluation, per example"] = (min(_time(one.evaluate) for _ in range(repeats)) / examples * 1e6,
                                      min(_time(group.evaluate) for _ in range(repeats)) / examples / len(group.runs) * 1e6)
    return out


# One pass of a tiny synthetic set in a fresh process: the compile time is the same as for the real data.
_COLD = """
import sys, time
import numpy as np
t0 = time.perf_counter()
from lecun1989.data import Dataset, Split
from lecun1989.engines import engine_class, initial_runs
from lecun1989.model import NetConfig
split = Split(np.zeros((8, 1, 16, 16), np.float32), np.arange(8) % 10)
engine = engine_class("fast")(NetConfig(), initial_runs(NetConfig(), [(0, 0.03)]), Dataset("usps", None, split, split),
                              dtype=sys.argv[1])
engine.train_pass()
engine.evaluate()
print(engine.compile_s, time.perf_counter() - t0)
"""


def cold_start(dtype: str) -> tuple[float, float]:
    """(seconds compiling a single run's kernels with an empty cache folder, seconds of the same
    start-up once they are cached), each in a fresh process."""
    engine_class("fast")   # a missing or broken numba is its one line here, not a child's traceback
    times = []
    with tempfile.TemporaryDirectory() as cache:
        for _ in range(2):
            done = subprocess.run([sys.executable, "-c", _COLD, dtype], env={**os.environ, "NUMBA_CACHE_DIR": cache},
                                  capture_output=True, text=True)
            if done.returncode != 0:
                last = (done.stderr.strip().splitlines() or ["no message"])[-1]
                raise LecunError(f"the cold start's compile failed ({last}); `--engine torch` runs without it")
            times.append(done.stdout.split())
    return float(times[0][0]), float(times[1][1])


def bench(data: Dataset, ref_steps: int = 2000, runs: int = 32, passes: int = paper.PASSES,
          dtype: str = "float32", repeats: int = 3, breakdown: bool = False, echo=print) -> float:
    net = NetConfig()
    n = len(data.train)
    echo(f"bench: data {data.source} ({n} train / {len(data.test)} test), {dtype}, {os.cpu_count()} cores")
    compile_s, warm_s = cold_start(dtype)
    from .engines.simd import LANES   # numba is there: cold_start said so in one line otherwise
    echo(f"cold start:      {compile_s:9.1f} s compiling one run's kernels (an empty cache folder); "
         f"{warm_s:.1f} s to start and train a few steps once they are cached")

    ref = _engine("torch", net, 1, data.subset(ref_steps), dtype)
    ref.train_pass()                                   # warm-up pass over the same examples
    ref_us = min(_time(ref.train_pass) for _ in range(repeats)) / ref_steps * 1e6
    echo(f"torch reference: {ref_us:9.1f} us/step  (fastest of {repeats} passes over {ref_steps} steps; the "
         f"23-pass run would take about {ref_us * 1e-6 * n * paper.PASSES / 60:.1f} min of training)")

    fast = _engine("fast", net, 1, data, dtype)
    fast.train_pass()                                  # warm-up (and compilation, when not cached)
    fast.evaluate()
    fast = _engine("fast", net, 1, data, dtype)
    train_s, eval_s = [], []
    for _ in range(passes):
        train_s.append(_time(fast.train_pass))
        eval_s.append(_time(fast.evaluate))
    one_pass_s = min(train_s)
    fast_us = one_pass_s / n * 1e6
    echo(f"fast, 1 run:     {fast_us:9.1f} us/step  (fastest of {passes} passes; the {passes}-pass run took "
         f"{sum(train_s):.1f}s training + {sum(eval_s):.1f}s evaluating both splits after each pass = "
         f"{sum(train_s) + sum(eval_s):.1f}s)")
    macs, peak = multiply_adds()["step"], peak_fma(dtype)
    bound_us = macs / peak * 1e6
    echo(f"bound:           {bound_us:9.1f} us/step  ({macs:,} multiply-adds a step over {peak / 1e9:.1f} G fused "
         f"multiply-adds a second on one core, measured; the single run reaches {bound_us / fast_us:.0%} of it)")

    if runs > 1:   # passes of one run and of all runs in turn, so that both see the same neighbours
        many = _engine("fast", net, runs, data, dtype)
        many.train_pass()                              # warm-up (and compilation of the lane kernels)
        pairs = [(_time(fast.train_pass), _time(many.train_pass)) for _ in range(repeats + 2)]
        one_s, many_s = min(p[0] for p in pairs), min(p[1] for p in pairs)
        run_us = many_s / n / runs * 1e6
        # groups of LANES runs are spread over the cores, so the bound is one core's over the cores they fill
        cores = min(os.cpu_count() or 1, -(-runs // LANES))
        echo(f"fast, {runs} runs:   {many_s / n * 1e6:9.1f} us/step for all runs = "
             f"{run_us:.1f} us/step/run ({bound_us / cores / run_us:.0%} of the bound on the {cores} cores its "
             f"groups of {LANES} fill; the single run's step is {fast_us / run_us:.1f}x this); one pass of {runs} runs takes "
             f"{many_s / one_s:.1f}x the wall time of one run (fastest of {len(pairs)} passes of each, in turn)")
        # the paper's optimizer on the same runs: its curvature, at every step, costs a bbprop pass and a
        # step size per parameter; passes of each in turn
        sdlm = _engine("fast", PAPER.net, runs, data, dtype, PAPER.optim, PAPER.lrs[0])
        sgd = _engine("fast", PAPER.net, runs, data, dtype)
        sdlm.train_pass()
        sgd.train_pass()
        pairs = [(_time(sgd.train_pass), _time(sdlm.train_pass)) for _ in range(repeats)]
        sgd_s, sdlm_s = min(p[0] for p in pairs), min(p[1] for p in pairs)
        echo(f"sdlm, {runs} runs:   {sdlm_s / n / runs * 1e6:9.1f} us/step/run with the paper's running curvature "
             f"against {sgd_s / n / runs * 1e6:.1f} for SGD on the same network ({sdlm_s / sgd_s:.2f}x; fastest of "
             f"{repeats} passes of each, in turn)")
    if breakdown:
        echo(f"where a step goes:  us per step on one core: 1 run alone | per run of a group of {LANES} "
             f"(one example over and over, fastest of {repeats})")
        notes = {PARTS[BACKWARD]: " (SGD's step fused in)", PARTS[SDLM_STEP]: " (with the bprop it is fused into)"}
        parts = step_parts(_engine("fast", net, 1, data, dtype, threads=1),
                           _engine("fast", net, LANES, data, dtype, threads=1), repeats)
        for name, (alone, grouped) in parts.items():
            echo(f"  {name:<28} {alone:7.2f} | " + (f"{grouped:7.2f}{notes.get(name, '')}" if grouped is not None
                                                    else "  fused into bprop"))
    speedup = ref_us / fast_us
    echo(f"speedup: {speedup:.0f}x")
    return speedup
