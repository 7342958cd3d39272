"""The paper's network as a readable PyTorch module (LeCun et al. 1989, section 5.1, figure 3).

    input 1x16x16 -> H1 12x8x8 -> H2 12x4x4 -> H3 30 -> output 10

H1 and H2 are 5x5 convolutions with stride 2 over inputs padded by 2 with -1 (the background),
with weights shared inside a plane and one bias per unit ("untied" biases). Each H2 plane reads
8 of the 12 H1 planes through a connection table held as data. All units use the activation.
"""

from __future__ import annotations

import contextlib

import numpy as np

from .store.atomic import signals_deferred

# Ctrl-C while torch loads its C++ core would raise inside a C++ callback and abort the process
# ("terminate called ..."), not stop it with one line: held until torch is loaded, then delivered.
with signals_deferred():
    import torch
    import torch.nn.functional as F
    from torch import nn

from . import paper
from .config import ACTIVATION_NAMES, ACTIVATION_SCALES, EXPLODED, INITS, LOSSES, TABLES, NetConfig, connection_table
from .draws import SHAPES, initial_weights

__all__ = ["ACTIVATIONS", "ACTIVATION_SCALES", "EXPLODED", "INITS", "LOSSES", "TABLES", "Net1989", "NetConfig",
           "one_thread", "table_groups"]

_A, _S = ACTIVATION_SCALES["scaled_tanh"]
ACTIVATIONS = {
    "tanh": torch.tanh,
    "scaled_tanh": lambda a: _A * torch.tanh(a * _S),
    "relu": torch.relu,
}
assert tuple(ACTIVATIONS) == ACTIVATION_NAMES


@contextlib.contextmanager
def one_thread():
    """torch's kernels split their sums over its threads, so the last bits of a result would depend
    on the machine's thread count: every figure this package computes with torch runs on one."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def table_groups(table: np.ndarray) -> list[tuple[slice, list[int]]]:
    """H2's planes in runs of consecutive planes that read the same H1 planes: per run, its H2 planes
    and the H1 planes they read, in the table's order (H2w[o, k] weighs H1 plane table[o, k]).

    The block table gives the best-known reproduction's three groups: H2 planes 0-3 read H1 planes
    0-7, planes 4-7 read 4-11, planes 8-11 read 0-3 then 8-11; the cyclic one, twelve groups of one.
    """
    groups, start = [], 0
    for o in range(1, len(table) + 1):
        if o == len(table) or not np.array_equal(table[o], table[start]):
            groups.append((slice(start, o), table[start].tolist()))
            start = o
    return groups


class Net1989(nn.Module):
    # Parameter names and layouts (fully connected weights as (in, out)) follow the best-known
    # reproduction, and so does the order of the random draws: the same seed, the same weights.
    PARAMS = tuple(SHAPES)   # in the order of the draws

    def __init__(self, config: NetConfig = NetConfig(), seed: int = paper.REPRO_SEED):
        super().__init__()
        self.config = config
        self.act = ACTIVATIONS[config.activation]
        for name, value in initial_weights(config, seed).items():   # torch.rand's draws, made in numpy
            setattr(self, name, nn.Parameter(torch.from_numpy(value)))
        table = connection_table(config.table)
        self.register_buffer("table", torch.from_numpy(table), persistent=False)
        self.h2_groups = table_groups(table)

    def h2_sums(self, h1_padded: torch.Tensor) -> torch.Tensor:
        """H2's weighted sums (without the bias) over the padded H1 planes: per group of H2 planes
        reading the same 8 H1 planes (table_groups), one convolution of those planes, gathered in
        the table's order, with the group's weights. For the block table this is the best-known
        reproduction's computation, operation for operation: its three 8-plane convolutions, in its
        order, concatenated on the plane axis; so the same weights give the same bits."""
        return torch.cat([F.conv2d(h1_padded[:, inputs], self.H2w[planes], stride=paper.STRIDE)
                          for planes, inputs in self.h2_groups], dim=1)

    def layers(self, x: torch.Tensor, shift=None, keep=None) -> list[torch.Tensor]:
        """The activations of H1, H2, H3 and the output for a batch x of shape (N, 1, 16, 16).

        Training noise, for one example (N = 1): shift (dy, dx) rolls the image (wrapping around,
        as the best-known reproduction's torch.roll does); keep (12, 4, 4) drops H2's outputs where
        False and scales the others by 1 / (1 - dropout), as torch's dropout does. H2's activations
        are returned before the dropout.
        """
        if shift is not None:
            x = torch.roll(x, (int(shift[0]), int(shift[1])), (2, 3))
        pad = (paper.PAD,) * 4
        h1 = self.act(F.conv2d(F.pad(x, pad, value=paper.PAD_VALUE), self.H1w, stride=paper.STRIDE) + self.H1b)
        h2 = self.act(self.h2_sums(F.pad(h1, pad, value=paper.PAD_VALUE)) + self.H2b)
        h2d = h2 if keep is None else h2 * (torch.from_numpy(keep).to(h2.dtype) * (1 / (1 - self.config.dropout)))
        h3 = self.act(h2d.flatten(start_dim=1) @ self.H3w + self.H3b)
        a = h3 @ self.outw + self.outb
        out = a if self.config.loss == "ce" else self.act(a)
        return [h1, h2, h3, out]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The outputs (for the cross-entropy loss: the logits)."""
        return self.layers(x)[-1]

    def activations(self, images: np.ndarray) -> list[np.ndarray]:
        """H1, H2, H3 and the outputs for images (N, 16, 16) or (N, 1, 16, 16), in the network's
        precision, the same bits on any machine (one thread)."""
        x = torch.from_numpy(np.asarray(images)).to(self.H1w.dtype).reshape(-1, 1, paper.IMAGE_SIZE, paper.IMAGE_SIZE)
        with torch.no_grad(), one_thread():
            return [t.numpy() for t in self.layers(x)]

    def outputs(self, images: np.ndarray) -> np.ndarray:
        """The outputs (logits for the cross-entropy loss) for a batch of images, as activations()."""
        return self.activations(images)[-1]

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
