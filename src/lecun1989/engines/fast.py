"""The compiled engine: the whole training loop in numba, one example at a time, in the paper's order.

Each run is a flat parameter vector (layout.py). The kernels here train a single run as fast as one
core allows, the positions of each feature map being the vector dimension; FastEngine (below)
drives them for one run and the lane kernels (lanes.py) for several. One training step is

    fprop:  input -> H1 -> H2 -> H3 -> output -> loss      (layers.*_fprop)
    bprop:  dE/doutput -> ... -> gradient of every parameter (layers.*_bprop)
    step:   the optimizer updates the parameters             (layers.diagonal_step, adamw_step)

and, for the paper's optimizer, bbprop gives the diagonal second derivatives that set each
parameter's step size (the layers' bprop with squares, and layers.*_bbprop for the nonlinearities).
The convolutions run on explicit vector code (simd.py), which is what makes a step take about
as long as a few hundred thousand multiply-adds should. The numbers follow the PyTorch reference
(engines/torch_ref.py) within rounding, which the tests check.
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np
from numba import config, njit
from numba.core.errors import NumbaError

from .. import paper
from ..data import Dataset, Split
from ..errors import LecunError
from ..model import ACTIVATION_SCALES, NetConfig, connection_table, training_noise
from ..optim import OptimConfig
from . import DTYPES, Evaluation, RunSpec
from . import layers as L
from . import lanes as LN
from .layout import H1_ORDER, K1, N3, N_FLAT, N_H2, NI, NO, P1, P2, pack, unpack
from .simd import run_add, run_copy

TABLE1 = np.zeros((paper.H1_PLANES, 1), dtype=np.int64)   # every H1 plane reads the one input plane


# H1 in this engine is in H1_ORDER (layout.py): each plane is kept flat (64, in that order) for
# H1's own passes, and padded, the rows H2 unrolls from: 12 rows (2 of padding above and below) of
# [pad, x0 x2 x4 x6, pad, x1 x3 x5 x7] hold the pad value wherever a tap falls outside the plane.
RUN = 4                     # = H2_SIZE: one output row of H2, one run
PW = 2 * (RUN + 1)          # padded row
HP = (paper.H1_SIZE + 2 * paper.PAD) * PW
# (flat offset, padded offset) of each run of H1's positions
H1_RUNS = np.array([(y * paper.H1_SIZE + RUN * half, (y + paper.PAD) * PW + (1, RUN + 2)[half])
                    for y in range(paper.H1_SIZE) for half in (0, 1)])
# padded offset of the run tap (ty, tx) reads for H2's output row oy: (25 taps, 4 rows). The tap reads
# columns x = 2 ox + tx - 2 for ox = 0..3: even columns from slot tx / 2 of the row, odd columns from
# slot RUN + 1 + (tx - 1) / 2 (the pad slots take the columns -2, -1 and 8).
H2_RUNS = np.array([[(paper.STRIDE * oy + ty) * PW + (tx // 2 if tx % 2 == 0 else RUN + 1 + (tx - 1) // 2)
                     for oy in range(paper.H2_SIZE)] for ty in range(paper.KERNEL) for tx in range(paper.KERNEL)])


@njit(**L.INLINE)
def views(flat):
    o = 0
    W1 = flat[o:o + 12 * K1].reshape((12, 1, K1)); o += 12 * K1
    B1 = flat[o:o + 12 * P1].reshape((12, P1)); o += 12 * P1
    W2 = flat[o:o + 12 * NI * K1].reshape((12, NI, K1)); o += 12 * NI * K1
    B2 = flat[o:o + 12 * P2].reshape((12, P2)); o += 12 * P2
    W3 = flat[o:o + N3 * N_H2].reshape((N3, N_H2)); o += N3 * N_H2
    B3 = flat[o:o + N3]; o += N3
    W4 = flat[o:o + NO * N3].reshape((NO, N3)); o += NO * N3
    B4 = flat[o:o + NO]
    return W1, B1, W2, B2, W3, B3, W4, B4


@njit(**L.INLINE)
def pad_h1(h1, h1p):
    for c in range(12):
        for r in range(H1_RUNS.shape[0]):
            run_copy(h1p, c * HP + H1_RUNS[r, 1], h1, c * P1 + H1_RUNS[r, 0], RUN)


@njit(**L.INLINE)
def unpad_h1(dh1p, dh1):
    for c in range(12):
        for r in range(H1_RUNS.shape[0]):
            run_copy(dh1, c * P1 + H1_RUNS[r, 0], dh1p, c * HP + H1_RUNS[r, 1], RUN)


@njit(**L.INLINE)
def unroll_h1(h1p, col2):
    """col2 (12 planes, 25 taps, 16 positions): what each tap of H2 reads, from the padded H1."""
    for c in range(12):
        for t in range(K1):
            for oy in range(RUN):
                run_copy(col2, (c * K1 + t) * P2 + oy * RUN, h1p, c * HP + H2_RUNS[t, oy], RUN)


@njit(**L.INLINE)
def unroll_h1_adjoint(dcol2, dh1p):
    """The sum, into the padded H1, of what every tap read: the adjoint of unroll_h1. Taps two
    columns apart add to runs that overlap by three elements; with the columns outermost those
    adds are far apart, so none waits on a store it only partly overlaps."""
    dh1p[:] = 0
    for c in range(12):
        for tx in range(paper.KERNEL):
            for ty in range(paper.KERNEL):
                t = ty * paper.KERNEL + tx
                for oy in range(RUN):
                    run_add(dh1p, c * HP + H2_RUNS[t, oy], dcol2, (c * K1 + t) * P2 + oy * RUN, RUN)


# One example's activations, then their derivatives (gradients in bprop, second derivatives in
# bbprop), then those of every parameter (flat like the parameters), in one buffer per run.
N_WS = (K1 * P1 + 12 * P1 + 12 * HP + 12 * K1 * P2 + 2 * N_H2 + N3 + NO          # x h1 h1p col2 h2 h2d h3 y
        + 2 * NO + 2 * N3 + 2 * N_H2 + 12 * K1 * P2 + 12 * HP + 2 * 12 * P1     # dy d4 dh3 d3 dh2 d2 dcol2 dh1p
        + N_FLAT)                                                                # dh1 d1, grads


@njit(**L.INLINE)
def slots(ws):
    """Flat views into one run's workspace; planes stay flat (12 x positions) throughout."""
    o = 0
    x = ws[o:o + K1 * P1].reshape((1, K1, P1)); o += K1 * P1
    h1 = ws[o:o + 12 * P1]; o += 12 * P1
    h1p = ws[o:o + 12 * HP]; o += 12 * HP
    col2 = ws[o:o + 12 * K1 * P2]; o += 12 * K1 * P2
    h2 = ws[o:o + N_H2]; o += N_H2
    h2d = ws[o:o + N_H2]; o += N_H2
    h3 = ws[o:o + N3]; o += N3
    y = ws[o:o + NO]; o += NO
    dy = ws[o:o + NO]; o += NO
    d4 = ws[o:o + NO]; o += NO
    dh3 = ws[o:o + N3]; o += N3
    d3 = ws[o:o + N3]; o += N3
    dh2 = ws[o:o + N_H2]; o += N_H2
    d2 = ws[o:o + N_H2]; o += N_H2
    dcol2 = ws[o:o + 12 * K1 * P2]; o += 12 * K1 * P2
    dh1p = ws[o:o + 12 * HP]; o += 12 * HP
    dh1 = ws[o:o + 12 * P1]; o += 12 * P1
    d1 = ws[o:o + 12 * P1]; o += 12 * P1
    grads = ws[o:o + N_FLAT]
    return x, h1, h1p, col2, h2, h2d, h3, y, dy, d4, dh3, d3, dh2, d2, dcol2, dh1p, dh1, d1, grads


