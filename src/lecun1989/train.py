"""The trainer: the paper's training run (section 5.2), for one run or many at once.

Reads top to bottom: make the initial weights, claim the run directories, then for every pass
train on every example in order, evaluate both splits, log and save. The arithmetic happens in
an engine (engines/), so the same loop drives the PyTorch reference and the compiled engine.
"""

from __future__ import annotations

import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import __version__, paper
from .data import Dataset
from .engines import DTYPES, engine_class, initial_runs
from .errors import LecunError
from .model import NetConfig
from .results import stats
from .rundir import RunDir, claim, eval_line
from .optim import OptimConfig


@dataclass(frozen=True)
class Recipe:
    passes: int = paper.PASSES
    lrs: tuple[float, ...] = (paper.REPRO_LR,)
    seeds: tuple[int, ...] = (paper.REPRO_SEED,)
    optim: OptimConfig = field(default_factory=OptimConfig)
    engine: str = "fast"
    dtype: str = "float32"
    net: NetConfig = field(default_factory=NetConfig)

    def __post_init__(self):
        if self.passes < 1:
            raise LecunError(f"--passes must be at least 1, got {self.passes}")
        if not self.lrs or any(not lr > 0 for lr in self.lrs):
            raise LecunError(f"learning rates must be positive, got {', '.join(map(str, self.lrs))}")
        if not self.seeds:
            raise LecunError("give at least one seed")
        if self.dtype not in DTYPES:
            raise LecunError(f"unknown dtype {self.dtype!r}; choose one of {', '.join(DTYPES)}")
        if self.optim.name == "sdlm" and (self.net.activation == "relu" or self.net.loss != "mse"):
            raise LecunError("sdlm is the paper's method for its tanh network and MSE; use sgd or adamw with "
                             "--activation relu or --loss ce")
        engine_class(self.engine)  # validates the name

    def runs(self) -> list[tuple[int, float]]:
        return [(seed, lr) for lr in self.lrs for seed in self.seeds]


