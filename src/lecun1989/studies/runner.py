"""`lecun1989 study`: run the rows of studies not done yet, and save each row's result.

A row is a command line; the command line's own layer (cli/) hands the runner a `run_command(argv,
command_line)` that runs it, so this layer never imports the command line. A row trains in its work
folder and leaves results/STUDY/ROW/study.json: its command, every run's final figures, the per-pass
curves, and what the row measures on its runs once trained (MEASURES).
"""

from __future__ import annotations

import multiprocessing
import shlex
import sys
import time
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Callable

from ..data import Location
from ..engines import cluster
from ..errors import Diverged, LecunError, interrupt_behind
from ..reading.benchmark import accepted_error, make_zipcodes, measure_mnist, mnist_inputs, score_zipcodes
from ..reading.images import reader
from ..reading.rejection import measure
from ..results import curves, final_stats, finished_runs, stats
from ..store.atomic import commit, file_in_the_way, json_text
from ..store.folders import marked
from ..store.rundir import completed, diverged_at, read_json, read_metrics, run_dirs_under
from ..trained import run_test_split
from .rows import DEFAULT_WORK, RESULT, Row, Study, done, result_path


def _check_folder(path: Path, flag: str) -> None:
    """Refuse, before any training, a folder that cannot be one: a file, or under a file; or a folder
    another command made, or inside one (that command's --force would delete the study's work)."""
    in_the_way = file_in_the_way(path)
    if in_the_way:
        raise LecunError(f"{flag} {path}: {in_the_way} is a file, not a folder; choose another {flag}")
    owner = next((p for p in (Path(path), *Path(path).resolve().parents) if marked(p)), None)
    if owner is not None:
        raise LecunError(f"{flag} {path}: {owner} holds {marked(owner)} files another lecun1989 command made; "
                         f"choose another {flag}")


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


def _reject(runs: list[Path], work_row: Path, where: Location) -> dict:
    """`lecun1989 reject`'s figures: per criterion, the share of test digits rejected for 1% error."""
    r = measure([work_row], 0.01, where)
    return {c: {"stats": stats(r.shares(c)), "per_run": r.shares(c).tolist()} for c in r.at}


def _reading_mnist(runs: list[Path], work_row: Path, where: Location) -> dict:
    """MNIST's test digits read three ways by each run (reading.benchmark.measure_mnist; docs/READING.md)."""
    return measure_mnist(runs, where)


ZIPCODES, ZIP_SEED = 1000, 0


def _zipcodes(runs: list[Path], work_row: Path, where: Location) -> dict:
    """The zip-code benchmark (`lecun1989 zipcodes --n 1000 --seed 0`) scored by each run, without a
    count and with `--digits 5` (`lecun1989 predict RUN --truth`): per score, stats over the runs."""
    truth = make_zipcodes(work_row.parent / f"{work_row.name}-zipcodes", ZIPCODES, ZIP_SEED, where, force=True)
    out = {"zipcodes": ZIPCODES, "seed": ZIP_SEED}
    modes = (("count", None), ("digits5", 5))
    jobs = [(run, truth, digits, where) for _, digits in modes for run in runs]
    # Reading is single-threaded Python and numpy: the runs are scored in two processes (spawned, so
    # that nothing of this process's thread pools is inherited), the same numbers as one after another.
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"), initializer=_one_thread) as pool:
        scores = list(pool.map(_score, jobs))
    for i, (mode, _) in enumerate(modes):
        out[mode] = _score_stats(scores[i * len(runs):(i + 1) * len(runs)])
    return out


# A scoring's speeds are timings: left out of a row's figures, which are the same bytes on every machine.
SPEEDS = ("digits_per_second", "network_digits_per_second")


def _score_stats(per_run: list[dict]) -> dict:
    """score_zipcodes' figures over runs: per figure (and per part, separated and touching), stats."""
    out = {}
    for k, v in per_run[0].items():
        if isinstance(v, dict):
            out[k] = _score_stats([p[k] for p in per_run])
        elif k not in ("zips", "strips", *SPEEDS) and all(p[k] is not None for p in per_run):
            out[k] = stats([p[k] for p in per_run])
    return out


def _reading(runs: list[Path], work_row: Path, where: Location) -> dict:
    """The row's runs read together as a committee, as `lecun1989 predict FOLDER` reads a study folder:
    the zip-code benchmark and its photographs (1,000 strips each, seed 0), without a count and with
    `--digits 5`; and the USPS test digits and MNIST's (other writers) at the committee's threshold."""
    out = {"zipcodes": ZIPCODES, "seed": ZIP_SEED}
    jobs = []
    for name, photo in (("plain", False), ("photo", True)):
        truth = make_zipcodes(work_row.parent / f"{work_row.name}-{name}", ZIPCODES, ZIP_SEED, where, force=True,
                              photo=photo)
        jobs += [(work_row, truth, digits, where) for digits in (None, 5)]
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn"), initializer=_one_thread) as pool:
        scores = list(pool.map(_score, jobs))
    for (name, _), pair in zip((("plain", False), ("photo", True)), (scores[:2], scores[2:])):
        out[name] = {mode: {k: v for k, v in score.items() if k not in (*SPEEDS, "strips")}
                     for mode, score in zip(("count", "digits5"), pair)}
    r = reader(work_row, where=where)
    test = run_test_split(runs[0], where)
    out["usps"] = accepted_error(r, test.images, test.labels)
    out["mnist"] = accepted_error(r, *mnist_inputs(where))
    return out


def _one_thread() -> None:
    import torch
    torch.set_num_threads(1)


