"""One digit's ink to the network's 16x16 input: step 6 of reading/images.py's algorithm (crop,
deslant, area resample, grey levels), written down exactly there and in docs/READING.md. It lives
in the science layer because two sides need the same function: `predict` reads a digit through
it, and the reader's training set (reader_data.py) is made of digits passed through it, so that
the network trains on exactly what it will read."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .errors import LecunError


SIZE = 16
MAX_SLANT = 1.0


def crop(v: np.ndarray) -> np.ndarray:
    ink = v > 0
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    return v[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def slant(v: np.ndarray) -> float:
    """The slant s = cov(x, y) / var(y) of the ink (step 6b), clipped to [-MAX_SLANT, MAX_SLANT]."""
    return _slant(v)[0]


def _slant(v: np.ndarray) -> tuple[float, float]:
    """(the slant, the ink's centre row cy)."""
    h, w = v.shape
    y, x = np.arange(h)[:, None] + 0.5, np.arange(w)[None, :] + 0.5
    m = v.sum()
    cx, cy = (v * x).sum() / m, (v * y).sum() / m
    vyy = (v * (y - cy) ** 2).sum()
    if vyy <= 0:
        return 0.0, cy
    s = (v * (x - cx) * (y - cy)).sum() / vyy
    return float(min(MAX_SLANT, max(-MAX_SLANT, s))), cy


def deslant(v: np.ndarray) -> np.ndarray:
    """Shear the rows so that the ink's principal axis is vertical (step 6b); `v` cropped."""
    s, cy = _slant(v)
    if s == 0.0:
        return v
    h, w = v.shape
    pad = math.ceil(abs(s) * h)
    j = np.arange(w + 2 * pad)[None, :]
    t = (j + 0.5 - pad + s * (np.arange(h)[:, None] + 0.5 - cy)) - 0.5
    k = np.floor(t).astype(np.int64)
    f = t - k
    # |s (i + 0.5 - cy)| <= pad, so -2 pad - 1 <= k and k + 1 <= w + pad + 1: zeros that wide on each
    # side make in[i, k] = 0 outside the row a plain lookup
    side = 2 * pad + 2
    padded = np.zeros((h, w + 2 * side))
    padded[:, side:side + w] = v
    k += side + np.arange(h)[:, None] * padded.shape[1]
    flat = padded.ravel()
    return crop((1.0 - f) * flat[k] + f * flat[k + 1])


def area_weights(n: int, scale: float, offset: float) -> np.ndarray:
    """(SIZE, n): entry [r, k] = the length of [offset + k scale, offset + (k + 1) scale) within [r, r + 1)."""
    lo = offset + np.arange(n) * scale
    r = np.arange(SIZE)[:, None]
    return np.clip(np.minimum(lo + scale, r + 1.0) - np.maximum(lo, r), 0.0, None)


def normalize(ink: np.ndarray, deslant_: bool = True) -> np.ndarray:
    """One digit's ink (2-D, >= 0, 0 = paper) -> the network's 16x16 input in [-1, 1], background
    exactly -1 (step 6 of the module doc)."""
    v = np.asarray(ink, dtype=np.float64)
    if v.ndim != 2 or not np.isfinite(v).all() or (v < 0).any():
        raise LecunError("a digit's ink must be a 2-D array of finite values >= 0")
    if not (v > 0).any():
        raise LecunError("the digit holds no ink")
    return normalized(crop(v), deslant_)


def normalized(v: np.ndarray, deslant_: bool = True) -> np.ndarray:
    """`normalize` of ink known to be a float64 2-D array >= 0, cropped to its pixels > 0 (a reader's
    candidate is made so): its steps 6b-6d without checking again, compiled (`_normalized`), because a
    reader normalizes some 35 candidates a strip and numpy's calls on arrays this small cost more than
    their arithmetic."""
    return _normalized(np.ascontiguousarray(v, dtype=np.float64), deslant_)


def reference(v: np.ndarray, deslant_: bool = True) -> np.ndarray:
    """`normalized` in numpy, step by step as the module doc and READING.md write them: what the
    compiled steps below are checked against (tests/test_reading.py)."""
    if deslant_:
        v = deslant(v)
    h, w = v.shape
    scale = SIZE / max(h, w)
    out = area_weights(h, scale, (SIZE - h * scale) / 2) @ v @ area_weights(w, scale, (SIZE - w * scale) / 2).T
    return 2.0 * out / out.max() - 1.0


# --- the same steps, compiled -----------------------------------------------------------------------
# Each line computes what the numpy function of the same name above does, in the same float64
# operations on each element; only sums run in their own order (row by row, left to right), so the
# outputs agree with the numpy functions' to rounding (tests/test_reading.py). No fastmath: the
# order is the one written, on any CPU.

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
def _slant_of(v):
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
    if vyy <= 0:
        return 0.0, cy
    return min(MAX_SLANT, max(-MAX_SLANT, vxy / vyy)), cy


@njit(cache=True, boundscheck=False)
def _deslanted(v):
    """`deslant`, cropped."""
    s, cy = _slant_of(v)
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
def _weights(n, scale, offset):
    """`area_weights`."""
    a = np.zeros((SIZE, n))
    for r in range(SIZE):
        for k in range(n):
            lo = offset + k * scale
            a[r, k] = max(0.0, min(lo + scale, r + 1.0) - max(lo, r))
    return a


@njit(cache=True, boundscheck=False)
def _normalized(v, deslant_):
    """`normalized`: rows @ v @ cols as sums over the weights that are not 0, then scaled to [-1, 1]."""
    if deslant_:
        v = _deslanted(v)
    h, w = v.shape
    scale = SIZE / max(h, w)
    rows, cols = _weights(h, scale, (SIZE - h * scale) / 2), _weights(w, scale, (SIZE - w * scale) / 2)
    across = np.zeros((SIZE, w))
    for r in range(SIZE):
        for i in range(h):
            if rows[r, i] != 0.0:
                for j in range(w):
                    across[r, j] += rows[r, i] * v[i, j]
    out = np.zeros((SIZE, SIZE))
    for c in range(SIZE):
        for j in range(w):
            if cols[c, j] != 0.0:
                for r in range(SIZE):
                    out[r, c] += across[r, j] * cols[c, j]
    top = out.max()
    for r in range(SIZE):
        for c in range(SIZE):
            out[r, c] = 2.0 * out[r, c] / top - 1.0
    return out