@njit(**L.INLINE)
def workspace(params, pad):
    ws = np.zeros(N_WS, params.dtype)
    h1p = slots(ws)[2]          # the padded H1: its interior is overwritten by every fprop
    for i in range(h1p.size):   # a loop: `h1p[:] = pad` is lost when this is inlined into a prange body
        h1p[i] = pad
    return ws


@njit(**L.INLINE)
def h3_input(h2, h2d, drop):
    """What H3 reads: H2's output, times the dropout scales (0 or 1 / (1 - p)) when drop is not empty."""
    if drop.size == 0:
        return h2
    for i in range(N_H2):
        h2d[i] = h2[i] * drop[i]
    return h2d


@njit(**L.FLAGS)
def fprop(params, x, table, consts, ws, drop):
    W1, B1, W2, B2, W3, B3, W4, B4 = views(params)
    _, h1, h1p, col2, h2, h2d, h3, y = slots(ws)[:8]
    L.conv_fprop(x, W1, B1, TABLE1, h1.reshape((12, P1)), K1, P1)
    L.act_fprop(h1, consts)
    pad_h1(h1, h1p)
    unroll_h1(h1p, col2)
    L.conv_fprop(col2.reshape((12, K1, P2)), W2, B2, table, h2.reshape((12, P2)), K1, P2)
    L.act_fprop(h2, consts)
    L.fc_fprop(h3_input(h2, h2d, drop), W3, B3, h3)
    L.act_fprop(h3, consts)
    L.fc_fprop(h3, W4, B4, y)
    if consts[4] == 0:            # tanh outputs; the cross-entropy reads the linear ones (logits)
        L.act_fprop(y, consts)


