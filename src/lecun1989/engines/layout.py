"""The compiled engines' parameter layout: every run is one flat vector of 9,760 parameters.

Both the single-run kernels (fast.py) and the many-run kernels (lanes.py, where the runs are the
innermost dimension of the same vector) use it, so a run's state moves between them by reshaping.
"""

from __future__ import annotations

import numpy as np

from .. import paper

K1 = paper.KERNEL * paper.KERNEL          # taps per kernel
P1 = paper.H1_SIZE * paper.H1_SIZE        # H1 positions per plane
P2 = paper.H2_SIZE * paper.H2_SIZE        # H2 positions per plane
N_H2 = paper.H2_PLANES * P2
NI = paper.H2_INPUTS_PER_PLANE
NO = paper.N_CLASSES
N3 = paper.H3_UNITS

# (name in model.Net1989, shape in this engine), in the order of the flat parameter vector: 9,760
# parameters. Convolution weights are (out planes, inputs per plane, taps); H1 has one input plane.
LAYOUT = (("H1w", (paper.H1_PLANES, 1, K1)), ("H1b", (paper.H1_PLANES, P1)),
          ("H2w", (paper.H2_PLANES, NI, K1)), ("H2b", (paper.H2_PLANES, P2)),
          ("H3w", (N3, N_H2)), ("H3b", (N3,)), ("outw", (NO, N3)), ("outb", (NO,)))
N_FLAT = sum(int(np.prod(shape)) for _, shape in LAYOUT)


# H1's biases (and H1 in fast.py): within each row of 8 positions the even columns come first, then
# the odd ones, so that H2's 5x5 stride-2 taps read runs of 4 consecutive elements of H1 in fast.py.
H1_ORDER = np.array([y * paper.H1_SIZE + x for y in range(paper.H1_SIZE)
                     for x in (*range(0, paper.H1_SIZE, 2), *range(1, paper.H1_SIZE, 2))])   # -> model position


def pack(params: dict[str, np.ndarray], dtype) -> np.ndarray:
    engine = {**params, "H1b": params["H1b"].reshape(paper.H1_PLANES, P1)[:, H1_ORDER],
              "H3w": params["H3w"].T, "outw": params["outw"].T}
    return np.concatenate([np.asarray(engine[name]).reshape(-1) for name, _ in LAYOUT]).astype(dtype)


def unpack(flat: np.ndarray) -> dict[str, np.ndarray]:
    """The flat vector back in model.Net1989's names and layouts."""
    blocks, o = {}, 0
    for name, shape in LAYOUT:
        n = int(np.prod(shape))
        blocks[name] = flat[o:o + n].reshape(shape)
        o += n
    k, n1, n2 = paper.KERNEL, paper.H1_SIZE, paper.H2_SIZE
    h1b = np.empty_like(blocks["H1b"])
    h1b[:, H1_ORDER] = blocks["H1b"]
    return {"H1w": blocks["H1w"].reshape(paper.H1_PLANES, 1, k, k).copy(),
            "H1b": h1b.reshape(paper.H1_PLANES, n1, n1),
            "H2w": blocks["H2w"].reshape(paper.H2_PLANES, NI, k, k).copy(),
            "H2b": blocks["H2b"].reshape(paper.H2_PLANES, n2, n2).copy(),
            "H3w": blocks["H3w"].T.copy(), "H3b": blocks["H3b"].copy(),
            "outw": blocks["outw"].T.copy(), "outb": blocks["outb"].copy()}
