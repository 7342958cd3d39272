"""The reference engine: a plain PyTorch loop, one example at a time, easy to read and check.

It is the recipe of the paper and of the best-known reproduction, step for step: forward one
example, MSE over the 10 outputs (or the modern cross-entropy), backward, update. Slow (per-call
overhead dominates), which is why the compiled engine exists; this one is what the compiled engine
is tested against.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..data import Dataset, Split
from .. import paper
from ..draws import training_noise
from ..model import ACTIVATION_SCALES, Net1989, NetConfig, one_thread
from ..optim import OptimConfig, make_torch_optimizer
from .protocol import Evaluation, RunSpec


def mse(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.mean((target - output) ** 2)


def loss_fn(config: NetConfig, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The MSE over the outputs against the +-1 targets, or the softmax cross-entropy of the logits
    against one-hot targets (uniform for an example that is no digit, every target -1); both
    averaged over the examples."""
    if config.loss == "ce":
        q = (target > 0).to(output.dtype)
        if bool(q.any(dim=1).all()):   # class indices: the reduction every labelled split has always had
            return F.cross_entropy(output, target.argmax(dim=1))
        return F.cross_entropy(output, torch.where(q.sum(dim=1, keepdim=True) > 0, q, 1.0 / q.shape[1]))
    return mse(output, target)


@torch.no_grad()
def bbprop(model: Net1989, x: torch.Tensor, shift=None, keep=None) -> dict[str, torch.Tensor]:
    """Diagonal Gauss-Newton second derivatives of the MSE, summed over the batch x, per parameter;
    for one example in training, with its roll and dropout (model.layers), as its gradient sees them.

    Layer by layer from the output down, f'' dropped:
        d2E/dy^2 = 2/10;  d2E/da^2 = f'(a)^2 d2E/dy^2;  d2E/dx_i^2 = sum_j w_ji^2 d2E/da_j^2;
        d2E/dw^2 = sum over the connections sharing w of x^2 d2E/da^2.
    The convolutions' sums over shared connections are the weight gradient of a convolution of the
    squared (padded) input, and their input sums the input gradient of one with squared weights.
    Padding is constant, so it passes nothing down.
    """
    A, S = ACTIVATION_SCALES[model.config.activation]
    dact2 = lambda y: (S / A * (A * A - y * y)) ** 2   # f'(a)^2 from f(a) = y
    conv_w, conv_x = torch.nn.grad.conv2d_weight, torch.nn.grad.conv2d_input
    pad = lambda t: F.pad(t, (paper.PAD,) * 4, value=paper.PAD_VALUE)
    crop = lambda t: t[..., paper.PAD:-paper.PAD, paper.PAD:-paper.PAD]
    if shift is not None:
        x = torch.roll(x, (int(shift[0]), int(shift[1])), (2, 3))
    h1, h2, h3, out = model.layers(x, None, keep)
    # dropout is a layer too: each kept output times 1 / (1 - p), whose square scales d2E/dx^2
    scale = torch.ones_like(h2) if keep is None else \
        torch.from_numpy(keep).to(h2.dtype) * (1 / (1 - model.config.dropout))
    h = {}
    dd = torch.full_like(out, 2 / out.shape[1]) * dact2(out)
    h["outw"], h["outb"] = (h3 * h3).T @ dd, dd.sum(0)
    dd = dd @ (model.outw ** 2).T * dact2(h3)
    flat = (h2 * scale).flatten(start_dim=1)
    h["H3w"], h["H3b"] = (flat * flat).T @ dd, dd.sum(0)
    dd = (dd @ (model.H3w ** 2).T).view_as(h2) * scale ** 2 * dact2(h2)
    # H2 group by group, as its forward pass (model.h2_sums): each group's H1 planes, its weights
    h1p = pad(h1)
    dd1 = torch.zeros_like(h1p)
    h["H2w"], h["H2b"] = torch.empty_like(model.H2w), dd.sum(0)
    for planes, inputs in model.h2_groups:
        x2, w2, dd2 = h1p[:, inputs], model.H2w[planes], dd[:, planes]
        h["H2w"][planes] = conv_w(x2 ** 2, w2.shape, dd2, stride=paper.STRIDE)
        dd1[:, inputs] += conv_x(x2.shape, w2 ** 2, dd2, stride=paper.STRIDE)
    dd = crop(dd1) * dact2(h1)
    h["H1w"], h["H1b"] = conv_w(pad(x) ** 2, model.H1w.shape, dd, stride=paper.STRIDE), dd.sum(0)
    return h


