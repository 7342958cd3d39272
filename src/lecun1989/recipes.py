"""Named recipes: the configurations the commands start from (every setting can be overridden).

REPRO  the best-known PyTorch reproduction's recipe: plain tanh, weights U(+-2.4/sqrt(F)), online SGD
       with lr 0.03, seed 1337 (`lecun1989 repro`).
PAPER  the most faithful reading of the paper (`lecun1989 paper`): its optimizer, the stochastic
       diagonal Levenberg-Marquardt method, with eps and mu chosen on a validation split carved from
       the training set (docs/FIDELITY.md says how and what each choice does), over 10 seeds.
"""

from __future__ import annotations

from . import paper
from .model import NetConfig
from .optim import OptimConfig
from .train import Recipe

REPRO = Recipe(passes=paper.PASSES, lrs=(paper.REPRO_LR,), seeds=(paper.REPRO_SEED,), optim=OptimConfig("sgd"),
               net=NetConfig())

PAPER = Recipe(passes=paper.PASSES, lrs=(5e-4,), seeds=tuple(range(10)),
               optim=OptimConfig("sdlm", mu=0.02, hessian_samples=500),
               net=NetConfig(activation="scaled_tanh", init="linear", output_bias=0.0, table="block"))
