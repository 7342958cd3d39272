"""`lecun1989 sweep`: a grid of learning rates (and mu, for the diagonal Newton method) x seeds.

Every grid point is trained on the training set minus its last N digits and judged on those N (the
validation split); the test set is not looked at until one point is chosen (lowest mean validation
error; ties go to the lower validation loss). That point is then retrained on the full training
set with the same seeds, and only its test figures are reported. All learning rates of one mu
train at once in the many-runs engine.

Layout of the output folder:
    sweep-config.json       what was asked (a re-run with the same settings resumes)
    val/mu<mu>/lr<lr>-seed<s>/   one run directory per grid point and seed ("val/all/" without mu)
    final/lr<lr>-seed<s>/   the selected point retrained on the full training set
    sweep.csv               every run's figures after every pass
    sweep.json              per grid point: mean, std, min, max over seeds; the selection; the final figures
"""

from __future__ import annotations

import math
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from .data import Dataset
from .errors import Diverged, LecunError, interrupt_behind
from .results import csv_text, stats, write_csv
from .store.atomic import commit, json_text
from .store.folders import Lock, check_output, marked, marker, replace_contents
from .store.rundir import completed, diverged_at, read_json, read_metrics
from .train import Recipe, check_memory, raise_if_diverged, run_dirs, train


MAX_GRID = 1000   # learning rates in one sweep: each is a block of runs


def log_grid(text: str) -> tuple[float, ...]:
    """'1e-4:1e-1:7' -> 7 values evenly spaced in log between 1e-4 and 1e-1 (3 significant digits)."""
    try:
        lo, hi, n = text.split(":")
        lo, hi, n = float(lo), float(hi), int(n)
        if not (0 < lo < hi < math.inf and n >= 2):
            raise ValueError
    except ValueError:
        raise LecunError(f"bad grid {text!r}: use LOW:HIGH:N, e.g. 1e-3:1e-1:10 (N values from LOW to HIGH, "
                         f"evenly spaced in log)") from None
    if n > MAX_GRID:
        raise LecunError(f"grid {text!r} has {n:,} points; a sweep takes at most {MAX_GRID}")
    grid = tuple(float(f"{v:.3g}") for v in np.geomspace(lo, hi, n))
    if len(set(grid)) < n:
        raise LecunError(f"grid {text!r} has points closer than its 3 significant digits tell apart; "
                         f"take fewer points or a wider range")
    return grid


def _finished(dirs: list[Path], passes: int) -> bool:
    for d in dirs:
        try:
            if read_json(d / "summary.json")["passes"] != passes:
                return False
        except (LecunError, KeyError, TypeError):
            return False
    return True


def _train_block(recipe: Recipe, data: Dataset, out: Path, quiet: bool, echo) -> tuple[list[Path], list[dict]]:
    """Train one block of runs (or continue it, when an earlier sweep was interrupted in it)."""
    dirs = run_dirs(out, recipe.runs(), nested=True)   # the same layout for one run as for many
    target = out if len(recipe.runs()) > 1 else dirs[0]
    if _finished(dirs, recipe.passes):
        echo(f"{out}: finished before, skipped")
        return dirs, [read_json(d / "summary.json") for d in dirs]
    summaries = train(recipe, data, target, resume=target.exists(), quiet=quiet, echo=echo, command="sweep")
    return dirs, summaries


def _rows(phase: str, mu, recipe: Recipe, dirs: list[Path]) -> list[dict]:
    rows = []
    for (seed, lr), d in zip(recipe.runs(), dirs):
        for m in completed(read_metrics(d)):
            rows.append({"phase": phase, "mu": mu, "lr": lr, "seed": seed, **m})
    return rows


def _finals(dirs: list[Path]) -> tuple[list[dict], int]:
    """The last rows of the runs that did not diverge, and how many did."""
    rows = [read_metrics(d) for d in dirs]
    return [r[-1] for r in rows if diverged_at(r) is None], sum(diverged_at(r) is not None for r in rows)


def sweep(base: Recipe, recipe_name: str, lrs: tuple[float, ...], mus: tuple[float, ...] | None,
          seeds: tuple[int, ...], data: Dataset, n_val: int, out: str | Path, force: bool = False, quiet: bool = False,
          echo=print) -> dict:
    out = Path(out)
    if mus and base.optim.name != "sdlm":
        raise LecunError("--mus is a setting of the sdlm optimizer; drop it or sweep a recipe that uses sdlm (--recipe paper)")
    val_data = data.validation(n_val)   # refuses a split that does not fit, before anything is written
    recipes = [replace(base, lrs=lrs, seeds=seeds, optim=base.optim if mu is None else replace(base.optim, mu=mu))
               for mu in (mus or (None,))]   # each checks its settings here, before anything is written
    for recipe in recipes:
        check_memory(recipe, val_data)
    settings = {"recipe": recipe_name, "data": data.source, "data_sha256": data.sha256, "lrs": list(lrs),
                "mus": list(mus) if mus else None, "seeds": list(seeds), "validation": n_val,
                "passes": base.passes, "optimizer": base.optim.name, "net": base.net.to_dict(),
                "engine": base.engine, "dtype": base.dtype}
    cfg = out / "sweep-config.json"
    mode = check_output(out, force, resume=not force and marked(out) == "sweep", command="sweep")
    with Lock(out, echo=lambda line: print(line, file=sys.stderr)):
        if mode == "resume":
            if not cfg.is_file() or read_json(cfg) != settings:
                raise LecunError(f"{out} holds a sweep with other settings; pass --force to start over, "
                                 f"or choose another --out")
            echo(f"resuming the sweep in {out}")
        if mode == "replace":
            replace_contents(out)
        if mode != "resume":
            commit({**marker(out, "sweep", "sweep"), cfg: json_text(settings)})
        try:
            return _sweep(base, recipes, mus, lrs, seeds, data, val_data, out, settings, quiet, echo)
        except BaseException as e:   # a sweep has no --resume: it continues by itself
            stop = e if isinstance(e, BrokenPipeError) else interrupt_behind(e)
            if stop is not None:
                stop.note = f"{out} keeps what was trained; the same command continues it"
                raise stop from None
            raise


