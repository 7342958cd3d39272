"""The single-run kernels: the whole training loop of one run in numba, one example at a time.

One training step of the network, in the layers' vocabulary (layers.py):

    fprop:  input -> H1 -> H2 -> (dropout) -> H3 -> output
    bprop:  dE/doutput -> ... -> the gradient of every parameter
    bbprop: the same pass with squares: the diagonal second derivatives (the paper's optimizer)
    step:   the optimizer's update (steps.py)

The positions of a feature map are the vector dimension: the convolutions run on explicit vector
code (simd.py), which is what makes a step take about as long as a few hundred thousand
multiply-adds should. lanes.py has the same surface for LANES runs per vector. Every size, offset
and slot comes from network.py; the numbers follow the PyTorch reference (torch_ref.py) within
rounding, which the tests check.

The entry points take the network's settings (network.Settings), the runs' state (steps.State:
one row per run), the data (network.Data) and a range of examples, and serve each row in turn; the
engine calls them for one run per thread.
"""

from __future__ import annotations

from functools import cache

import numpy as np
from numba import njit

from . import layers as L
from .network import C1, C2, H1_RUNS, H2_RUNS, HP, K, K1, N_FLAT, N_WS1, OFFSET, P1, P2, RUN, SHAPE, WS1
from .simd import run_add, run_copy
from .steps import SDLM_RUNNING, follow_curvature, update

TABLE1 = np.zeros((C1, 1), dtype=np.int64)   # every H1 plane reads the one input plane


# network.py's offsets as plain names: numba folds a module's ints, not a named tuple's fields
OW1, OB1, OW2, OB2, OW3, OB3, OW4, OB4 = OFFSET         # where each parameter block starts
SW1, SB1, SW2, SB2, SW3, _, SW4, _ = SHAPE
X, H1, H1P, COL2, H2, H2D, H3, Y, DY, D4, DH3, D3, DH2, D2, DCOL2, DH1P, DH1, D1, GRADS = WS1   # workspace slots


@njit(**L.INLINE)
def views(flat):
    """The parameter blocks of a flat vector (or of anything laid out like it: gradients, curvature)."""
    return (flat[OW1:OB1].reshape(SW1), flat[OB1:OW2].reshape(SB1), flat[OW2:OB2].reshape(SW2),
            flat[OB2:OW3].reshape(SB2), flat[OW3:OB3].reshape(SW3), flat[OB3:OW4], flat[OW4:OB4].reshape(SW4),
            flat[OB4:N_FLAT])


@njit(**L.INLINE)
def slots(ws):
    """The named slots (network.WS1) of one run's workspace, each up to the next; planes stay flat
    (planes x positions)."""
    return (ws[X:H1].reshape((1, K1, P1)), ws[H1:H1P], ws[H1P:COL2], ws[COL2:H2], ws[H2:H2D], ws[H2D:H3], ws[H3:Y],
            ws[Y:DY], ws[DY:D4], ws[D4:DH3], ws[DH3:D3], ws[D3:DH2], ws[DH2:D2], ws[D2:DCOL2], ws[DCOL2:DH1P],
            ws[DH1P:DH1], ws[DH1:D1], ws[D1:GRADS], ws[GRADS:N_WS1])


@njit(**L.INLINE)
def workspace(params, pad):
    ws = np.zeros(N_WS1, params.dtype)
    h1p = slots(ws)[2]          # the padded H1: its interior is overwritten by every fprop
    for i in range(h1p.size):   # a loop: `h1p[:] = pad` is lost when this is inlined into a prange body
        h1p[i] = pad
    return ws


# --- H1 as H2 reads it: padded, then unrolled (network.py's runs) -----------------------------------

@njit(**L.INLINE)
def pad_h1(h1, h1p):
    for c in range(C1):
        for r in range(H1_RUNS.shape[0]):
            run_copy(h1p, c * HP + H1_RUNS[r, 1], h1, c * P1 + H1_RUNS[r, 0], RUN)


@njit(**L.INLINE)
def unpad_h1(dh1p, dh1):
    for c in range(C1):
        for r in range(H1_RUNS.shape[0]):
            run_copy(dh1, c * P1 + H1_RUNS[r, 0], dh1p, c * HP + H1_RUNS[r, 1], RUN)


