"""model.Net1989's forward pass for a batch of images, compiled with numba (float64): what a reader reads
its candidates with. torch's float64 convolutions unroll and multiply one image at a time, some 0.4 ms
a call on a strip's 35 candidates; here the whole pass over them takes half of torch's time with the
reader's relu networks, and 0.8 of it with the paper's, whose tanh (libm's, one unit at a time) is
about half of it.

The network of model.py's doc: each layer's weighted sums, in the order the loops below write (taps
row by row, then input planes in the connection table's order), plus the unit's bias, through the
activation. Its outputs agree with Net1989.outputs to rounding (tests/test_reading.py); no fastmath,
so the order is the one written, on any CPU. model.py imports this module when a batch is read; where
numba cannot be loaded, reading runs on torch's forward pass."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .engines import target

# numba's target is set up by the first function compiled: the engine's, the same for every machine
target.fix()


@njit(cache=True, boundscheck=False)
def _act(a, relu, scale_out, scale_in):
    """The activation: relu, or scale_out tanh(scale_in a) (plain tanh with scales 1, exactly)."""
    return max(a, 0.0) if relu else scale_out * math.tanh(a * scale_in)


@njit(cache=True, boundscheck=False)
def _unroll(padded, k, stride, out_side, cols):
    """cols[p, t, i * out_side + j] = padded plane p at the tap t = (ki, kj) of output position (i, j)."""
    for p in range(padded.shape[0]):
        for ki in range(k):
            for kj in range(k):
                for i in range(out_side):
                    for j in range(out_side):
                        cols[p, ki * k + kj, i * out_side + j] = padded[p, stride * i + ki, stride * j + kj]


@njit(cache=True, boundscheck=False)
def _layer(cols, table, w, b, relu, scale_out, scale_in, out, pad):
    """A convolution layer: out[o, pad + i, pad + j] = act(sum over k, t of w[o, k, t] cols[table[o, k], t, q]
    + b[o, i, j]), q = i * side + j."""
    side = b.shape[1]
    acc = np.empty(cols.shape[2])
    for o in range(w.shape[0]):
        acc[:] = 0.0
        for k in range(table.shape[1]):
            src = table[o, k]
            for t in range(cols.shape[1]):
                wt = w[o, k, t]
                for q in range(cols.shape[2]):
                    acc[q] += wt * cols[src, t, q]
        for q in range(cols.shape[2]):
            out[o, pad + q // side, pad + q % side] = _act(acc[q] + b[o, q // side, q % side], relu, scale_out, scale_in)


@njit(cache=True, boundscheck=False)
def _full(x, w, b, relu, scale_out, scale_in, linear, out):
    """out[u] = act(sum over i of x[i] w[i, u] + b[u]) (the weighted sum alone where linear)."""
    out[:] = 0.0
    for i in range(x.shape[0]):
        for u in range(w.shape[1]):
            out[u] += x[i] * w[i, u]
    for u in range(w.shape[1]):
        out[u] = out[u] + b[u] if linear else _act(out[u] + b[u], relu, scale_out, scale_in)


@njit(cache=True, boundscheck=False, nogil=True)   # nogil: runs read side by side in threads (reject)
def outputs(images, H1w, H1b, H2w, H2b, H3w, H3b, outw, outb, table, relu, scale_out, scale_in, linear_out,
            pad_value, stride, pad):
    """(n, side, side) images -> (n, 10) outputs (logits where linear_out: the cross-entropy network's)."""
    n, side, k = images.shape[0], images.shape[1], H1w.shape[2]
    n1, n2 = H1b.shape[1], H2b.shape[1]
    w1 = H1w.reshape(H1w.shape[0], 1, k * k)
    w2 = H2w.reshape(H2w.shape[0], H2w.shape[1], k * k)
    one = np.zeros((H1w.shape[0], 1), np.int64)   # every H1 plane reads the input
    col1 = np.empty((1, k * k, n1 * n1))
    col2 = np.empty((H1w.shape[0], k * k, n2 * n2))
    # the input and H1 padded with the pad value: the border is never written
    x = np.full((1, side + 2 * pad, side + 2 * pad), pad_value)
    h1 = np.full((H1w.shape[0], n1 + 2 * pad, n1 + 2 * pad), pad_value)
    h2 = np.empty((H2w.shape[0], n2, n2))
    h3 = np.empty(H3w.shape[1])
    out = np.empty((n, outw.shape[1]))
    for e in range(n):
        x[0, pad:pad + side, pad:pad + side] = images[e]
        _unroll(x, k, stride, n1, col1)
        _layer(col1, one, w1, H1b, relu, scale_out, scale_in, h1, pad)
        _unroll(h1, k, stride, n2, col2)
        _layer(col2, table, w2, H2b, relu, scale_out, scale_in, h2, 0)
        _full(h2.reshape(-1), H3w, H3b, relu, scale_out, scale_in, False, h3)
        _full(h3, outw, outb, relu, scale_out, scale_in, linear_out, out[e])
    return out
