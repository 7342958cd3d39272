"""The lane kernels: LANES runs per vector, one run in each lane.

The single-run kernels (single.py) vectorize over the positions of a feature map, which costs
unrolling copies and horizontal sums. With the runs innermost every unit of the network is one
vector of LANES runs, so each layer is a plain sum of products (simd.lanes_macc) and a core trains
LANES runs in about the time the single-run kernels take for four. A group of LANES runs shares one
data pass; groups are spread over the cores.

The surface is single.py's: fprop, bprop and bbprop (bprop with squares) of the network, and the
entry points train_chunk(kind) and estimate_hessian, on the same settings, state and data records;
and the evaluation of every run: evaluate (a group's runs) and evaluate_one (a run trained alone,
LANES examples at a time). Every state array holds, per group, network.py's flat vector with the runs innermost,
(N_FLAT, LANES) flattened, so parameter k of run l is element k * LANES + l. Feature maps are kept
padded where a layer reads them padded (the input, H1), their margins holding the pad value, and
H2's derivatives with a zero margin, so that every tap of every position is in bounds and no index
needs a branch. Offsets below count vectors; every size and stride comes from network.py.

A run gives the same numbers in any group, alone or with 31 others: lanes never mix. The order of
its float sums differs from the single-run kernels', so the two agree within rounding (the tests
check both, and both against the PyTorch reference).
"""

from __future__ import annotations

from functools import cache

import numpy as np
from numba import literally, njit, prange

from . import layers as L
from .network import (C1, C2, DH1_ROWS, FC_BLOCK, FC_IN, H3_FULL, H3_TAIL, IMAGE, BACK_BLOCK, K, K1, N1, N2, N3,
                      N_H2, N_WSL, NI, NO, OFFSET, OUT_BLOCK, P1, P2, PAD, RUN, S0, S1, S2, STRIDE, WSL)
from .simd import LANES as V, lanes_emit, lanes_fc_back, lanes_macc
from .steps import SDLM, SDLM_RUNNING, SGD, follow_curvature, update

# network.py's offsets as plain names (in vectors): numba folds a module's ints, not a named tuple's fields
W1, B1, W2, B2, W3, B3, W4, B4 = OFFSET               # parameter blocks
X, H1, H2, H2D, H3, Y, DY, D4, DH3, D3, DH2, D2, DH1, D1 = WSL   # workspace slots
ADD = -1            # lanes_macc's mode: add the sums to the output (the others store or step a gradient)
# strides that are products of network.py's sizes, named so that numba sees them as constants
EVEN_TAPS, ODD_TAPS = (K + 1) // STRIDE, K // STRIDE    # a kernel's taps on even and odd input columns
TAP_ROWS = STRIDE * K                                   # from one tap row to the one STRIDE below
UP = -S2                                                # one row up in H2's zero-margined derivatives
X_ROWS, H1_ROWS = STRIDE * S0, STRIDE * S1              # STRIDE rows of the padded input and H1


@njit(**L.INLINE)
def seg(a, i, n):
    """The n vectors of a from vector i, as a flat view."""
    return a[i * V:(i + n) * V]


@njit(**L.INLINE)
def workspace(like, pad):
    ws = np.zeros(N_WSL * V, like.dtype)
    for i in range(X * V, H2 * V):    # the input's and H1's margins hold the pad value
        ws[i] = pad
    return ws


@njit(**L.INLINE)
def h1_at(c, y, x):
    """Padded H1's unit (plane c, row y, column x of the interior)."""
    return H1 + c * S1 * S1 + (y + PAD) * S1 + x + PAD


@njit(**L.INLINE)
def d2_at(o, y, x):
    """H2's zero-margined dE/da (plane o, row y, column x of the interior)."""
    return D2 + o * S2 * S2 + (y + PAD) * S2 + x + PAD


@njit(**L.INLINE)
def set_input(ws, images, n, step, last, rolls, shift_ids):
    """The input of lane l: example min(n + step * l, last) (step 0 in training: every lane's run reads
    the same example; 1 to read LANES examples at once), rolled by rolls[shift_ids[l]] where that is >= 0."""
    for l in range(V):
        img = images[min(n + step * l, last), 0]
        s = shift_ids[l]
        for y in range(IMAGE):
            for x in range(IMAGE):
                q = y * IMAGE + x
                ws[(X + (y + PAD) * S0 + x + PAD) * V + l] = img[q] if s < 0 else img[rolls[s, q]]


