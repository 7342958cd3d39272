"""The compiled engine: the paper's training loop in numba, one example at a time, in its order.

This module only chooses the kernel set and packs the state; the network's computation is in the
kernels: single.py (one run per call, the positions of a feature map as the vector dimension) and
lanes.py (LANES runs per vector), which train with the same surface: the per-layer fprop / bprop /
bbprop of layers.py and the vector code of simd.py, the optimizers' steps of steps.py, and every size
and offset from network.py. Every run is evaluated on the lane kernels. The numbers follow the PyTorch reference (torch_ref.py) within rounding,
which the tests check.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np
from numba import config
from numba.core.errors import NumbaError

from .. import paper
from ..data import Dataset, Split
from ..errors import LecunError
from ..config import ACTIVATION_SCALES, NetConfig, OptimConfig, connection_table
from ..draws import initial_weights, training_noise
from .protocol import DTYPES, Evaluation, RunSpec
from . import layers as L
from . import ahead, lanes, single, steps
from .cache import call_noting_compile
from .network import H1_ORDER, IMAGE, K, K1, N_FLAT, N_H2, P1, PAD, STRIDE, Data, Settings, pack, unpack
from .simd import LANES


def roll_sources(shift: int) -> tuple[np.ndarray, dict[tuple[int, int], int]]:
    """For every roll (dy, dx) with |dy|, |dx| <= shift: the source pixel of each pixel of the rolled
    image (torch.roll: out[y, x] = in[(y - dy) % 16, (x - dx) % 16]), and each roll's index."""
    n = paper.IMAGE_SIZE
    y, x = np.divmod(np.arange(n * n), n)
    offsets = [(dy, dx) for dy in range(-shift, shift + 1) for dx in range(-shift, shift + 1)]
    out = np.array([((y - dy) % n) * n + (x - dx) % n for dy, dx in offsets], dtype=np.int64)
    return out, {o: k for k, o in enumerate(offsets)}


def shift_indices(idx1: np.ndarray, rolls: np.ndarray) -> np.ndarray:
    """The unrolling index of every rolled image (rolls from roll_sources), read straight from the
    unrolled one; the padding taps keep reading the pad value."""
    n2 = paper.IMAGE_SIZE ** 2
    return np.where(idx1 < n2, rolls[:, np.minimum(idx1, n2 - 1)], n2)


# The lane kernels sum in another order than the single-run kernels, so which set trains a run must
# not depend on the machine (its core or thread count): a fixed number of runs decides. A core trains
# a group of LANES runs on the lane kernels in about the time the single-run kernels take for 3.7 runs
# (55 against 15 us per step on the machine of docs/SPEED.md), so on two cores, one run per core at a time,
# the groups finish sooner from 7 runs up; with more cores the rule gives away some speed, not numbers.
LANES_FROM = 7
KERNELS = ("single", "lanes")


def kernels_for(n_runs: int) -> str:
    """Which kernel set trains a batch of n_runs: the same answer on every machine."""
    return "lanes" if n_runs >= LANES_FROM else "single"


CACHE_LINE = 64       # bytes: numpy aligns to 16, and every other vector of 8 floats would straddle two lines
ALIAS_SPAN = 4096     # bytes: a load waits on a store whose address matches its own modulo this (4K aliasing)


