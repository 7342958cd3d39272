"""`lecun1989 reject`: how many test digits finished runs must reject to reach a given error.

For every finished run the test outputs of its final weights are computed again (float64, the
network as trained.load_trained builds it), the digits are rejected least sure first (confidence.py), and
the share that must be rejected for the accepted ones to err at most the target is taken per run,
then mean ± std (min .. max) over the runs. The criterion is the margin between the two largest
outputs, the zip-code work's; two others are measured beside it on the same outputs, to say whether
it was the better choice: the largest output alone, and the largest softmax probability of the
outputs. The outputs are what the network gives: tanh units for the paper's MSE network, logits for
a cross-entropy one.

Diverged runs are counted apart, never measured; an unfinished run is refused, since its weights are
not its final ones.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data import Location, Split
from ..engines.ahead import cores
from ..errors import LecunError
from ..results import stats
from ..store.folders import writer
from ..store.rundir import read_config, read_json, run_dirs_under
from ..trained import compiled_forward, load_trained, run_test_split
from . import confidence

# The companion paper's figure: about 9% rejected for 1% error (Le Cun et al., "Handwritten digit
# recognition with a back-propagation network", NIPS 2, 1989), on zip-code digits of its own.
NIPS_REJECTION, NIPS_ERROR = 0.09, 0.01
NIPS_SOURCE = ("Le Cun et al., Handwritten digit recognition with a back-propagation network, NIPS 2 (1989): "
               "about 9% rejected for 1% error, on its own zip-code digits, not these")

CRITERIA = {"margin": "margin (largest output minus second)", "top": "largest output alone",
            "softmax": "largest softmax probability"}
SHORT = {"margin": "margin (top output minus second)", "top": "largest output", "softmax": "softmax probability"}


def scores(outputs: np.ndarray) -> dict[str, np.ndarray]:
    """Per digit, how sure the network is by each criterion (larger: surer)."""
    out = np.asarray(outputs, dtype=np.float64)
    e = np.exp(out - out.max(1, keepdims=True))
    return {"margin": confidence.margin(out), "top": out.max(1), "softmax": (e / e.sum(1, keepdims=True)).max(1)}


def percent(error: float) -> str:
    """0.01 -> '1%', 0.005 -> '0.5%': the target as the user gave it."""
    return f"{error * 100:g}%"


def check_error(error: float) -> float:
    if not (math.isfinite(error) and 0 <= error < 1):
        raise LecunError(f"--error must be a fraction from 0 to below 1 (0.01 for 1% error), got {error:g}")
    return error


@dataclass
class Found:
    """The run folders under the folders given: finished ones and diverged ones (run -> its summary)."""
    finished: list[Path] = field(default_factory=list)
    diverged: dict[Path, dict] = field(default_factory=dict)


def find_runs(paths: list[Path]) -> Found:
    """The runs of run, study and sweep folders (a sweep's retrained final runs), each once; one line
    for a folder that holds an unfinished run."""
    found, seen = Found(), set()
    for path in map(Path, paths):
        if not path.is_dir():
            raise LecunError(f"{path} does not exist" if not path.exists() else f"{path} is not a folder")
        if (path / "sweep.json").is_file():
            path = path / "final"
        for d in run_dirs_under([path]):
            if d.resolve() in seen:
                continue
            seen.add(d.resolve())
            if not (d / "summary.json").is_file():
                owner = writer(d)
                raise LecunError(f"{d} is not a finished run (it has no summary.json); " + (
                    f"a lecun1989 command (pid {owner['pid']}) is still training it: wait for it to finish"
                    if owner else "finish it first, with the same command and --resume"))
            summary = read_json(d / "summary.json")
            if not isinstance(summary, dict):
                raise LecunError(f"{d / 'summary.json'} is not a JSON object")
            if summary.get("diverged") is True:
                found.diverged[d] = summary
            else:
                found.finished.append(d)
    return found


@dataclass
class RunResult:
    dir: Path
    config: dict
    logged_misses: int | None   # what the run's own (float32) evaluation counted
    correct: np.ndarray         # (n,) bool
    scores: dict[str, np.ndarray]

    @property
    def n(self) -> int:
        return len(self.correct)

    @property
    def misses(self) -> int:
        return int((~self.correct).sum())


def measure_run(run_dir: Path, test: Split) -> RunResult:
    """A finished run's outputs on the digits it was tested on (`test`, run_test_split's)."""
    outputs = load_trained(run_dir, note=lambda line: None).read(test.images)
    if not np.isfinite(outputs).all():
        raise LecunError(f"{run_dir}: the network's outputs are not finite; its weights are not a result")
    summary = read_json(Path(run_dir) / "summary.json")
    logged = summary.get("test_misses") if isinstance(summary, dict) else None
    return RunResult(Path(run_dir), read_config(run_dir), logged if isinstance(logged, int) else None,
                     outputs.argmax(1) == test.labels, scores(outputs))


def _data_key(config: dict) -> tuple:
    d = config["data"]
    return d["source"], d["sha256"], d["held_out"], d["n_test"]


def check_same_digits(runs: list[Path]) -> None:
    """Statistics over runs are over one set of digits: runs tested on other digits are refused."""
    keys = {}
    for d in runs:
        keys.setdefault(_data_key(read_config(d)), d)
    if len(keys) > 1:
        (a, da), (b, db) = list(keys.items())[:2]
        raise LecunError(f"{da} and {db} were tested on different digits ({a[0]}, {a[3]} digits, sha256 {a[1][:12]} "
                         f"against {b[0]}, {b[3]} digits, sha256 {b[1][:12]}); measure them separately")


@dataclass
class Rejection:
    error: float
    runs: list[RunResult]
    diverged: dict[Path, dict]
    at: dict[str, list[tuple[float, float]]]   # criterion -> per run (share rejected, threshold)

    @property
    def split(self) -> str:
        return "validation" if self.runs[0].config["data"]["held_out"] else "test"

    def shares(self, criterion: str = "margin") -> np.ndarray:
        return np.array([share for share, _ in self.at[criterion]])

    def stats(self, criterion: str = "margin") -> dict:
        return stats(self.shares(criterion))


def measure(paths: list[Path], error: float = 0.01, where: Location = Location()) -> Rejection:
    """The rejection each finished run under `paths` needs for `error`, by each criterion."""
    error = check_error(error)
    found = find_runs(paths)
    if not found.finished:
        n = len(found.diverged)
        where = ", ".join(map(str, paths))
        raise LecunError((f"the run in {where} diverged" if n == 1 else f"all {n} runs in {where} diverged") +
                         "; there is no rejection to measure")
    check_same_digits(found.finished)
    # one set of digits (checked above), loaded and checked against its digest once, not once a run
    test = run_test_split(found.finished[0], where)
    compiled_forward()   # compiled or loaded here, where an interrupt stops it, not in a worker thread
    # each run's outputs on its own core: the compiled forward pass holds no lock, and the runs are independent
    with ThreadPoolExecutor(min(len(found.finished), cores())) as pool:
        runs = list(pool.map(lambda d: measure_run(d, test), found.finished))
    at = {c: [confidence.rejection_at(r.scores[c], r.correct, error) for r in runs] for c in CRITERIA}
    return Rejection(error, runs, found.diverged, at)


def curves(result: Rejection, criterion: str) -> tuple[np.ndarray, np.ndarray]:
    """(k / n for k = 0 .. K, per run the error of the accepted digits when at least k are rejected):
    where ties make k itself impossible, the next threshold that can be set (rejecting a few more).
    K: the most any run can reject short of all."""
    n = result.runs[0].n
    per_run = []
    for r in result.runs:
        rejected, err, _ = confidence.rejection_curve(r.scores[criterion], r.correct)
        per_run.append((np.rint(rejected * n).astype(int), err))
    top = min(int(k[-1]) for k, _ in per_run)
    grid = np.arange(top + 1)
    return grid / n, np.array([err[np.searchsorted(k, grid)] for k, err in per_run])


def threshold_json(threshold: float) -> float | None:
    return threshold if math.isfinite(threshold) else None   # never reached: no threshold (strict JSON)


def summary(result: Rejection, command: str | None = None) -> dict:
    """What reject.json holds: the settings, per run and over runs, every criterion, the mean curve."""
    first = result.runs[0].config["data"]
    x, errs = curves(result, "margin")
    # The mean curve at every whole percent rejected, enough to redraw the picture's line.
    at = np.unique(np.searchsorted(x, np.arange(0, math.floor(x[-1] * 100) + 1) / 100))
    per_run = []
    for i, r in enumerate(result.runs):
        per_run.append({
            "dir": str(r.dir), "seed": r.config.get("seed"), "lr": r.config.get("lr"), "n": r.n,
            "misses": r.misses, "logged_misses": r.logged_misses,
            "rejection": {c: {"share": result.at[c][i][0], "threshold": threshold_json(result.at[c][i][1])}
                          for c in CRITERIA}})
    return {
        "error": result.error, "criterion": "margin", "criteria": CRITERIA, "split": result.split,
        "data": {k: first[k] for k in ("source", "seed", "held_out", "n_test", "sha256")},
        "rejection": {c: result.stats(c) for c in CRITERIA},
        "compared": {c: compared(result, c) for c in CRITERIA if c != "margin"},
        "runs": per_run,
        "diverged": [{"dir": str(d), "pass": s.get("diverged_at_pass"), "reason": s.get("reason")}
                     for d, s in result.diverged.items()],
        "curve": {"rejected": [float(v) for v in x[at]], "error_mean": [float(v) for v in errs.mean(0)[at]],
                  "error_min": [float(v) for v in errs.min(0)[at]],
                  "error_max": [float(v) for v in errs.max(0)[at]]},
        "reference": {"rejection": NIPS_REJECTION, "error": NIPS_ERROR, "source": NIPS_SOURCE},
        **({"command": command} if command else {}),
    }


def compared(result: Rejection, criterion: str) -> dict:
    """Another criterion against the margin, run by run: its rejection minus the margin's."""
    diff = result.shares(criterion) - result.shares("margin")
    return {"difference": stats(diff), "lower_in": int((diff < 0).sum()), "higher_in": int((diff > 0).sum())}


