"""What every engine takes and gives: the runs it trains and the figures of an evaluation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DTYPES = {"float32": np.float32, "float64": np.float64}


@dataclass(frozen=True)
class RunSpec:
    seed: int
    lr: float
    params: dict[str, np.ndarray]   # initial weights, as Net1989.get_params() gives them


@dataclass(frozen=True)
class Evaluation:
    loss: float    # over the whole split: the MSE (mean over examples and outputs) or the mean cross-entropy
    misses: int    # exact count of examples whose largest output is not the label
    n: int

    @property
    def error(self) -> float:
        return self.misses / self.n
