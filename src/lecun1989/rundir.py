"""Output folders: run directories, and the marker and lock of every folder a command writes.

A run directory holds config.json, log.txt, metrics.jsonl, TensorBoard scalars, weights.safetensors,
state.safetensors (what resuming needs besides the weights) and, when finished, summary.json.
After each pass every file of every run of a command is put in place in one commit (io.commit), so
an interrupted or failed command leaves all its runs at the same last completed pass.

Every folder this program makes carries a marker (MARKER, naming its kind), and `--force` replaces
only marked folders: never a folder of the user's own files. A command holds a lock (LOCK, with its
pid) on its output folder while it writes.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
from pathlib import Path

import numpy as np

from .errors import LecunError
from .io import json_text

SPLITS = ("train", "test")
MARKER = ".lecun1989"
LOCK = ".lecun1989.lock"
KINDS = ("run", "study", "sweep", "plots", "zipcodes")
TRAINED = ("run", "study", "sweep")   # what a training command's --force may replace
_WORDS = {"run": "a run", "study": "a study", "sweep": "a sweep", "plots": "pictures", "zipcodes": "zip codes"}


# --- markers and claims -------------------------------------------------------------------------

def marked(path: Path) -> str | None:
    """The kind of folder this program made at `path` (run, study, sweep), or None."""
    try:
        kind = json.loads((path / MARKER).read_text(encoding="utf-8")).get("kind")
    except (OSError, ValueError, AttributeError):
        return None
    return kind if kind in KINDS else None


def marker(path: Path, kind: str) -> dict[Path, str]:
    """The marker file of a folder of this kind, for the commit that makes the folder's first files
    (one commit: an interrupt cannot leave some folders of a command marked and others not)."""
    from . import __version__
    return {path / MARKER: json_text({"kind": kind, "made_by": f"lecun1989 {__version__}"})}


def _is_cwd_or_parent(path: Path) -> bool:
    here, there = Path.cwd().resolve(), path.resolve()
    return there == here or there in here.parents


def check_output(path: Path, force: bool = False, resume: bool = False, resumable: bool = True,
                 kinds: tuple[str, ...] = TRAINED) -> str:
    """Whether `path` may be written, before any work: 'new' (absent or empty), 'replace' (a folder
    marked as one of `kinds`, with --force) or 'resume' (the same, with --resume, for the commands
    that have it: resumable). Refuses everything else."""
    if path.is_symlink() and not path.exists():
        raise LecunError(f"{path} is a link to nothing; choose another --out")
    if path.exists() and not path.is_dir():
        raise LecunError(f"{path} is a file, not a folder; choose another --out")
    empty = not path.exists() or not any(p.name != LOCK for p in path.iterdir())
    if force and resume:
        raise LecunError("--force starts over and --resume continues: give one of them")
    if empty:
        return "new"
    kind = marked(path)
    if force or resume:
        if _is_cwd_or_parent(path):
            raise LecunError(f"{path} is the current folder or one of its parents; choose another --out")
        if kind is None:
            raise LecunError(f"{path} was not made by lecun1989 (it has no {MARKER} marker), so it is left as it "
                             f"is: choose another --out")
        if kind not in kinds:
            wanted = ", ".join(_WORDS[k] for k in kinds[:-1]) + " or " * (len(kinds) > 1) + _WORDS[kinds[-1]]
            raise LecunError(f"{path} holds {_WORDS[kind]} lecun1989 made, not {wanted}, so "
                             f"{'--force' if force else '--resume'} leaves it as it is: choose another --out")
        return "replace" if force else "resume"
    if kind:
        raise LecunError(f"{path} already exists; pass --force to replace it" +
                         (" or --resume to continue it," if resumable else ",") + " or choose another --out")
    raise LecunError(f"{path} already exists and was not made by lecun1989; choose another --out")


def replace_contents(path: Path) -> None:
    """Empty a marked folder (--force), keeping this command's lock and the marker, so that a folder
    half emptied by an interrupt is still one that --force may replace."""
    for child in path.iterdir():
        if child.name in (LOCK, MARKER):
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


# --- the lock -----------------------------------------------------------------------------------

def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:   # someone else's process
        return True
    return True


def _owner(lock: Path) -> dict | None:
    """The pid and host a lock file names, or None if it names none."""
    try:
        owner = json.loads(lock.read_text(encoding="utf-8"))
        return owner if isinstance(owner.get("pid"), int) else None
    except (OSError, ValueError, AttributeError):
        return None


def _is_me(owner: dict) -> bool:
    return (owner["pid"], owner.get("host")) == (os.getpid(), socket.gethostname())


def _running(owner: dict) -> bool:
    """Whether the owner may still run: a process on another host is never judged from here."""
    return owner.get("host") != socket.gethostname() or _alive(owner["pid"])


def writer(folder: Path) -> dict | None:
    """The owner of another running command's lock on folder or on a folder that holds it, if any."""
    folder = Path(folder).resolve()
    for lock in (p / LOCK for p in (folder, *folder.parents)):
        owner = _owner(lock)
        if owner and not _is_me(owner) and _running(owner):
            return owner
    return None


