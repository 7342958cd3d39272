"""The compiled engine for many runs at once: LANES runs per vector, one run in each lane.

The single-run kernels (fast.py) vectorize over the positions of a feature map, which costs
unrolling copies and horizontal sums. With the runs innermost every unit of the network is one
vector of LANES runs, so each layer is a plain sum of products (simd.lanes_macc) and a core trains
LANES runs in about the time the single-run kernels take for four. A group of LANES runs shares one
data pass; groups are spread over the cores.

Each group's parameters are layout.py's flat vector with the runs innermost: (N_FLAT, LANES),
flattened, so parameter k of run l is element k * LANES + l and every per-run view of the state is
a strided slice. Feature maps are kept padded where a layer reads them padded (the input, H1),
their margins holding the pad value, and H2's derivatives with a zero margin, so that every tap of
every position is in bounds and no index needs a branch.

A run gives the same numbers in any group, alone or with 31 others: lanes never mix. The order of
its float sums differs from the single-run kernels', so the two agree within rounding (the tests
check both, and both against the PyTorch reference).
"""

from __future__ import annotations

import numpy as np
from numba import literally, njit, prange

from .. import paper
from . import layers as L
from .layout import K1, N3, N_H2, NI, NO, P1, P2
from .simd import LANES as V, lanes_adamw, lanes_emit, lanes_fc_back, lanes_macc, lanes_sdlm_steps

S0 = paper.IMAGE_SIZE + 2 * paper.PAD     # padded input side (20)
S1 = paper.H1_SIZE + 2 * paper.PAD        # padded H1 side (12)
S2 = paper.H2_SIZE + 2 * paper.PAD        # H2's derivatives with a zero margin (8)
N1, N2 = paper.H1_SIZE, paper.H2_SIZE
K = paper.KERNEL

# parameter offsets (in vectors) in layout.LAYOUT's order
W1_, B1_ = 0, 12 * K1
W2_ = B1_ + 12 * P1
B2_ = W2_ + 12 * NI * K1
W3_ = B2_ + 12 * P2
B3_ = W3_ + N3 * N_H2
W4_ = B3_ + N3
B4_ = W4_ + NO * N3

# workspace offsets (in vectors): activations, then their derivatives
X_ = 0                          # input, padded (S0 x S0)
H1_ = X_ + S0 * S0              # H1, padded (12 x S1 x S1)
H2_ = H1_ + 12 * S1 * S1
H2D_ = H2_ + N_H2               # H2 after dropout
H3_ = H2D_ + N_H2
Y_ = H3_ + N3
DY_ = Y_ + NO
D4_ = DY_ + NO
DH3_ = D4_ + NO
D3_ = DH3_ + N3
DH2_ = D3_ + N3
D2_ = DH2_ + N_H2               # dE/da of H2, with a zero margin (12 x S2 x S2)
DH1_ = D2_ + 12 * S2 * S2       # dE/dy and dE/da of H1, unpadded (12 x 64)
D1_ = DH1_ + 12 * P1
N_WS = D1_ + 12 * P1


@njit(**L.INLINE)
def seg(a, i, n):
    """The n vectors of a from vector i, as a flat view."""
    return a[i * V:(i + n) * V]


@njit(**L.INLINE)
def workspace(dtype_like, pad):
    ws = np.zeros(N_WS * V, dtype_like.dtype)
    for i in range(X_ * V, H2_ * V):    # the input's and H1's margins hold the pad value
        ws[i] = pad
    return ws


@njit(**L.INLINE)
def set_input(ws, images, n, rolls, shift_ids):
    """The input of example n for every lane, rolled by rolls[shift_ids[l]] where that is >= 0."""
    img = images[n, 0]
    for y in range(paper.IMAGE_SIZE):
        for x in range(paper.IMAGE_SIZE):
            q = y * paper.IMAGE_SIZE + x
            o = (X_ + (y + paper.PAD) * S0 + x + paper.PAD) * V
            for l in range(V):
                s = shift_ids[l]
                ws[o + l] = img[q] if s < 0 else img[rolls[s, q]]