def git_commit() -> str | None:
    """The commit of the package's source tree, when it is a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                                timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "."], cwd=here, capture_output=True,
                               text=True, timeout=5).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict:
    import numba  # noqa: F401  (recorded because the compiled engine depends on it)
    import torch
    return {"lecun1989": __version__, "python": platform.python_version(), "numpy": np.__version__,
            "torch": torch.__version__, "numba": numba.__version__, "platform": platform.platform()}


def run_dirs(out: Path, runs: list[tuple[int, float]], nested: bool | None = None) -> list[Path]:
    """One run: `out` itself (unless nested); several: out/lr<lr>-seed<seed> each."""
    if not (len(runs) > 1 if nested is None else nested):
        return [out]
    return [out / f"lr{lr:g}-seed{seed}" for seed, lr in runs]


def header(recipe: Recipe, data: Dataset, seed: int, lr: float) -> str:
    o = recipe.optim
    optim = {"sgd": f"sgd lr {lr:g}", "adamw": f"adamw lr {lr:g} weight decay {o.weight_decay:g}",
             "sdlm": f"sdlm eps {lr:g} mu {o.mu:g} (h " + (f"averaged over {o.hessian_samples} examples before "
                                                          f"each pass)" if o.hessian == "pass" else
                                                          f"running, decay {o.decay:g})")}[o.name]
    if o.schedule != "constant":
        optim += f", schedule {o.schedule}"
    return (f"lecun1989 {__version__}: data {data.source} ({len(data.train)} train / {len(data.test)} "
            f"{'validation: the last training examples' if data.held_out else 'test'}, "
            f"sha256 {data.sha256[:12]}), engine {recipe.engine} {recipe.dtype}, optimizer {optim}, "
            f"{recipe.passes} passes, seed {seed}")


def train(recipe: Recipe, data: Dataset, out: Path, force: bool = False, quiet: bool = False,
          echo=print, command: str = "repro", extra_config: dict | None = None) -> list[dict]:
    """Train every run of `recipe` on `data`; return one summary per run (final figures)."""
    from tqdm import tqdm

    runs = recipe.runs()
    dirs = run_dirs(out, runs)
    claim(out, force)
    for d in dirs:
        claim(d, force)

    specs = initial_runs(recipe.net, runs)
    common = {"command": command, "passes": recipe.passes, "optimizer": recipe.optim.to_dict(),
              "engine": recipe.engine, "dtype": recipe.dtype, "net": recipe.net.to_dict(),
              "data": {"source": data.source, "seed": data.seed, "n_train": len(data.train),
                       "n_test": len(data.test), "held_out": data.held_out, "sha256": data.sha256},
              "versions": versions(), "git_commit": git_commit(), "paper": paper.CITATION,
              **(extra_config or {})}
    rundirs = [RunDir(d, force, {**common, "seed": seed, "lr": lr}) for d, (seed, lr) in zip(dirs, runs)]
    for rd, (seed, lr) in zip(rundirs, runs):
        rd.log(header(recipe, data, seed, lr))
    single = len(runs) == 1
    if single:
        echo(rundirs[0].lines[0])
    else:
        echo(f"lecun1989 {__version__}: {len(runs)} runs ({len(recipe.seeds)} seeds x {len(recipe.lrs)} "
             f"learning rates), data {data.source}, engine {recipe.engine}, {recipe.passes} passes")

    t0 = time.perf_counter()
    engine = engine_class(recipe.engine)(recipe.net, specs, data, optim=recipe.optim, dtype=recipe.dtype,
                                         passes=recipe.passes)
    setup_s = time.perf_counter() - t0
    try:
        for p in range(1, recipe.passes + 1):
            with tqdm(total=len(data.train) * len(runs), desc=f"pass {p}/{recipe.passes}", unit="step",
                      disable=quiet, leave=False, file=sys.stderr, dynamic_ncols=True) as bar:
                engine.train_pass(bar.update)
            evals = engine.evaluate()
            params = engine.get_params()
            for rd, ev, prm, (seed, lr) in zip(rundirs, evals, params, runs):
                lines = [f"pass {p}/{recipe.passes}", eval_line("train", ev["train"]), eval_line(data.test_name, ev["test"])]
                for line in lines:
                    rd.log(line)
                rd.record(p, ev)
                rd.save_weights(prm, {"pass": str(p), "seed": str(seed), "lr": repr(lr),
                                      "net": str(recipe.net.to_dict())})
                if single:
                    for line in lines:
                        echo(line)
            if not single:
                test = [ev["test"].error * 100 for ev in evals]
                train_ = [ev["train"].error * 100 for ev in evals]
                echo(f"pass {p}/{recipe.passes}: train error {np.mean(train_):.2f}% (min {min(train_):.2f}, "
                     f"max {max(train_):.2f}), {data.test_name} error {np.mean(test):.2f}% (min {min(test):.2f}, "
                     f"max {max(test):.2f})")
    finally:
        for rd in rundirs:
            rd.close()
    wall_s = time.perf_counter() - t0

    summaries = []
    for rd, ev, (seed, lr) in zip(rundirs, evals, runs):
        s = {"seed": seed, "lr": lr, "passes": recipe.passes, "dir": str(rd.path),
             **{f"{k}": v for k, v in rd.rows[-1].items() if k != "pass"},
             "wall_s": wall_s, "engine_setup_s": setup_s}
        rd.write_summary(s)
        for line in final_lines([s], data.test_name, recipe.net.loss):
            rd.log(line)
        summaries.append(s)
    for line in final_lines(summaries, data.test_name, recipe.net.loss):
        echo(line)
    return summaries


def final_lines(summaries: list[dict], test_name: str = "test", loss: str = "mse") -> list[str]:
    """The final figures (mean ± std (min .. max) over runs) and the paper's row below them. When the
    second split is a validation split, it is labelled so; the paper's row is left out then, and when
    the loss is not the paper's MSE."""
    loss_name = "MSE" if loss == "mse" else "CE"
    show_paper = test_name == "test" and loss == "mse"
    paper_row = (f"paper (1989):   train error {paper.TRAIN_ERROR * 100:.2f}% ({paper.TRAIN_MISSES} misses), "
                 f"test error {paper.TEST_ERROR * 100:.2f}% ({paper.TEST_MISSES} misses), "
                 f"train MSE {paper.TRAIN_MSE:.2e}, test MSE {paper.TEST_MSE:.2e}")
    if len(summaries) == 1:
        s = summaries[0]
        lines = [f"final:          train error {s['train_error'] * 100:.2f}% ({s['train_misses']} misses), "
                 f"{test_name} error {s['test_error'] * 100:.2f}% ({s['test_misses']} misses), "
                 f"train {loss_name} {s['train_loss']:.2e}, {test_name} {loss_name} {s['test_loss']:.2e}"]
        return lines + [paper_row] * show_paper
    lines = [f"final over {len(summaries)} runs: mean ± std (min .. max)"]
    for key, label, fmt in (("train_error", "train error %", "{:.2f}"), ("train_misses", "train misses", "{:.1f}"),
                            ("test_error", f"{test_name} error %", "{:.2f}"),
                            ("test_misses", f"{test_name} misses", "{:.1f}"),
                            ("train_loss", f"train {loss_name}", "{:.2e}"),
                            ("test_loss", f"{test_name} {loss_name}", "{:.2e}")):
        scale = 100 if key.endswith("error") else 1
        st = stats([s[key] * scale for s in summaries])
        lines.append(f"  {label:13s} " + fmt.format(st["mean"]) + " ± " + fmt.format(st["std"]) +
                     " (" + fmt.format(st["min"]) + " .. " + fmt.format(st["max"]) + ")")
    return lines + [paper_row] * show_paper
