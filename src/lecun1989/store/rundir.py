"""Run directories, written and read in one place.

A run directory holds config.json, log.txt, metrics.jsonl, TensorBoard scalars, weights.safetensors,
state.safetensors (what resuming needs besides the weights) and, when finished, summary.json.
After each pass every file of every run of a command is put in place in one commit (atomic.commit),
so an interrupted or failed command leaves all its runs at the same last completed pass. The readers
below check what they read, so a damaged or foreign file is one line naming it, never a traceback.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import LecunError
from .atomic import json_text

SPLITS = ("train", "test")
METRICS = ("train_error", "test_error", "train_loss", "test_loss", "train_misses", "test_misses")


# --- a run directory ----------------------------------------------------------------------------

def metrics_row(pass_num: int, evals: dict) -> dict:
    row = {"pass": pass_num}
    for split in SPLITS:
        e = evals[split]
        row.update({f"{split}_loss": e.loss, f"{split}_error": e.error, f"{split}_misses": e.misses})
    return row


def eval_line(split: str, e) -> str:
    # The best-known reproduction's format, padding of the split name included.
    return f"eval: split {split:5s}. loss {e.loss:e}. error {e.error * 100:.2f}%. misses: {e.misses}"


def tensors_digest(tensors: dict[str, np.ndarray]) -> str:
    """SHA-256 over the tensors' names, dtypes, shapes and bytes, in name order."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name])
        h.update(f"{name}:{a.dtype.str}:{a.shape};".encode())
        h.update(a.tobytes())
    return h.hexdigest()


# safetensors writes its metadata map in an order that changes from process to process, so all of
# ours goes in one entry, as sorted JSON: the same tensors give the same bytes.
META_KEY = "lecun1989"