@njit(**L.FLAGS)
def fprop(P, ws, table, consts, drop):
    """Every layer's outputs for the input in ws, each lane with its own parameters; H2's outputs
    times the dropout scales when drop is not empty."""
    # H1: every output row of 8 positions sums 25 taps of the padded input, stride 2
    for o in range(12):
        for y in range(N1):     # the biases' rows are in H1_ORDER: even columns, then odd ones
            for odd in range(2):
                lanes_emit(ws, H1_ + o * S1 * S1 + (y + 2) * S1 + 2 + odd, 2, P, B1_ + o * P1 + y * N1 + 4 * odd, 1,
                           P, 4, 0)
        for oy in range(N1):
            lanes_macc(ws, H1_ + o * S1 * S1 + (oy + 2) * S1 + 2, P, W1_ + o * K1, ws, X_ + 2 * oy * S0, P,
                       8, 1, 5, 5, 0, 5, 1, 2, 20, 1, False, False, -1)
            L.act_fprop(seg(ws, H1_ + o * S1 * S1 + (oy + 2) * S1 + 2, N1), consts)
    # H2: each plane sums 8 of H1's planes (the connection table)
    for o in range(12):
        lanes_emit(ws, H2_ + o * P2, 1, P, B2_ + o * P2, 1, P, P2, 0)
        for k in range(NI):
            c = table[o, k]
            for oy in range(N2):
                lanes_macc(ws, H2_ + o * P2 + oy * N2, P, W2_ + (o * NI + k) * K1,
                           ws, H1_ + c * S1 * S1 + 2 * oy * S1, P, 4, 1, 5, 5, 0, 5, 1, 2, 12, 1, False, False, -1)
    h2 = seg(ws, H2_, N_H2)
    L.act_fprop(h2, consts)
    src = H2_
    if drop.size > 0:
        h2d = seg(ws, H2D_, N_H2)
        for i in range(h2d.size):
            h2d[i] = h2[i] * drop[i]
        src = H2D_
    # H3 and the output: fully connected, 8 outputs at a time
    lanes_emit(ws, H3_, 1, P, B3_, 1, P, N3, 0)
    for j in range(0, 24, 8):
        for i in range(0, N_H2, 64):
            lanes_macc(ws, H3_ + j, P, W3_ + j * N_H2 + i, ws, src + i, P,
                       8, 1, 1, 64, N_H2, 0, 1, 0, 0, 1, False, False, -1)
    for i in range(0, N_H2, 64):
        lanes_macc(ws, H3_ + 24, P, W3_ + 24 * N_H2 + i, ws, src + i, P,
                   6, 1, 1, 64, N_H2, 0, 1, 0, 0, 1, False, False, -1)
    L.act_fprop(seg(ws, H3_, N3), consts)
    lanes_emit(ws, Y_, 1, P, B4_, 1, P, NO, 0)
    for j in range(0, NO, 5):
        lanes_macc(ws, Y_ + j, P, W4_ + j * N3, ws, H3_, P, 5, 1, 1, 30, 30, 0, 1, 0, 0, 1, False, False, -1)
    if consts[4] == 0:
        L.act_fprop(seg(ws, Y_, NO), consts)


@njit(**L.INLINE)
def loss_bprop(ws, t, consts):
    """dE/da of the outputs into D4 (and dE/dy into DY for tanh outputs)."""
    y, d4 = seg(ws, Y_, NO), seg(ws, D4_, NO)
    if consts[4] != 0:      # softmax cross-entropy, per lane
        for l in range(V):
            top = y[l]
            for j in range(NO):
                top = max(top, y[j * V + l])
            s = y.dtype.type(0)
            for j in range(NO):
                d4[j * V + l] = np.exp(y[j * V + l] - top)
                s += d4[j * V + l]
            for j in range(NO):
                d4[j * V + l] = d4[j * V + l] / s - (1 if t[j] > 0 else 0)
    else:
        dy = seg(ws, DY_, NO)
        scale = y.dtype.type(2) / y.dtype.type(NO)
        for j in range(NO):
            for l in range(V):
                dy[j * V + l] = scale * (y[j * V + l] - t[j])
        L.act_bprop(y, dy, consts, d4)