@njit(**L.FLAGS)
def bprop(params, x, t, table, consts, ws, drop):
    """Gradient of the example's loss with respect to every parameter, into slots(ws)[-1] (flat)."""
    W1, B1, W2, B2, W3, B3, W4, B4 = views(params)
    _, h1, _, col2, h2, h2d, h3, y, dy, d4, dh3, d3, dh2, d2, dcol2, dh1p, dh1, d1, grads = slots(ws)
    gW1, gB1, gW2, gB2, gW3, gB3, gW4, gB4 = views(grads)
    if consts[4] != 0:
        L.ce_bprop(y, t, d4)
    else:
        L.mse_bprop(y, t, dy)
        L.act_bprop(y, dy, consts, d4)
    L.fc_bprop(h3, W4, d4, gW4, gB4, dh3, True, False)
    L.act_bprop(h3, dh3, consts, d3)
    L.fc_bprop(h3_input(h2, h2d, drop), W3, d3, gW3, gB3, dh2, True, False)
    for i in range(drop.size):
        dh2[i] *= drop[i]
    L.act_bprop(h2, dh2, consts, d2)
    L.conv_bprop(col2.reshape((12, K1, P2)), W2, table, d2.reshape((12, P2)), gW2, gB2,
                 dcol2.reshape((12, K1, P2)), True, False, K1, P2)
    unroll_h1_adjoint(dcol2, dh1p)
    unpad_h1(dh1p, dh1)
    L.act_bprop(h1, dh1, consts, d1)
    L.conv_bprop(x, W1, TABLE1, d1.reshape((12, P1)), gW1, gB1, x, False, False, K1, P1)


@njit(**L.FLAGS)
def bbprop(params, x, table, consts, ws, ws2):
    """Diagonal second derivatives of the example's loss (f'' dropped) into slots(ws2)[-1] (flat), from
    the activations fprop left in ws; ws2's derivative slots hold the intermediate d2E/da^2."""
    W1, B1, W2, B2, W3, B3, W4, B4 = views(params)
    _, h1, _, col2, h2, _, h3, y = slots(ws)[:8]
    dy, d4, dh3, d3, dh2, d2, dcol2, dh1p, dh1, d1, hess = slots(ws2)[8:]
    hW1, hB1, hW2, hB2, hW3, hB3, hW4, hB4 = views(hess)
    L.mse_bbprop(y, dy)
    L.act_bbprop(y, dy, consts, d4)
    L.fc_bprop(h3, W4, d4, hW4, hB4, dh3, True, True)
    L.act_bbprop(h3, dh3, consts, d3)
    L.fc_bprop(h2, W3, d3, hW3, hB3, dh2, True, True)
    L.act_bbprop(h2, dh2, consts, d2)
    L.conv_bprop(col2.reshape((12, K1, P2)), W2, table, d2.reshape((12, P2)), hW2, hB2,
                 dcol2.reshape((12, K1, P2)), True, True, K1, P2)
    unroll_h1_adjoint(dcol2, dh1p)
    unpad_h1(dh1p, dh1)
    L.act_bbprop(h1, dh1, consts, d1)
    L.conv_bprop(x, W1, TABLE1, d1.reshape((12, P1)), hW1, hB1, x, False, True, K1, P1)


# The kernels below each serve one run (p: its row of the parameters), so that runs spread over
# the cores as separate calls (FastEngine._jobs): compiled without numba's parallel loops, which
# would double their compile time.