def _score(job) -> dict:
    run, truth, digits, where = job
    scores = score_zipcodes(run, truth, digits=digits, where=where)
    failed = scores.pop("failed")
    if failed:   # strips this study has just written: something else changed them
        raise LecunError(f"{failed[0]['error']}; the study's strips in {truth.parent} were changed while it read them")
    return scores


# What a row may measure on its runs once trained, under the same key in its study.json.
MEASURES = {"reject": _reject, "reading_mnist": _reading_mnist, "zipcodes": _zipcodes, "reading": _reading}


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


SPENT = ".wall_s.json"   # beside a row's work folder: the seconds its command has run so far

# Runs one command: the arguments after `lecun1989`, and the command line to record as the command's.
RunCommand = Callable[[list[str], str], None]


def _spent(path: Path) -> float:
    """The seconds a row's command has run so far, or 0 where that is not known (no file, or a damaged one:
    it only feeds the row's reported wall time)."""
    try:
        value = read_json(path)
    except LecunError:
        return 0.0
    return float(value) if isinstance(value, (int, float)) and value >= 0 else 0.0


def run_row(study: Study, row: Row, out: Path, work: Path, run_command: RunCommand, where: Location = Location(),
            echo=print) -> None:
    """Train the row in its work folder (resuming it, when it was interrupted), measure its runs and save
    its study.json; `where` is the data location the row's command was given."""
    work_row = Path(work) / study.name / row.name
    argv = shlex.split(row.command)[1:] + ["--out", str(work_row), "--quiet"]
    if work_row.exists() and argv[0] != "sweep":   # a sweep resumes by itself
        argv.append("--resume")
    # the row's wall time adds up over every invocation that trained it, so that a row resumed, or
    # only measured again, does not record the few seconds of its last one
    spent_file = work_row.parent / f"{work_row.name}{SPENT}"
    spent = _spent(spent_file) if work_row.exists() else 0.0
    t0 = time.perf_counter()
    try:
        run_command(argv, row.command)
    except Diverged as e:   # a result like any other: recorded in the row, the study goes on
        echo(f"{study.name}/{row.name}: {e}")
    except LecunError as e:   # the row's command trains in --work, which it knows as its --out
        raise LecunError(f"{study.name}/{row.name} (`{row.command}`): {str(e).replace('--out', '--work')}") from None
    finally:
        wall = spent + time.perf_counter() - t0
        if work_row.exists():
            commit({spent_file: json_text(wall)})
    runs = run_dirs_under([work_row])
    t1 = time.perf_counter()
    measured = {m: MEASURES[m](runs, work_row, where) for m in row.measures}
    if row.measures:
        measured["measures_s"] = round(time.perf_counter() - t1, 1)
    target = result_path(out, study, row).parent
    result = collect(work_row, study, row, wall, measured)
    commit({**_kept_files(work_row, row, target), target / RESULT: json_text(result)})


def run(studies: list[Study], out: Path, run_command: RunCommand, work: Path = DEFAULT_WORK,
        where: Location = Location(), echo=print, at_once: int = 1) -> dict:
    """Run every row not done yet with `run_command`, `at_once` rows side by side (on a cluster: each
    row's runs are spread over it, and one row alone rarely fills it); print a line per row and the
    total wall time."""
    t0 = time.perf_counter()
    _check_folder(out, "--out")
    _check_folder(work, "--work")
    rows = [(s, r) for s in studies for r in s.rows]
    todo = []
    for i, (study, row) in enumerate(rows, 1):
        tag = f"[{i}/{len(rows)}] {study.name}/{row.name}"
        if done(out, study, row):
            echo(f"{tag}: done already ({result_path(out, study, row)})")
        else:
            todo.append((tag, study, row))

    def one(tag: str, study: Study, row: Row) -> None:
        echo(f"{tag}: {row.command}")
        t1 = time.perf_counter()
        try:
            run_row(study, row, out, work, run_command, where, echo)
        except BaseException as e:
            stop = interrupt_behind(e)
            if stop is not None:
                stop.note = (f"{study.name}/{row.name} stopped in {Path(work) / study.name / row.name}; the same "
                             f"`lecun1989 study` command continues it, and skips the rows done")
            raise
        echo(f"{tag}: saved {result_path(out, study, row)} ({time.perf_counter() - t1:.1f}s)")
        sys.stdout.flush()

    if at_once <= 1 or len(todo) <= 1:
        for job in todo:
            one(*job)
    else:
        _side_by_side(one, todo, at_once)
    total = time.perf_counter() - t0
    echo(f"studies {', '.join(s.name for s in studies)}: {len(rows)} rows, {len(todo)} run now, "
         f"{len(rows) - len(todo)} done already; wall time {total:.1f}s ({total / 60:.1f} min)")
    return {"rows": len(rows), "ran": len(todo), "wall_s": total}


def _side_by_side(one, todo: list, at_once: int) -> None:
    """The rows in threads, at most `at_once` at a time, started in order. The first that fails, or an
    interrupt, stops the others at their next pass (cluster.stop_all), and no further row starts; the
    error (or interrupt) is raised once they have stopped, their folders as an interrupted row leaves them."""
    pool = ThreadPoolExecutor(at_once, thread_name_prefix="row")
    futures = [pool.submit(one, *job) for job in todo]
    try:
        finished, _ = wait(futures, return_when=FIRST_EXCEPTION)
        failed = next((f.exception() for f in futures if f in finished and f.exception() is not None), None)
        if failed is not None:
            raise failed
    except BaseException as e:
        cluster.stop_all()
        pool.shutdown(wait=True, cancel_futures=True)
        stop = interrupt_behind(e)
        if stop is not None and not getattr(stop, "note", None):
            stop.note = ("the rows in progress stopped in their work folders; the same `lecun1989 study` command "
                         "continues them, and skips the rows done")
        raise
    pool.shutdown()
