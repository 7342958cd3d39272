"""The network's layers as compiled kernels, each with its fprop, bprop and bbprop (as in SN / Lush).

bbprop back-propagates diagonal second derivatives with f'' dropped (Gauss-Newton, LeCun 1987,
"Efficient BackProp" 1998): d2E/da_i^2 = f'(a_i)^2 sum_j w_ji^2 d2E/da_j^2, and each weight gets
the sum, over the connections that share it, of x^2 d2E/da^2. It is the bprop of the same layer
with weights and inputs squared, which is how the kernels below compute it.

Layouts are chosen so that the innermost loops run over contiguous memory of useful length:
feature maps are (planes, positions) with the 64 or 16 output positions innermost, convolution
inputs are unrolled once per example into (planes, 25 taps, positions) ("im2col"), and fully
connected weights are (out, in). Every function works in the dtype of its arrays; scalar
constants come in as arrays of that dtype so no float64 leaks into float32 code.

Every kernel is compiled once and cached on disk (numba's cache=True).
"""

from __future__ import annotations

import numpy as np
from numba import njit

# reassoc lets reductions vectorize; contract allows FMA. No assumptions about NaN or infinity.
FLAGS = dict(cache=True, fastmath={"reassoc", "contract", "nsz"}, boundscheck=False, error_model="numpy")
# Small kernels are inlined into their callers, so no arrays are passed (and ref-counted) per call.
INLINE = dict(FLAGS, inline="always")


def im2col_index(size: int, kernel: int, stride: int, pad: int) -> np.ndarray:
    """(taps, positions) -> flat input index of each tap of each output position, or -1 for padding."""
    out = (size + 2 * pad - kernel) // stride + 1
    idx = np.full((kernel * kernel, out * out), -1, dtype=np.int64)
    for ty in range(kernel):
        for tx in range(kernel):
            for oy in range(out):
                for ox in range(out):
                    iy, ix = stride * oy + ty - pad, stride * ox + tx - pad
                    if 0 <= iy < size and 0 <= ix < size:
                        idx[ty * kernel + tx, oy * out + ox] = iy * size + ix
    return idx


@njit(**INLINE)
def im2col(h, idx, pad_value, col):
    """h (planes, size*size) -> col (planes, taps, positions); padding taps read pad_value."""
    for c in range(h.shape[0]):
        for t in range(idx.shape[0]):
            for p in range(idx.shape[1]):
                i = idx[t, p]
                col[c, t, p] = h[c, i] if i >= 0 else pad_value


@njit(**INLINE)
def col2im(dcol, idx, dh):
    """The adjoint of im2col: dh (planes, size*size) = sum of dcol over the taps that read each input."""
    dh[:] = 0
    for c in range(dcol.shape[0]):
        for t in range(idx.shape[0]):
            for p in range(idx.shape[1]):
                i = idx[t, p]
                if i >= 0:
                    dh[c, i] += dcol[c, t, p]


# --- convolution with untied biases and a connection table ----------------------------------------
# As matrix products over the unrolled input: col (in planes * taps, positions), W (out planes,
# in planes * taps) dense, with `mask` zero where the connection table has no connection (those
# weights start at zero and their gradient is masked, so they stay zero). B (out planes, positions).
# The products go to BLAS, far faster here than any loop nest over these small shapes.

@njit(**INLINE)
def conv_fprop(col, W, B, a):
    np.dot(W, col, a)
    for o in range(a.shape[0]):
        for p in range(a.shape[1]):
            a[o, p] += B[o, p]


@njit(**INLINE)
def conv_bprop(col, W, mask, d, gW, gB, dcol, need_dcol):
    """d = dE/da (out planes, positions) -> gW, gB, and dE/dcol when need_dcol."""
    np.dot(d, col.T, gW)
    for o in range(gW.shape[0]):
        for i in range(gW.shape[1]):
            gW[o, i] *= mask[o, i]
    gB[:] = d
    if need_dcol:
        np.dot(W.T, d, dcol)


@njit(**INLINE)
def conv_bbprop(col, W, mask, dd, hW, hB, ddcol, need_ddcol):
    """dd = d2E/da^2 -> hW, hB (second derivatives of the weights), and d2E/dcol^2 when need_ddcol."""
    conv_bprop(col * col, W * W, mask, dd, hW, hB, ddcol, need_ddcol)


# --- fully connected: W (out, in) ------------------------------------------------------------------

@njit(**INLINE)
def fc_fprop(x, W, b, a):
    for j in range(W.shape[0]):
        s = b[j]
        for i in range(W.shape[1]):
            s += W[j, i] * x[i]
        a[j] = s


