"""The folders a command writes: the marker that says what a folder holds, what --force and --resume
may take, and the lock that keeps one writer per folder.

Every folder this program makes carries a marker (MARKER, naming its kind), and `--force` replaces
only marked folders: never a folder of the user's own files. A command holds a lock (LOCK, with its
pid) on its output folder while it writes, and the readers write nothing into a folder so held.
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

from .. import __version__
from ..errors import LecunError, OutputError
from .atomic import commit, file_in_the_way, json_text

MARKER = ".lecun1989"
LOCK = ".lecun1989.lock"
KINDS = ("run", "study", "sweep", "plots", "zipcodes")
TRAINED = ("run", "study", "sweep")   # what a training command's --force may replace
_WORDS = {"run": "a run", "study": "a study", "sweep": "a sweep", "plots": "pictures", "zipcodes": "zip codes"}


def _marker_field(path: Path, key: str):
    """A field of the marker of the folder at `path`, or None (no marker, or not one of this program's)."""
    try:
        return json.loads((path / MARKER).read_text(encoding="utf-8")).get(key)
    except (OSError, ValueError, AttributeError):
        return None


def marked(path: Path) -> str | None:
    """The kind of folder this program made at `path` (run, study, sweep), or None."""
    kind = _marker_field(path, "kind")
    return kind if kind in KINDS else None


def marker(path: Path, kind: str, command: str | None = None, **fields) -> dict[Path, str]:
    """The marker file of a folder of this kind (made by `command`, when one command alone may replace
    it; with `fields` besides), for the commit that makes the folder's first files (one commit: an
    interrupt cannot leave some folders of a command marked and others not)."""
    return {path / MARKER: json_text({"kind": kind, "made_by": f"lecun1989 {__version__}",
                                      **({"command": command} if command else {}), **fields})}


def marked_command(path: Path) -> str | None:
    """The command that made a marked folder, where its marker says (older markers do not)."""
    command = _marker_field(path, "command")
    return command if isinstance(command, str) else None


def _is_cwd_or_parent(path: Path) -> bool:
    here, there = Path.cwd().resolve(), path.resolve()
    return there == here or there in here.parents


def check_output(path: Path, force: bool = False, resume: bool = False, resumable: bool = True,
                 kinds: tuple[str, ...] = TRAINED, command: str | None = None) -> str:
    """Whether `path` may be written, before any work: 'new' (absent or empty), 'replace' (a folder
    marked as one of `kinds`, with --force, that `command` made: --force starts the same command over)
    or 'resume' (the same, with --resume, for the commands that have it: resumable). Refuses
    everything else."""
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
    theirs = marked_command(path)
    other = theirs if command and theirs and theirs != command else None   # another command's folder
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
        if other:
            flag, does = ("--force", "starts only the same command over") if force else ("--resume", "continues only "
                                                                                           "the same command")
            raise LecunError(f"{path} holds what `lecun1989 {other}` made, and {flag} {does}, so `lecun1989 "
                             f"{command}` leaves it as it is: choose another --out")
        return "replace" if force else "resume"
    if other:
        raise LecunError(f"{path} holds what `lecun1989 {other}` made; choose another --out")
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


_TEMPORARY = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")   # atomic's: .NAME.XXXXXXXX.tmp, beside NAME


def _remove_leftovers(folder: Path) -> int:
    """The temporary files a killed command (kill -9, a power cut) left in a folder it had marked:
    atomic's own names, nothing else, and only in this program's folders."""
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


def write_files(folder: Path, files: dict[str, bytes]) -> list[Path]:
    """Put all of `files` (name -> bytes) into `folder` together, or none of them (atomic.commit); folders
    made for them are removed again on failure, which is one LecunError line naming the cause."""
    real = Path(folder).resolve()
    refuse_running(folder)
    # os.path.exists, not Path.exists: it answers False where a folder may not be searched, and the
    # write then fails with the cause.
    made = [p for p in (real, *real.parents) if not os.path.exists(p)]   # innermost first
    try:
        commit({real / name: blob for name, blob in files.items()})
    except OSError as e:
        for d in made:
            with contextlib.suppress(OSError):   # only empty folders go
                d.rmdir()
        # The OSError names the folder it could not make; the user needs the file standing in its way.
        in_the_way = file_in_the_way(real)
        cause = f"{in_the_way} is a file, not a folder" if in_the_way else (e.strerror or e)
        raise OutputError(f"cannot write into {folder} ({cause})") from None
    return [Path(folder) / name for name in files]


def _drawn(folder: Path) -> dict | None:
    """The SHA-256 of every file this program drew into a folder of pictures, by name; None where the
    folder's marker predates that record (or a run's plots/ folder predates markers): all its files
    are taken as drawn."""
    if marked(folder) != "plots":
        return None
    try:
        fields = json.loads((folder / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if "drawn" not in fields:
        return None
    return fields["drawn"] if isinstance(fields["drawn"], dict) else {}


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def check_pictures(folder: Path, names, flag: str = "--out") -> dict | None:
    """That none of `names` in `folder` (one check_picture_folder let through) is a file this program
    did not draw, or one changed since, or a link: those are never replaced. Before the work where
    the names are known, and again as they are written. Returns the folder's record (_drawn)."""
    folder = Path(folder)
    drawn = _drawn(folder)
    for name in names:
        path = folder / name
        if path.is_symlink() or (drawn is not None and os.path.lexists(path) and
                                 not (path.is_file() and _sha256(path) == drawn.get(name))):
            raise LecunError(f"{path} is not a file lecun1989 drew (or it was changed since), so it is left as it "
                             f"is; move it, or choose another {flag}")
    return drawn


def write_pictures(folder: Path, files: dict[str, bytes | str], flag: str = "--out") -> list[Path]:
    """Put pictures (and their companions, name -> contents) into a folder check_picture_folder let
    through, with its marker, all together (write_files); the paths written, the marker left out. The
    marker records the SHA-256 of every file drawn into the folder, so that a file of the same name
    that this program did not write, or that was changed since, is never replaced (check_pictures).
    In a folder whose marker predates the record, the files there are recorded as drawn. A folder that
    exists is locked from reading the record to writing it, so that two commands drawing into it at
    once cannot lose each other's entries."""
    folder = Path(folder)
    blobs = {name: data.encode("utf-8") if isinstance(data, str) else data for name, data in files.items()}
    with _locked_if_there(folder):
        drawn = check_pictures(folder, blobs, flag)
        if drawn is None:
            drawn = {p.name: _sha256(p) for p in (folder.iterdir() if folder.is_dir() else ())
                     if p.name not in (MARKER, LOCK) and p.is_file() and not p.is_symlink()}
        record = {**drawn, **{name: hashlib.sha256(blob).hexdigest() for name, blob in blobs.items()}}
        mark = marker(folder, "plots", drawn=record)[folder / MARKER]
        written = write_files(folder, {**blobs, MARKER: mark.encode("utf-8")})
    return [p for p in written if p.name != MARKER]


@contextlib.contextmanager
def _locked_if_there(folder: Path):
    """Lock a folder that exists while the block runs (a new one is made by the write itself, which
    then removes whatever it made if it fails)."""
    if not folder.is_dir():
        yield
        return
    lock = Lock(folder)
    try:
        lock.__enter__()
    except OSError as e:   # a folder this user may not write into
        raise OutputError(f"cannot write into {folder} ({e.strerror or e})") from None
    try:
        yield
    finally:
        lock.__exit__()


def refuse_running(path: Path) -> None:
    """One writer per output folder: nothing goes into a folder a running command writes."""
    owner = writer(Path(path))
    if owner:
        raise LecunError(f"{path} is in a folder a running lecun1989 command writes (pid {owner['pid']}); write "
                         f"elsewhere, or wait for it to finish")


def check_page(out: Path, head: str, what: str, example: str) -> None:
    """A page (-o FILE) replaces only a page this program wrote (a file that begins with `head`), and
    never in a folder a running command writes."""
    if str(out) == "":
        raise LecunError(f"-o is empty: give the {what}'s file name, e.g. -o {example}")
    out = Path(out)
    if out.suffix.lower() not in (".html", ".htm") and not out.is_dir():   # a page named .png would open as nothing
        raise LecunError(f"-o {out}: the {what} is an HTML page; give a name ending in .html, e.g. -o {example}")
    refuse_running(out.parent)
    if out.is_dir():
        raise LecunError(f"{out} is a folder; give the {what}'s file name, e.g. -o {out / example}")
    if out.exists():
        try:
            with open(out, "rb") as f:
                mine = f.read(len(head.encode())) == head.encode()
        except OSError as e:
            raise LecunError(f"cannot read {out} ({e.strerror}), so it is left as it is; choose another -o") from None
        if not mine:
            raise LecunError(f"{out} exists and is not a {what} lecun1989 wrote, so it is left as it is; choose "
                             f"another -o")


def check_picture_folder(target: Path, flag: str = "--out") -> None:
    """Pictures replace only pictures this program drew: the folder must be new or empty, marked as
    a folder of pictures, or the plots/ folder of a run, study or sweep folder (drawn before the
    marker existed)."""
    refuse_running(target)
    if target.exists() and not target.is_dir():
        raise LecunError(f"{target} is a file, not a folder; choose another {flag}")
    if not target.is_dir() or not any(target.iterdir()) or marked(target) == "plots":
        return
    if target.name == "plots" and marked(target.parent) in ("run", "study", "sweep"):
        return
    raise LecunError(f"{target} holds files that are not pictures lecun1989 drew, so it is left as it is; choose "
                     f"another {flag}")
