"""The studies behind every measured table of the docs, as data: each a list of rows, each row one
`lecun1989` command, exactly as a reader would type it.

`lecun1989 study NAME|all` runs them. A row trains in a work folder (`runs/studies/STUDY/ROW` by
default) and leaves its small result, `results/STUDY/ROW/study.json`, in the repository: every
run's final figures and the per-pass curves (mean and std over seeds), the command and the data's
digest. A row whose study.json already holds its command is skipped; an interrupted row continues
from its last completed pass. `lecun1989 docs` writes the tables from these files (docs.py).
"""

from __future__ import annotations

import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import Diverged, LecunError, interrupt_behind
from .io import commit, file_in_the_way, json_text
from .results import (completed, curves, diverged_at, final_stats, finished_runs, read_json, read_metrics,
                      run_dirs_under, stats)

RESULT = "study.json"
DEFAULT_WORK = Path("runs") / "studies"


@dataclass(frozen=True)
class Row:
    name: str             # the row's folder under results/STUDY/
    command: str          # the `lecun1989 ...` command line, without --out
    measures: tuple[str, ...] = ()   # measured on its runs after training: MEASURES
    keep: int = 0         # keep the weights of this many runs, for the docs' pictures


@dataclass(frozen=True)
class Study:
    name: str
    what: str
    rows: tuple[Row, ...]


def _ablation(data: str) -> tuple[Row, ...]:
    ref = f"lecun1989 paper --data {data} --seeds 0-4 --hessian pass"
    return (Row(f"{data}-reference", ref),
            Row(f"{data}-running", f"lecun1989 paper --data {data} --seeds 0-4 --hessian running"),
            Row(f"{data}-eps3e-4", f"{ref} --lr 3e-4"),
            Row(f"{data}-lenet5", f"{ref} --schedule lenet5 --lr 2e-3"),
            Row(f"{data}-tanh", f"{ref} --activation tanh"),
            Row(f"{data}-sqrt", f"{ref} --init sqrt"),
            Row(f"{data}-bias0", f"{ref} --output-bias 0"),
            Row(f"{data}-cyclic", f"{ref} --table cyclic"))


def _optimizers(data: str) -> tuple[Row, ...]:
    return (Row(f"{data}-sgd", f"lecun1989 paper --data {data} --seeds 0-4 --optimizer sgd --lr 0.03"),
            Row(f"{data}-momentum", f"lecun1989 paper --data {data} --optimizer momentum --momentum 0.9 --lr 0.003"))


def _validation() -> tuple[Row, ...]:
    def sdlm(seeds, act="scaled_tanh", init="linear", bias=-1, mu=0.02, schedule="constant", h="pass"):
        return (f"lecun1989 paper --validation 1000 --seeds {seeds} --activation {act} --init {init} "
                f"--output-bias {bias} --mu {mu} --schedule {schedule} --hessian {h}")
    rows = [Row(f"{act}-{init}", f"{sdlm('0-1', act, init)} --lrs 0.0001,0.0003,0.001,0.003")
            for act in ("scaled_tanh", "tanh") for init in ("linear", "sqrt")]
    rows += [Row("tanh-sqrt-lenet5", f"{sdlm('0-1', 'tanh', 'sqrt', schedule='lenet5')} --lrs 0.001,0.003,0.01"),
             Row("mu0.005", f"{sdlm('100-103', mu=0.005)} --lr 0.001"),
             Row("eps", f"{sdlm('100-103')} --lrs 0.0003,0.0006,0.001"),
             Row("running", f"{sdlm('100-103', h='running')} --lr 0.001"),
             Row("lenet5", f"{sdlm('100-103', schedule='lenet5')} --lr 0.002"),
             Row("mu0.1", f"{sdlm('100-103', mu=0.1)} --lr 0.001"),
             Row("bias0", f"{sdlm('100-103', bias=0)} --lrs 0.0003,0.001"),
             Row("momentum", "lecun1989 paper --validation 1000 --seeds 100-103 --optimizer momentum --momentum 0.9 "
                             "--lrs 0.0005,0.001,0.002,0.003,0.005")]
    return tuple(rows)