def _sweep(base, recipes, mus, lrs, seeds, data, val_data, out, settings, quiet, echo) -> dict:
    rows, points = [], []
    for mu, recipe in zip(mus or (None,), recipes):
        folder = out / "val" / ("all" if mu is None else f"mu{mu:g}")
        echo(f"validation runs: {len(lrs)} learning rates x {len(seeds)} seeds"
             + ("" if mu is None else f", mu {mu:g}"))
        dirs, _ = _train_block(recipe, val_data, folder, quiet, echo)
        rows += _rows("val", mu, recipe, dirs)
        for lr in lrs:
            finals, diverged = _finals([d for (s, l), d in zip(recipe.runs(), dirs) if l == lr])
            point = {"mu": mu, "lr": lr, "diverged": diverged}
            if finals:
                point.update({"val_error": stats([f["test_error"] for f in finals]),
                              "val_loss": stats([f["test_loss"] for f in finals]),
                              "train_error": stats([f["train_error"] for f in finals])})
            points.append(point)
    # A point where any seed diverged is not a candidate: its mean would describe the lucky seeds only.
    candidates = [p for p in points if not p["diverged"]]
    if not candidates:
        if rows:
            write_csv(out / "sweep.csv", rows)
        raise Diverged(f"every grid point had a diverging run, so none can be chosen; see {out / 'val'} and try "
                       f"lower learning rates")
    best = min(candidates, key=lambda p: (p["val_error"]["mean"], p["val_loss"]["mean"]))
    selected = {"lr": best["lr"], "mu": best["mu"]}
    echo(f"selected: lr {best['lr']:g}" + ("" if best["mu"] is None else f", mu {best['mu']:g}") +
         f" (validation error {best['val_error']['mean'] * 100:.2f}% ± {best['val_error']['std'] * 100:.2f})")

    final_recipe = replace(base, lrs=(best["lr"],), seeds=seeds,
                           optim=base.optim if best["mu"] is None else replace(base.optim, mu=best["mu"]))
    echo(f"retraining the selected setting on all {len(data.train)} training digits, {len(seeds)} seeds")
    dirs, summaries = _train_block(final_recipe, data, out / "final", quiet, echo)
    rows += _rows("final", best["mu"], final_recipe, dirs)
    finals, diverged = _finals(dirs)
    final = {k: stats([f[k] for f in finals]) for k in ("train_error", "test_error", "train_loss", "test_loss",
                                                         "train_misses", "test_misses")} if finals else None
    result = {**settings, "points": points, "selected": selected, "final": final, "final_diverged": diverged,
              "final_runs": [str(d) for d in dirs]}
    commit({out / "sweep.csv": csv_text(rows), out / "sweep.json": json_text(result)})
    for line in summary_lines(result):
        echo(line)
    raise_if_diverged(summaries)
    return result


def summary_lines(result: dict) -> list[str]:
    lines = [f"{'mu':>8s} {'lr':>10s}   validation error % mean ± std (min .. max)"]
    for p in result["points"]:
        mark_ = "  <- selected" if (p["lr"], p["mu"]) == (result["selected"]["lr"], result["selected"]["mu"]) else ""
        mu = "-" if p["mu"] is None else f"{p['mu']:g}"
        figures = ""
        if "val_error" in p:
            v = p["val_error"]
            figures = f"{v['mean'] * 100:.2f} ± {v['std'] * 100:.2f} ({v['min'] * 100:.2f} .. {v['max'] * 100:.2f})"
        if p["diverged"]:
            figures += f"{', ' if figures else ''}{p['diverged']} of {len(result['seeds'])} runs diverged"
        lines.append(f"{mu:>8s} {p['lr']:>10g}   {figures}{mark_}")
    f = result["final"]
    if f:
        lines.append(f"selected, retrained on the full training set: test error {f['test_error']['mean'] * 100:.2f}% "
                     f"± {f['test_error']['std'] * 100:.2f} ({f['test_misses']['mean']:.1f} misses), train error "
                     f"{f['train_error']['mean'] * 100:.2f}% ± {f['train_error']['std'] * 100:.2f}")
    return lines