def compared_line(result: Rejection, criterion: str) -> str:
    s, c = result.stats(criterion), compared(result, criterion)
    d, n = c["difference"], len(result.runs)
    if c["lower_in"] == n:
        verdict = "better than the margin in every run"
    elif c["higher_in"] == n:
        verdict = "worse than the margin in every run"
    else:
        verdict = (f"better than the margin in {c['lower_in']}, worse in {c['higher_in']} of {n} runs "
                   f"(the same in {n - c['lower_in'] - c['higher_in']})")
    return (f"{CRITERIA[criterion]}: {s['mean'] * 100:.1f}% ± {s['std'] * 100:.1f}% rejected, "
            f"{d['mean'] * 100:+.1f} points ± {d['std'] * 100:.1f} against the margin: {verdict}")


def run_line(result: Rejection, i: int) -> str:
    r = result.runs[i]
    share, threshold = result.at["margin"][i]
    logged = "" if r.logged_misses in (None, r.misses) else f" (its log: {r.logged_misses}, in float32)"
    reached = (f"margin >= {threshold:.3g}" if math.isfinite(threshold)
               else "never reached short of rejecting every digit")
    return (f"{r.dir}: {result.split} error {r.misses / r.n * 100:.2f}% ({r.misses} of {r.n}){logged}; "
            f"reject {share * 100:.1f}% for {percent(result.error)} error ({reached}); "
            + ", ".join(f"{CRITERIA[c]} {result.at[c][i][0] * 100:.1f}%" for c in CRITERIA if c != "margin"))


