"""Training engines: each trains one or more runs of the same recipe on the same data.

An engine is built from the network's configuration, the runs (seed, initial weights and learning
rate of each), the data, the optimizer's settings and the number of passes (for schedules), then
driven pass by pass by the trainer:

    engine = engine_class(name)(net_config, runs, data, optim=OptimConfig(), dtype="float32", passes=23)
    for each pass:
        engine.train_pass(tick)        # one presentation of every training example, in order
        engine.evaluate()              # per run: {"train": Evaluation, "test": Evaluation}
        engine.get_params()            # per run: {name: array} in the layout of model.Net1989
"""

from __future__ import annotations

from ..draws import initial_weights
from ..errors import LecunError
from .protocol import DTYPES, Evaluation, RunSpec

__all__ = ["DTYPES", "ENGINE_NAMES", "Evaluation", "RunSpec", "check_engine_name", "engine_class", "initial_runs"]


def initial_runs(net, runs: list[tuple[int, float]]) -> list[RunSpec]:
    """(seed, lr) pairs -> RunSpecs holding each seed's initial weights (model.Net1989's, drawn without torch)."""
    return [RunSpec(seed, lr, initial_weights(net, seed)) for seed, lr in runs]


ENGINE_NAMES = ("fast", "torch")


def check_engine_name(name: str) -> None:
    if name not in ENGINE_NAMES:
        raise LecunError(f"unknown engine {name!r}; choose one of {', '.join(ENGINE_NAMES)}")


def engine_class(name: str):
    """The engine's class. Only the compiled engine needs numba, and only here is it imported."""
    check_engine_name(name)
    if name == "torch":
        from .torch_ref import TorchEngine
        return TorchEngine
    try:
        from .fast import FastEngine
    except Exception as e:   # numba missing, or broken for this Python: any error while loading it
        raise LecunError(f"the compiled engine cannot be loaded ({type(e).__name__}: {e}); use --engine torch (the "
                         f"reference engine, slower), or reinstall numba") from None
    return FastEngine