# --- the layers' sums, each one call of simd.lanes_macc with its strides ------------------------------

@njit(**L.INLINE)
def conv_row_fprop(ws, a, P, w, x, n, row):
    """A convolution's output row of n positions (from a) += the K x K taps of each, STRIDE apart,
    over the padded input rows `row` wide from x, through the kernel at w."""
    lanes_macc(ws, a, P, w, ws, x, P, n, 1, K, K, 0, K, 1, STRIDE, row, 1, False, False, ADD)


@njit(**L.INLINE)
def fc_fprop_block(ws, a, P, w, x, n, n_in, width):
    """n outputs of a fully connected layer (from a) += their sums over `width` inputs from x, through
    the weights (out, n_in) from w."""
    lanes_macc(ws, a, P, w, ws, x, P, n, 1, 1, width, n_in, 0, 1, 0, 0, 1, False, False, ADD)


@njit(**L.INLINE)
def conv_bprop_row(dws, a, P, w, d, s, ku, square):
    """dE/dy of one row of H1 (from a) += what H2's plane reads of it, through the kernel rows from
    w: from H2's zero-margined dE/da at d, ku tap rows (STRIDE apart in the kernel, each an output
    row higher); across, the taps of the even columns, then those of the odd ones."""
    lanes_macc(dws, a, P, w, dws, d, s, N2, STRIDE, ku, EVEN_TAPS, 0, TAP_ROWS, STRIDE, 1, UP, -1, square, False, ADD)
    lanes_macc(dws, a + 1, P, w + 1, dws, d, s, N2, STRIDE, ku, ODD_TAPS, 0, TAP_ROWS, STRIDE, 1, UP, -1, square, False,
               ADD)


@njit(**L.INLINE)
def conv_wgrad_row(g, w, dws, d, ws, x, s, n, drow, xrows, square, mode):
    """The gradients of a kernel row of K taps (at w): each sums, over the n x n output positions,
    dE/da there (rows drow apart from d) times the input it reads (from x, STRIDE apart across and
    xrows apart down), stored or stepped by (mode)."""
    lanes_macc(g, w, dws, d, ws, x, s, K, 1, n, n, 0, drow, 1, 1, xrows, STRIDE, False, square, mode)


# --- the network -----------------------------------------------------------------------------------

@njit(**L.FLAGS)
def fprop(P, ws, s, drop):
    """Every layer's outputs for the input in ws, each lane with its own parameters; H2's outputs
    times the dropout scales when drop is not empty."""
    # H1: the biases (kept in H1_ORDER: each row's even columns, then its odd ones), then the taps
    for o in range(C1):
        for y in range(N1):
            for odd in range(2):
                lanes_emit(ws, h1_at(o, y, odd), STRIDE, P, B1 + o * P1 + y * N1 + RUN * odd, 1, P, RUN, 0)
        for y in range(N1):
            conv_row_fprop(ws, h1_at(o, y, 0), P, W1 + o * K1, X + STRIDE * y * S0, N1, S0)
            L.act_fprop(seg(ws, h1_at(o, y, 0), N1), s)
    # H2: each plane sums NI of H1's planes (the connection table)
    for o in range(C2):
        lanes_emit(ws, H2 + o * P2, 1, P, B2 + o * P2, 1, P, P2, 0)
        for k in range(NI):
            c = s.table[o, k]
            for y in range(N2):
                conv_row_fprop(ws, H2 + o * P2 + y * N2, P, W2 + (o * NI + k) * K1, h1_at(c, STRIDE * y - PAD, -PAD),
                               N2, S1)
    h2 = seg(ws, H2, N_H2)
    L.act_fprop(h2, s)
    src = H2
    if drop.size > 0:
        L.drop_fprop(h2, drop, seg(ws, H2D, N_H2))
        src = H2D
    # H3 and the output: fully connected, FC_BLOCK outputs at a time
    lanes_emit(ws, H3, 1, P, B3, 1, P, N3, 0)
    for j in range(0, H3_FULL, FC_BLOCK):
        for i in range(0, N_H2, FC_IN):
            fc_fprop_block(ws, H3 + j, P, W3 + j * N_H2 + i, src + i, FC_BLOCK, N_H2, FC_IN)
    for i in range(0, N_H2, FC_IN):
        fc_fprop_block(ws, H3 + H3_FULL, P, W3 + H3_FULL * N_H2 + i, src + i, H3_TAIL, N_H2, FC_IN)
    L.act_fprop(seg(ws, H3, N3), s)
    lanes_emit(ws, Y, 1, P, B4, 1, P, NO, 0)
    for j in range(0, NO, OUT_BLOCK):
        fc_fprop_block(ws, Y + j, P, W4 + j * N3, H3, OUT_BLOCK, N3, N3)
    if not s.ce:
        L.act_fprop(seg(ws, Y, NO), s)