@njit(**L.FLAGS)
def estimate_hessian(p, X1col, T, examples, table, consts, h):
    """h (float64) = the mean over `examples` of bbprop's second derivatives."""
    ws, ws2 = workspace(p, consts[2]), workspace(p, consts[2])
    for n in examples:
        fprop(p, X1col[n], table, consts, ws, p[:0])
        bbprop(p, X1col[n], table, consts, ws, ws2)
        h += slots(ws2)[-1]
    h /= len(examples)


@njit(**L.FLAGS)
def train_chunk(p, X1col, T, start, stop, table, consts, steps,
                images, shift_ids, idx1s, keep, drop_scale, adam, m, v, step0, h, running):
    """The run trains on examples start..stop-1, in order.

    The update is p -= steps * gradient (SGD, and SDLM with h fixed for the pass), unless adam is
    given (not None): then AdamW, with adam = lr, beta1, beta2, eps, weight decay, m and v its
    moments and step0 + n + 1 its step count. When running is given, h is SDLM's running estimate
    of the curvature, updated from bbprop after every example, and the steps follow it (running =
    decay, lr, mu). Each optimizer's kernel is compiled apart, without the others' code. The modern
    recipe's noise, where present: the input unrolled from images[n] rolled by shift
    idx1s[shift_ids[n]] when that id is >= 0, and H2's outputs dropped where keep[n] is False (the
    others scaled by drop_scale)."""
    ws, ws2 = workspace(p, consts[2]), workspace(p, consts[2])
    x1, grads, hess = slots(ws)[0], slots(ws)[-1], slots(ws2)[-1]
    drop = np.empty(keep.shape[1], p.dtype)
    zero = p.dtype.type(0)
    for n in range(start, stop):
        x = X1col[n]
        if shift_ids.size > 0 and shift_ids[n] >= 0:
            L.im2col(images[n], idx1s[shift_ids[n]], x1)
            x = x1
        for i in range(drop.size):
            drop[i] = drop_scale if keep[n, i] else zero
        fprop(p, x, table, consts, ws, drop)
        bprop(p, x, T[n], table, consts, ws, drop)
        if running is not None:   # None: numba compiles the kernel without this branch
            bbprop(p, x, table, consts, ws, ws2)
            L.sdlm_running_step(p, grads, h, hess, running)
        elif adam is not None:
            L.adamw_step(p, grads, m, v, adam, step0 + n + 1)
        else:
            L.diagonal_step(p, grads, steps)


@njit(**L.FLAGS)
def evaluate(p, X1col, T, table, consts, start, stop, losses, preds):
    """For examples start..stop-1: the loss (float64) and the predicted class (first largest output)."""
    ws = workspace(p, consts[2])
    y = slots(ws)[7]
    for n in range(start, stop):
        fprop(p, X1col[n], table, consts, ws, p[:0])
        losses[n] = L.ce_fprop(y, T[n]) if consts[4] != 0 else L.mse_fprop(y, T[n])
        best = 0
        for j in range(1, y.size):
            if y[j] > y[best]:
                best = j
        preds[n] = best


@njit(**L.FLAGS)
def unroll_inputs(images, idx1, out):
    for n in range(images.shape[0]):
        L.im2col(images[n], idx1, out[n])


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
# (55 against 15 us per step on the README's machine), so on two cores, one run per core at a time,
# the groups finish sooner from 7 runs up; with more cores the rule gives away some speed, not numbers.
LANES_FROM = 7
KERNELS = ("single", "lanes")


def kernels_for(n_runs: int) -> str:
    """Which kernel set trains a batch of n_runs: the same answer on every machine."""
    return "lanes" if n_runs >= LANES_FROM else "single"


THREADS = config.NUMBA_NUM_THREADS   # numba's setting (NUMBA_NUM_THREADS), though no numba threads run
_POOL: list[ThreadPoolExecutor] = []


def _pool() -> ThreadPoolExecutor:
    """One pool of threads for the process: the kernels release the GIL, so runs train side by side."""
    if not _POOL:
        _POOL.append(ThreadPoolExecutor(THREADS, thread_name_prefix="lecun1989"))
    return _POOL[0]