def _ladder(data: str, steps: tuple[str, ...]) -> tuple[Row, ...]:
    return tuple(Row(f"{data}-{step}", f"lecun1989 modern --data {data} --upto {step}",
                     measures=("reject",) * ((data, step) == ("usps", "relu-dropout")))
                 for step in steps)


_STEPS = ("baseline", "ce", "adamw", "shift", "relu-dropout")
STUDIES = {s.name: s for s in (
    Study("paper", "the paper's configuration and the reproduction's recipe (README; docs/FIDELITY.md, The result)",
          (Row("usps", "lecun1989 paper --data usps", measures=("reject", "reading_mnist", "zipcodes"), keep=1),
           Row("usps-hessian-pass", "lecun1989 paper --data usps --hessian pass"),
           Row("mnist", "lecun1989 paper --data mnist"),
           Row("mnist-hessian-pass", "lecun1989 paper --data mnist --hessian pass"),
           Row("repro", "lecun1989 repro --data usps"),
           Row("repro-seeds", "lecun1989 repro --data usps --seeds 0-9"))),
    Study("ablation", "one choice of the paper's configuration at a time, on both data sets (docs/FIDELITY.md)",
          _ablation("usps") + _ablation("mnist")),
    Study("optimizers", "plain SGD and SGD with momentum in place of the paper's optimizer (docs/FIDELITY.md)",
          _optimizers("usps") + _optimizers("mnist")),
    Study("validation", "the grid the open choices were made on, the last 1,000 USPS training digits held out "
                        "(docs/FIDELITY.md)", _validation()),
    Study("sweep", "a learning-rate grid of the paper's configuration chosen on validation and retrained "
                   "(README, Speed)", (Row("paper", "lecun1989 sweep --recipe paper --lr-grid 1e-4:1e-2:5"),)),
    Study("modern", "the modern ladder on USPS, on the MNIST approximation, and on the reproduction's published "
                    "draw (docs/MODERN.md)",
          _ladder("usps", _STEPS) + _ladder("mnist", (*_STEPS, "baseline50k", "data50k"))
          + _ladder("mnist-published", _STEPS)),
)}


def select(names: list[str], studies: dict[str, Study] | None = None) -> list[Study]:
    studies = studies or STUDIES
    if "all" in names:
        return list(studies.values())
    unknown = [n for n in names if n not in studies]
    if unknown:
        raise LecunError(f"no study named {unknown[0]!r}; the studies are: {', '.join(studies)}, or all")
    return [studies[n] for n in dict.fromkeys(names)]


def result_path(out: Path, study: Study, row: Row) -> Path:
    return Path(out) / study.name / row.name / RESULT


def done(out: Path, study: Study, row: Row) -> bool:
    """Whether the row's result is saved already; a file in its place that is not a row's result this
    program wrote is refused, not overwritten."""
    path = result_path(out, study, row)
    if not path.is_file():
        return False
    result = read_json(path)
    if not (isinstance(result, dict) and {"study", "row", "command"} <= set(result)):
        raise LecunError(f"{path} is not a study result lecun1989 wrote, so it is left as it is; choose another --out")
    return result.get("command") == row.command and all(m in result for m in row.measures)


def _check_folder(path: Path, flag: str) -> None:
    """Refuse, before any training, a folder that cannot be one: a file, or under a file."""
    in_the_way = file_in_the_way(path)
    if in_the_way:
        raise LecunError(f"{flag} {path}: {in_the_way} is a file, not a folder; choose another {flag}")