@njit(**L.INLINE)
def loss_bprop(ws, t, s):
    """dE/da of the outputs into d4 (and dE/dy into dy for tanh outputs)."""
    y, d4 = seg(ws, Y, NO), seg(ws, D4, NO)
    if s.ce:      # softmax cross-entropy, per lane
        uniform = L.no_class(t)
        for l in range(V):
            top = y[l]
            for j in range(NO):
                top = max(top, y[j * V + l])
            total = y.dtype.type(0)
            for j in range(NO):
                d4[j * V + l] = np.exp(y[j * V + l] - top)
                total += d4[j * V + l]
            for j in range(NO):
                d4[j * V + l] = d4[j * V + l] / total - L.ce_target(t, j, uniform)
    else:
        dy = seg(ws, DY, NO)
        scale = y.dtype.type(2) / y.dtype.type(NO)
        for j in range(NO):
            for l in range(V):
                dy[j * V + l] = scale * (y[j * V + l] - t[j])
        L.act_bprop(y, dy, s, d4)


@njit(**L.INLINE)
def loss_bbprop(ws, dws, s):
    """d2E/da^2 of the outputs into dws's d4 (the MSE on tanh outputs, as the paper's optimizer needs)."""
    ddy = seg(dws, DY, NO)
    for i in range(ddy.size):
        ddy[i] = ddy.dtype.type(2) / ddy.dtype.type(NO)
    L.act_bbprop(seg(ws, Y, NO), ddy, s, seg(dws, D4, NO))


@njit(**L.INLINE)
def act_back(y, dy, s, d, square):
    if square:
        L.act_bbprop(y, dy, s, d)
    else:
        L.act_bprop(y, dy, s, d)


