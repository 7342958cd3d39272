"""Optimizers, kept apart from the model and the engines.

sgd:  w -= lr * g, the best-known reproduction's recipe.
sdlm: stochastic diagonal Levenberg-Marquardt, the paper's "special version of Newton's algorithm
      that uses a positive, diagonal approximation of the Hessian" (Becker & LeCun 1988; described
      in LeCun, Bottou, Orr & Mueller, "Efficient BackProp", 1998, and LeCun et al. 1998, appendix C):
      w_k -= eps / (mu + h_kk) * g_k, where h_kk is the diagonal Gauss-Newton second derivative of
      the loss (back-propagated with f'' dropped, the layers' `bbprop`), averaged over
      `hessian_samples` training examples before each pass; with `hessian="running"` it is also
      updated after every example as a running average. Here eps is the run's learning rate.

momentum: SGD with momentum as Rumelhart, Hinton & Williams introduced it (1986, "Learning
      representations by back-propagating errors"): dw(t) = -lr * g + momentum * dw(t-1), w += dw(t).

adamw: the modern recipe's AdamW, with PyTorch's defaults (betas 0.9, 0.999, eps 1e-8, weight
      decay 0.01) unless set.

All multiply the learning rate by a per-pass factor from the schedule.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from .errors import LecunError

OPTIMIZERS = ("sgd", "sdlm", "adamw", "momentum")
HESSIAN_MODES = ("pass", "running")

# LeNet-5's eps schedule (LeCun et al. 1998, appendix C): 5e-4 for 2 passes, 2e-4 for 3, 1e-4 for 3,
# 5e-5 for 4, then 1e-5, written as factors of the first value.
# "linear:F" goes linearly from 1 at the first pass to F at the last (the modern recipe's
# linear:0.333333, from 3e-4 to 1e-4).
SCHEDULES = {"constant": "1", "lenet5": "1:2,0.4:3,0.2:3,0.1:4,0.02"}


def parse_schedule(text: str) -> list[tuple[float, int | None]]:
    """'1:2,0.4:3,0.2' -> [(1, 2), (0.4, 3), (0.2, None)]: factor for that many passes; the last lasts.
    'linear:F' -> [(F, -1)]."""
    text = SCHEDULES.get(text, text)
    steps = []
    try:
        if text.startswith("linear:"):
            end = float(text.split(":", 1)[1])
            if not (math.isfinite(end) and end > 0):
                raise ValueError
            return [(end, -1)]
        parts = text.split(",")
        for i, part in enumerate(parts):
            factor, _, n = part.partition(":")
            last = i == len(parts) - 1
            if (n == "") != last or not (math.isfinite(float(factor)) and float(factor) > 0) or (n and int(n) < 1):
                raise ValueError
            steps.append((float(factor), None if last else int(n)))
    except ValueError:
        raise LecunError(f"bad schedule {text!r}: use {', '.join(SCHEDULES)}, factors like 1:2,0.4:3,0.2 "
                         f"(factor:passes, ..., last factor for the remaining passes), or linear:0.33 "
                         f"(from 1 down to 0.33 at the last pass)") from None
    return steps


@dataclass(frozen=True)
class OptimConfig:
    name: str = "sgd"
    schedule: str = "constant"
    mu: float = 0.02              # sdlm: keeps the step bounded where the curvature is small
    hessian_samples: int = 500    # sdlm: examples the curvature is averaged over before each pass
    hessian: str = "pass"         # sdlm: "pass" or "running"
    decay: float = 0.01           # sdlm running mode: weight of the newest example in the average
    betas: tuple[float, float] = (0.9, 0.999)   # adamw, PyTorch's defaults
    eps: float = 1e-8
    weight_decay: float = 0.01
    momentum: float = 0.9         # momentum: the fraction of the last change kept

    def __post_init__(self):
        if self.name not in OPTIMIZERS:
            raise LecunError(f"unknown optimizer {self.name!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.hessian not in HESSIAN_MODES:
            raise LecunError(f"unknown hessian mode {self.hessian!r}; choose one of {', '.join(HESSIAN_MODES)}")
        if not (math.isfinite(self.mu) and self.mu > 0):
            raise LecunError(f"--mu must be positive, got {self.mu}")
        if self.hessian_samples < 1:
            raise LecunError(f"--hessian-samples must be at least 1, got {self.hessian_samples}")
        if not 0 < self.decay <= 1:
            raise LecunError(f"--hessian-decay must be in (0, 1], got {self.decay}")
        if not (0 <= self.betas[0] < 1 and 0 <= self.betas[1] < 1 and math.isfinite(self.eps) and self.eps > 0
                and math.isfinite(self.weight_decay) and self.weight_decay >= 0):
            raise LecunError("adamw needs betas in [0, 1), a finite eps > 0 and a finite weight decay >= 0")
        if not 0 <= self.momentum < 1:
            raise LecunError(f"--momentum must be in [0, 1), got {self.momentum}")
        parse_schedule(self.schedule)

    @property
    def largest_factor(self) -> float:
        """The schedule's largest learning-rate factor over any number of passes."""
        steps = parse_schedule(self.schedule)
        return max(1.0, steps[0][0]) if steps[0][1] == -1 else max(factor for factor, _ in steps)

    @property
    def running(self) -> bool:
        return self.name == "sdlm" and self.hessian == "running"

    @property
    def carried(self) -> dict[str, str]:
        """The state one pass leaves to the next (what resuming restores), as engines name it in
        their state files, each with its key in the PyTorch optimizer's state. SGD carries nothing,
        nor does SDLM when it estimates the curvature afresh before each pass."""
        if self.name == "adamw":
            return {"m": "exp_avg", "v": "exp_avg_sq", "step": "step"}
        if self.name == "momentum":
            return {"m": "change"}
        return {"h": "h"} if self.running else {}

    def describe(self, lr: float) -> str:
        """The optimizer and its settings in words, for a run's log."""
        text = {"sgd": f"sgd lr {lr:g}", "adamw": f"adamw lr {lr:g} weight decay {self.weight_decay:g}",
                "momentum": f"sgd lr {lr:g} with momentum {self.momentum:g}",
                "sdlm": f"sdlm eps {lr:g} mu {self.mu:g} (h " + (
                    f"averaged over {self.hessian_samples} examples before each pass)" if self.hessian == "pass"
                    else f"running, decay {self.decay:g})")}[self.name]
        return text + (f", schedule {self.schedule}" if self.schedule != "constant" else "")

    def factor(self, pass_num: int, passes: int) -> float:
        """The schedule's learning-rate factor for pass 1, 2, ... of `passes`."""
        steps = parse_schedule(self.schedule)
        if steps[0][1] == -1:
            alpha = (pass_num - 1) / (passes - 1) if passes > 1 else 0.0
            return (1 - alpha) + alpha * steps[0][0]
        left = pass_num
        for factor, n in steps:
            if n is None or left <= n:
                return factor
            left -= n
        raise AssertionError("unreachable: the last step has no end")

    def hessian_examples(self, pass_num: int, n_train: int) -> np.ndarray:
        """Indices of the examples h is estimated on before a pass: consecutive windows of the
        training set, moving on by `hessian_samples` each pass (wrapping around), so every example
        is used and no random draw is needed."""
        n = min(self.hessian_samples, n_train)
        return (np.arange(n) + (pass_num - 1) * n) % n_train

    def to_dict(self) -> dict:
        d = asdict(self)
        if self.name != "sdlm":
            for key in ("mu", "hessian_samples", "hessian", "decay"):
                d.pop(key)
        if self.name != "adamw":
            for key in ("betas", "eps", "weight_decay"):
                d.pop(key)
        if self.name != "momentum":
            d.pop("momentum")
        return d


