"""How `study all`, or a grid of many runs, would scale on a cluster: a simulation of `--cluster`'s
scheduler from each row's measured wall time (docs/CLUSTER.md).

The model follows engines/cluster.py. A command trains its runs pass by pass; each pass, its units (a
lane group of up to 8 runs on the lane kernels, or one run on the single-run kernels) are shared out
over the nodes and their cores, and the pass ends when the last comes back. On W cores ("workers") a
pass of u units takes ceil(u / W) rounds. A row's time on the two cores it was measured on is a fixed part (the command's start and the
row's measures, which no worker shares) plus its passes' rounds, ceil(u / 2) each; that gives the time
of one unit's pass, which the simulation keeps. A sweep row is two blocks: its validation grid, then its
retrained seeds. With `--cluster` the study runner runs rows side by side, one for every two of the
cluster's cores (engines/cluster.py: rows_for), each started in order as one ends; the simulation
gives each running row an equal share of the cores. The longest row bounds it, as the total work spread
over every core does. These are estimates from measured times,
not measurements on a cluster: the overhead of the tasks themselves is in `--cluster local`'s measured
figure (docs/CLUSTER.md), not here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..engines.cluster import rows_for
from ..paper import PASSES

# engines/simd.py's LANES and fast.py's LANES_FROM, which import numba (tests/test_studies.py holds them equal)
LANES = 8        # runs per lane group
LANES_FROM = 7   # from 7 runs a command trains on the lane kernels
START_S = 2.0    # a command's start, once compiled: imports, data, the engine (docs/SPEED.md)
MEASURED_ON = 2  # the cores the results were measured on


@dataclass(frozen=True)
class Row:
    name: str
    blocks: tuple[tuple[int, int], ...]   # (units, passes) of each command the row trains, in order
    unit_pass_s: float                    # one unit's pass
    fixed_s: float                        # what no worker shares

    def seconds(self, workers: int) -> float:
        return self.fixed_s + sum(passes * math.ceil(units / workers) * self.unit_pass_s
                                  for units, passes in self.blocks)


def units(runs: int) -> int:
    return math.ceil(runs / LANES) if runs >= LANES_FROM else runs


def row_model(result: dict) -> Row:
    """A row's model from its study.json (runner.collect); unit_pass_s is NaN where the recorded wall
    time does not cover the row's training (a row whose runs were trained before the runner added up
    its invocations, and only measured again since)."""
    seeds, passes = len(result["runs"]), result["passes"]
    blocks = [(units(seeds), passes)]
    if "sweep" in result:   # the validation grid came first: every point with every seed
        blocks.insert(0, (units(len(result["sweep"]["points"]) * seeds), passes))
    fixed = START_S * len(blocks) + result.get("measures_s", 0.0)
    rounds = sum(p * math.ceil(u / MEASURED_ON) for u, p in blocks)
    trained = result["wall_s"] - fixed
    return Row(f"{result['study']}/{result['row']}", tuple(blocks), trained / rounds if trained > 0 else math.nan,
               fixed)


def models(results: list[dict]) -> list[Row]:
    """Every row's model; a row without a training time of its own takes the median unit time of the
    rows on the same kernels with the same optimizer."""
    rows = [row_model(r) for r in results]
    kind = [(r["kernels"], r["optimizer"]["name"]) for r in results]
    out = []
    for row, k in zip(rows, kind):
        if math.isnan(row.unit_pass_s):
            alike = sorted(o.unit_pass_s for o, ok in zip(rows, kind) if ok == k and not math.isnan(o.unit_pass_s))
            row = Row(row.name, row.blocks, alike[len(alike) // 2] if alike else 0.0, row.fixed_s)
        out.append(row)
    return out


def grid(runs: int, unit_pass_s: float, passes: int = PASSES) -> Row:
    """A grid of `runs` runs of one setting (lane kernels), as one command."""
    return Row(f"{runs:,} runs", ((units(runs), passes),), unit_pass_s, START_S)


def study(rows: list[Row], workers: int) -> float:
    """The study runner on `workers` cores: rows_for(workers) rows side by side, each on its share of the
    cores, the next row started as one ends."""
    slots = [0.0] * rows_for(workers)
    share = max(1, workers // len(slots))
    for r in rows:
        k = slots.index(min(slots))
        slots[k] += r.seconds(share)
    return max(slots)


def bound(rows: list[Row], workers: int) -> float:
    """No scheduler does better: never under the longest row with every core, nor under the total work
    spread over every core."""
    work = sum(r.fixed_s + sum(u * p * r.unit_pass_s for u, p in r.blocks) for r in rows)
    return max(max(r.seconds(workers) for r in rows), work / workers)
