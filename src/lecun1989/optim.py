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

from .store.atomic import signals_deferred

with signals_deferred():   # as in model.py: Ctrl-C inside torch's C++ import would abort the process
    import torch

from .config import HESSIAN_MODES, OPTIMIZERS, SCHEDULES, OptimConfig, parse_schedule

__all__ = ["HESSIAN_MODES", "OPTIMIZERS", "SCHEDULES", "Momentum", "OptimConfig", "SDLM", "make_torch_optimizer",
           "parse_schedule"]


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