def last_line(result: Rejection) -> str:
    """`reject at 1% error: 9.8% ± 1.2% of test digits (10 runs)`; one run reads ± 0.0%."""
    s, n = result.stats(), len(result.runs)
    return (f"reject at {percent(result.error)} error: {s['mean'] * 100:.1f}% ± {s['std'] * 100:.1f}% of "
            f"{result.split} digits ({n} run{'s' * (n != 1)})")


def diverged_line(result: Rejection) -> str:
    k = len(result.diverged)
    names = ", ".join(f"{d.name} (pass {s.get('diverged_at_pass')})" for d, s in list(result.diverged.items())[:8])
    return f"{k} diverged run{'s' * (k > 1)} left out: {names}{', ...' if k > 8 else ''}"


def lines(result: Rejection) -> list[str]:
    """Per run, the other criteria, the diverged runs, and the figure last."""
    out = [run_line(result, i) for i in range(len(result.runs))]
    out += [compared_line(result, c) for c in CRITERIA if c != "margin"]
    if result.diverged:
        out.append(diverged_line(result))
    return out + [last_line(result)]


def table_line(result: Rejection) -> str:
    """The line of `lecun1989 paper`'s comparison table: the companion paper's figure beside ours,
    not judged within or outside, for its digits are others."""
    return stats_line(result.stats(), result.error)


def stats_line(s: dict, error: float = 0.01) -> str:
    """table_line from the margin criterion's statistics over runs (results.stats)."""
    label = f"reject for {percent(error)}"   # the table's label column is 14 wide
    return (f"{label:14s} {'~9% (NIPS)':>14s}   {s['mean'] * 100:.1f}% ± {s['std'] * 100:.1f} "
            f"({s['min'] * 100:.1f} .. {s['max'] * 100:.1f})   not compared   (the companion NIPS 1989 paper's "
            f"figure, on other zip-code digits; margin criterion)")
