"""Results across runs: per-pass curves (mean and std over seeds) and the comparison with the paper.

Everything here is read back from run directories (metrics.jsonl, config.json, summary.json), so
it works the same for a run that just finished and for one trained last week.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from . import paper
from .store.atomic import commit, json_text, write_text
from .store.rundir import METRICS, completed, diverged_at, read_metrics

# (metric, label, the paper's figure)
PAPER_FIGURES = (("train_error", "train error", paper.TRAIN_ERROR), ("test_error", "test error", paper.TEST_ERROR),
                 ("train_loss", "train MSE", paper.TRAIN_MSE), ("test_loss", "test MSE", paper.TEST_MSE))


def stats(values) -> dict:
    a = np.asarray(values, dtype=np.float64)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0,
            "min": float(a.min()), "max": float(a.max()), "n": int(len(a))}


def curves(runs: list[list[dict]]) -> list[dict]:
    """Per pass: mean and std over runs of every metric (passes all runs finished)."""
    n = min(len(r) for r in runs)
    rows = []
    for i in range(n):
        row = {"pass": runs[0][i]["pass"], "runs": len(runs)}
        for m in METRICS:
            s = stats([r[i][m] for r in runs])
            row[f"{m}_mean"], row[f"{m}_std"] = s["mean"], s["std"]
        rows.append(row)
    return rows


def csv_text(rows: list[dict]) -> str:
    """Rows of equal keys as CSV."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def write_csv(path: Path, rows: list[dict]) -> None:
    write_text(path, csv_text(rows))


def final_stats(runs: list[list[dict]]) -> dict:
    return {m: stats([r[-1][m] for r in runs]) for m in METRICS}


def comparison_lines(final: dict) -> list[str]:
    """The paper's four figures beside ours (mean ± std (min .. max)), and whether each lies within
    one standard deviation of ours (the errors compared as miss counts)."""
    n = final["train_error"]["n"]
    lines = [f"{'':14s} {'paper (1989)':>14s}   ours over {n} run{'s' * (n > 1)}: mean ± std (min .. max)"]
    for key, label, value in PAPER_FIGURES:
        s = final[key]
        within = abs(s["mean"] - value) <= s["std"]
        if key.endswith("error"):
            # Compared in misses: the paper's percentages are rounded (102 of 2,007 is 5.08%, printed 5.0%).
            m = final[key.replace("error", "misses")]
            paper_misses = paper.TRAIN_MISSES if key.startswith("train") else paper.TEST_MISSES
            within = abs(m["mean"] - paper_misses) <= m["std"]
            ours = (f"{s['mean'] * 100:.2f}% ± {s['std'] * 100:.2f} ({s['min'] * 100:.2f} .. {s['max'] * 100:.2f}); "
                    f"misses {m['mean']:.1f} ± {m['std']:.1f}")
            theirs = f"{value * 100:.2f}% ({paper_misses})"
        else:
            ours = f"{s['mean']:.2e} ± {s['std']:.1e} ({s['min']:.2e} .. {s['max']:.2e})"
            theirs = f"{value:.2e}"
        lines.append(f"{label:14s} {theirs:>14s}   {ours}   {'within 1 std' if within else 'outside 1 std'}")
    # The paper does not define its MSE. With the factor 1/2 of the error of its time
    # (E = 1/2 sum (t - y)^2, Rumelhart, Hinton & Williams 1986), ours would read half as much.
    for key, label, value in PAPER_FIGURES[2:]:
        s = {k: v / 2 for k, v in final[key].items() if k != "n"}
        within = abs(s["mean"] - value) <= s["std"]
        lines.append(f"{label + ' / 2':14s} {value:>14.2e}   {s['mean']:.2e} ± {s['std']:.1e} ({s['min']:.2e} .. "
                     f"{s['max']:.2e})   {'within 1 std' if within else 'outside 1 std'}   (if the paper's E has "
                     f"the factor 1/2)")
    return lines


def finished_runs(all_rows) -> list[list[dict]]:
    """The metrics of the runs that did not diverge, each cut to the passes all of them completed
    (none when one completed no pass): figures over runs are always over the same passes."""
    runs = [completed(rows) for rows in all_rows if diverged_at(rows) is None]
    last = min((len(r) for r in runs), default=0)
    return [r[:last] for r in runs] if last else []


def write_study(out: Path, run_dirs: list[Path], extra: dict | None = None) -> dict:
    """curves.csv and study.json (final figures, paper's figures, per-run finals) for runs of one recipe.
    Diverged runs are counted and named, never averaged; the figures are those of the last pass every
    other run completed."""
    all_rows = {d: read_metrics(d) for d in run_dirs}
    diverged = [{"dir": str(d), "pass": diverged_at(rows), "reason": rows[-1].get("reason")}
                for d, rows in all_rows.items() if diverged_at(rows) is not None]
    runs = finished_runs(all_rows.values())
    final = final_stats(runs) if runs else None
    files = {}
    if runs:
        files[out / "curves.csv"] = csv_text(curves(runs))
    study = {**(extra or {}), "runs": [str(d) for d in run_dirs], "final": final,
             "final_pass": runs[0][-1]["pass"] if runs else None, "diverged": diverged,
             "paper": {key: value for key, _, value in PAPER_FIGURES},
             "per_run": [r[-1] for r in runs]}
    files[out / "study.json"] = json_text(study)
    commit(files)
    return study


def format_int_list(values) -> str:
    values = list(values)
    if values == list(range(values[0], values[0] + len(values))) and len(values) > 1:
        return f"{values[0]}-{values[-1]}"
    return ",".join(map(str, values))
