"""The paper's network as a readable PyTorch module (LeCun et al. 1989, section 5.1, figure 3).

    input 1x16x16 -> H1 12x8x8 -> H2 12x4x4 -> H3 30 -> output 10

H1 and H2 are 5x5 convolutions with stride 2 over inputs padded by 2 with -1 (the background),
with weights shared inside a plane and one bias per unit ("untied" biases). Each H2 plane reads
8 of the 12 H1 planes through a connection table held as data. All units use the activation.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import paper
from .errors import LecunError

# H2 plane -> the 8 H1 planes it reads, in increasing order.
TABLES = {
    # The paper gives no pattern; the common assumption (and the best-known reproduction's):
    # planes 0-3 read H1 planes 0-7, planes 4-7 read 4-11, planes 8-11 read 0-3 and 8-11.
    "block": [list(range(0, 8))] * 4 + [list(range(4, 12))] * 4 + [[0, 1, 2, 3, 8, 9, 10, 11]] * 4,
    # Each H2 plane reads its own 8 consecutive H1 planes, wrapping around (plane o reads o..o+7 mod
    # 12): every H2 plane sees a different subset, in the spirit of LeNet-5's table (LeCun et al.
    # 1998, table I), where each plane of C3 reads a different set of contiguous S2 planes.
    "cyclic": [sorted((o + k) % 12 for k in range(8)) for o in range(12)],
}

# f(a) = A tanh(S a). The scaled one is LeCun's later papers' "scaled hyperbolic tangent":
# f(+-1) = +-1, and f'' is largest near +-1.
ACTIVATION_SCALES = {"tanh": (1.0, 1.0), "scaled_tanh": (1.7159, 2.0 / 3.0)}
_A, _S = ACTIVATION_SCALES["scaled_tanh"]
ACTIVATIONS = {
    "tanh": torch.tanh,
    "scaled_tanh": lambda a: _A * torch.tanh(a * _S),
}

INITS = ("sqrt", "linear")  # U(-2.4/sqrt(F), 2.4/sqrt(F)) or the literal U(-2.4/F, 2.4/F)


@dataclass(frozen=True)
class NetConfig:
    activation: str = "tanh"
    init: str = "sqrt"
    output_bias: float = 0.0
    table: str = "block"

    def __post_init__(self):
        for field, value, allowed in (("activation", self.activation, ACTIVATIONS),
                                      ("init", self.init, INITS), ("table", self.table, TABLES)):
            if value not in allowed:
                raise LecunError(f"unknown {field} {value!r}; choose one of {', '.join(allowed)}")

    def to_dict(self) -> dict:
        return asdict(self)


def connection_table(name: str) -> np.ndarray:
    table = np.array(TABLES[name], dtype=np.int64)
    assert table.shape == (paper.H2_PLANES, paper.H2_INPUTS_PER_PLANE)
    return table


class Net1989(nn.Module):
    # Parameter names and layouts (fully connected weights as (in, out)) follow the best-known
    # reproduction, and so does the order of the random draws: the same seed, the same weights.
    PARAMS = ("H1w", "H1b", "H2w", "H2b", "H3w", "H3b", "outw", "outb")

    def __init__(self, config: NetConfig = NetConfig(), seed: int = paper.REPRO_SEED):
        super().__init__()
        self.config = config
        self.act = ACTIVATIONS[config.activation]
        g = torch.Generator().manual_seed(seed)

        def winit(fan_in, *shape):
            denom = fan_in ** 0.5 if config.init == "sqrt" else fan_in
            return nn.Parameter((torch.rand(*shape, generator=g) - 0.5) * 2 * paper.INIT_SCALE / denom)

        k, n1, n2 = paper.KERNEL, paper.H1_SIZE, paper.H2_SIZE
        n_in = paper.H2_INPUTS_PER_PLANE
        self.H1w = winit(k * k, paper.H1_PLANES, 1, k, k)
        self.H1b = nn.Parameter(torch.zeros(paper.H1_PLANES, n1, n1))
        self.H2w = winit(k * k * n_in, paper.H2_PLANES, n_in, k, k)
        self.H2b = nn.Parameter(torch.zeros(paper.H2_PLANES, n2, n2))
        n_h2 = paper.H2_PLANES * n2 * n2
        self.H3w = winit(n_h2, n_h2, paper.H3_UNITS)
        self.H3b = nn.Parameter(torch.zeros(paper.H3_UNITS))
        self.outw = winit(paper.H3_UNITS, paper.H3_UNITS, paper.N_CLASSES)
        self.outb = nn.Parameter(torch.full((paper.N_CLASSES,), float(config.output_bias)))
        self.register_buffer("table", torch.from_numpy(connection_table(config.table)), persistent=False)

    def h2_dense_weight(self) -> torch.Tensor:
        """H2's weights as a 12x12 convolution, zero where the table has no connection."""
        rows = torch.arange(paper.H2_PLANES)[:, None]
        dense = self.H2w.new_zeros(paper.H2_PLANES, paper.H1_PLANES, *self.H2w.shape[2:])
        return dense.index_put((rows, self.table), self.H2w)

    def layers(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The activations of H1, H2, H3 and the output for a batch x of shape (N, 1, 16, 16)."""
        pad = (paper.PAD,) * 4
        h1 = self.act(F.conv2d(F.pad(x, pad, value=paper.PAD_VALUE), self.H1w, stride=paper.STRIDE) + self.H1b)
        h2 = self.act(F.conv2d(F.pad(h1, pad, value=paper.PAD_VALUE), self.h2_dense_weight(),
                               stride=paper.STRIDE) + self.H2b)
        h3 = self.act(h2.flatten(start_dim=1) @ self.H3w + self.H3b)
        out = self.act(h3 @ self.outw + self.outb)
        return [h1, h2, h3, out]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)[-1]

    def get_params(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name).detach().cpu().numpy().copy() for name in self.PARAMS}

    def set_params(self, params: dict[str, np.ndarray]) -> None:
        with torch.no_grad():
            for name in self.PARAMS:
                getattr(self, name).copy_(torch.from_numpy(np.asarray(params[name])))

    def describe(self) -> list[dict]:
        """Per layer: units, connections (weights + bias per unit), free parameters, multiply-adds.

        Counted from the module's own tensors and a forward pass, not typed in.
        """
        with torch.no_grad():
            acts = self.layers(torch.zeros(1, 1, paper.IMAGE_SIZE, paper.IMAGE_SIZE, dtype=self.H1w.dtype))
        weights = [(self.H1w, self.H1b), (self.H2w, self.H2b), (self.H3w, self.H3b), (self.outw, self.outb)]
        fan_ins = [self.H1w[0].numel(), self.H2w[0].numel(), self.H3w.shape[0], self.outw.shape[0]]
        rows = [{"layer": "input", "shape": "x".join(map(str, (1, paper.IMAGE_SIZE, paper.IMAGE_SIZE))),
                 "units": paper.IMAGE_SIZE ** 2, "connections": 0, "parameters": 0, "multiply_adds": 0}]
        for name, act, (w, b), fan_in in zip(("H1", "H2", "H3", "output"), acts, weights, fan_ins):
            units = act[0].numel()
            rows.append({"layer": name, "shape": "x".join(map(str, act.shape[1:])), "units": units,
                         "connections": units * (fan_in + 1), "parameters": w.numel() + b.numel(),
                         "multiply_adds": units * fan_in})
        return rows