@torch.no_grad()
def evaluate(model: Net1989, x: torch.Tensor, t: torch.Tensor, labels: np.ndarray) -> Evaluation:
    """Loss over the whole split (not one example) and the exact count of misses."""
    out = model(x)
    misses = int((out.argmax(dim=1).numpy() != labels).sum())
    return Evaluation(loss=float(loss_fn(model.config, out, t)), misses=misses, n=len(labels))


class TorchEngine:
    name = "torch"

    @staticmethod
    def kernels_for(n_runs: int) -> str:
        return "reference"

    def __init__(self, net: NetConfig, runs: list[RunSpec], data: Dataset, optim: OptimConfig = OptimConfig(),
                 dtype: str = "float32", passes: int = paper.PASSES, kernels: str | None = None):
        torch_dtype = getattr(torch, dtype)
        self.net, self.data, self.optim, self.runs, self.passes = net, data, optim, runs, passes
        self.passes_done = 0
        self.splits = {name: self._tensors(split, torch_dtype) for name, split in
                       (("train", data.train), ("test", data.test))}
        self.models, self.optimizers = [], []
        for run in runs:
            model = Net1989(net).to(torch_dtype)
            model.set_params(run.params)
            self.models.append(model)
            self.optimizers.append(make_torch_optimizer(optim, model.parameters(), run.lr))

    @staticmethod
    def _tensors(split: Split, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(split.images).to(dtype), torch.from_numpy(split.targets).to(dtype)

    def _curvature(self, model: Net1989, x: torch.Tensor, shift=None, keep=None) -> dict[torch.Tensor, torch.Tensor]:
        h = bbprop(model, x, shift, keep)
        return {getattr(model, name): h[name] / len(x) for name in model.PARAMS}

    def train_pass(self, tick: Callable[[int], None] = lambda n: None) -> None:
        with one_thread():
            self._train_pass(tick)

    def _train_pass(self, tick: Callable[[int], None]) -> None:
        self.passes_done += 1
        p = self.passes_done
        x, t = self.splits["train"]
        running = self.optim.running
        for model, opt, run in zip(self.models, self.optimizers, self.runs):
            opt.param_groups[0]["lr"] = run.lr * self.optim.factor(p, self.passes)
            if self.optim.name == "sdlm" and not (running and p > 1):
                opt.set_curvature(self._curvature(model, x[torch.from_numpy(self.optim.hessian_examples(p, len(x)))]))
            shifts, keep = training_noise(self.net, run.seed, p, len(x))
            for i in range(len(x)):
                noise = (None if shifts is None else shifts[i], None if keep is None else keep[i])
                out = model.layers(x[i:i + 1], *noise)[-1]
                loss = loss_fn(self.net, out, t[i:i + 1])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if running:
                    new = self._curvature(model, x[i:i + 1], *noise)   # the example as its gradient saw it
                    for prm in model.parameters():
                        h = opt.state[prm]["h"]
                        h += self.optim.decay * (new[prm] - h)
                opt.step()
                tick(1)
    def evaluate(self) -> list[dict[str, Evaluation]]:
        labels = {"train": self.data.train.labels, "test": self.data.test.labels}
        with one_thread():
            return [{name: evaluate(model, *self.splits[name], labels[name]) for name in ("train", "test")}
                    for model in self.models]

    def get_params(self) -> list[dict[str, np.ndarray]]:
        return [model.get_params() for model in self.models]

    def get_state(self) -> list[dict[str, np.ndarray]]:
        """Per run: the carried optimizer state (OptimConfig.carried), as `kind.name` arrays in
        model.Net1989's layout."""
        return [{f"{kind}.{name}": opt.state[getattr(model, name)][key].detach().numpy().copy()
                 for kind, key in self.optim.carried.items() for name in model.PARAMS
                 if key in opt.state[getattr(model, name)]}
                for model, opt in zip(self.models, self.optimizers)]

    def set_state(self, states: list[dict[str, np.ndarray]], passes_done: int) -> None:
        """Continue after pass `passes_done` from the states get_state gave then."""
        self.passes_done = passes_done
        for model, opt, st in zip(self.models, self.optimizers, states):
            for kind, key in self.optim.carried.items():
                for name in model.PARAMS:
                    if f"{kind}.{name}" in st:
                        opt.state[getattr(model, name)][key] = torch.from_numpy(np.array(st[f"{kind}.{name}"]))