@njit(**L.INLINE)
def unroll_h1(h1p, col2):
    """col2 (C1 planes, K1 taps, P2 positions): what each tap of H2 reads, from the padded H1."""
    for c in range(C1):
        for t in range(K1):
            for oy in range(RUN):
                run_copy(col2, (c * K1 + t) * P2 + oy * RUN, h1p, c * HP + H2_RUNS[t, oy], RUN)


@njit(**L.INLINE)
def unroll_h1_adjoint(dcol2, dh1p):
    """The sum, into the padded H1, of what every tap read: the adjoint of unroll_h1. Taps two
    columns apart add to runs that overlap by three elements; with the columns outermost those
    adds are far apart, so none waits on a store it only partly overlaps."""
    dh1p[:] = 0
    for c in range(C1):
        for tx in range(K):
            for ty in range(K):
                t = ty * K + tx
                for oy in range(RUN):
                    run_add(dh1p, c * HP + H2_RUNS[t, oy], dcol2, (c * K1 + t) * P2 + oy * RUN, RUN)


# --- the network -----------------------------------------------------------------------------------

@njit(**L.INLINE)
def h3_input(h2, h2d, drop):
    """What H3 reads: H2's output, through dropout when drop (the scales) is not empty."""
    if drop.size == 0:
        return h2
    L.drop_fprop(h2, drop, h2d)
    return h2d


@njit(**L.FLAGS)
def fprop(params, x, s, ws, drop):
    W1, B1, W2, B2, W3, B3, W4, B4 = views(params)
    _, h1, h1p, col2, h2, h2d, h3, y = slots(ws)[:8]
    L.conv_fprop(x, W1, B1, TABLE1, h1.reshape((C1, P1)), K1, P1)
    L.act_fprop(h1, s)
    pad_h1(h1, h1p)
    unroll_h1(h1p, col2)
    L.conv_fprop(col2.reshape((C1, K1, P2)), W2, B2, s.table, h2.reshape((C2, P2)), K1, P2)
    L.act_fprop(h2, s)
    L.fc_fprop(h3_input(h2, h2d, drop), W3, B3, h3)
    L.act_fprop(h3, s)
    L.fc_fprop(h3, W4, B4, y)
    if not s.ce:            # tanh outputs; the cross-entropy reads the linear ones (logits)
        L.act_fprop(y, s)


@njit(**L.FLAGS)
def bprop(params, x, t, s, ws, drop):
    """Gradient of the example's loss with respect to every parameter, into slots(ws)[-1] (flat)."""
    W1, B1, W2, B2, W3, B3, W4, B4 = views(params)
    _, h1, _, col2, h2, h2d, h3, y, dy, d4, dh3, d3, dh2, d2, dcol2, dh1p, dh1, d1, grads = slots(ws)
    gW1, gB1, gW2, gB2, gW3, gB3, gW4, gB4 = views(grads)
    if s.ce:
        L.ce_bprop(y, t, d4)
    else:
        L.mse_bprop(y, t, dy)
        L.act_bprop(y, dy, s, d4)
    L.fc_bprop(h3, W4, d4, gW4, gB4, dh3, True, False)
    L.act_bprop(h3, dh3, s, d3)
    L.fc_bprop(h2d if drop.size else h2, W3, d3, gW3, gB3, dh2, True, False)
    L.drop_bprop(dh2[:drop.size], drop, False)
    L.act_bprop(h2, dh2, s, d2)
    L.conv_bprop(col2.reshape((C1, K1, P2)), W2, s.table, d2.reshape((C2, P2)), gW2, gB2,
                 dcol2.reshape((C1, K1, P2)), True, False, K1, P2)
    unroll_h1_adjoint(dcol2, dh1p)
    unpad_h1(dh1p, dh1)
    L.act_bprop(h1, dh1, s, d1)
    L.conv_bprop(x, W1, TABLE1, d1.reshape((C1, P1)), gW1, gB1, x, False, False, K1, P1)


