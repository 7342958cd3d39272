"""The optimizers' steps, for both compiled kernel sets (single.py and lanes.py).

Each optimizer is a kind below. A kernel set's `train_chunk(kind)` is compiled once per kind, with
only that kind's code: the kind is a constant of the compiled function, and the branches of other
kinds are removed before compiling. A step sees the flat parameters of `width` runs interleaved
(width 1 in the single-run kernels, LANES in the lane kernels: parameter i of run l at
i * width + l), their gradient g, the kind's state arrays (laid out like the parameters) and
`hyper`, the kind's settings per run: hyper[k * width + l] is setting k of HYPER[kind] for run l.

The lane kernels fuse the steps that need no state of their own (SGD, and SDLM once its step
sizes are set) into the backward pass, applying each gradient as it is made (lanes.back); every
other step runs here, after the gradient.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np
from numba import njit

from ..config import OptimConfig
from .layers import INLINE
from .simd import LANES, adamw_step, follow_step, momentum_step

SGD, SDLM, SDLM_RUNNING, ADAMW, MOMENTUM = range(5)

# per kind: its settings (hyper, in this order) and its state arrays (like the parameters); the
# part of the state one pass leaves to the next is OptimConfig.carried
HYPER = {SGD: ("lr",), SDLM: ("lr",), SDLM_RUNNING: ("lr", "mu", "decay"),
         ADAMW: ("lr", "beta1", "beta2", "eps", "weight_decay"), MOMENTUM: ("lr", "momentum")}
STATE = {SGD: (), SDLM: ("h", "steps"), SDLM_RUNNING: ("h", "steps"), ADAMW: ("m", "v"), MOMENTUM: ("m",)}


# The runs' state as the kernels take it, one row per run (or per group of LANES runs): the
# parameters, the kind's state arrays (empty rows where the kind has none), hyper, and the number
# of steps taken before this pass.
State = namedtuple("State", "params h m v steps hyper step0")


def kind(optim: OptimConfig) -> int:
    if optim.name == "sdlm":
        return SDLM_RUNNING if optim.running else SDLM
    return {"sgd": SGD, "adamw": ADAMW, "momentum": MOMENTUM}[optim.name]


def hyper(optim: OptimConfig, lrs: np.ndarray) -> np.ndarray:
    """(runs, settings): each run's settings for a pass, lrs holding the runs' learning rates with
    the pass's schedule factor."""
    values = {"lr": lrs, "mu": optim.mu, "decay": optim.decay, "beta1": optim.betas[0], "beta2": optim.betas[1],
              "eps": optim.eps, "weight_decay": optim.weight_decay,
              "momentum": optim.momentum}
    return np.stack([np.broadcast_to(np.asarray(values[name], dtype=np.float64), lrs.shape)
                     for name in HYPER[kind(optim)]], axis=1)


def sdlm_steps(lrs: np.ndarray, mu: float, h: np.ndarray) -> np.ndarray:
    """SDLM's step size per parameter for a pass: eps / (mu + h), lrs spread like h."""
    return lrs / (mu + h)


@njit(**INLINE)
def follow_plain(h, new, steps, hyper, width):
    """SDLM's running curvature, elementwise: h moves toward this example's second derivatives `new`
    by the decay, and the step sizes follow it, lr / (mu + h)."""
    for l in range(width):   # a run's settings read once: for a run alone, a loop LLVM vectorizes
        lr, mu, decay = hyper[l], hyper[width + l], hyper[2 * width + l]
        for k in range(l, h.size, width):
            h[k] += decay * (new[k] - h[k])
            steps[k] = lr / (mu + h[k])


@njit(**INLINE)
def adamw_plain(p, g, m, v, hyper, decay, step_size, c2, width):
    """PyTorch's AdamW (its single-tensor form), elementwise, with the step's decay, step size and
    bias correction c2 per run."""
    one = p.dtype.type(1)
    for i in range(0, p.size, width):
        for l in range(width):
            k = i + l
            b1, b2, eps = hyper[width + l], hyper[2 * width + l], hyper[3 * width + l]
            gk = g[k]
            p[k] *= decay[l]
            m[k] += (one - b1) * (gk - m[k])
            v[k] = v[k] * b2 + (one - b2) * gk * gk
            p[k] -= step_size[l] * m[k] / (np.sqrt(v[k]) / c2[l] + eps)


@njit(**INLINE)
def adamw_factors(p, hyper, width, t):
    """AdamW's factors at step t, per run, in p's type: the weight decay's 1 - lr wd, the step size
    lr / (1 - b1^t) and the bias correction sqrt(1 - b2^t) (the last two computed in float64)."""
    one = p.dtype.type(1)
    decay, step_size, c2 = np.empty(width, p.dtype), np.empty(width, p.dtype), np.empty(width, p.dtype)
    for l in range(width):
        lr, b1, b2 = hyper[l], hyper[width + l], hyper[2 * width + l]
        decay[l] = one - lr * hyper[4 * width + l]
        step_size[l] = p.dtype.type(np.float64(lr) / (1.0 - np.float64(b1) ** t))
        c2[l] = p.dtype.type(np.sqrt(1.0 - np.float64(b2) ** t))
    return decay, step_size, c2


@njit(**INLINE)
def momentum_plain(p, g, m, hyper, width):
    """Rumelhart, Hinton & Williams 1986, elementwise: dw = momentum dw - lr g."""
    for i in range(0, p.size, width):
        for l in range(width):
            m[i + l] = hyper[width + l] * m[i + l] - hyper[l] * g[i + l]
            p[i + l] += m[i + l]


# In the lane kernels the settings change from lane to lane, and LLVM leaves the loops above scalar
# (the arrays might overlap): SDLM's divisions, AdamW's square roots and divisions alone took longer
# than the rest of a step. There they run as simd.py's vector steps, the same operations in the same
# order, a vector of LANES runs at a time (the tests compare the bits). A run alone keeps the loops,
# which LLVM vectorizes.

@njit(**INLINE)
def follow_curvature(h, new, steps, hyper, width):
    """SDLM's running mode, before each example's step (follow_plain)."""
    if width == LANES:
        for i in range(0, h.size, LANES):
            follow_step(h, new, steps, hyper, i)
    else:
        follow_plain(h, new, steps, hyper, width)


@njit(**INLINE)
def update(kind, p, g, h, m, v, steps, hyper, width, t):
    """The step of optimizer `kind` from the gradient g; t counts the steps so far, this one included."""
    if kind == SGD:                                  # w -= lr g
        for i in range(0, p.size, width):
            for l in range(width):
                p[i + l] -= hyper[l] * g[i + l]
    elif kind == SDLM or kind == SDLM_RUNNING:       # w -= eps / (mu + h) g
        for i in range(p.size):
            p[i] -= steps[i] * g[i]
    elif kind == ADAMW:
        decay, step_size, c2 = adamw_factors(p, hyper, width, t)
        if width == LANES:
            for i in range(0, p.size, LANES):
                adamw_step(p, g, m, v, hyper, decay, step_size, c2, i)
        else:
            adamw_plain(p, g, m, v, hyper, decay, step_size, c2, width)
    elif kind == MOMENTUM:
        if width == LANES:
            for i in range(0, p.size, LANES):
                momentum_step(p, g, m, hyper, i)
        else:
            momentum_plain(p, g, m, hyper, width)