def _by_lr(configs: dict[Path, dict], metrics: dict[Path, list[dict]]) -> list[dict]:
    """Per learning rate: its seeds, final figures over the runs that did not diverge, per-pass curves."""
    groups = {}
    for d, config in configs.items():
        groups.setdefault(config["lr"], []).append(d)
    out = []
    for lr, dirs in groups.items():
        kept = finished_runs([metrics[d] for d in dirs])
        out.append({"lr": lr, "seeds": [configs[d]["seed"] for d in dirs],
                    "diverged": [{"seed": configs[d]["seed"], "pass": diverged_at(metrics[d])}
                                 for d in dirs if diverged_at(metrics[d]) is not None],
                    "final_pass": kept[0][-1]["pass"] if kept else None,
                    "final": final_stats(kept) if kept else None,
                    "curves": curves(kept) if kept else []})
    return out


def _reject(runs: list[Path], work_row: Path, load: dict) -> dict:
    """`lecun1989 reject`'s figures: per criterion, the share of test digits rejected for 1% error."""
    from .reject import measure
    r = measure([work_row], 0.01, load)
    return {c: {"stats": stats(r.shares(c)), "per_run": r.shares(c).tolist()} for c in r.at}


def _reading_mnist(runs: list[Path], work_row: Path, load: dict) -> dict:
    """MNIST's test digits read three ways by each run (reading.measure_mnist; docs/READING.md)."""
    from .reading import measure_mnist
    return measure_mnist(runs, load)


ZIPCODES, ZIP_SEED = 1000, 0


def _zipcodes(runs: list[Path], work_row: Path, load: dict) -> dict:
    """The zip-code benchmark (`lecun1989 zipcodes --n 1000 --seed 0`) scored by each run, without a
    count and with `--digits 5` (`lecun1989 predict RUN --truth`): per score, stats over the runs."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from .reading import make_zipcodes
    truth = make_zipcodes(work_row.parent / f"{work_row.name}-zipcodes", ZIPCODES, ZIP_SEED, load, force=True)
    out = {"zipcodes": ZIPCODES, "seed": ZIP_SEED}
    modes = (("count", None), ("digits5", 5))
    jobs = [(run, truth, digits, load) for _, digits in modes for run in runs]
    # Reading is single-threaded Python and numpy: the runs are scored in two processes (spawned, so
    # that nothing of this process's thread pools is inherited), the same numbers as one after another.
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"), initializer=_one_thread) as pool:
        scores = list(pool.map(_score, jobs))
    for i, (mode, _) in enumerate(modes):
        per_run = scores[i * len(runs):(i + 1) * len(runs)]
        out[mode] = {k: stats([p[k] for p in per_run]) for k in per_run[0]
                     if k != "zips" and all(p[k] is not None for p in per_run)}
    return out


def _one_thread() -> None:
    import torch
    torch.set_num_threads(1)


def _score(job) -> dict:
    from .reading import score_zipcodes
    run, truth, digits, load = job
    return score_zipcodes(run, truth, digits=digits, load=load)


# What a row may measure on its runs once trained, under the same key in its study.json.
MEASURES = {"reject": _reject, "reading_mnist": _reading_mnist, "zipcodes": _zipcodes}


def collect(work_row: Path, study: Study, row: Row, wall_s: float, measured: dict | None = None) -> dict:
    """A row's result from its work folder: small, and all the docs need. A sweep's runs are its
    retrained final runs; its grid is summed up from its sweep.json."""
    sweep = read_json(work_row / "sweep.json") if (work_row / "sweep.json").is_file() else None
    dirs = run_dirs_under([work_row / "final" if sweep else work_row])
    configs = {d: read_json(d / "config.json") for d in dirs}
    metrics = {d: read_metrics(d) for d in dirs}
    first = configs[dirs[0]]
    result = {
        "study": study.name, "row": row.name, "command": row.command,
        "data": first["data"], "net": first["net"], "optimizer": first["optimizer"], "passes": first["passes"],
        "kernels": first["kernels"], "dtype": first["dtype"], "versions": first["versions"],
        "git_commit": first["git_commit"], "wall_s": round(wall_s, 1),
        "runs": [{"seed": configs[d]["seed"], "lr": configs[d]["lr"], "diverged_at": diverged_at(metrics[d]),
                  "final": completed(metrics[d])[-1] if completed(metrics[d]) else None} for d in dirs],
        "by_lr": _by_lr(configs, metrics),
    }
    if sweep is not None:
        result["sweep"] = {k: sweep[k] for k in ("points", "selected")}
    return {**result, **(measured or {})}


def _kept_files(work_row: Path, row: Row, target: Path) -> dict[Path, bytes]:
    """The weights and settings of the row's first `keep` runs, for the pictures drawn from them."""
    files = {}
    for d in run_dirs_under([work_row])[:row.keep]:
        for name in ("config.json", "weights.safetensors"):
            files[target / d.name / name] = (d / name).read_bytes()
    return files