@njit(**INLINE)
def fc_bprop(x, W, d, gW, gb, dx, need_dx):
    if need_dx:
        dx[:] = 0
    for j in range(W.shape[0]):
        dj = d[j]
        gb[j] = dj
        for i in range(W.shape[1]):
            gW[j, i] = dj * x[i]
        if need_dx:
            for i in range(W.shape[1]):
                dx[i] += W[j, i] * dj


@njit(**INLINE)
def fc_bbprop(x, W, dd, hW, hb, ddx, need_ddx):
    fc_bprop(x * x, W * W, dd, hW, hb, ddx, need_ddx)


# --- activations: fprop a -> y, bprop dE/dy -> dE/da using y ---------------------------------------
# consts: [A, S, pad value, relu, linear output]: the scaled tanh A tanh(S a) (plain tanh is A = S = 1),
# or the ReLU when consts[3] is 1.

@njit(**INLINE)
def act_fprop(a, consts, y):
    A, S = consts[0], consts[1]
    if consts[3] != 0:
        for i in range(a.size):
            y.flat[i] = max(a.flat[i], 0)
    else:
        for i in range(a.size):
            y.flat[i] = A * np.tanh(S * a.flat[i])


@njit(**INLINE)
def act_bprop(y, dy, consts, d):
    A, S = consts[0], consts[1]
    if consts[3] != 0:
        for i in range(y.size):
            d.flat[i] = dy.flat[i] if y.flat[i] > 0 else 0
    else:
        k = S / A   # f'(a) = S (A^2 - y^2) / A
        for i in range(y.size):
            yi = y.flat[i]
            d.flat[i] = dy.flat[i] * k * (A * A - yi * yi)


@njit(**INLINE)
def act_bbprop(y, ddy, consts, dd):
    """d2E/da^2 = f'(a)^2 d2E/dy^2 (the f'' term dropped)."""
    A, S = consts[0], consts[1]
    k = S / A
    for i in range(y.size):
        yi = y.flat[i]
        fp = k * (A * A - yi * yi)
        dd.flat[i] = ddy.flat[i] * fp * fp


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


# --- loss: softmax cross-entropy of the outputs (logits); t holds +1 for the class -------------------

@njit(**INLINE)
def ce_fprop(y, t):
    top = np.float64(y[0])
    label = 0
    for i in range(y.size):
        top = max(top, np.float64(y[i]))
        if t[i] > 0:
            label = i
    s = 0.0
    for i in range(y.size):
        s += np.exp(np.float64(y[i]) - top)
    return top + np.log(s) - np.float64(y[label])


@njit(**INLINE)
def ce_bprop(y, t, dy):
    """dE/dy = softmax(y) - onehot(label)."""
    top = y[0]
    for i in range(y.size):
        top = max(top, y[i])
    s = y.dtype.type(0)
    for i in range(y.size):
        dy[i] = np.exp(y[i] - top)
        s += dy[i]
    for i in range(y.size):
        dy[i] = dy[i] / s - (1 if t[i] > 0 else 0)


# --- optimizers: separate from the layers, they see only parameters and gradients ------------------

# SGD and SDLM both come down to a step size per parameter (lr, or eps / (mu + h)), recomputed
# before each pass, or after every example for SDLM's running estimate of h.

@njit(**INLINE)
def diagonal_step(params, grads, steps):
    for i in range(params.size):
        params[i] -= steps[i] * grads[i]


@njit(**INLINE)
def sdlm_steps(h, lr, mu, steps):
    for i in range(h.size):
        steps[i] = lr / (mu + h[i])


@njit(**INLINE)
def adamw_step(params, grads, m, v, hyper, step):
    """PyTorch's AdamW (single-tensor form), hyper = lr, beta1, beta2, eps, weight decay."""
    lr, b1, b2, eps, wd = hyper[0], hyper[1], hyper[2], hyper[3], hyper[4]
    one = params.dtype.type(1)
    decay = one - lr * wd
    c1 = 1.0 - np.float64(b1) ** step
    c2_sqrt = np.sqrt(1.0 - np.float64(b2) ** step)
    step_size = params.dtype.type(np.float64(lr) / c1)
    c2 = params.dtype.type(c2_sqrt)
    for i in range(params.size):
        g = grads[i]
        params[i] *= decay
        m[i] += (one - b1) * (g - m[i])
        v[i] = v[i] * b2 + (one - b2) * g * g
        params[i] -= step_size * m[i] / (np.sqrt(v[i]) / c2 + eps)


@njit(**INLINE)
def running_average(h, new, decay):
    for i in range(h.size):
        h[i] += decay * (new[i] - h[i])
