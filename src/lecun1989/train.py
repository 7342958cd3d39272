"""The trainer: the paper's training run (section 5.2), for one run or many at once.

Reads top to bottom: check the settings and the output folder, make (or, resuming, read back) the
runs, then for every pass train on every example in order, evaluate both splits, and commit every
run's files at once. The arithmetic happens in an engine (engines/), so the same loop drives the
PyTorch reference and the compiled engine. A run whose loss or weights stop being finite is marked
diverged at that pass and left out of what follows; the others go on.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from . import __version__, paper
from .data import Dataset
from .engines import DTYPES, RunSpec, check_engine_name, cluster, engine_class, initial_runs, target
from .errors import Diverged, LecunError, interrupt_behind
from .config import EXPLODED, NetConfig, OptimConfig   # EXPLODED: the largest |weight| of a run that has not diverged
from .results import stats
from .store.atomic import commit, json_text, signals_deferred
from .store.folders import MARKER, Lock, check_output, marked, marker, replace_contents
from .store.rundir import RunDir, disagreement, eval_line, load_weights, metrics_row

MAX_SEED = 2 ** 32 - 1


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
        if not self.lrs or any(not (math.isfinite(lr) and lr > 0) for lr in self.lrs):
            raise LecunError(f"learning rates must be positive finite numbers, got {', '.join(map(str, self.lrs))}")
        if not self.seeds:
            raise LecunError("give at least one seed")
        bad = [s for s in self.seeds if not (isinstance(s, (int, np.integer)) and 0 <= s <= MAX_SEED)]
        if bad:
            raise LecunError(f"seeds must be whole numbers from 0 to {MAX_SEED}, got {bad[0]}")
        for name, values in (("seed", self.seeds), ("learning rate", self.lrs)):
            twice = [v for v, n in Counter(values).items() if n > 1]
            if twice:
                raise LecunError(f"{name} {min(twice):g} is given more than once; each run needs its own")
        if self.dtype not in DTYPES:
            raise LecunError(f"unknown dtype {self.dtype!r}; choose one of {', '.join(DTYPES)}")
        # The engines compute in the run's precision: a setting it cannot hold would overflow to inf
        # (a traceback in PyTorch's optimizers, steps of zero through a mu of inf).
        top, factor = float(np.finfo(self.dtype).max), self.optim.largest_factor
        for lr in self.lrs:
            if lr * factor > top:
                scheduled = f" times the schedule's largest factor {factor:g}" if factor != 1 else ""
                raise LecunError(f"learning rate {lr:g}{scheduled} is more than {self.dtype} holds ({top:.3g}): no "
                                 f"step that large can be taken; give a lower one" +
                                 (" or smaller --schedule factors" if scheduled else ""))
        for name, value, used in (("mu", self.optim.mu, self.optim.name == "sdlm"),
                                  ("weight decay", self.optim.weight_decay, self.optim.name == "adamw")):
            if used and value > top:
                raise LecunError(f"{name} {value:g} is more than {self.dtype} holds ({top:.3g}); give a smaller one")
        if self.optim.name == "sdlm" and (self.net.activation == "relu" or self.net.loss != "mse"):
            raise LecunError("sdlm is the paper's method for its tanh network and MSE; use sgd or adamw with "
                             "--activation relu or --loss ce")
        check_engine_name(self.engine)

    def runs(self) -> list[tuple[int, float]]:
        return [(seed, lr) for lr in self.lrs for seed in self.seeds]


def git_commit() -> str | None:
    """The commit of the package's source tree, when the running code is a git checkout's (an editable
    install); None for an installed copy, even one inside a clone (a virtual environment in it), whose
    code may be of another commit than the clone's."""
    here = Path(__file__).resolve().parent
    try:
        subprocess.run(["git", "ls-files", "--error-unmatch", Path(__file__).name], cwd=here, capture_output=True,
                       timeout=5, check=True)   # this very file is tracked: the code running is the checkout's
        commit_ = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                                 timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "."], cwd=here, capture_output=True,
                               text=True, timeout=5).stdout.strip()
        return commit_ + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version
    out = {"lecun1989": __version__, "python": platform.python_version()}
    for name in ("numpy", "torch", "numba"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    # what the compiled engine compiles for (engines/target.py), once it is loaded
    return {**out, "platform": platform.platform(), "compiled_for": target.chosen()}


def plural(n: int, noun: str) -> str:
    """'1 pass', '3 passes', '2 seeds'."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}{'es' if noun.endswith('s') else 's'}"


def run_dirs(out: Path, runs: list[tuple[int, float]], nested: bool | None = None) -> list[Path]:
    """One run: `out` itself (unless nested); several: out/lr<lr>-seed<seed> each."""
    if not (len(runs) > 1 if nested is None else nested):
        return [out]
    return [out / f"lr{lr:g}-seed{seed}" for seed, lr in runs]


def header(recipe: Recipe, data: Dataset, seed: int, lr: float, kernels: str) -> str:
    optim = recipe.optim.describe(lr)
    return (f"lecun1989 {__version__}: data {data.source} ({len(data.train)} train / {len(data.test)} "
            f"{'validation: the last training examples' if data.held_out else 'test'}, "
            f"sha256 {data.sha256[:12]}), engine {recipe.engine} {recipe.dtype} ({kernels} kernels), "
            f"optimizer {optim}, "
            f"{plural(recipe.passes, 'pass')}, seed {seed}")


def _available_memory() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def memory_estimate(recipe: Recipe, data: Dataset) -> int:
    """Bytes a batch needs, roughly and on the high side: per run its initial weights, the engine's
    state (parameters, steps, curvature, moments), the files it commits, one pass's dropout masks
    and shifts, and the per-example figures of an evaluation."""
    n, n_eval = len(data.train), len(data.train) + len(data.test)
    per_run = 12 * paper.PARAMETERS * 8 + 16 * n_eval + (2 * n * 192 if recipe.net.dropout else 0) + \
        (16 * n if recipe.net.shift else 0)
    return len(recipe.runs()) * per_run


def check_memory(recipe: Recipe, data: Dataset) -> None:
    need, have = memory_estimate(recipe, data), _available_memory()
    if have is not None and need > 0.8 * have:
        raise LecunError(f"{len(recipe.runs())} runs at once would need about {need / 2**30:.1f} GiB of memory, more "
                         f"than the {have / 2**30:.1f} GiB available; train fewer at a time (split --seeds)")


SETTINGS_IGNORED = ("versions", "git_commit")   # may differ between an interrupted command and its resumption


def _settings(config: dict) -> dict:
    """The settings that make a run what it is, as they read back from config.json."""
    return {k: v for k, v in json.loads(json_text(config)).items() if k not in SETTINGS_IGNORED}


def _diverged_reason(ev: dict, params: dict[str, np.ndarray]) -> str | None:
    """Why a run's figures after a pass are not a result, or None when they are."""
    bad = [f"{split} loss {ev[split].loss}" for split in ("train", "test") if not math.isfinite(ev[split].loss)]
    if not all(np.isfinite(v).all() for v in params.values()):
        bad.append("weights not finite")
    else:
        largest = max(float(np.abs(v).max()) for v in params.values())
        if largest > EXPLODED:
            bad.append(f"weights exploded (largest |w| {largest:.1e})")
    return ", ".join(bad) or None


def _resume(dirs: list[Path], configs: list[dict], carried: bool) -> list[RunDir]:
    """The run directories of an interrupted command, checked against the settings given now."""
    out = dirs[0] if len(dirs) == 1 else dirs[0].parent
    found = {d for d in ([out] if len(dirs) == 1 else out.iterdir()) if marked(d) == "run"}
    if found != set(dirs):
        def names(paths):
            names_ = sorted(p.name for p in paths)
            return ", ".join(names_[:4]) + ", ..." * (len(names_) > 4)
        extra, lacking = found - set(dirs), set(dirs) - found
        what = "; ".join(([f"runs this command does not make ({names(extra)})"] if extra else []) +
                         ([f"not the runs {names(lacking)} that this command makes"] if lacking else []))
        raise LecunError(f"{out} holds {what}; give the same command to resume it, or start over with --force")
    rundirs = []
    for d, config in zip(dirs, configs):
        if marked(d) != "run":
            raise LecunError(f"{d} is not a run directory of this command (no marker); it cannot be resumed: start "
                             f"over with --force, or choose another --out")
        rd = RunDir.read(d)
        before, now = _settings(rd.config), _settings(config)
        if before != now:
            changed = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
            raise LecunError(f"{d} was started with other settings ({', '.join(changed)} differ); give the same "
                             f"command to resume it, or start over with --force")
        # a finished run is checked too: its figures go into the study's files again
        told = disagreement(rd, carried) if rd.summary is None else [] if rd.diverged else disagreement(rd)
        if told:
            raise LecunError(f"{rd.path} cannot be resumed: {'; '.join(told)}; start over with --force")
        rundirs.append(rd)
    done = {rd.passes_done for rd in rundirs if rd.summary is None}
    if len(done) > 1:
        raise LecunError(f"the runs in {dirs[0].parent} stopped at different passes ({sorted(done)}); they were not "
                         f"written by one command: start over with --force")
    return rundirs


def fitted(recipe: Recipe, data: Dataset) -> Recipe:
    """The recipe as it trains on `data`: sdlm's curvature is averaged over at most the training examples
    there are (a recipe's 500 on --train-size 100 is 100), and the log and config.json say so."""
    n = len(data.train)
    if recipe.optim.name == "sdlm" and recipe.optim.hessian_samples > n:
        return replace(recipe, optim=replace(recipe.optim, hessian_samples=n))
    return recipe


def train(recipe: Recipe, data: Dataset, out: str | os.PathLike, force: bool = False, quiet: bool = False,
          echo=print, command: str = "repro", extra_config: dict | None = None, resume: bool = False) -> list[dict]:
    """Train every run of `recipe` (fitted to `data`) on `data` into `out` (a run directory, or one per run
    inside it); return one summary per run. `resume` continues the runs an interrupted command left in
    `out`."""
    out = Path(out)
    recipe = fitted(recipe, data)
    runs = recipe.runs()
    dirs = run_dirs(out, runs)
    check_memory(recipe, data)
    if cluster.active() and recipe.engine != "fast":
        raise LecunError("--cluster trains on the compiled engine; drop --engine torch")
    mode = check_output(out, force, resume, command=command)
    with Lock(out, echo=lambda line: print(line, file=sys.stderr)):
        try:
            return _train(recipe, data, out, dirs, runs, mode, quiet, echo, command, extra_config)
        except BrokenPipeError:   # the output was closed (`| head`): stopped like an interrupt, kept
            raise
        except BaseException as e:
            stop = interrupt_behind(e)
            if stop is not None:   # kept as it is: --resume continues it
                if not getattr(stop, "note", None):
                    stop.note = f"the same command with --resume continues {out}"
                raise stop from None
            # failed before its first pass was committed: nothing worth keeping, nothing to block a rerun
            if mode != "resume" and out.is_dir() and not any(_passes_committed(d) for d in dirs):
                replace_contents(out)
                if mode == "new":
                    (out / MARKER).unlink(missing_ok=True)
            raise


def _passes_committed(run_dir: Path) -> bool:
    try:
        return (run_dir / "metrics.jsonl").stat().st_size > 0
    except OSError:
        return False


def _train(recipe, data, out, dirs, runs, mode, quiet, echo, command, extra_config) -> list[dict]:
    from tqdm import tqdm

    single = len(runs) == 1
    if mode == "replace":
        replace_contents(out)
    t0 = time.perf_counter()
    engine_cls = engine_class(recipe.engine)
    if cluster.active():   # the same passes, computed on the cluster's workers; the files are written here
        engine_cls = cluster.ClusterEngine
    common = {"command": command, "passes": recipe.passes, "optimizer": recipe.optim.to_dict(),
              "engine": recipe.engine, "kernels": engine_cls.kernels_for(len(runs)), "dtype": recipe.dtype,
              "net": recipe.net.to_dict(),
              "data": {"source": data.source, "seed": data.seed, "n_train": len(data.train),
                       "n_test": len(data.test), "held_out": data.held_out, "sha256": data.sha256,
                       "modified": data.modified},
              "versions": versions(), "git_commit": git_commit(), "paper": paper.CITATION,
              **(extra_config or {})}
    configs = [{**common, "seed": seed, "lr": lr} for seed, lr in runs]

    if mode == "resume":
        rundirs = _resume(dirs, configs, bool(recipe.optim.carried))
    else:
        rundirs = [RunDir(d, config, [header(recipe, data, seed, lr, common["kernels"])])
                   for d, config, (seed, lr) in zip(dirs, configs, runs)]
        files = marker(out, "run" if single else "study", command)
        for rd in rundirs:
            files.update({**marker(rd.path, "run", command), **rd.files()})
        commit(files)
    live = [i for i, rd in enumerate(rundirs) if rd.summary is None]
    start = rundirs[live[0]].passes_done if live else recipe.passes
    if single:
        for line in rundirs[0].lines[:1 if mode != "resume" else None]:
            echo(line)
    else:
        echo(f"lecun1989 {__version__}: {len(runs)} runs ({plural(len(recipe.seeds), 'seed')} x "
             f"{plural(len(recipe.lrs), 'learning rate')}), data {data.source}, engine {recipe.engine} "
             f"({common['kernels']} kernels), {plural(recipe.passes, 'pass')}")
    if mode == "resume":
        echo(f"resuming {out} after pass {start} of {recipe.passes}" if live else f"{out}: finished before")

    # The engine trains the live runs only: the kernels recorded at the start keep the arithmetic the same.
    specs = []
    for i in live:
        seed, lr = runs[i]
        params = load_weights(dirs[i] / "weights.safetensors")[0] if start else None
        specs.append(RunSpec(seed, lr, params) if params else initial_runs(recipe.net, [(seed, lr)])[0])
    engine = engine_cls(recipe.net, specs, data, optim=recipe.optim, dtype=recipe.dtype, passes=recipe.passes,
                        kernels=common["kernels"]) if live else None
    if engine is not None and start:
        engine.set_state([load_weights(dirs[i] / "state.safetensors")[0]
                          if (dirs[i] / "state.safetensors").exists() else {} for i in live], start)
    setup_s = time.perf_counter() - t0

    committed = start
    # one bar for the whole command: the steps of every pass left, over every run the engine trains
    bar = tqdm(total=len(data.train) * len(specs) * (recipe.passes - start), desc=f"pass {start + 1}/{recipe.passes}",
               unit="step", disable=quiet or not live, leave=False, file=sys.stderr, dynamic_ncols=True)
    tick = progress(bar, engine)
    try:
        for p in range(start + 1, recipe.passes + 1):
            bar.set_description(f"pass {p}/{recipe.passes}")
            engine.train_pass(tick)
            evals, params, states = engine.evaluate(), engine.get_params(), engine.get_state()
            still = []
            for k, i in enumerate(live):
                rd, (seed, lr), ev = rundirs[i], runs[i], evals[k]
                reason = _diverged_reason(ev, params[k])
                rd.log(f"pass {p}/{recipe.passes}")
                if reason:
                    rd.log(f"diverged at pass {p} ({reason}): the run stops here"
                           + (f"; weights.safetensors holds pass {p - 1}" if p > 1 else ""))
                    rd.record({"pass": p, "diverged": True, "reason": reason})
                    rd.summary = {"seed": seed, "lr": lr, "passes": recipe.passes, "dir": str(rd.path),
                                  "diverged": True, "diverged_at_pass": p, "reason": reason}
                else:
                    lines = [eval_line("train", ev["train"]), eval_line(data.test_name, ev["test"])]
                    for line in lines:
                        rd.log(line)
                    rd.record({**metrics_row(p, ev), "_time": time.time()})
                    meta = {"pass": str(p), "seed": str(seed), "lr": repr(lr), "net": str(recipe.net.to_dict())}
                    rd.set_weights(params[k], meta)
                    if states[k]:   # SGD and SDLM's per-pass estimate carry nothing over
                        rd.set_state(states[k], meta)
                    still.append(i)
            if p == recipe.passes:
                wall_s = time.perf_counter() - t0
                for i in still:
                    rd, (seed, lr) = rundirs[i], runs[i]
                    rd.summary = {"seed": seed, "lr": lr, "passes": recipe.passes, "dir": str(rd.path),
                                  **{k: v for k, v in rd.rows[-1].items() if k != "pass" and not k.startswith("_")},
                                  "wall_s": wall_s, "engine_setup_s": setup_s}
                    for line in final_lines([rd.summary], data.test_name, recipe.net.loss):
                        rd.log(line)
            with signals_deferred():   # so that an interrupt's note counts exactly the passes on disk
                commit({path: content for i in live for path, content in rundirs[i].files().items()})
                committed = p
            with bar.external_write_mode(file=sys.stderr):   # the bar steps aside for the pass's lines
                if single:   # printed once committed: what the screen says, the files hold
                    for line in rundirs[0].lines[rundirs[0].lines.index(f"pass {p}/{recipe.passes}"):][:3]:
                        echo(line)
                else:
                    _echo_pass(echo, p, recipe.passes, [evals[k] for k, i in enumerate(live) if i in still],
                               sum(bool(rd.diverged) for rd in rundirs), data.test_name)
            live = still
            if not live:
                break
    except BaseException as e:
        stop = e if isinstance(e, BrokenPipeError) else interrupt_behind(e)
        if stop is not None:
            stop.note = f"{out} holds pass {committed} of {recipe.passes}; the same command with --resume continues it"
        raise
    finally:
        bar.close()

    summaries = [rd.summary for rd in rundirs]
    finished = [s for s in summaries if not s.get("diverged")]
    if finished:
        for line in final_lines(finished, data.test_name, recipe.net.loss):
            echo(line)
    return summaries


def progress(bar, engine):
    """The bar's update for the engine's steps, its clock moved on by the time the engine spends compiling
    (compile_s, where it has one): a first pass's rate and time left are those of the training, not an
    hour's worth for the seconds of a compile."""
    compiled = [0.0]

    def tick(n: int) -> None:
        spent = getattr(engine, "compile_s", 0.0) - compiled[0]
        if spent > 0 and not bar.disable:   # (a disabled bar keeps no clock)
            compiled[0] += spent
            bar.start_t += spent
            bar.last_print_t += spent
        bar.update(n)
    return tick


def _echo_pass(echo, p: int, passes: int, evals: list[dict], diverged: int, test_name: str) -> None:
    if not evals:
        return
    test = [ev["test"].error * 100 for ev in evals]
    train_ = [ev["train"].error * 100 for ev in evals]
    echo(f"pass {p}/{passes}: train error {np.mean(train_):.2f}% (min {min(train_):.2f}, max {max(train_):.2f}), "
         f"{test_name} error {np.mean(test):.2f}% (min {min(test):.2f}, max {max(test):.2f})"
         + (f"; {diverged} diverged" if diverged else ""))


def raise_if_diverged(summaries: list[dict]) -> None:
    """The command's last word when runs diverged: which, and where to look."""
    bad = [s for s in summaries if s.get("diverged")]
    if bad:
        names = ", ".join(f"{Path(s['dir']).name} (pass {s['diverged_at_pass']})" for s in bad[:8])
        if len(summaries) == 1:
            raise Diverged(f"the run diverged at pass {bad[0]['diverged_at_pass']} ({bad[0]['reason']}); try a lower "
                           f"--lr")
        raise Diverged(f"{len(bad)} of {len(summaries)} runs diverged: {names}{', ...' if len(bad) > 8 else ''}; "
                       f"their loss or weights stopped being finite (try a lower --lr); the others' results stand")


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
