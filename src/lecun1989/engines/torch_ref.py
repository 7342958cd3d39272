"""The reference engine: a plain PyTorch loop, one example at a time, easy to read and check.

It is the recipe of the paper and of the best-known reproduction, step for step: forward one
example, MSE over the 10 outputs, backward, update. Slow (per-call overhead dominates), which
is why the compiled engine exists; this one is what the compiled engine is tested against.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from ..data import Dataset, Split
from ..model import Net1989, NetConfig
from ..optim import make_torch_optimizer
from . import Evaluation, RunSpec


def mse(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.mean((target - output) ** 2)


@torch.no_grad()
def evaluate(model: Net1989, x: torch.Tensor, t: torch.Tensor, labels: np.ndarray) -> Evaluation:
    out = model(x)
    misses = int((out.argmax(dim=1).numpy() != labels).sum())
    return Evaluation(loss=float(mse(out, t)), misses=misses, n=len(labels))


class TorchEngine:
    name = "torch"

    def __init__(self, net: NetConfig, runs: list[RunSpec], data: Dataset, optimizer: str = "sgd",
                 dtype: str = "float32"):
        torch_dtype = getattr(torch, dtype)
        self.data = data
        self.splits = {name: self._tensors(split, torch_dtype) for name, split in
                       (("train", data.train), ("test", data.test))}
        self.models, self.optimizers = [], []
        for run in runs:
            model = Net1989(net).to(torch_dtype)
            model.set_params(run.params)
            self.models.append(model)
            self.optimizers.append(make_torch_optimizer(optimizer, model.parameters(), run.lr))

    @staticmethod
    def _tensors(split: Split, dtype) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(split.images).to(dtype), torch.from_numpy(split.targets).to(dtype)

    def train_pass(self, tick: Callable[[int], None] = lambda n: None) -> None:
        x, t = self.splits["train"]
        for model, opt in zip(self.models, self.optimizers):
            for i in range(len(x)):
                loss = mse(model(x[i:i + 1]), t[i:i + 1])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                tick(1)

    def evaluate(self) -> list[dict[str, Evaluation]]:
        labels = {"train": self.data.train.labels, "test": self.data.test.labels}
        return [{name: evaluate(model, *self.splits[name], labels[name]) for name in ("train", "test")}
                for model in self.models]

    def get_params(self) -> list[dict[str, np.ndarray]]:
        return [model.get_params() for model in self.models]