@njit(**L.INLINE)
def loss_bbprop(ws, dws, consts):
    """d2E/da^2 of the outputs into dws's D4 (MSE on tanh outputs, as the paper's optimizer needs)."""
    ddy = seg(dws, DY_, NO)
    for i in range(ddy.size):
        ddy[i] = ddy.dtype.type(2) / ddy.dtype.type(NO)
    L.act_bbprop(seg(ws, Y_, NO), ddy, consts, seg(dws, D4_, NO))


@njit(**L.INLINE)
def act_back(y, dy, consts, d, square):
    if square:
        L.act_bbprop(y, dy, consts, d)
    else:
        L.act_bprop(y, dy, consts, d)


@njit(**L.INLINE)
def dh1_row(P, dws, a, w, d, s, ku, square):
    """Add to one row of H1's dE/dy (at a) what H2's plane reads of it through the weights at w,
    from H2's dE/da (d: the zero-margined rows, column 3): ku taps down the kernel, two rows apart;
    across, 3 taps for the even columns and 2 for the odd ones."""
    lanes_macc(dws, a, P, w, dws, d, s, 4, 2, ku, 3, 0, 10, 2, 1, -8, -1, square, False, -1)
    lanes_macc(dws, a + 1, P, w + 1, dws, d, s, 4, 2, ku, 2, 0, 10, 2, 1, -8, -1, square, False, -1)