def aligned_zeros(n: int, dtype, skew: int = 0) -> np.ndarray:
    """n zeros whose first element starts a cache line, then `skew` cache lines further (modulo
    ALIAS_SPAN): arrays used together at distinct offsets, so that loads from one and stores to another
    at the same index do not falsely wait on each other."""
    size = n * np.dtype(dtype).itemsize
    raw = np.zeros(size + ALIAS_SPAN + CACHE_LINE, dtype=np.uint8)
    start = -raw.ctypes.data % CACHE_LINE + CACHE_LINE * (skew % (ALIAS_SPAN // CACHE_LINE))
    return raw[start:start + size].view(dtype)


THREADS = config.NUMBA_NUM_THREADS   # numba's setting (NUMBA_NUM_THREADS), though no numba threads run
_POOL: list[ThreadPoolExecutor] = []


def _pool() -> ThreadPoolExecutor:
    """One pool of threads for the process: the kernels release the GIL, so runs train side by side."""
    if not _POOL:
        _POOL.append(ThreadPoolExecutor(THREADS, thread_name_prefix="lecun1989"))
    return _POOL[0]


# the child process of ahead.py: compile_in_child(the engine's _spec as JSON, the kernels' names)
_CHILD = [sys.executable, "-c", "import sys; from lecun1989.engines.fast import compile_in_child; "
                                "compile_in_child(sys.argv[1], sys.argv[2:])"]


def compile_in_child(spec_json: str, names: list[str]) -> None:
    """Compile the named kernels of an engine of these settings (FastEngine._spec) into the disk cache,
    in turn, by calling each on no examples; on one synthetic example, as only the types matter. Then
    what the command named with ahead.also."""
    ahead.end_with_parent()
    spec = json.loads(spec_json)
    net = NetConfig(**spec["net"])
    optim = OptimConfig(**{**spec["optim"], "betas": tuple(spec["optim"]["betas"])})
    one = Split(np.zeros((1, 1, paper.IMAGE_SIZE, paper.IMAGE_SIZE), np.float32), np.zeros(1, np.int64))
    runs = [RunSpec(0, 0.0, initial_weights(net, 0))] * spec["runs"]
    engine = FastEngine(net, runs, Dataset("synthetic", None, one, one), optim=optim, dtype=spec["dtype"],
                        kernels=spec["kernels"], threads=1)
    for name, fn, args in engine.kernel_calls():
        if name in names:
            engine._kernel(fn, *args)
    ahead.compile_also(spec["also"])


class FastEngine:
    """The compiled engine. Runs train on the single-run kernels, one per core at a time, or, when
    there are enough of them (kernels_for), in groups of LANES on the lane kernels, the groups
    spread over the cores; `kernels` forces the choice (a resumed command keeps its own). Either way
    each run's state (parameters, and the optimizer's arrays) is network.py's flat vector: per run a
    row, or, in groups, LANES rows interleaved (self._run gives one run's view)."""
    name = "fast"
    kernels_for = staticmethod(kernels_for)
    CHUNK = 512   # examples per compiled call: the progress bar's granularity

    def __init__(self, net: NetConfig, runs: list[RunSpec], data: Dataset, optim: OptimConfig = OptimConfig(),
                 dtype: str = "float32", passes: int = paper.PASSES, kernels: str | None = None,
                 threads: int = THREADS):
        self.dtype = DTYPES[dtype]
        self.threads = threads   # at most this many kernels at once (a cluster's task has one core)
        self.net, self.optim, self.runs, self.passes = net, optim, runs, passes
        self.kernels = kernels or kernels_for(len(runs))
        assert self.kernels in KERNELS, self.kernels
        self.lanes = self.kernels == "lanes"
        self.K = lanes if self.lanes else single
        self.width = LANES if self.lanes else 1      # runs per row of the state
        # runs, then (in groups) copies of the first with lr 0 to fill the last group
        self.slots = -(-len(runs) // LANES) * LANES if self.lanes else len(runs)
        self.kind = steps.kind(optim)
        self.train_chunk = self.K.train_chunk(self.kind)
        A, S = ACTIVATION_SCALES.get(net.activation, (1.0, 1.0))
        d = self.dtype
        self.settings = Settings(d(A), d(S), d(paper.PAD_VALUE), net.activation == "relu", net.loss == "ce",
                                 d(1 / (1 - net.dropout)), connection_table(net.table).astype(np.int64))
        flat = [pack(run.params, self.dtype) for run in runs]
        self._n_states = 0
        self.params = self._state(self._layout(np.stack(flat + flat[:1] * (self.slots - len(runs)))))
        self.arrays = {name: self._state() if name in steps.STATE[self.kind] else self.params[:, :0].copy()
                       for name in ("h", "m", "v", "steps")}
        self.lrs = np.array([run.lr for run in runs] + [0.0] * (self.slots - len(runs)))
        self.passes_done = 0
        # the input unrolled with H1's positions in this engine's order
        self.idx1 = L.im2col_index(IMAGE, K, STRIDE, PAD)[:, H1_ORDER]
        self.rolls, self.shift_id = roll_sources(net.shift)   # the lane kernels roll the images,
        self.idx1s = shift_indices(self.idx1, self.rolls)      # the single-run kernels the unrolling
        self.splits = {"train": self._prepare(data.train, True), "test": self._prepare(data.test, False)}
        self.labels = {"train": data.train.labels, "test": data.test.labels}
        self.compile_s = 0.0   # time spent compiling kernels the disk cache did not have (or waiting for them)
        self._ahead: ahead.Ahead | None = None
        self._used: set = set()

    def _state(self, values: np.ndarray | None = None) -> np.ndarray:
        """A state array like the parameters: zeros, or a copy of values; for the lane kernels
        aligned, each array at its own offset modulo 4 KiB (aligned_zeros)."""
        shape = self.params.shape if values is None else values.shape
        if not self.lanes:
            return np.zeros(shape, self.dtype) if values is None else values.copy()
        self._n_states += 1
        out = aligned_zeros(int(np.prod(shape)), self.dtype, 5 * self._n_states).reshape(shape)
        if values is not None:
            out[:] = values
        return out

    def _lanes_copy(self, flat: np.ndarray) -> np.ndarray:
        """One run's flat vector in every lane: the lane kernels' layout of a group of copies of it."""
        out = aligned_zeros(flat.size * LANES, self.dtype)
        out[:] = np.repeat(flat, LANES)
        return out

    def _layout(self, rows: np.ndarray) -> np.ndarray:
        """(slots, k) per-run rows -> this engine's layout: the same, or (groups, k * LANES), runs innermost."""
        if not self.lanes:
            return rows
        G = self.slots // LANES
        return np.ascontiguousarray(rows.reshape(G, LANES, -1).transpose(0, 2, 1)).reshape(G, -1)

    def _run(self, state: np.ndarray, r: int) -> np.ndarray:
        """Run r's flat vector in a state array (a view)."""
        if not self.lanes:
            return state[r]
        return state.reshape(self.slots // LANES, -1, LANES)[r // LANES, :, r % LANES]

    def _prepare(self, split: Split, trained: bool) -> Data:
        """What the kernels read of a split: the images (flat, then the pad value the unrolling reads
        for the padding), and as inputs the same (lanes) or, for the split the single-run kernels
        train on, unrolled (the evaluation reads the images: no unrolled test split, of the same type)."""
        images = np.concatenate([split.images.reshape(len(split), 1, -1),
                                 np.full((len(split), 1, 1), paper.PAD_VALUE)], axis=2).astype(self.dtype)
        inputs = images
        if not self.lanes:
            inputs = np.empty((len(split) if trained else 0, 1, K1, P1), dtype=self.dtype)
            single.unroll_inputs(images[:len(inputs)], self.idx1, inputs)
        none = np.zeros((0, 0, 0), dtype=np.int64)
        return Data(inputs, split.targets.astype(self.dtype), images, np.zeros((0, 0), np.int64), none,
                    none.astype(np.bool_))

    def _begin_pass(self, pass_num: int) -> np.ndarray:
        """The optimizer's settings for the pass (per row, LANES values per setting in groups), and
        SDLM's curvature, estimated before the pass (the running mode only before the first)."""
        lrs = self.lrs * self.optim.factor(pass_num, self.passes)
        hyper = self._layout(steps.hyper(self.optim, lrs)).astype(self.dtype)
        if self.kind in (steps.SDLM, steps.SDLM_RUNNING) and not (self.optim.running and pass_num > 1):
            data = self.splits["train"]
            examples = self.optim.hessian_examples(pass_num, len(data.targets))
            h = np.zeros(self.params.shape)
            self._jobs(self.K.estimate_hessian, self._hessian_jobs(examples, h))
            self.arrays["h"][:] = h
            spread = self._layout(np.repeat(lrs.astype(self.dtype)[:, None], N_FLAT, axis=1))
            self.arrays["steps"][:] = steps.sdlm_steps(spread, self.dtype(self.optim.mu), self.arrays["h"])
        return hyper

    def _hessian_jobs(self, examples: np.ndarray, h: np.ndarray) -> list[tuple]:
        return [(self.settings, self.params[u:u + 1], self.splits["train"], examples, h[u:u + 1])
                for u in self._units()]

    def _noise(self, pass_num: int, n: int):
        """This pass's shifts (as indices into the rolls, -1 for none) and dropout masks, per run:
        (runs, n) and (runs, n, N_H2), or for groups (groups, n, LANES) and (groups, n, N_H2 * LANES)."""
        S = self.slots
        shift_ids = np.full((S, n if self.net.shift else 0), -1, dtype=np.int64)
        keep = np.ones((S, n, N_H2 if self.net.dropout else 0), dtype=np.bool_)
        for r, run in enumerate(self.runs):
            shifts, kp = training_noise(self.net, run.seed, pass_num, n)
            if shifts is not None:
                shift_ids[r] = [self.shift_id[(int(dy), int(dx))] for dy, dx in shifts]
            if kp is not None:
                keep[r] = kp.reshape(n, N_H2)
        if self.lanes:
            G = S // LANES
            shift_ids = np.ascontiguousarray(shift_ids.reshape(G, LANES, -1).transpose(0, 2, 1))
            keep = np.ascontiguousarray(keep.reshape(G, LANES, n, -1).transpose(0, 2, 3, 1)).reshape(G, n, -1)
        return shift_ids, keep

    def train_pass(self, tick: Callable[[int], None] = lambda n: None) -> None:
        self.passes_done += 1
        if self._ahead is None:   # the kernels the cache lacks, compiled side by side from now (ahead.py)
            self._ahead = ahead.Ahead(self.kernel_calls(), "train_chunk", _CHILD, self._spec(), self.threads)
            for fn, args in self._ahead.here_calls:   # on no examples: nothing is read or written
                self._kernel(fn, *args)
        hyper = self._begin_pass(self.passes_done)
        n = len(self.splits["train"].targets)
        state, data = self._train_inputs(hyper, self.passes_done, n)
        for start in range(0, n, self.CHUNK):
            stop = min(n, start + self.CHUNK)
            if self.lanes:   # all groups in one call: its parallel loop spreads them over the cores
                self._kernel(self.train_chunk, *self._train_jobs(state, data, start, stop)[0])
            else:            # a run per call, the calls over the cores
                self._jobs(self.train_chunk, self._train_jobs(state, data, start, stop))
            tick((stop - start) * len(self.runs))

    def _train_inputs(self, hyper: np.ndarray, pass_num: int, n: int):
        """The state the training kernel updates and the data it reads, with the pass's noise for n examples."""
        shift_ids, keep = self._noise(pass_num, n)
        data = self.splits["train"]._replace(shifts=self.rolls if self.lanes else self.idx1s, shift_ids=shift_ids,
                                             keep=keep)
        a = self.arrays
        n_train = len(self.splits["train"].targets)
        return steps.State(self.params, a["h"], a["m"], a["v"], a["steps"], hyper, (pass_num - 1) * n_train), data

    def _train_jobs(self, state, data, start: int, stop: int) -> list[tuple]:
        if self.lanes:
            return [(self.settings, state, data, start, stop)]
        return [(self.settings, self._rows(state, u), self._rows(data, u), start, stop) for u in self._units()]

    @staticmethod
    def _rows(record, u: int):
        """The record with its per-row arrays cut to row u."""
        per_row = {"params", "h", "m", "v", "steps", "hyper", "shift_ids", "keep"}
        return record._replace(**{f: getattr(record, f)[u:u + 1] for f in record._fields if f in per_row})

    def _units(self) -> range:
        """The rows of the state arrays: runs, or groups of runs."""
        return range(self.params.shape[0])

    def _jobs(self, fn, jobs: list[tuple]) -> None:
        """fn(*args) for every job, spread over the cores. Each job writes only its own run's (or
        group's) rows, so the results do not depend on the number of threads. The first use of a
        kernel runs alone, so that compiling it is reported (and compiled once)."""
        if fn not in self._used:
            self._kernel(fn, *jobs[0])   # (which waits for it if a child process compiles it)
            self._used.add(fn)
            jobs = jobs[1:]
        if len(jobs) < 2 or self.threads == 1:
            for args in jobs:
                fn(*args)
            return
        futures = [_pool().submit(fn, *args) for args in jobs]
        try:
            for f in futures:
                f.result()
        finally:   # interrupted: what has not started need not
            for f in futures:
                f.cancel()

    def _kernel(self, fn, *args):
        """Call a compiled kernel (call_noting_compile: signals held, a compile's time said). The first
        use of each compiles it, unless the disk cache has it; a failure to compile is one line."""
        if self._ahead is not None and fn not in self._used:
            self.compile_s += self._ahead.wait_for(fn)
        try:   # a first call compiles or loads
            result, seconds = call_noting_compile(fn, args, f"{fn.py_func.__name__} of the fast engine")
        except NumbaError as e:
            raise LecunError(f"the compiled engine failed to compile ({type(e).__name__}: "
                             f"{str(e).strip().splitlines()[0]}); use --engine torch (the reference engine, slower)"
                             ) from None
        self.compile_s += seconds
        return result

    def evaluate(self) -> list[dict[str, Evaluation]]:
        """Per run, the loss over each whole split and the exact misses; no dropout, no shifts. Always on
        the lane kernels: a group's runs one per lane, or a run trained alone with its parameters in
        every lane and LANES examples at a time, so that the figures of the same weights do not depend
        on the kernel set that trained them."""
        results = [{} for _ in self.runs]
        params = self._eval_params()
        for name, data in self.splits.items():
            n = len(data.targets)
            losses, preds = np.zeros((self.slots, n)), np.zeros((self.slots, n), dtype=np.int64)
            chunks = [(start, min(n, start + self.CHUNK)) for start in range(0, n, self.CHUNK)]
            fn, jobs = self._eval_jobs(params, data, chunks, losses, preds)
            self._jobs(fn, jobs)
            for r in range(len(self.runs)):
                results[r][name] = Evaluation(loss=float(losses[r].sum() / n),
                                              misses=int((preds[r] != self.labels[name]).sum()), n=n)
        return results

    def _eval_params(self) -> list[np.ndarray]:
        """Per unit, the parameters as the evaluation reads them: a group's rows, or a run in every lane."""
        if self.lanes:
            return [self.params[u:u + 1] for u in self._units()]
        return [self._lanes_copy(p) for p in self.params]

    def _eval_jobs(self, params: list[np.ndarray], data: Data, chunks: list[tuple[int, int]], losses: np.ndarray,
                   preds: np.ndarray):
        """The evaluation kernel and its calls, one per unit and chunk (start, stop) of examples."""
        fn, W = (lanes.evaluate, self.width) if self.lanes else (lanes.evaluate_one, 1)
        return fn, [(self.settings, params[u], data, start, stop, losses[u * W:(u + 1) * W], preds[u * W:(u + 1) * W])
                    for u in self._units() for start, stop in chunks]

    def kernel_calls(self) -> list[tuple[str, object, tuple]]:
        """(name, kernel, arguments) of each kernel a pass uses, in the order it first calls them, each
        call on no examples: what compiling the kernel needs, its argument types (ahead.py)."""
        calls = []
        if self.kind in (steps.SDLM, steps.SDLM_RUNNING) and not (self.optim.running and self.passes_done > 1):
            job = self._hessian_jobs(self.optim.hessian_examples(1, 1)[:0], np.zeros(self.params.shape))[0]
            calls.append(("estimate_hessian", self.K.estimate_hessian, job))
        hyper = self._layout(steps.hyper(self.optim, self.lrs)).astype(self.dtype)
        state, data = self._train_inputs(hyper, 1, 1)
        calls.append(("train_chunk", self.train_chunk, self._train_jobs(state, data, 0, 0)[0]))
        fn, jobs = self._eval_jobs(self._eval_params(), self.splits["test"], [(0, 0)], np.zeros((self.slots, 1)),
                                   np.zeros((self.slots, 1), np.int64))
        calls.append(("evaluate", fn, jobs[0]))
        return calls

    def _spec(self) -> dict:
        """What a child process needs to build an engine whose kernels take the same argument types."""
        return {"net": asdict(self.net), "optim": asdict(self.optim), "dtype": np.dtype(self.dtype).name,
                "kernels": self.kernels, "runs": min(len(self.runs), LANES)}

    def get_params(self) -> list[dict[str, np.ndarray]]:
        return [unpack(np.ascontiguousarray(self._run(self.params, r))) for r in range(len(self.runs))]

    def set_params(self, params: list[dict[str, np.ndarray]]) -> None:
        """Every run's parameters, as get_params gives them (an engine kept for the next pass of the same
        runs); the lanes that fill the last group take the first run's, as in a new engine."""
        for r in range(self.slots):
            self._run(self.params, r)[:] = pack(params[r if r < len(params) else 0], self.dtype)

    def _carried(self) -> dict[str, np.ndarray]:
        """The optimizer state that carries over from one pass to the next (what resuming needs)."""
        return {name: self.arrays[name] for name in self.optim.carried if name != "step"}   # steps: passes_done

    def get_state(self) -> list[dict[str, np.ndarray]]:
        """Per run: the carried optimizer state, as `kind.name` tensors in model.Net1989's layout."""
        return [{f"{kind}.{name}": value for kind, state in self._carried().items()
                 for name, value in unpack(np.ascontiguousarray(self._run(state, r))).items()}
                for r in range(len(self.runs))]

    def set_state(self, states: list[dict[str, np.ndarray]], passes_done: int) -> None:
        """Continue after pass `passes_done` from the states get_state gave then."""
        self.passes_done = passes_done
        for state in self._carried().values():   # the lanes that fill the last group start at zero, as new
            for r in range(len(states), self.slots):
                self._run(state, r)[:] = 0
        for r, st in enumerate(states):
            for kind, state in self._carried().items():
                self._run(state, r)[:] = pack({k.split(".", 1)[1]: v for k, v in st.items()
                                               if k.startswith(kind + ".")}, self.dtype)
