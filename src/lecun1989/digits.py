"""One digit's ink to the network's 16x16 input: step 6 of reading/images.py's algorithm (crop,
deslant, area resample, grey levels), written down exactly there and in docs/READING.md. It lives
in the science layer because two sides need the same function: `predict` reads a digit through
it, and the reader's training set (reader_data.py) is made of digits passed through it, so that
the network trains on exactly what it will read."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from .engines.cache import first_call
from .errors import LecunError


SIZE = 16
MAX_SLANT = 1.0
# a slant smaller than this is 0: ink symmetric about its axis has slant 0, computed as +-1e-17, whose
# shear would leave ink of 1e-17 in a column the crop then keeps (and which sum order decides)
MIN_SLANT = 1e-9


def crop(v: np.ndarray) -> np.ndarray:
    ink = v > 0
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    return v[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]


def slant(v: np.ndarray) -> float:
    """The slant s = cov(x, y) / var(y) of the ink (step 6b), 0 below MIN_SLANT, clipped to [-MAX_SLANT, MAX_SLANT]."""
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
    if abs(s) < MIN_SLANT:
        return 0.0, cy
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
    candidate is made so): its steps 6b-6d without checking again, compiled (digits_compiled.py),
    because a reader normalizes some 35 candidates a strip and numpy's calls on arrays this small cost
    more than their arithmetic."""
    return _steps()(np.require(v, np.float64, "CW"), bool(deslant_), SIZE, MIN_SLANT, MAX_SLANT)


def compiled() -> bool:
    """Whether `normalized` runs compiled; else its last bits are `reference`'s."""
    return _steps() is not _reference


def _reference(v: np.ndarray, deslant_: bool, size: int, min_slant: float, max_slant: float) -> np.ndarray:
    return reference(v, deslant_)


@lru_cache(maxsize=1)
def _steps():
    """The compiled steps, or where numba cannot be loaded (reading needs no compiler), `reference`,
    slower, the same to rounding."""
    try:
        from .digits_compiled import normalized as steps
    except Exception:   # numba missing, or broken for this Python: any error while loading it
        return _reference
    ok = first_call(steps, (np.ones((1, 1)), True, SIZE, MIN_SLANT, MAX_SLANT), "the reader's normalization")
    return steps if ok else _reference


def reference(v: np.ndarray, deslant_: bool = True) -> np.ndarray:
    """`normalized` in numpy, step by step as the module doc and READING.md write them: what the
    compiled steps are checked against (tests/test_reading.py)."""
    if deslant_:
        v = deslant(v)
    h, w = v.shape
    scale = SIZE / max(h, w)
    out = area_weights(h, scale, (SIZE - h * scale) / 2) @ v @ area_weights(w, scale, (SIZE - w * scale) / 2).T
    return 2.0 * out / out.max() - 1.0
