"""The network as the compiled kernels see it: one description, derived from paper.py.

Every size, parameter offset, workspace slot, stride and unrolling block that the two kernel sets
use (single.py: one run; lanes.py: LANES runs per vector) is computed here from the paper's facts,
and checked against the paper's counts of units, connections and parameters when it is imported.
Numba reads the names below as compile-time constants.

Each run is one flat vector of the 9,760 parameters, in LAYOUT's order; the lane kernels keep the
same vector with the runs innermost, so a run's state moves between the kernel sets by reshaping.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from .. import paper

# --- sizes (section 5.1, figure 3) -------------------------------------------------------------------
IMAGE = paper.IMAGE_SIZE
K, STRIDE, PAD = paper.KERNEL, paper.STRIDE, paper.PAD
K1 = K * K                                   # taps per kernel
C1, N1 = paper.H1_PLANES, paper.H1_SIZE      # H1: planes, side
C2, N2 = paper.H2_PLANES, paper.H2_SIZE      # H2: planes, side
P1, P2 = N1 * N1, N2 * N2                    # positions per plane
NI = paper.H2_INPUTS_PER_PLANE               # H1 planes each H2 plane reads
N_H2 = C2 * P2
N3 = paper.H3_UNITS
NO = paper.N_CLASSES


def conv_out(size: int) -> int:
    """The side of a 5x5 stride-2 convolution's output over a side `size` input padded by 2."""
    return (size + 2 * PAD - K) // STRIDE + 1


assert conv_out(IMAGE) == N1 and conv_out(N1) == N2
assert IMAGE * IMAGE + C1 * P1 + N_H2 + N3 + NO == paper.UNITS
assert C1 * P1 * (K1 + 1) + N_H2 * (NI * K1 + 1) + N3 * (N_H2 + 1) + NO * (N3 + 1) == paper.CONNECTIONS

# --- parameters: (name in model.Net1989, shape in the kernels), in the order of the flat vector.
# Convolution weights are (out planes, inputs per plane, taps), H1 having one input plane; fully
# connected weights are (out, in), the transpose of model.Net1989's.
LAYOUT = (("H1w", (C1, 1, K1)), ("H1b", (C1, P1)), ("H2w", (C2, NI, K1)), ("H2b", (C2, P2)),
          ("H3w", (N3, N_H2)), ("H3b", (N3,)), ("outw", (NO, N3)), ("outb", (NO,)))
Params = namedtuple("Params", [name for name, _ in LAYOUT])
SHAPE = Params(*(shape for _, shape in LAYOUT))
SIZE = Params(*(int(np.prod(shape)) for _, shape in LAYOUT))
OFFSET = Params(*(int(o) for o in np.cumsum((0,) + SIZE[:-1])))   # where each block starts
N_FLAT = sum(SIZE)
assert N_FLAT == paper.PARAMETERS


# The network's options as the kernels read them (its values in the run's dtype): f(a) = A tanh(S a),
# or the ReLU when relu; tanh outputs and the MSE, or linear outputs and the cross-entropy when ce;
# the input's pad value; and the scale dropout gives the outputs it keeps, 1 / (1 - p).
# table: H2's connection table (planes, NI).
Settings = namedtuple("Settings", "A S pad relu ce drop_scale table")
# What the kernels read of a split, per example n: inputs[n] (the single-run kernels: the input
# unrolled for H1; the lane kernels: the image), targets[n], images[n] (the image, flat, then the pad
# value); for training with shifts, shifts (the single-run kernels: the unrolling of each roll; the
# lane kernels: each roll's source pixels) and, per row of the state, shift_ids[row][n] (which roll,
# -1 for none) and keep[row][n] (False where dropout drops a unit of H2).
Data = namedtuple("Data", "inputs targets images shifts shift_ids keep")


def workspace(**sizes: int):
    """Consecutive slots of a workspace, named in order: (their offsets, their sizes, the total)."""
    Slots = namedtuple("Slots", sizes)
    offsets = np.cumsum((0,) + tuple(sizes.values())[:-1])
    return Slots(*(int(o) for o in offsets)), Slots(*sizes.values()), sum(sizes.values())