@njit(**L.FLAGS)
def back(P, ws, dws, g, s, mode, table, consts, drop, square):
    """From dE/da of the outputs in dws's D4, every parameter's gradient, layer by layer down
    (bprop): stored in g (mode 0), or applied at once, g being the parameters P, as the step
    -lr * gradient (mode 1, s the lanes' lr) or -s * gradient (mode 2, s a step per parameter).
    Each layer's input derivatives are computed before its weights change. With square, the same
    pass with weights and inputs squared and f' squared gives the diagonal second derivatives
    (bbprop: no dropout, as in fast.bbprop). Compiled once for each mode and square: the kernels'
    strides and modes are compile-time constants."""
    literally(mode)
    literally(square)
    # output layer, then H3
    lanes_emit(g, B4_, 1, dws, D4_, 1, s, NO, mode)
    for i in range(0, N3, 6):
        lanes_fc_back(g, W4_ + i, P, W4_ + i, dws, DH3_ + i, dws, D4_, ws, H3_ + i, s, N3, NO, 6, square, mode)
    act_back(seg(ws, H3_, N3), seg(dws, DH3_, N3), consts, seg(dws, D3_, N3), square)
    src = H2D_ if drop.size > 0 and not square else H2_
    lanes_emit(g, B3_, 1, dws, D3_, 1, s, N3, mode)
    for i in range(0, N_H2, 6):
        lanes_fc_back(g, W3_ + i, P, W3_ + i, dws, DH2_ + i, dws, D3_, ws, src + i, s, N_H2, N3, 6, square, mode)
    dh2 = seg(dws, DH2_, N_H2)
    if not square:
        for i in range(drop.size):
            dh2[i] *= drop[i]
    # H2: dE/da into the zero-margined D2
    for o in range(12):
        for oy in range(N2):
            act_back(seg(ws, H2_ + o * P2 + oy * N2, N2), seg(dws, DH2_ + o * P2 + oy * N2, N2), consts,
                     seg(dws, D2_ + o * S2 * S2 + (oy + 2) * S2 + 2, N2), square)
    # dE/dy of H1's interior: each position sums the taps that read it, by parity of its row and
    # column (stride 2: taps ty = py mod 2, + 2, + 4 within the kernel)
    dh1 = seg(dws, DH1_, 12 * P1)
    for i in range(dh1.size):     # a loop: see fast.workspace
        dh1[i] = 0
    for o in range(12):
        for k in range(NI):
            c = table[o, k]
            w = W2_ + (o * NI + k) * K1
            for py in range(2, 2 + N1):
                a = DH1_ + c * P1 + (py - 2) * N1
                d = D2_ + o * S2 * S2 + ((py - py % 2) // 2 + 2) * S2 + 3
                # only the taps whose output row is inside H2 (the others would read the zero margin)
                if py == 2:
                    dh1_row(P, dws, a, w, d, s, 2, square)
                elif py == 8:
                    dh1_row(P, dws, a, w + 10, d - 8, s, 2, square)
                elif py % 2 == 0:
                    dh1_row(P, dws, a, w, d, s, 3, square)
                elif py == 9:
                    dh1_row(P, dws, a, w + 15, d - 8, s, 1, square)
                else:
                    dh1_row(P, dws, a, w + 5, d, s, 2, square)
    # H2's weights: sums over its 16 positions
    for o in range(12):
        for oy in range(N2):
            lanes_emit(g, B2_ + o * P2 + oy * N2, 1, dws, D2_ + o * S2 * S2 + (oy + 2) * S2 + 2, 1, s, N2, mode)
        for k in range(NI):
            c = table[o, k]
            for ty in range(K):
                lanes_macc(g, W2_ + (o * NI + k) * K1 + ty * K, dws, D2_ + o * S2 * S2 + 2 * S2 + 2,
                           ws, H1_ + c * S1 * S1 + ty * S1, s, 5, 1, 4, 4, 0, 8, 1, 1, 24, 2, False, square, mode)
    # H1
    for o in range(12):
        for oy in range(N1):
            act_back(seg(ws, H1_ + o * S1 * S1 + (oy + 2) * S1 + 2, N1), seg(dws, DH1_ + o * P1 + oy * N1, N1),
                     consts, seg(dws, D1_ + o * P1 + oy * N1, N1), square)
        for y in range(N1):
            for odd in range(2):
                lanes_emit(g, B1_ + o * P1 + y * N1 + 4 * odd, 1, dws, D1_ + o * P1 + y * N1 + odd, 2, s, 4, mode)
        for ty in range(K):
            lanes_macc(g, W1_ + o * K1 + ty * K, dws, D1_ + o * P1, ws, X_ + ty * S0, s,
                       5, 1, 8, 8, 0, 8, 1, 1, 40, 2, False, square, mode)


# --- optimizers with per-lane settings (the per-run ones are layers.*_step) -------------------------

@njit(**L.INLINE)
def adamw_coefficients(hyper, step, coef):
    """The per-lane constants of simd.lanes_adamw from hyper (LANES, 5) = lr, beta1, beta2, eps,
    weight decay, computed as layers.adamw_step computes them."""
    one = coef.dtype.type(1)
    for l in range(V):
        lr, b1, b2, eps, wd = hyper[l, 0], hyper[l, 1], hyper[l, 2], hyper[l, 3], hyper[l, 4]
        coef[l] = one - lr * wd
        coef[V + l] = one - b1
        coef[2 * V + l] = b2
        coef[3 * V + l] = one - b2
        coef[4 * V + l] = coef.dtype.type(np.float64(lr) / (1.0 - np.float64(b1) ** step))
        coef[5 * V + l] = coef.dtype.type(np.sqrt(1.0 - np.float64(b2) ** step))
        coef[6 * V + l] = eps


# --- the loops: groups of LANES runs (rows of params, N_FLAT * LANES each) ----------------------------

@njit(parallel=True, **L.FLAGS)
def train_chunk(params, images, T, start, stop, table, consts, steps,
                shift_ids, rolls, keep, drop_scale, adam, m, v, step0, h, running):
    """train_group for every group (row of params and of each setting), the groups over the cores.
    Numba's parallel loop, unlike the single-run kernels' threads: its compiled loop body trains
    about a third faster, which is worth its longer compile for the many-runs kernels."""
    for grp in prange(params.shape[0]):
        train_group(params[grp], images, T, start, stop, table, consts, steps[grp], shift_ids[grp], rolls, keep[grp],
                    drop_scale, adam, m[grp], v[grp], step0, h[grp], running, grp)


@njit(**L.INLINE)
def train_group(P, images, T, start, stop, table, consts, steps,
                shift_ids, rolls, keep, drop_scale, adam, m, v, step0, h, running, grp):
    """fast.train_chunk for group grp: the same updates, with the settings per lane: steps (LANES,)
    the lanes' lr for SGD, or like P a step per parameter; h, m, v like P; adam[grp] (LANES, 5), or
    adam None; running[grp] (3 * LANES,): the lanes' decay, lr and mu, or running None; shift_ids
    (examples, LANES); keep (examples, N_H2 * LANES)."""
    ws, ws2 = workspace(P, consts[2]), workspace(P, consts[2])
    grads, hess, running_steps = np.zeros_like(P), np.zeros_like(P), np.zeros_like(P)
    coef = np.zeros(7 * V, P.dtype)
    drop = np.empty(keep.shape[1], P.dtype)
    zero = P.dtype.type(0)
    no_shift = np.full(V, -1, np.int64)
    for n in range(start, stop):
        set_input(ws, images, n, rolls, shift_ids[n] if shift_ids.shape[0] > 0 else no_shift)
        for i in range(drop.size):
            drop[i] = drop_scale if keep[n, i] else zero
        fprop(P, ws, table, consts, drop)
        loss_bprop(ws, T[n], consts)
        if running is not None:   # the curvature first: both passes see the weights before the step
            loss_bbprop(ws, ws2, consts)
            back(P, ws, ws2, hess, P, 0, table, consts, drop, True)
            lanes_sdlm_steps(h, hess, running_steps, running[grp])
            back(P, ws, ws, P, running_steps, 2, table, consts, drop, False)
        elif adam is not None:
            back(P, ws, ws, grads, P, 0, table, consts, drop, False)
            adamw_coefficients(adam[grp], step0 + n + 1, coef)
            lanes_adamw(P, grads, m, v, coef)
        elif steps.shape[0] == V:     # SGD: each lane's lr
            back(P, ws, ws, P, steps, 1, table, consts, drop, False)
        else:
            back(P, ws, ws, P, steps, 2, table, consts, drop, False)


@njit(**L.FLAGS)
def estimate_hessian(P, images, T, examples, table, consts, h):
    """fast.estimate_hessian for a group of runs (h float64, like P)."""
    no_shift = np.full(V, -1, np.int64)
    rolls = np.zeros((0, 0), np.int64)
    ws, ws2 = workspace(P, consts[2]), workspace(P, consts[2])
    hess = np.zeros_like(P)
    for n in examples:
        set_input(ws, images, n, rolls, no_shift)
        fprop(P, ws, table, consts, P[:0])
        loss_bbprop(ws, ws2, consts)
        back(P, ws, ws2, hess, P, 0, table, consts, P[:0], True)
        h += hess
    h /= len(examples)


@njit(**L.FLAGS)
def evaluate(P, images, T, table, consts, start, stop, losses, preds):
    """For the group's runs (rows of losses and preds, one per lane) and examples start..stop-1: the
    loss (float64) and the predicted class."""
    no_shift = np.full(V, -1, np.int64)
    rolls = np.zeros((0, 0), np.int64)
    ws = workspace(P, consts[2])
    y = seg(ws, Y_, NO)
    out = np.empty(NO, P.dtype)
    for n in range(start, stop):
        set_input(ws, images, n, rolls, no_shift)
        fprop(P, ws, table, consts, P[:0])
        for l in range(V):
            for j in range(NO):
                out[j] = y[j * V + l]
            losses[l, n] = L.ce_fprop(out, T[n]) if consts[4] != 0 else L.mse_fprop(out, T[n])
            best = 0
            for j in range(1, NO):
                if out[j] > out[best]:
                    best = j
            preds[l, n] = best
