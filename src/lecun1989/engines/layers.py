"""The network's layers as compiled kernels, each with its fprop, bprop and bbprop (as in SN / Lush).

bbprop back-propagates diagonal second derivatives with f'' dropped (Gauss-Newton, LeCun 1987,
"Efficient BackProp" 1998): d2E/da_i^2 = f'(a_i)^2 sum_j w_ji^2 d2E/da_j^2, and each weight gets
the sum, over the connections that share it, of x^2 d2E/da^2. It is the bprop of the same layer
with weights and inputs squared, which is how the kernels below compute it.

Layouts are chosen so that the innermost work runs over contiguous memory of useful length:
feature maps are (planes, positions) with the 64 or 16 output positions innermost, convolution
inputs are unrolled into (planes, 25 taps, positions) ("im2col"), convolution weights are
(out planes, inputs per plane, taps) over the connection table, and fully connected weights are
(out, in). Every function works in the dtype of its arrays; the network's options come in as a
network.Settings whose values have that dtype, so no float64 leaks into float32 code.

Every kernel is compiled once and cached on disk (numba's cache=True), keyed on the contents of
every engine source (cache.py).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import target
from .cache import key_on_engine_sources
from .simd import FASTMATH, row_dots, row_macc, row_outer

target.fix()   # before the first compiled function is defined: one target for every AVX2 CPU (target.py)
key_on_engine_sources()   # before the first cached function is defined

# simd.FASTMATH's float flags (no reassoc). nogil: the engine runs its kernels in threads, one run (or
# group of runs) each.
FLAGS = dict(cache=True, nogil=True, fastmath=set(FASTMATH), boundscheck=False, error_model="numpy")
# Small kernels are inlined into their callers, so no arrays are passed (and ref-counted) per call.
INLINE = dict(FLAGS, inline="always")


def im2col_index(size: int, kernel: int, stride: int, pad: int) -> np.ndarray:
    """(taps, positions) -> flat input index of each tap of each output position. Padding taps read
    index size * size: the input is stored with one extra element there that holds the pad value,
    so the unrolling needs no branch."""
    out = (size + 2 * pad - kernel) // stride + 1
    idx = np.full((kernel * kernel, out * out), size * size, dtype=np.int64)
    for ty in range(kernel):
        for tx in range(kernel):
            for oy in range(out):
                for ox in range(out):
                    iy, ix = stride * oy + ty - pad, stride * ox + tx - pad
                    if 0 <= iy < size and 0 <= ix < size:
                        idx[ty * kernel + tx, oy * out + ox] = iy * size + ix
    return idx


@njit(**INLINE)
def im2col(h, idx, col):
    """h (planes, size*size + 1, the last the pad value) -> col (planes, taps, positions)."""
    for c in range(col.shape[0]):
        for t in range(col.shape[1]):
            for p in range(col.shape[2]):
                col[c, t, p] = h[c, idx[t, p]]


# --- convolution with untied biases and a connection table ----------------------------------------
# col (in planes, taps, positions) is the unrolled input, W (out planes, inputs per plane, taps),
# table (out planes, inputs per plane) the input plane of each; B, the output a and its derivative
# d are (out planes, positions). Each row of positions is one vector operation (simd), so taps and
# n (positions) must be compile-time constants. bbprop is bprop with inputs and weights squared
# (square=True).

@njit(**INLINE)
def conv_fprop(col, W, B, table, a, taps, n):
    K = W.shape[1]
    af, cf, wf = a.reshape(a.size), col.reshape(col.size), W.reshape(W.size)
    for o in range(B.shape[0]):
        for p in range(n):
            a[o, p] = B[o, p]
        for k in range(K):
            row_macc(af, o * n, wf, (o * K + k) * taps, cf, table[o, k] * taps * n, taps, n)


@njit(**INLINE)
def conv_bprop(col, W, table, d, gW, gB, dcol, need_dcol, square, taps, n):
    """d = dE/da -> gW, gB, and dE/dcol when need_dcol."""
    K = W.shape[1]
    df, cf, wf, gf, dcf = d.reshape(d.size), col.reshape(col.size), W.reshape(W.size), gW.reshape(gW.size), \
        dcol.reshape(dcol.size)
    if need_dcol:
        dcol[:] = 0
    for o in range(gB.shape[0]):
        for p in range(n):
            gB[o, p] = d[o, p]
        for k in range(K):
            iw, ic = (o * K + k) * taps, table[o, k] * taps * n
            row_dots(gf, iw, df, o * n, cf, ic, taps, n, square)
            if need_dcol:
                row_outer(dcf, ic, wf, iw, df, o * n, taps, n, square)


# --- fully connected: W (out, in) ------------------------------------------------------------------

@njit(**INLINE)
def fc_fprop(x, W, b, a):
    """a = W x + b. Each sum runs in eight partial sums (input i into sum i % 8 up to the last full
    eight, which one vector instruction carries as independent chains), added pairwise, then the
    inputs left over in order: an order written here, since the compiler may not reassociate."""
    n = W.shape[1]
    full = n - n % 8
    zero = W.dtype.type(0)
    for j in range(W.shape[0]):
        s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = zero
        for i in range(0, full, 8):
            s0 += W[j, i] * x[i]
            s1 += W[j, i + 1] * x[i + 1]
            s2 += W[j, i + 2] * x[i + 2]
            s3 += W[j, i + 3] * x[i + 3]
            s4 += W[j, i + 4] * x[i + 4]
            s5 += W[j, i + 5] * x[i + 5]
            s6 += W[j, i + 6] * x[i + 6]
            s7 += W[j, i + 7] * x[i + 7]
        s = ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))
        for i in range(full, n):
            s += W[j, i] * x[i]
        a[j] = b[j] + s


@njit(**INLINE)
def fc_bprop(x, W, d, gW, gb, dx, need_dx, square):
    if need_dx:
        dx[:] = 0
    for j in range(W.shape[0]):
        dj = d[j]
        gb[j] = dj
        for i in range(W.shape[1]):
            gW[j, i] = dj * (x[i] * x[i] if square else x[i])
        if need_dx:
            for i in range(W.shape[1]):
                dx[i] += (W[j, i] * W[j, i] if square else W[j, i]) * dj


# --- dropout: each output times its scale, 0 where dropped and 1 / (1 - p) where kept -------------------

@njit(**INLINE)
def drop_fprop(x, scale, y):
    for i in range(x.size):
        y[i] = x[i] * scale[i]


@njit(**INLINE)
def drop_bprop(d, scale, square):
    """dE/dy -> dE/dx in place (d2E/dy^2 -> d2E/dx^2 when square: the scale squared)."""
    for i in range(d.size):
        d[i] *= scale[i] * scale[i] if square else scale[i]


# --- activations: fprop a -> y in place, bprop dE/dy -> dE/da using y -------------------------------
# s: network.Settings: the scaled tanh A tanh(S a) (plain tanh is A = S = 1), or the ReLU when s.relu.

# float32 tanh as Eigen computes it: a [13/6] rational function on [-7.905, 7.905], within 4e-7 of
# tanh. Unlike libm's tanhf it vectorizes (this numba has no SVML).
_CLAMP = np.float32(7.90531110763549805)
_P1, _P3, _P5, _P7, _P9, _P11, _P13 = (np.float32(c) for c in (
    4.89352455891786e-03, 6.37261928875436e-04, 1.48572235717979e-05, 5.12229709037114e-08,
    -8.60467152213735e-11, 2.00018790482477e-13, -2.76076847742355e-16))
_Q0, _Q2, _Q4, _Q6 = (np.float32(c) for c in (
    4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04, 1.19825839466702e-06))


@njit(**INLINE)
def tanh32(x):
    x = min(max(x, -_CLAMP), _CLAMP)
    x2 = x * x
    p = ((((((_P13 * x2 + _P11) * x2 + _P9) * x2 + _P7) * x2 + _P5) * x2 + _P3) * x2 + _P1) * x
    q = ((_Q6 * x2 + _Q4) * x2 + _Q2) * x2 + _Q0
    return p / q


# float64 tanh as Cephes computes it (S. L. Moshier, tanh.c and exp.c): below 0.625 in magnitude
# x + x^3 P(x^2) / Q(x^2), else 1 - 2 / (exp(2|x|) + 1), exp by a two-part ln 2 reduction and a Pade
# form, 2^n by halving n. Within 2 ulp of libm's tanh; unlike it (a call per unit, half a float64
# step), it vectorizes.
_SMALL, _LARGEST = 0.625, 40.0   # 2|x| past _LARGEST: tanh is 1 to the last bit
_TP = (-9.64399179425052238628e-1, -9.92877231001918586564e1, -1.61468768441708447952e3)
_TQ = (1.12811678491632931402e2, 2.23548839060100448583e3, 4.84406305325125486048e3)
_LOG2E, _LN2_HI, _LN2_LO = 1.4426950408889634073599, 6.93145751953125e-1, 1.42860682030941723212e-6
_EP = (1.26177193074810590878e-4, 3.02994407707441961300e-2, 9.99999999999999999910e-1)
_HALVINGS = tuple((float(b), 2.0 ** b) for b in (32, 16, 8, 4, 2, 1))
_EQ = (3.00198505138664455042e-6, 2.52448340349684104192e-3, 2.27265548208155028766e-1, 2.00000000000000000009e0)


@njit(**INLINE)
def pow2(n):
    """2^n for a whole n in 0 .. 63 held as a float, in selects and products (no table, no bit casts)."""
    s = 1.0
    for bit, factor in _HALVINGS:
        s, n = (s * factor, n - bit) if n >= bit else (s, n)
    return s


@njit(**INLINE)
def tanh64(x):
    a, z = abs(x), x * x
    small = x + x * z * (((_TP[0] * z + _TP[1]) * z + _TP[2]) / (((z + _TQ[0]) * z + _TQ[1]) * z + _TQ[2]))
    t = min(2.0 * a, _LARGEST) if a == a else a   # a NaN stays one
    n = np.floor(t * _LOG2E + 0.5)   # a float: numba's math.floor makes an int64, which AVX2 cannot vectorize
    r = t - n * _LN2_HI - n * _LN2_LO
    rr = r * r
    p = r * ((_EP[0] * rr + _EP[1]) * rr + _EP[2])
    e = (1.0 + 2.0 * (p / ((((_EQ[0] * rr + _EQ[1]) * rr + _EQ[2]) * rr + _EQ[3]) - p))) * pow2(n)
    big = 1.0 - 2.0 / (e + 1.0)
    return small if a < _SMALL else (-big if x < 0 else big)


@njit(**INLINE)
def act_fprop(y, s):
    """y = f(y), in place."""
    A, S = s.A, s.S
    if s.relu:
        for i in range(y.size):
            y[i] = max(y[i], 0)
    elif y.itemsize == 4:
        for i in range(y.size):
            y[i] = A * tanh32(S * y[i])
    else:
        for i in range(y.size):
            y[i] = A * tanh64(S * y[i])


@njit(**INLINE)
def act_bprop(y, dy, s, d):
    A, S = s.A, s.S
    if s.relu:
        for i in range(y.size):
            d[i] = dy[i] if y[i] > 0 else 0
    else:
        k = S / A   # f'(a) = S (A^2 - y^2) / A
        for i in range(y.size):
            d[i] = dy[i] * k * (A * A - y[i] * y[i])


@njit(**INLINE)
def act_bbprop(y, ddy, s, dd):
    """d2E/da^2 = f'(a)^2 d2E/dy^2 (the f'' term dropped)."""
    A, S = s.A, s.S
    k = S / A
    for i in range(y.size):
        fp = k * (A * A - y[i] * y[i])
        dd[i] = ddy[i] * fp * fp


