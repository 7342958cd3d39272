"""Optimizers, kept apart from the model: the paper's recipe is plain online gradient descent."""

from __future__ import annotations

import torch

from .errors import LecunError

OPTIMIZERS = ("sgd",)


def make_torch_optimizer(name: str, params, lr: float) -> torch.optim.Optimizer:
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    raise LecunError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")