# --- the single-run kernels (single.py): the positions of a feature map are the vector dimension.
# H1 is kept flat in H1_ORDER: within each row the even columns first, then the odd ones, so that
# H2's stride-2 taps read runs of RUN consecutive elements. For H2 to unroll from, each H1 plane is
# also kept padded: N1 + 2 PAD rows of [pad, x0 x2 x4 x6, pad, x1 x3 x5 x7] (PW elements), the pad
# slots holding the pad value wherever a tap falls outside the plane.
assert STRIDE == 2 and N1 == STRIDE * N2 and PAD == STRIDE   # what the runs and pad slots rely on
RUN = N2                          # one output row of H2 = one run of H1's even or odd columns
PW = 2 * (RUN + 1)                # padded row
HP = (N1 + 2 * PAD) * PW          # padded plane
H1_ORDER = np.array([y * N1 + x for y in range(N1) for x in (*range(0, N1, 2), *range(1, N1, 2))])  # -> model
# (flat offset, padded offset) of each run of H1's positions
H1_RUNS = np.array([(y * N1 + RUN * half, (y + PAD) * PW + (1, RUN + 2)[half]) for y in range(N1) for half in (0, 1)])
# padded offset of the run that tap (ty, tx) reads for H2's output row oy: (K1 taps, N2 rows). The
# tap reads columns x = 2 ox + tx - 2: even columns from slot tx / 2 of the row, odd ones from slot
# RUN + 1 + (tx - 1) / 2 (the pad slots take the columns -2, -1 and N1).
H2_RUNS = np.array([[(STRIDE * oy + ty) * PW + (tx // 2 if tx % 2 == 0 else RUN + 1 + (tx - 1) // 2)
                     for oy in range(N2)] for ty in range(K) for tx in range(K)])
# One example's activations, then their derivatives (gradients in bprop, second derivatives in
# bbprop), then those of every parameter (flat like the parameters).
WS1, WS1_SIZE, N_WS1 = workspace(
    x=K1 * P1, h1=C1 * P1, h1p=C1 * HP, col2=C1 * K1 * P2, h2=N_H2, h2d=N_H2, h3=N3, y=NO,
    dy=NO, d4=NO, dh3=N3, d3=N3, dh2=N_H2, d2=N_H2, dcol2=C1 * K1 * P2, dh1p=C1 * HP, dh1=C1 * P1, d1=C1 * P1,
    grads=N_FLAT)

# --- the lane kernels (lanes.py): every unit is a vector of LANES runs; sizes count vectors. The
# input and H1 are kept padded (their margins holding the pad value), H2's derivatives with a zero
# margin, so that every tap of every position is in bounds.
S0 = IMAGE + 2 * PAD              # padded input side
S1 = N1 + 2 * PAD                 # padded H1 side
S2 = N2 + 2 * PAD                 # H2's derivatives, zero-margined
WSL, WSL_SIZE, N_WSL = workspace(
    x=S0 * S0, h1=C1 * S1 * S1, h2=N_H2, h2d=N_H2, h3=N3, y=NO,
    dy=NO, d4=NO, dh3=N3, d3=N3, dh2=N_H2, d2=C2 * S2 * S2, dh1=C1 * P1, d1=C1 * P1)
# Unrolling of the fully connected layers: FC_BLOCK sums stay in registers at once; fprop adds
# FC_IN inputs per call; bprop passes over the weights BACK_BLOCK inputs at a time.
FC_BLOCK = 8
H3_FULL, H3_TAIL = N3 - N3 % FC_BLOCK, N3 % FC_BLOCK                      # 24 + 6
OUT_BLOCK = max(b for b in range(1, FC_BLOCK + 1) if NO % b == 0)          # 2 x 5
FC_IN = 64
BACK_BLOCK = max(b for b in range(1, FC_BLOCK + 1) if N3 % b == 0 and N_H2 % b == 0)   # 6
assert N_H2 % FC_IN == 0 and H3_TAIL > 0


def h1_row_taps(r: int) -> tuple[int, int, int]:
    """H2's taps that read row r of H1: the first tap row ty, the output row oy it serves, and how
    many there are (each next one STRIDE tap rows down and one output row up), counting only the
    output rows inside H2."""
    taps = [(ty, (r + PAD - ty) // STRIDE) for ty in range(K)
            if (r + PAD - ty) % STRIDE == 0 and 0 <= (r + PAD - ty) // STRIDE < N2]
    return taps[0][0], taps[0][1], len(taps)


DH1_ROWS = tuple(h1_row_taps(r) for r in range(N1))
assert {n for _, _, n in DH1_ROWS} <= {1, 2, 3}   # the counts lanes.back compiles for


def pack(params: dict[str, np.ndarray], dtype) -> np.ndarray:
    """model.Net1989's parameters -> the flat vector."""
    engine = {**params, "H1b": params["H1b"].reshape(C1, P1)[:, H1_ORDER],
              "H3w": params["H3w"].T, "outw": params["outw"].T}
    return np.concatenate([np.asarray(engine[name]).reshape(-1) for name, _ in LAYOUT]).astype(dtype)


def unpack(flat: np.ndarray) -> dict[str, np.ndarray]:
    """The flat vector back in model.Net1989's names and layouts."""
    blocks = {name: flat[o:o + n].reshape(shape) for (name, shape), o, n in zip(LAYOUT, OFFSET, SIZE)}
    h1b = np.empty_like(blocks["H1b"])
    h1b[:, H1_ORDER] = blocks["H1b"]
    return {"H1w": blocks["H1w"].reshape(C1, 1, K, K).copy(), "H1b": h1b.reshape(C1, N1, N1),
            "H2w": blocks["H2w"].reshape(C2, NI, K, K).copy(), "H2b": blocks["H2b"].reshape(C2, N2, N2).copy(),
            "H3w": blocks["H3w"].T.copy(), "H3b": blocks["H3b"].copy(),
            "outw": blocks["outw"].T.copy(), "outb": blocks["outb"].copy()}
