"""How sure the network is of a digit, and what rejecting the unsure buys.

The figure of merit of the zip-code work was not the raw error but the share of digits that must be
rejected (sent to a person) to bring the error of the accepted ones down to a target: about 9%
rejection for 1% error on zip-code digits (Le Cun et al., "Handwritten digit recognition with a
back-propagation network", NIPS 2, 1989). The digits are rejected least sure first, by the margin:
the difference between the two most active outputs.
"""

from __future__ import annotations

import numpy as np


def margin(outputs: np.ndarray) -> np.ndarray:
    """(n, 10) outputs -> (n,) the largest output minus the second largest."""
    top2 = np.sort(np.asarray(outputs, dtype=np.float64), axis=1)[:, -2:]
    return top2[:, 1] - top2[:, 0]


def rejection_curve(margins: np.ndarray, correct: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rejecting the k least sure digits for k = 0 .. n - 1: (the share rejected, the error of the
    accepted, the margin a digit needs to be accepted). Ties in the margin are rejected together."""
    margins, correct = np.asarray(margins, dtype=np.float64), np.asarray(correct, dtype=bool)
    n = len(margins)
    order = np.argsort(margins, kind="stable")
    m, wrong = margins[order], ~correct[order]
    # accepted after rejecting the first k: digits k .. n-1; errors among them
    errors_left = np.cumsum(wrong[::-1])[::-1]
    k = np.arange(n)
    # a threshold accepts margins >= m[k]; with ties, only the first k of a run of equal margins is a
    # threshold that can be set
    first = np.concatenate([[True], m[1:] != m[:-1]])
    k, thresholds = k[first], m[first]
    return k / n, errors_left[k] / (n - k), thresholds


def rejection_at(margins: np.ndarray, correct: np.ndarray, error: float = 0.01) -> tuple[float, float]:
    """(the smallest share of digits to reject so that the accepted ones err at most `error`, the
    margin threshold that does it: accept a digit when its margin is at least that)."""
    rejected, err, thresholds = rejection_curve(margins, correct)
    ok = np.flatnonzero(err <= error)
    if len(ok) == 0:
        return 1.0, float("inf")
    return float(rejected[ok[0]]), float(thresholds[ok[0]])