# --- loss: mean over the outputs of (target - output)^2 ---------------------------------------------

@njit(**INLINE)
def mse_fprop(y, t):
    s = 0.0
    for i in range(y.size):
        e = np.float64(t[i]) - np.float64(y[i])
        s += e * e
    return s / y.size


@njit(**INLINE)
def mse_bprop(y, t, dy):
    scale = y.dtype.type(2) / y.dtype.type(y.size)
    for i in range(y.size):
        dy[i] = scale * (y[i] - t[i])


@njit(**INLINE)
def mse_bbprop(y, ddy):
    """d2E/dy^2 = 2 / n for every output."""
    ddy[:] = y.dtype.type(2) / y.dtype.type(y.size)


# --- loss: softmax cross-entropy of the outputs (logits) against a target distribution q --------------
# q is one-hot on the class (the t that is +1); for an example that is no digit (every t -1, the
# reader's not-digits) it is uniform, 1 / n: E = logsumexp(y) - sum_i q_i y_i, dE/dy = softmax(y) - q.

@njit(**INLINE)
def ce_target(t, i, uniform):
    """q_i: 1 for the class, 0 elsewhere; 1 / n everywhere when `uniform` (no class is marked)."""
    if uniform:
        return 1.0 / t.size
    return 1.0 if t[i] > 0 else 0.0


@njit(**INLINE)
def no_class(t):
    for i in range(t.size):
        if t[i] > 0:
            return False
    return True


@njit(**INLINE)
def ce_fprop(y, t):
    top = np.float64(y[0])
    label = -1
    for i in range(y.size):
        top = max(top, np.float64(y[i]))
        if t[i] > 0:
            label = i
    s = 0.0
    for i in range(y.size):
        s += np.exp(np.float64(y[i]) - top)
    if label >= 0:
        return top + np.log(s) - np.float64(y[label])
    mean = 0.0
    for i in range(y.size):
        mean += np.float64(y[i])
    return top + np.log(s) - mean / y.size


@njit(**INLINE)
def ce_bprop(y, t, dy):
    """dE/dy = softmax(y) - q."""
    top = y[0]
    for i in range(y.size):
        top = max(top, y[i])
    s = y.dtype.type(0)
    for i in range(y.size):
        dy[i] = np.exp(y[i] - top)
        s += dy[i]
    uniform = no_class(t)
    for i in range(y.size):
        dy[i] = dy[i] / s - ce_target(t, i, uniform)   # in float64, as the 1 and 0 were