class FastEngine:
    """The compiled engine. Runs train on the single-run kernels above, one per core at a time, or,
    when there are enough of them (kernels_for), in groups of LANES on the lane kernels (lanes.py),
    the groups spread over the cores; `kernels` forces the choice (a resumed command keeps its own). Either way each run's
    state (parameters, step sizes, curvature, moments) is the flat vector of layout.py: per run a
    row, or, in groups, LANES rows interleaved (self._run gives one run's view)."""
    name = "fast"
    kernels_for = staticmethod(kernels_for)
    CHUNK = 512   # examples per compiled call: the progress bar's granularity

    def __init__(self, net: NetConfig, runs: list[RunSpec], data: Dataset, optim: OptimConfig = OptimConfig(),
                 dtype: str = "float32", passes: int = paper.PASSES, kernels: str | None = None):
        self.dtype = DTYPES[dtype]
        self.net, self.optim, self.runs, self.passes = net, optim, runs, passes
        self.kernels = kernels or kernels_for(len(runs))
        assert self.kernels in KERNELS, self.kernels
        self.lanes = self.kernels == "lanes"
        # runs, then (in groups) copies of the first with lr 0 to fill the last group
        self.slots = -(-len(runs) // LN.V) * LN.V if self.lanes else len(runs)
        self.table = connection_table(net.table).astype(np.int64)
        flat = [pack(run.params, self.dtype) for run in runs]
        self._n_states = 0
        self.params = self._state(self._layout(np.stack(flat + flat[:1] * (self.slots - len(runs)))))
        self.lrs = np.array([run.lr for run in runs] + [0.0] * (self.slots - len(runs)))
        self.steps = self._state()
        self.h = self._state()        # SDLM's curvature estimate per parameter
        self.hyper = np.zeros((self.slots, 3), dtype=self.dtype)   # SDLM's running mode: decay, lr, mu
        adamw = optim.name == "adamw"
        self.m = self._state() if adamw else self.params[:, :0].copy()   # AdamW's moments
        self.v = self._state() if adamw else self.params[:, :0].copy()
        self.adam = np.zeros((self.slots, 5), dtype=self.dtype)
        self.passes_done = 0
        A, S = ACTIVATION_SCALES.get(net.activation, (1.0, 1.0))
        self.consts = np.array([A, S, paper.PAD_VALUE, net.activation == "relu", net.loss == "ce"], dtype=self.dtype)
        # the input unrolled with H1's positions in this engine's order
        self.idx1 = L.im2col_index(paper.IMAGE_SIZE, paper.KERNEL, paper.STRIDE, paper.PAD)[:, H1_ORDER]
        self.rolls, self.shift_id = roll_sources(net.shift)   # the lane kernels roll the images,
        self.idx1s = shift_indices(self.idx1, self.rolls)      # the single-run kernels the unrolling
        self.images = self._flat_images(data.train)   # the rolls unroll from these
        self.splits = {"train": self._prepare(data.train, self.images),
                       "test": self._prepare(data.test, self._flat_images(data.test))}
        self.compile_s = 0.0   # time spent compiling kernels the disk cache did not have
        self._used: set = set()

    def _state(self, values: np.ndarray | None = None) -> np.ndarray:
        """A state array like the parameters: zeros, or a copy of values. For the lane kernels it is
        aligned to 64 bytes (numpy aligns to 16, and every other vector of 8 floats would straddle
        two cache lines), each array at its own offset modulo 4 KiB, so that loads from one array
        and stores to another at the same index do not falsely wait on each other (4K aliasing)."""
        shape = self.params.shape if values is None else values.shape
        if not self.lanes:
            return np.zeros(shape, self.dtype) if values is None else values.copy()
        size = int(np.prod(shape)) * self.dtype().itemsize
        raw = np.zeros(size + 4096 + 64, dtype=np.uint8)
        self._n_states += 1
        start = -raw.ctypes.data % 64 + 64 * (5 * self._n_states % 64)
        out = raw[start:start + size].view(self.dtype).reshape(shape)
        if values is not None:
            out[:] = values
        return out

    def _layout(self, rows: np.ndarray) -> np.ndarray:
        """(slots, N) per-run rows -> this engine's layout: the same, or (groups, N * LANES)."""
        if not self.lanes:
            return rows
        G = self.slots // LN.V
        return np.ascontiguousarray(rows.reshape(G, LN.V, -1).transpose(0, 2, 1)).reshape(G, -1)

    def _run(self, state: np.ndarray, r: int) -> np.ndarray:
        """Run r's flat vector in a state array (a view)."""
        if not self.lanes:
            return state[r]
        return state.reshape(self.slots // LN.V, -1, LN.V)[r // LN.V, :, r % LN.V]

    def _spread(self, per_run: np.ndarray) -> np.ndarray:
        """One value per run, spread over every parameter of the run in this engine's layout."""
        if not self.lanes:
            return per_run[:, None]
        return np.tile(per_run.reshape(-1, LN.V), (1, N_FLAT))

    def _flat_images(self, split: Split) -> np.ndarray:
        """(n, 1, 257): each image flat, then the pad value the unrolling reads for the padding."""
        flat = split.images.reshape(len(split), 1, -1)
        pad = np.full((len(split), 1, 1), paper.PAD_VALUE)
        return np.concatenate([flat, pad], axis=2).astype(self.dtype)

    def _prepare(self, split: Split, images: np.ndarray):
        """What the kernels read of a split: the unrolled inputs (single run) or the images (lanes)."""
        if self.lanes:
            return images, split.targets.astype(self.dtype), split.labels
        cols = np.empty((len(split), 1, K1, P1), dtype=self.dtype)
        unroll_inputs(images, self.idx1, cols)
        return cols, split.targets.astype(self.dtype), split.labels

    def _begin_pass(self, pass_num: int) -> None:
        """Step sizes for the pass: lr x schedule, divided by mu + h for SDLM (or, for its running
        mode, the settings its per-example steps are computed from)."""
        lrs = self.lrs * self.optim.factor(pass_num, self.passes)
        if self.optim.name == "adamw":
            o = self.optim
            self.adam[:] = np.stack([lrs, *(np.full_like(lrs, x) for x in (*o.betas, o.eps, o.weight_decay))], axis=1)
            return
        if self.optim.name == "sgd":
            if self.lanes:   # the lane kernels take each lane's lr
                self.steps = self._state(lrs.reshape(-1, LN.V).astype(self.dtype))
            else:
                self.steps[:] = lrs.astype(self.dtype)[:, None]
            return
        X, T, _ = self.splits["train"]
        if not (self.optim.running and pass_num > 1):   # the running average carries over between passes
            examples = self.optim.hessian_examples(pass_num, len(X))
            h = np.zeros(self.params.shape)
            self._jobs(LN.estimate_hessian if self.lanes else estimate_hessian,
                       [(self.params[u], X, T, examples, self.table, self.consts, h[u]) for u in self._units()])
            self.h[:] = h
        mu = self.dtype(self.optim.mu)
        if self.optim.running:   # the steps follow h after every example (layers.sdlm_running_step)
            self.hyper[:] = np.stack([np.full_like(lrs, self.optim.decay), lrs, np.full_like(lrs, mu)], axis=1)
            return
        self.steps[:] = self._spread(lrs.astype(self.dtype)) / (mu + self.h)

    def _noise(self, pass_num: int, n: int):
        """This pass's shifts (as indices into idx1s and rolls, -1 for none) and dropout masks, per
        run: (runs, n) and (runs, n, N_H2), or for groups (groups, n, LANES) and (groups, n, N_H2 * LANES)."""
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
            G = S // LN.V
            shift_ids = np.ascontiguousarray(shift_ids.reshape(G, LN.V, -1).transpose(0, 2, 1))
            keep = np.ascontiguousarray(keep.reshape(G, LN.V, n, -1).transpose(0, 2, 3, 1)).reshape(G, n, -1)
        return shift_ids, keep

    def train_pass(self, tick: Callable[[int], None] = lambda n: None) -> None:
        self.passes_done += 1
        self._begin_pass(self.passes_done)
        X, T, _ = self.splits["train"]
        shift_ids, keep = self._noise(self.passes_done, len(X))
        scale = self.dtype(1 / (1 - self.net.dropout))
        step0 = (self.passes_done - 1) * len(X)
        adam, running, kernel = self.adam, self.hyper, train_chunk
        if self.lanes:   # the lane kernels' settings: per group, each setting as a vector of the lanes
            G = self.slots // LN.V
            adam = self.adam.reshape(G, LN.V, -1)
            running = np.ascontiguousarray(self.hyper.reshape(G, LN.V, 3).transpose(0, 2, 1)).reshape(G, -1)
            kernel = LN.train_chunk
        adam = adam if self.optim.name == "adamw" else None     # None: compiled without that optimizer
        running = running if self.optim.running else None
        for start in range(0, len(X), self.CHUNK):
            stop = min(len(X), start + self.CHUNK)
            if self.lanes:   # all groups in one call: its parallel loop spreads them over the cores
                self._kernel(kernel, self.params, X, T, start, stop, self.table, self.consts, self.steps, shift_ids,
                             self.rolls, keep, scale, adam, self.m, self.v, step0, self.h, running)
            else:
                self._jobs(kernel, [(self.params[u], X, T, start, stop, self.table, self.consts, self.steps[u],
                                     self.images, shift_ids[u], self.idx1s, keep[u], scale,
                                     None if adam is None else adam[u], self.m[u], self.v[u], step0, self.h[u],
                                     None if running is None else running[u]) for u in self._units()])
            tick((stop - start) * len(self.runs))

    def _units(self) -> range:
        """The rows of the state arrays that the kernels take one at a time: runs, or groups of runs."""
        return range(self.params.shape[0])

    def _jobs(self, fn, jobs: list[tuple]) -> None:
        """fn(*args) for every job, spread over the cores. Each job writes only its own run's (or
        group's) rows, so the results do not depend on the number of threads. The first use of a
        kernel runs alone, so that compiling it is reported (and compiled once)."""
        if fn not in self._used:
            self._kernel(fn, *jobs[0])
            self._used.add(fn)
            jobs = jobs[1:]
        if len(jobs) < 2 or THREADS == 1:
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
        """Call a compiled kernel. The first use of each compiles it, unless the disk cache has it:
        say how long that took, and turn a failure to compile into one line."""
        misses = sum(fn.stats.cache_misses.values())
        t0 = time.perf_counter()
        try:
            result = fn(*args)
        except NumbaError as e:
            raise LecunError(f"the compiled engine failed to compile ({type(e).__name__}: "
                             f"{str(e).strip().splitlines()[0]}); use --engine torch (the reference engine, slower)"
                             ) from None
        if sum(fn.stats.cache_misses.values()) > misses:
            self.compile_s += time.perf_counter() - t0
            print(f"compiled {fn.py_func.__name__} of the fast engine in {time.perf_counter() - t0:.1f}s "
                  f"(cached for next time)", file=sys.stderr)
        return result

    def evaluate(self) -> list[dict[str, Evaluation]]:
        """Per run, the loss over each whole split and the exact misses; no dropout, no shifts."""
        results = [{} for _ in self.runs]
        V = LN.V if self.lanes else 1
        for name, (X, T, labels) in self.splits.items():
            losses, preds = np.zeros((self.slots, len(X))), np.zeros((self.slots, len(X)), dtype=np.int64)
            out = ((losses[u * V:(u + 1) * V], preds[u * V:(u + 1) * V]) if self.lanes else (losses[u], preds[u])
                   for u in self._units())
            self._jobs(LN.evaluate if self.lanes else evaluate,
                       [(self.params[u], X, T, self.table, self.consts, start, min(len(X), start + self.CHUNK), *o)
                        for u, o in zip(self._units(), out) for start in range(0, len(X), self.CHUNK)])
            for r in range(len(self.runs)):
                results[r][name] = Evaluation(loss=float(losses[r].sum() / losses.shape[1]),
                                              misses=int((preds[r] != labels).sum()), n=len(labels))
        return results

    def get_params(self) -> list[dict[str, np.ndarray]]:
        return [unpack(np.ascontiguousarray(self._run(self.params, r))) for r in range(len(self.runs))]

    def _carried(self) -> dict[str, np.ndarray]:
        """The optimizer state that carries over from one pass to the next (what resuming needs)."""
        return {**({"h": self.h} if self.optim.running else {}),
                **({"m": self.m, "v": self.v} if self.optim.name == "adamw" else {})}

    def get_state(self) -> list[dict[str, np.ndarray]]:
        """Per run: the carried optimizer state, as `kind.name` tensors in model.Net1989's layout."""
        return [{f"{kind}.{name}": value for kind, state in self._carried().items()
                 for name, value in unpack(np.ascontiguousarray(self._run(state, r))).items()}
                for r in range(len(self.runs))]

    def set_state(self, states: list[dict[str, np.ndarray]], passes_done: int) -> None:
        """Continue after pass `passes_done` from the states get_state gave then."""
        self.passes_done = passes_done
        for r, st in enumerate(states):
            for kind, state in self._carried().items():
                self._run(state, r)[:] = pack({k.split(".", 1)[1]: v for k, v in st.items()
                                               if k.startswith(kind + ".")}, self.dtype)