_TEMPORARY = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")   # io's: .NAME.XXXXXXXX.tmp, beside NAME


def _remove_leftovers(folder: Path) -> int:
    """The temporary files a killed command (kill -9, a power cut) left in a folder it had marked:
    io's own names, nothing else, and only in this program's folders."""
    if marked(folder) is None:
        return 0
    left = [p for p in folder.rglob(".*.tmp") if _TEMPORARY.fullmatch(p.name) and p.is_file() and not p.is_symlink()]
    for p in left:
        p.unlink()
    return len(left)


class Lock:
    """One writer per output folder: a lock file holding the owner's pid and host. A lock left by
    a process that no longer runs (on this host) is taken over, with a word on stderr. A folder
    inside another command's folder, or holding one, is refused too. Taking a lock this process
    holds already is a no-op (a study locks its folder, then trains in it). A folder the lock made
    is removed again on release if nothing else was left in it."""

    def __init__(self, folder: Path, echo=None):
        self.path = folder / LOCK
        self.echo = echo
        self.held = False
        self.created = False

    def __enter__(self) -> "Lock":
        self.created = not self.path.parent.exists()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = json.dumps({"pid": os.getpid(), "host": socket.gethostname()})
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = _owner(self.path)
                if owner and _is_me(owner):
                    return self
                if owner is None or not _running(owner):
                    left = _remove_leftovers(self.path.parent)
                    if self.echo:
                        self.echo(f"{self.path.parent}: took over the lock of a lecun1989 command that no longer runs"
                                  + (f" (pid {owner['pid']})" if owner else "")
                                  + (f"; removed the {left} temporary file{'s' * (left > 1)} it left" if left else ""))
                    self.path.unlink(missing_ok=True)
                    continue
                raise LecunError(f"{self.path.parent} is in use by another lecun1989 command (pid {owner['pid']} on "
                                 f"{owner.get('host')}); wait for it to finish, or stop it") from None
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(me)
            self.held = True
            self._refuse_nested()
            return self
        raise LecunError(f"cannot take the lock {self.path}; remove it if no lecun1989 command is running")

    def _refuse_nested(self) -> None:
        folder = self.path.parent.resolve()
        for lock in [p / LOCK for p in folder.parents] + list(folder.glob(f"*/**/{LOCK}")):
            owner = _owner(lock)
            if owner and not _is_me(owner) and _running(owner):
                self.__exit__()
                where = "inside" if lock.parent in folder.parents else "holds"
                raise LecunError(f"{self.path.parent} {where} {lock.parent}, in use by another lecun1989 command "
                                 f"(pid {owner['pid']} on {owner.get('host')}); wait for it to finish, or stop it")

    def __exit__(self, *exc) -> None:
        if self.held:
            self.held = False
            with contextlib.suppress(OSError):   # the error that brought us here is the one to report
                self.path.unlink(missing_ok=True)
            if self.created:
                with contextlib.suppress(OSError):   # not empty: it holds results
                    self.path.parent.rmdir()


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
    from safetensors import safe_open
    try:
        with safe_open(str(path), framework="numpy") as f:
            tensors, metadata = {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
        if META_KEY in metadata:
            metadata = json.loads(metadata[META_KEY])
    except Exception as e:   # safetensors raises its own error types for damaged files
        raise LecunError(f"cannot read {path} ({e}); is it a file of a lecun1989 run?") from None
    if "sha256" in metadata and metadata["sha256"] != tensors_digest(tensors):
        raise LecunError(f"{path} is damaged: its tensors do not match the checksum written with them")
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
    """One run's files, kept in memory and handed to io.commit after each pass (`files`)."""

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
        from .results import read_json, read_metrics
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