@njit(**L.FLAGS)
def back(P, ws, dws, g, steps, mode, s, drop, square):
    """bprop, and with square bbprop: from dE/da of the outputs in dws's d4, every parameter's
    gradient, layer by layer down, stored in g (mode 0), or applied at once, g being the parameters
    P, as the step -lr * gradient (mode 1, steps the lanes' lr) or -steps * gradient (mode 2, a step
    per parameter): steps.py's fused steps. Each layer's input derivatives are computed before its
    weights change. With square, the same pass with weights, inputs and the dropout scales squared
    and f' squared gives the diagonal second derivatives. Compiled once for each mode and square:
    the strides and modes are compile-time constants."""
    literally(mode)
    literally(square)
    # output layer, then H3
    lanes_emit(g, B4, 1, dws, D4, 1, steps, NO, mode)
    for i in range(0, N3, BACK_BLOCK):
        lanes_fc_back(g, W4 + i, P, W4 + i, dws, DH3 + i, dws, D4, ws, H3 + i, steps, N3, NO, BACK_BLOCK,
                      square, mode)
    act_back(seg(ws, H3, N3), seg(dws, DH3, N3), s, seg(dws, D3, N3), square)
    src = H2D if drop.size > 0 else H2
    lanes_emit(g, B3, 1, dws, D3, 1, steps, N3, mode)
    for i in range(0, N_H2, BACK_BLOCK):
        lanes_fc_back(g, W3 + i, P, W3 + i, dws, DH2 + i, dws, D3, ws, src + i, steps, N_H2, N3, BACK_BLOCK,
                      square, mode)
    if drop.size > 0:
        L.drop_bprop(seg(dws, DH2, N_H2), drop, square)
    # H2: dE/da into the zero-margined d2
    for o in range(C2):
        for y in range(N2):
            act_back(seg(ws, H2 + o * P2 + y * N2, N2), seg(dws, DH2 + o * P2 + y * N2, N2), s,
                     seg(dws, d2_at(o, y, 0), N2), square)
    # dE/dy of H1's interior: each row sums the taps that read it (network.DH1_ROWS)
    dh1 = seg(dws, DH1, C1 * P1)
    for i in range(dh1.size):     # a loop: `dh1[:] = 0` is lost when this is inlined into a prange body
        dh1[i] = 0
    for o in range(C2):
        for k in range(NI):
            c = s.table[o, k]
            for r in range(N1):
                ty, oy, ku = DH1_ROWS[r]
                a, w, d = DH1 + c * P1 + r * N1, W2 + (o * NI + k) * K1 + ty * K, d2_at(o, oy, PAD // STRIDE)
                if ku == 3:
                    conv_bprop_row(dws, a, P, w, d, steps, 3, square)
                elif ku == 2:
                    conv_bprop_row(dws, a, P, w, d, steps, 2, square)
                else:
                    conv_bprop_row(dws, a, P, w, d, steps, 1, square)
    # H2's weights: sums over its positions
    for o in range(C2):
        for y in range(N2):
            lanes_emit(g, B2 + o * P2 + y * N2, 1, dws, d2_at(o, y, 0), 1, steps, N2, mode)
        for k in range(NI):
            c = s.table[o, k]
            for ty in range(K):
                conv_wgrad_row(g, W2 + (o * NI + k) * K1 + ty * K, dws, d2_at(o, 0, 0), ws,
                               h1_at(c, ty - PAD, -PAD), steps, N2, S2, H1_ROWS, square, mode)
    # H1
    for o in range(C1):
        for y in range(N1):
            act_back(seg(ws, h1_at(o, y, 0), N1), seg(dws, DH1 + o * P1 + y * N1, N1), s,
                     seg(dws, D1 + o * P1 + y * N1, N1), square)
        for y in range(N1):
            for odd in range(2):
                lanes_emit(g, B1 + o * P1 + y * N1 + RUN * odd, 1, dws, D1 + o * P1 + y * N1 + odd, STRIDE, steps,
                           RUN, mode)
        for ty in range(K):
            conv_wgrad_row(g, W1 + o * K1 + ty * K, dws, D1 + o * P1, ws, X + ty * S0, steps, N1, N1, X_ROWS,
                           square, mode)


@njit(**L.INLINE)
def bprop(P, ws, t, s, drop, g, steps, mode):
    """The gradient of the example's loss (targets t), every layer down: stored in g, or applied as
    it is made (back's modes)."""
    loss_bprop(ws, t, s)
    back(P, ws, ws, g, steps, mode, s, drop, False)


@njit(**L.INLINE)
def bbprop(P, ws, ws2, s, drop, h):
    """The diagonal second derivatives of the example's loss (f'' dropped) into h, from the
    activations fprop left in ws (the same input and dropout as the gradient's); ws2 holds the
    intermediate d2E/da^2."""
    loss_bbprop(ws, ws2, s)
    back(P, ws, ws2, h, P, 0, s, drop, True)


# --- the entry points: every group of LANES runs (a row of each state array) ----------------------------

@cache   # one dispatcher per kind and process: each engine after the first finds it compiled
def train_chunk(kind: int):
    """The training kernel of optimizer `kind` (steps.py), compiled with its code only."""

    @njit(parallel=True, **L.FLAGS)
    def train_chunk(s, state, data, start, stop):
        """Every group trains on examples start..stop-1, in order, the groups over the cores. Numba's
        parallel loop, unlike the single-run kernels' threads: its compiled loop body trains about a
        third faster, which is worth its longer compile for the many-runs kernels."""
        for grp in prange(state.params.shape[0]):
            train_group(kind, s, state.params[grp], state.h[grp], state.m[grp], state.v[grp], state.steps[grp],
                        state.hyper[grp], state.step0, data, data.shift_ids[grp], data.keep[grp], start, stop)
    return train_chunk


@njit(**L.INLINE)
def train_group(kind, s, P, h, m, v, steps, hyper, step0, data, shift_ids, keep, start, stop):
    """single.train_run for a group: the same updates, each lane with its own settings (hyper, LANES
    values per setting); shift_ids (examples, LANES); keep (examples, N_H2 * LANES)."""
    ws, ws2 = workspace(P, s.pad), workspace(P, s.pad)
    grads, hess = np.zeros_like(P), np.zeros_like(P)
    drop = np.empty(keep.shape[1], P.dtype)
    zero = P.dtype.type(0)
    no_shift = np.full(V, -1, np.int64)
    for n in range(start, stop):
        set_input(ws, data.images, n, 0, n, data.shifts, shift_ids[n] if shift_ids.shape[0] > 0 else no_shift)
        for i in range(drop.size):
            drop[i] = s.drop_scale if keep[n, i] else zero
        fprop(P, ws, s, drop)
        t = data.targets[n]
        if kind == SDLM_RUNNING:   # this example's curvature sets its step sizes, before the step
            bbprop(P, ws, ws2, s, drop, hess)
            follow_curvature(h, hess, steps, hyper, V)
        if kind == SGD:            # fused: each gradient applied as it is made, by the lanes' lr
            bprop(P, ws, t, s, drop, P, hyper, 1)
        elif kind == SDLM or kind == SDLM_RUNNING:   # fused, by each parameter's step size
            bprop(P, ws, t, s, drop, P, steps, 2)
        else:
            bprop(P, ws, t, s, drop, grads, P, 0)
            update(kind, P, grads, h, m, v, steps, hyper, V, step0 + n + 1)


@njit(**L.FLAGS)
def estimate_hessian(s, params, data, examples, h):
    """single.estimate_hessian for every group (h float64, like params)."""
    no_shift = np.full(V, -1, np.int64)
    for grp in range(params.shape[0]):
        P = params[grp]
        ws, ws2 = workspace(P, s.pad), workspace(P, s.pad)
        hess = np.zeros_like(P)
        for n in examples:
            set_input(ws, data.images, n, 0, n, data.shifts, no_shift)
            fprop(P, ws, s, P[:0])
            bbprop(P, ws, ws2, s, P[:0], hess)
            h[grp] += hess
        h[grp] /= len(examples)


@njit(**L.INLINE)
def score(y, l, t, s, out):
    """Lane l of the outputs y against the targets t: the loss (float64) and the predicted class (the
    first largest output); out is scratch for the lane's outputs."""
    for j in range(NO):
        out[j] = y[j * V + l]
    best = 0
    for j in range(1, NO):
        if out[j] > out[best]:
            best = j
    return (L.ce_fprop(out, t) if s.ce else L.mse_fprop(out, t)), best


@njit(**L.FLAGS)
def evaluate(s, params, data, start, stop, losses, preds):
    """For every group's runs (rows grp * LANES + lane of losses and preds) and examples start..stop-1:
    the loss and the predicted class."""
    no_shift = np.full(V, -1, np.int64)
    out = np.empty(NO, params.dtype)
    for grp in range(params.shape[0]):
        P = params[grp]
        ws = workspace(P, s.pad)
        y = seg(ws, Y, NO)
        for n in range(start, stop):
            set_input(ws, data.images, n, 0, n, data.shifts, no_shift)
            fprop(P, ws, s, P[:0])
            for l in range(V):
                losses[grp * V + l, n], preds[grp * V + l, n] = score(y, l, data.targets[n], s, out)


@njit(**L.FLAGS)
def evaluate_one(s, P, data, start, stop, losses, preds):
    """evaluate for one run whose parameters fill every lane of P: LANES examples at a time, one per
    lane (the last lanes read example stop - 1 again where fewer are left), into losses[0] and
    preds[0]. A run trained alone is evaluated at a group's speed and with a group's arithmetic (lanes
    never mix): its figures do not depend on the kernel set it trained on."""
    no_shift = np.full(V, -1, np.int64)
    out = np.empty(NO, P.dtype)
    ws = workspace(P, s.pad)
    y = seg(ws, Y, NO)
    for n in range(start, stop, V):
        set_input(ws, data.images, n, 1, stop - 1, data.shifts, no_shift)
        fprop(P, ws, s, P[:0])
        for l in range(min(V, stop - n)):
            losses[0, n + l], preds[0, n + l] = score(y, l, data.targets[n + l], s, out)