class SDLM(torch.optim.Optimizer):
    """The reference implementation: step lr / (mu + h) per parameter, with h set by the engine."""

    def __init__(self, params, lr: float, mu: float):
        super().__init__(params, dict(lr=lr, mu=mu))

    def set_curvature(self, h: dict[torch.Tensor, torch.Tensor]) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p]["h"] = h[p]

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                step = group["lr"] / (group["mu"] + self.state[p]["h"])
                p.sub_(step * p.grad)


class Momentum(torch.optim.Optimizer):
    """The reference implementation: dw = momentum dw - lr g; w += dw (the change kept as "change")."""

    def __init__(self, params, lr: float, momentum: float):
        super().__init__(params, dict(lr=lr, momentum=momentum))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                change = self.state[p].setdefault("change", torch.zeros_like(p))
                change.mul_(group["momentum"]).sub_(group["lr"] * p.grad)
                p.add_(change)


def make_torch_optimizer(config: OptimConfig, params, lr: float) -> torch.optim.Optimizer:
    if config.name == "sgd":
        return torch.optim.SGD(params, lr=lr)
    if config.name == "adamw":
        return torch.optim.AdamW(params, lr=lr, betas=config.betas, eps=config.eps,
                                 weight_decay=config.weight_decay, foreach=False)
    if config.name == "momentum":
        return Momentum(params, lr=lr, momentum=config.momentum)
    return SDLM(params, lr=lr, mu=config.mu)
