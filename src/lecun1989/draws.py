"""A run's random draws, made with numpy alone: its initial weights and its training noise.

The initial weights are the best-known reproduction's, which model.Net1989 has always drawn: for each
weight tensor in the order H1, H2, H3, output, torch.rand from a torch.Generator seeded with the run's
seed, then (u - 0.5) * 2 * 2.4 / d in float32, where d is the fan-in F (the paper's U(-2.4/F, 2.4/F),
init "linear") or its square root (init "sqrt"); biases zero but the output's. They are drawn here bit
for bit as torch draws them (tests/test_model.py checks it against torch), so that a run starts without
loading torch, a second of a command's start: torch's CPU generator is the Mersenne Twister MT19937
seeded with the seed's low 32 bits (numpy's RandomState, whose stream numpy keeps stable, seeds the same
generator alike and gives its raw 32-bit outputs as integers over the full range), and its float32
uniform takes, element after element, the low 24 bits of one 32-bit output over 2^24.
"""

from __future__ import annotations

import numpy as np

from . import paper
from .config import NetConfig

_K, _N1, _N2 = paper.KERNEL, paper.H1_SIZE, paper.H2_SIZE
_N_H2 = paper.H2_PLANES * _N2 * _N2
# name -> (shape, fan-in: None for a bias), in the order of the draws (model.Net1989.PARAMS)
SHAPES = {
    "H1w": ((paper.H1_PLANES, 1, _K, _K), _K * _K),
    "H1b": ((paper.H1_PLANES, _N1, _N1), None),
    "H2w": ((paper.H2_PLANES, paper.H2_INPUTS_PER_PLANE, _K, _K), _K * _K * paper.H2_INPUTS_PER_PLANE),
    "H2b": ((paper.H2_PLANES, _N2, _N2), None),
    "H3w": ((_N_H2, paper.H3_UNITS), _N_H2),
    "H3b": ((paper.H3_UNITS,), None),
    "outw": ((paper.H3_UNITS, paper.N_CLASSES), paper.H3_UNITS),
    "outb": ((paper.N_CLASSES,), None),
}
UNIFORM_BITS = 24   # float32's significand: torch's float uniform keeps this many bits of a 32-bit draw


def initial_weights(config: NetConfig, seed: int) -> dict[str, np.ndarray]:
    """A run's initial parameters (float32, model.Net1989's names and layouts), as torch draws them."""
    mt = np.random.RandomState(seed & 0xFFFFFFFF)   # torch seeds its MT19937 with the low 32 bits
    half, two, scale = np.float32(0.5), np.float32(2), np.float32(paper.INIT_SCALE)
    out = {}
    for name, (shape, fan_in) in SHAPES.items():
        if fan_in is None:
            value = config.output_bias if name == "outb" else 0.0
            out[name] = np.full(shape, value, dtype=np.float32)
            continue
        raw = mt.randint(0, 1 << 32, size=int(np.prod(shape)), dtype=np.uint64)   # the raw outputs, in turn
        u = ((raw & ((1 << UNIFORM_BITS) - 1)) * 2.0 ** -UNIFORM_BITS).astype(np.float32)
        denom = np.float32(fan_in ** 0.5 if config.init == "sqrt" else fan_in)
        out[name] = ((u - half) * two * scale / denom).reshape(shape)   # float32 at every step, as torch's
    return out


def training_noise(config: NetConfig, seed: int, pass_num: int, n: int):
    """The random draws of one run's pass, made up front from a generator seeded by (seed, pass), so
    that a run is reproducible, runs in a batch are independent, and both engines see the same draws.

    Returns (shifts, keep): shifts int64 (n, 2), each of y and x in [-shift, shift], or None; keep
    bool (n, 12, 4, 4), False where H2's output is dropped, or None.
    """
    rng = np.random.default_rng([seed, pass_num, 1989])
    shifts = rng.integers(-config.shift, config.shift + 1, size=(n, 2)) if config.shift else None
    keep = rng.random((n, paper.H2_PLANES, paper.H2_SIZE, paper.H2_SIZE)) >= config.dropout if config.dropout else None
    return shifts, keep
