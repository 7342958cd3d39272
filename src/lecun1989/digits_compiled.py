"""digits.py's steps 6b-6d (deslant, area resample, grey levels) compiled with numba: a reader
normalizes some 35 candidates a strip, and numpy's calls on arrays this small cost more than their
arithmetic. Each line computes what the numpy function of digits.py of the same name does, in the same
float64 operations on each element; only sums run in their own order (row by row, left to right), so
the outputs agree with digits.reference to rounding (tests/test_reading.py). No fastmath: the order is
the one written, on any CPU. The grid's side and the slant's limits come in as arguments, so that this
module needs nothing of digits.py, which imports it only when a digit is first normalized."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .engines import target

# numba's target is set up by the first function compiled: the engine's, the same for every machine
target.fix()


@njit(cache=True, boundscheck=False)
def _crop_box(v):
    """(r0, r1, c0, c1) of the pixels > 0 of `v`, which holds some."""
    h, w = v.shape
    r0, r1, c0, c1 = h, 0, w, 0
    for i in range(h):
        for j in range(w):
            if v[i, j] > 0:
                r0, r1, c0, c1 = min(r0, i), max(r1, i + 1), min(c0, j), max(c1, j + 1)
    return r0, r1, c0, c1


@njit(cache=True, boundscheck=False)
def _slant_of(v, min_slant, max_slant):
    """`_slant`: (the slant, the ink's centre row cy)."""
    h, w = v.shape
    m = sx = sy = 0.0
    for i in range(h):
        for j in range(w):
            m += v[i, j]
            sx += v[i, j] * (j + 0.5)
            sy += v[i, j] * (i + 0.5)
    cx, cy = sx / m, sy / m
    vyy = vxy = 0.0
    for i in range(h):
        for j in range(w):
            vyy += v[i, j] * ((i + 0.5) - cy) ** 2
            vxy += v[i, j] * ((j + 0.5) - cx) * ((i + 0.5) - cy)
    if vyy <= 0 or abs(vxy / vyy) < min_slant:
        return 0.0, cy
    return min(max_slant, max(-max_slant, vxy / vyy)), cy


@njit(cache=True, boundscheck=False)
def _deslanted(v, min_slant, max_slant):
    """`deslant`, cropped."""
    s, cy = _slant_of(v, min_slant, max_slant)
    if s == 0.0:
        return v
    h, w = v.shape
    pad = math.ceil(abs(s) * h)
    out = np.zeros((h, w + 2 * pad))
    for i in range(h):
        for j in range(w + 2 * pad):
            t = ((j + 0.5) - pad + s * ((i + 0.5) - cy)) - 0.5
            k = math.floor(t)
            f = t - k
            a = v[i, k] if 0 <= k < w else 0.0
            b = v[i, k + 1] if 0 <= k + 1 < w else 0.0
            out[i, j] = (1.0 - f) * a + f * b
    r0, r1, c0, c1 = _crop_box(out)
    return out[r0:r1, c0:c1]


@njit(cache=True, boundscheck=False)
def _weights(n, scale, offset, size):
    """`area_weights`."""
    a = np.zeros((size, n))
    for r in range(size):
        for k in range(n):
            lo = offset + k * scale
            a[r, k] = max(0.0, min(lo + scale, r + 1.0) - max(lo, r))
    return a


@njit(cache=True, boundscheck=False)
def normalized(v, deslant_, size, min_slant, max_slant):
    """digits.normalized on a size x size grid: rows @ v @ cols as sums over the weights that are not 0,
    then scaled to [-1, 1]."""
    if deslant_:
        v = _deslanted(v, min_slant, max_slant)
    h, w = v.shape
    scale = size / max(h, w)
    rows, cols = _weights(h, scale, (size - h * scale) / 2, size), _weights(w, scale, (size - w * scale) / 2, size)
    across = np.zeros((size, w))
    for r in range(size):
        for i in range(h):
            if rows[r, i] != 0.0:
                for j in range(w):
                    across[r, j] += rows[r, i] * v[i, j]
    out = np.zeros((size, size))
    for c in range(size):
        for j in range(w):
            if cols[c, j] != 0.0:
                for r in range(size):
                    out[r, c] += across[r, j] * cols[c, j]
    top = out.max()
    for r in range(size):
        for c in range(size):
            out[r, c] = 2.0 * out[r, c] / top - 1.0
    return out