@njit(**L.FLAGS)
def bbprop(params, x, s, ws, ws2, drop):
    """Diagonal second derivatives of the example's loss (f'' dropped) into slots(ws2)[-1] (flat), from
    the activations fprop left in ws (the same input and dropout as the gradient's); ws2's
    derivative slots hold the intermediate d2E/da^2."""
    W1, B1, W2, B2, W3, B3, W4, B4 = views(params)
    _, h1, _, col2, h2, h2d, h3, y = slots(ws)[:8]
    dy, d4, dh3, d3, dh2, d2, dcol2, dh1p, dh1, d1, hess = slots(ws2)[8:]
    hW1, hB1, hW2, hB2, hW3, hB3, hW4, hB4 = views(hess)
    L.mse_bbprop(y, dy)
    L.act_bbprop(y, dy, s, d4)
    L.fc_bprop(h3, W4, d4, hW4, hB4, dh3, True, True)
    L.act_bbprop(h3, dh3, s, d3)
    L.fc_bprop(h2d if drop.size else h2, W3, d3, hW3, hB3, dh2, True, True)
    L.drop_bprop(dh2[:drop.size], drop, True)
    L.act_bbprop(h2, dh2, s, d2)
    L.conv_bprop(col2.reshape((C1, K1, P2)), W2, s.table, d2.reshape((C2, P2)), hW2, hB2,
                 dcol2.reshape((C1, K1, P2)), True, True, K1, P2)
    unroll_h1_adjoint(dcol2, dh1p)
    unpad_h1(dh1p, dh1)
    L.act_bbprop(h1, dh1, s, d1)
    L.conv_bprop(x, W1, TABLE1, d1.reshape((C1, P1)), hW1, hB1, x, False, True, K1, P1)


# --- the entry points: every run (a row of each state array), one after the other --------------------

@cache   # one dispatcher per kind and process: each engine after the first finds it compiled
def train_chunk(kind: int):
    """The training kernel of optimizer `kind` (steps.py), compiled with its code only."""

    @njit(**L.FLAGS)
    def train_chunk(s, state, data, start, stop):
        """Every run (row of state) trains on examples start..stop-1, in order: for each, fprop,
        bprop and the optimizer's step (and, for SDLM's running curvature, bbprop first). The modern
        recipe's noise, where present: the input unrolled from the image rolled by shift
        data.shift_ids[run][n] (data.shifts: the unrollings of the rolled images) when that is >= 0,
        and H2's outputs dropped where data.keep[run][n] is False."""
        for r in range(state.params.shape[0]):
            p, h, m, v, steps, hyper = state.params[r], state.h[r], state.m[r], state.v[r], state.steps[r], \
                state.hyper[r]
            shift_ids, keep = data.shift_ids[r], data.keep[r]
            ws, ws2 = workspace(p, s.pad), workspace(p, s.pad)
            x1, grads, hess = slots(ws)[0], slots(ws)[-1], slots(ws2)[-1]
            drop = np.empty(keep.shape[1], p.dtype)
            zero = p.dtype.type(0)
            for n in range(start, stop):
                x = data.inputs[n]
                if shift_ids.size > 0 and shift_ids[n] >= 0:
                    L.im2col(data.images[n], data.shifts[shift_ids[n]], x1)
                    x = x1
                for i in range(drop.size):
                    drop[i] = s.drop_scale if keep[n, i] else zero
                fprop(p, x, s, ws, drop)
                bprop(p, x, data.targets[n], s, ws, drop)
                if kind == SDLM_RUNNING:   # this example's curvature sets its step sizes
                    bbprop(p, x, s, ws, ws2, drop)
                    follow_curvature(h, hess, steps, hyper, 1)
                update(kind, p, grads, h, m, v, steps, hyper, 1, state.step0 + n + 1)
    return train_chunk


@njit(**L.FLAGS)
def estimate_hessian(s, params, data, examples, h):
    """h (float64, a row per run) = the mean over `examples` of bbprop's second derivatives, on the
    clean inputs."""
    for r in range(params.shape[0]):
        p = params[r]
        ws, ws2 = workspace(p, s.pad), workspace(p, s.pad)
        for n in examples:
            fprop(p, data.inputs[n], s, ws, p[:0])
            bbprop(p, data.inputs[n], s, ws, ws2, p[:0])
            h[r] += slots(ws2)[-1]
        h[r] /= len(examples)


@njit(**L.FLAGS)
def unroll_inputs(images, idx1, out):
    for n in range(images.shape[0]):
        L.im2col(images[n], idx1, out[n])