def tensors_blob(tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> bytes:
    from safetensors.numpy import save
    tensors = {k: np.ascontiguousarray(v) for k, v in tensors.items()}
    meta = {**metadata, "sha256": tensors_digest(tensors)}
    return save(tensors, metadata={META_KEY: json.dumps(meta, sort_keys=True)})


def load_weights(path: Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """The tensors and metadata of a .safetensors file this program wrote, checked against the
    checksum it carries."""
    tensors, metadata = _read_tensors(path, with_tensors=True)
    if "sha256" in metadata and metadata["sha256"] != tensors_digest(tensors):
        raise LecunError(f"{path} is damaged: its tensors do not match the checksum written with them")
    return tensors, metadata


def _read_tensors(path: Path, with_tensors: bool) -> tuple[dict[str, np.ndarray], dict]:
    """(the tensors, when asked for, and the metadata) of a .safetensors file this program wrote."""
    from safetensors import safe_open
    try:
        with safe_open(str(path), framework="numpy") as f:
            tensors = {k: f.get_tensor(k) for k in f.keys()} if with_tensors else {}
            metadata = dict(f.metadata() or {})
        if META_KEY in metadata:
            metadata = json.loads(metadata[META_KEY])
    except Exception as e:   # safetensors raises its own error types for damaged files
        raise LecunError(f"cannot read {path} ({e}); is it a file of a lecun1989 run?") from None
    return tensors, metadata


def _events(rows: list[dict]) -> bytes:
    """TensorBoard's event file for every pass so far, rewritten whole with each commit (synchronous:
    no writer thread per run)."""
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.record_writer import RecordWriter
    import io
    buf = io.BytesIO()
    writer = RecordWriter(buf)
    writer.write(Event(wall_time=0.0, file_version="brain.Event:2").SerializeToString())
    for row in rows:
        if row.get("diverged"):
            continue
        values = [Summary.Value(tag=f"{metric}/{split}", simple_value=row[f"{split}_{metric}"])
                  for split in SPLITS for metric in ("error", "loss")]
        writer.write(Event(wall_time=row.get("_time", 0.0), step=row["pass"],
                           summary=Summary(value=values)).SerializeToString())
    return buf.getvalue()


class RunDir:
    """One run's files, kept in memory and handed to atomic.commit after each pass (`files`)."""

    def __init__(self, path: Path, config: dict, lines: list[str] | None = None, rows: list[dict] | None = None):
        self.path = path
        self.config = config
        self.lines = list(lines or [])
        self.rows = list(rows or [])
        self.weights: bytes | None = None
        self.state: bytes | None = None
        self.summary: dict | None = None

    @classmethod
    def read(cls, path: Path) -> "RunDir":
        """A run directory as it was left (for --resume)."""
        config = read_json(path / "config.json")
        try:
            lines = (path / "log.txt").read_text(encoding="utf-8").splitlines()
        except OSError as e:
            raise LecunError(f"cannot read {path / 'log.txt'} ({e.strerror}); the run cannot be resumed") from None
        rd = cls(path, config, lines, read_metrics(path) if (path / "metrics.jsonl").exists() else [])
        if (path / "summary.json").exists():
            rd.summary = read_json(path / "summary.json")
        return rd

    @property
    def passes_done(self) -> int:
        return self.rows[-1]["pass"] if self.rows and not self.rows[-1].get("diverged") else \
            (self.rows[-1]["pass"] - 1 if self.rows else 0)

    @property
    def diverged(self) -> bool:
        return bool(self.rows) and bool(self.rows[-1].get("diverged"))

    def log(self, line: str) -> None:
        self.lines.append(line)

    def record(self, row: dict) -> None:
        self.rows.append(row)

    def set_weights(self, params: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
        self.weights = tensors_blob(params, metadata)

    def set_state(self, state: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
        self.state = tensors_blob(state, metadata)

    def files(self) -> dict[Path, str | bytes]:
        """Every file of the run as it stands, for one commit."""
        rows = [{k: v for k, v in r.items() if not k.startswith("_")} for r in self.rows]
        out = {self.path / "config.json": json_text(self.config),
               self.path / "log.txt": "\n".join(self.lines) + "\n",
               self.path / "metrics.jsonl": "".join(json.dumps(r, allow_nan=False) + "\n" for r in rows),
               self.path / "tensorboard" / "events.out.tfevents.lecun1989": _events(self.rows)}
        if self.weights is not None:
            out[self.path / "weights.safetensors"] = self.weights
        if self.state is not None:
            out[self.path / "state.safetensors"] = self.state
        if self.summary is not None:
            out[self.path / "summary.json"] = json_text(self.summary)
        return out


def _no_constants(name: str):
    raise ValueError(f"{name} is not strict JSON")


def read_json(path: Path):
    """A JSON file written by this package, read strictly (NaN and Infinity are refused)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"), parse_constant=_no_constants)
    except (OSError, ValueError) as e:
        raise LecunError(f"cannot read {path} ({e})") from None


def read_metrics(run_dir: Path) -> list[dict]:
    """Every row of a run's metrics.jsonl, one per completed pass. A diverged run ends with a row
    {"pass": k, "diverged": true, "reason": ...} for the pass at which it diverged, without figures."""
    path = Path(run_dir) / "metrics.jsonl"
    try:
        rows = [json.loads(line, parse_constant=_no_constants)
                for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    except (OSError, ValueError) as e:
        raise LecunError(f"cannot read {path} ({e}); is {run_dir} a run directory?") from None
    if not all(isinstance(r, dict) and isinstance(r.get("pass"), int) for r in rows):
        raise LecunError(f"{path} is not a metrics file of this package (every line a JSON object with a pass)")
    return rows


def completed(rows: list[dict]) -> list[dict]:
    """The rows of the passes a run completed with finite figures (a diverged run's last row dropped)."""
    return [r for r in rows if not r.get("diverged")]


def diverged_at(rows: list[dict]) -> int | None:
    """The pass at which a run diverged, or None."""
    return next((r["pass"] for r in rows if r.get("diverged")), None)


def run_dirs_under(paths: list[Path]) -> list[Path]:
    """The run directories among `paths` and their subfolders (a run directory holds metrics.jsonl)."""
    found = []
    for p in map(Path, paths):
        if not p.exists():
            raise LecunError(f"{p} does not exist")
        found += [p] if (p / "metrics.jsonl").is_file() else sorted(m.parent for m in p.rglob("metrics.jsonl"))
    if not found:
        raise LecunError(f"no run directories (with metrics.jsonl) in {', '.join(map(str, paths))}")
    return found


# --- reading what a command wrote -------------------------------------------------------------

NUMBER = (int, float)
STATS = dict.fromkeys(("mean", "std", "min", "max"), NUMBER)
# What this module reads of a run's config.json and of a sweep's sweep.json, and of which type.
CONFIG_KEYS = {"net": dict, "data": dict, "seed": int, "lr": NUMBER}
DATA_KEYS = {"source": str, "seed": (int, type(None)), "n_train": int, "n_test": int, "held_out": int,
             "sha256": str}
SWEEP_KEYS = {"recipe": str, "data": str, "seeds": list, "validation": int, "points": list, "selected": dict,
              "final": (dict, type(None))}
POINT_KEYS = {"lr": NUMBER, "mu": (*NUMBER, type(None))}


def require(obj, keys: dict, where: str) -> dict:
    """`obj`, if it is a JSON object holding `keys` with values of their types; else one LecunError line."""
    if not isinstance(obj, dict):
        raise LecunError(f"{where} is not a JSON object")
    for key, types in keys.items():
        if key not in obj:
            raise LecunError(f"{where} lacks {key!r}; was it written by this package?")
        if not isinstance(obj[key], types):
            raise LecunError(f"{where}: {key!r} is {json_type(obj[key])}, not what this package writes")
    return obj


def json_type(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number")


def read_config(run_dir: Path) -> dict:
    path = Path(run_dir) / "config.json"
    config = require(read_json(path), CONFIG_KEYS, str(path))
    require(config["data"], DATA_KEYS, f"{path} (data)")
    return config


def read_sweep(path: Path) -> dict:
    """sweep.json, with every key the sweep picture and the report read. A grid point has no figures
    when all its seeds diverged, and "final" is null when all the retrained runs did."""
    result = require(read_json(path), SWEEP_KEYS, str(path))
    if not result["points"]:
        raise LecunError(f"{path} holds no grid points")
    for i, point in enumerate(result["points"]):
        where = f"{path} (points[{i}])"
        require(point, POINT_KEYS, where)
        if "diverged" in point:
            require(point, {"diverged": int}, where)
        if "val_error" in point or "val_loss" in point:
            require(point, {"val_error": dict, "val_loss": dict}, where)
            for key in ("val_error", "val_loss"):
                require(point[key], STATS, f"{where}.{key}")
    require(result["selected"], POINT_KEYS, f"{path} (selected)")
    if result["final"] is not None:
        require(result["final"], {"test_error": dict}, f"{path} (final)")
        require(result["final"]["test_error"], STATS, f"{path} (final.test_error)")
    return result


@dataclass(frozen=True)
class Runs:
    """The runs under one folder, read and checked. Runs that diverged are set apart (`diverged`: run ->
    the pass at which it did); `rows` holds the figures of the others (`kept`) up to the last pass all of
    them completed, so that every mean is over the same passes and never over a NaN."""
    folder: Path
    dirs: list[Path]
    configs: dict[Path, dict]
    diverged: dict[Path, int]
    kept: list[Path]
    rows: list[list[dict]]
    uneven: bool   # some kept run went on past the last pass all of them completed

    @property
    def last(self) -> int:
        return len(self.rows[0])


def weights_pass(path: Path) -> str | None:
    """The pass a weights file of this program says it holds (its metadata only: the tensors are not
    read), or None when it says none."""
    metadata = _read_tensors(path, with_tensors=False)[1]
    held = metadata.get("pass") if isinstance(metadata, dict) else None
    return held if isinstance(held, str) else None


def check_passes(run_dir: Path, rows: list[dict]) -> None:
    """A run's completed passes in metrics.jsonl (`rows`) are numbered 1, 2, 3, ..., and its
    weights.safetensors, where it has one, holds the last of them: a folder whose files were edited or
    mixed by hand would otherwise be read with figures of one pass beside weights of another. Every
    reader checks it: trained.check_run_folder for the network it loads, read_runs for every run whose
    figures it reads."""
    done = len(completed(rows))
    if [r["pass"] for r in completed(rows)] != list(range(1, done + 1)):
        raise LecunError(f"{Path(run_dir) / 'metrics.jsonl'}: the passes are not numbered 1, 2, 3, ... in order; "
                         f"was it edited by hand? Read a run as its command left it")
    path = Path(run_dir) / "weights.safetensors"
    if not path.is_file():
        return
    held = weights_pass(path)
    if held is not None and held != str(done):
        raise LecunError(f"{run_dir}'s files disagree: weights.safetensors holds pass {held} and metrics.jsonl ends "
                         f"at pass {done}; was the folder edited by hand? Read a run as its command left it")


def read_runs(folder: Path) -> Runs:
    dirs = run_dirs_under([folder])
    configs = {d: read_config(d) for d in dirs}
    diverged, kept, rows = {}, [], []
    for d in dirs:
        metrics = read_metrics(d)
        at = diverged_at(metrics)
        if at is not None:   # only its pass is read
            diverged[d] = at
            continue
        check_passes(d, metrics)   # its figures are read beside the first kept run's network
        path = d / "metrics.jsonl"
        if not metrics:
            raise LecunError(f"{path} holds no pass; did the run finish its first pass?")
        for r in metrics:
            bad = [m for m in METRICS if not (isinstance(r.get(m), NUMBER) and math.isfinite(r[m]))]
            if bad:
                raise LecunError(f"{path}: pass {r['pass']} has no finite {bad[0]}")
        kept.append(d)
        rows.append(metrics)
    last = min((len(r) for r in rows), default=0)
    return Runs(Path(folder), dirs, configs, diverged, kept, [r[:last] for r in rows],
                any(len(r) > last for r in rows))


def open_folder(path: Path) -> tuple[dict | None, Runs]:
    """A sweep folder's sweep.json (None for a run or study folder) and the runs to draw: the sweep's
    retrained final runs, or the folder's."""
    path = Path(path)
    if (path / "sweep.json").is_file():
        return read_sweep(path / "sweep.json"), read_runs(path / "final")
    return None, read_runs(path)


def disagreement(rd: RunDir, carried: bool = False) -> list[str]:
    """What keeps a run's files from telling one story, each as a phrase (none when they do):
    metrics.jsonl's passes 1..k in order, the log's k passes, the weights (and the optimizer's state,
    when `carried`) of this run's pass k. A folder edited or mixed by hand would otherwise be resumed
    from the wrong pass, or read with figures of one pass beside weights of another, without a word."""
    passes, k = [r["pass"] for r in rd.rows], rd.passes_done
    told = []
    if passes != list(range(1, len(passes) + 1)):
        told.append(f"metrics.jsonl's passes are {', '.join(map(str, passes[:6]))}{', ...' * (len(passes) > 6)}, "
                    f"not 1 to {len(passes)} in order")
    logged = sum(line.startswith("pass ") and line.split()[1].split("/")[0].isdigit() for line in rd.lines)
    if logged != len(passes):
        told.append(f"log.txt has {logged} passes and metrics.jsonl {len(passes)}")
    files = ["weights.safetensors"] + ["state.safetensors"] * carried
    for name in files if k else []:
        if not (rd.path / name).is_file():
            told.append(f"{name} is missing")
            continue
        meta = load_weights(rd.path / name)[1]
        if meta.get("pass") != str(k):
            told.append(f"{name} holds pass {meta.get('pass')} and metrics.jsonl ends at pass {k}")
        elif (meta.get("seed"), meta.get("lr")) != (str(rd.config.get("seed")), repr(rd.config.get("lr"))):
            told.append(f"{name} holds the run of seed {meta.get('seed')}, lr {meta.get('lr')}, not this one's")
    return told
