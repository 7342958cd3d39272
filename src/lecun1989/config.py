"""The settings of a run, checked when they are made, without torch: the network's (NetConfig; the
network itself is model.py) and the optimizer's (OptimConfig; the optimizers are optim.py). The
command line builds these from its options, so `lecun1989 --help` and a mistyped option load
neither torch nor numba; the zip-code benchmark's size limit is here for the same reason."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

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


def connection_table(name: str) -> np.ndarray:
    """TABLES[name] as an array: per H2 plane, the H1 planes it reads."""
    table = np.array(TABLES[name], dtype=np.int64)
    assert table.shape == (paper.H2_PLANES, paper.H2_INPUTS_PER_PLANE)
    return table


# f(a) = A tanh(S a). The scaled one is LeCun's later papers' "scaled hyperbolic tangent":
# f(+-1) = +-1, and f'' is largest near +-1.
ACTIVATION_SCALES = {"tanh": (1.0, 1.0), "scaled_tanh": (1.7159, 2.0 / 3.0)}
ACTIVATION_NAMES = ("tanh", "scaled_tanh", "relu")   # relu: the modern recipe's
# The output layer and loss: the paper's tanh units with the MSE against +-1 targets, or the modern
# linear outputs with softmax cross-entropy.
LOSSES = ("mse", "ce")

INITS = ("sqrt", "linear")  # U(-2.4/sqrt(F), 2.4/sqrt(F)) or the literal U(-2.4/F, 2.4/F)

# Trained weights stay within a few units (tens at most, even at ten times a recipe's learning rate);
# weights this large saturate every unit they feed, so the outputs no longer depend on the input,
# nothing can be learned any more (f' is 0 everywhere), and float32 overflows a few steps later. The
# trainer stops a run whose weights pass it (train.py), and no weight may start beyond it.
EXPLODED = 1e4


@dataclass(frozen=True)
class NetConfig:
    activation: str = "tanh"
    init: str = "sqrt"
    output_bias: float = 0.0
    table: str = "block"
    loss: str = "mse"
    dropout: float = 0.0   # training only: the probability of dropping each of H2's outputs
    shift: int = 0         # training only: roll each image by up to this many pixels in x and y

    def __post_init__(self):
        for field, value, allowed in (("activation", self.activation, ACTIVATION_NAMES),
                                      ("init", self.init, INITS), ("table", self.table, TABLES),
                                      ("loss", self.loss, LOSSES)):
            if value not in allowed:
                raise LecunError(f"unknown {field} {value!r}; choose one of {', '.join(allowed)}")
        if not math.isfinite(self.output_bias):
            raise LecunError(f"--output-bias must be a finite number, got {self.output_bias}")
        if abs(self.output_bias) > EXPLODED:
            raise LecunError(f"--output-bias {self.output_bias:g} is outside -{EXPLODED:g} .. {EXPLODED:g}: a bias that "
                             f"large saturates every output, so nothing can be learned (the trainer stops a run whose "
                             f"weights pass it as exploded); the recipes start at -1 or 0")
        if not 0 <= self.dropout < 1:
            raise LecunError(f"--dropout must be in [0, 1), got {self.dropout}")
        if not 0 <= self.shift <= 2:
            raise LecunError(f"--shift must be 0, 1 or 2 pixels, got {self.shift}")

    @property
    def noisy(self) -> bool:
        """Whether training draws random numbers (dropout masks, shifts)."""
        return self.dropout > 0 or self.shift > 0

    def to_dict(self) -> dict:
        return asdict(self)


OPTIMIZERS = ("sgd", "sdlm", "adamw", "momentum")
HESSIAN_MODES = ("pass", "running")

# LeNet-5's eps schedule (LeCun et al. 1998, appendix C): 5e-4 for 2 passes, 2e-4 for 3, 1e-4 for 3,
# 5e-5 for 4, then 1e-5, written as factors of the first value.
# "linear:F" goes linearly from 1 at the first pass to F at the last (the modern recipe's
# linear:0.333333, from 3e-4 to 1e-4).
SCHEDULES = {"constant": "1", "lenet5": "1:2,0.4:3,0.2:3,0.1:4,0.02"}

MAX_ZIPCODES = 100_000    # the zip-code benchmark's files are named zip-00000.png .. zip-99999.png


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
