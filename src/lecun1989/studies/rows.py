"""The studies behind every measured table of the docs, as data: each a list of rows, each row one
`lecun1989` command, exactly as a reader would type it.

`lecun1989 study NAME|all` runs them. A row trains in a work folder (`runs/studies/STUDY/ROW` by
default) and leaves its small result, `results/STUDY/ROW/study.json`, in the repository: every
run's final figures and the per-pass curves (mean and std over seeds), the command and the data's
digest. A row whose study.json already holds its command is skipped; an interrupted row continues
from its last completed pass. `lecun1989 docs` writes the tables from these files (docs.py); runner.py runs the rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import LecunError
from ..store.rundir import read_json

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
    Study("reader", "the network trained for reading, read as a committee: the zip-code benchmark, its photographs, "
                    "MNIST's test digits (docs/READING.md)",
          (Row("reader", "lecun1989 reader", measures=("reject", "reading"), keep=8),)),
    Study("ablation", "one choice of the paper's configuration at a time, on both data sets (docs/FIDELITY.md)",
          _ablation("usps") + _ablation("mnist")),
    Study("optimizers", "plain SGD and SGD with momentum in place of the paper's optimizer (docs/FIDELITY.md)",
          _optimizers("usps") + _optimizers("mnist")),
    Study("validation", "the grid the open choices were made on, the last 1,000 USPS training digits held out "
                        "(docs/FIDELITY.md)", _validation()),
    Study("sweep", "a learning-rate grid of the paper's configuration chosen on validation and retrained "
                   "(docs/SPEED.md)", (Row("paper", "lecun1989 sweep --recipe paper --lr-grid 1e-4:1e-2:5"),)),
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