def run_row(study: Study, row: Row, out: Path, work: Path, location: list[str], echo=print) -> None:
    from . import cli
    work_row = Path(work) / study.name / row.name
    argv = shlex.split(row.command)[1:] + ["--out", str(work_row), "--quiet", *location]
    if work_row.exists() and argv[0] != "sweep":   # a sweep resumes by itself
        argv.append("--resume")
    args = cli.build_parser().parse_args(argv)
    args.command_line = row.command
    t0 = time.perf_counter()
    try:
        args.func(args)
    except Diverged as e:   # a result like any other: recorded in the row, the study goes on
        echo(f"{study.name}/{row.name}: {e}")
    except LecunError as e:   # the row's command trains in --work, which it knows as its --out
        raise LecunError(f"{study.name}/{row.name} (`{row.command}`): {str(e).replace('--out', '--work')}") from None
    wall = time.perf_counter() - t0
    runs = run_dirs_under([work_row])
    t1 = time.perf_counter()
    measured = {m: MEASURES[m](runs, work_row, cli.load_kwargs(args)) for m in row.measures}
    if row.measures:
        measured["measures_s"] = round(time.perf_counter() - t1, 1)
    target = result_path(out, study, row).parent
    result = collect(work_row, study, row, wall, measured)
    commit({**_kept_files(work_row, row, target), target / RESULT: json_text(result)})


def run(studies: list[Study], out: Path, work: Path = DEFAULT_WORK, location: list[str] = (), echo=print) -> dict:
    """Run every row not done yet; print a line per row and the total wall time."""
    t0 = time.perf_counter()
    _check_folder(out, "--out")
    _check_folder(work, "--work")
    rows = [(s, r) for s in studies for r in s.rows]
    ran = 0
    for i, (study, row) in enumerate(rows, 1):
        tag = f"[{i}/{len(rows)}] {study.name}/{row.name}"
        if done(out, study, row):
            echo(f"{tag}: done already ({result_path(out, study, row)})")
            continue
        echo(f"{tag}: {row.command}")
        t1 = time.perf_counter()
        try:
            run_row(study, row, out, work, list(location), echo)
        except BaseException as e:
            stop = interrupt_behind(e)
            if stop is not None:
                stop.note = (f"{study.name}/{row.name} stopped in {Path(work) / study.name / row.name}; the same "
                             f"`lecun1989 study` command continues it, and skips the rows done")
            raise
        ran += 1
        echo(f"{tag}: saved {result_path(out, study, row)} ({time.perf_counter() - t1:.1f}s)")
        sys.stdout.flush()
    total = time.perf_counter() - t0
    echo(f"studies {', '.join(s.name for s in studies)}: {len(rows)} rows, {ran} run now, "
         f"{len(rows) - ran} done already; wall time {total:.1f}s ({total / 60:.1f} min)")
    return {"rows": len(rows), "ran": ran, "wall_s": total}
