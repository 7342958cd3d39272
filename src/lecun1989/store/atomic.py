"""Writes that are all or nothing: a reader sees the old files or the new ones, never half of them.

`commit` puts several files in place together (every run folder of a pass at once): all of them
are first written beside their targets, so a full disk or a permission error fails before any
target changes, then renamed over the targets with SIGINT and SIGTERM held back, so an interrupt
cannot fall between two renames.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import tempfile
import threading
from pathlib import Path
from typing import Callable


_UMASK = os.umask(0)
os.umask(_UMASK)
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def signals_deferred(note: Callable[[int], None] | None = None):
    """Hold SIGINT and SIGTERM until the block ends, then deliver the first that came; `note` is told of
    that one as it comes (where Python code runs meanwhile to see it)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []

    def hold(signum, frame):
        if note is not None and not pending:
            note(signum)
        pending.append(signum)
    previous = {s: signal.signal(s, hold) for s in _SIGNALS}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if pending:
            signal.raise_signal(pending[0])


def _temporary(path: Path, data: bytes) -> Path:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file ordinary permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.filename is None:   # a full disk: say where
            e.filename = str(path)
        raise
    return Path(tmp)


def _bytes(content: str | bytes) -> bytes:
    return content.encode("utf-8") if isinstance(content, str) else content


def commit(files: dict[Path, str | bytes]) -> None:
    """Write every file (text as UTF-8) so that either all of them change or none does."""
    temps: list[tuple[Path, Path]] = []
    with signals_deferred():
        try:
            for path, content in files.items():
                path.parent.mkdir(parents=True, exist_ok=True)
                temps.append((_temporary(path, _bytes(content)), path))
            for tmp, path in temps:
                os.replace(tmp, path)
        finally:
            for tmp, _ in temps:
                tmp.unlink(missing_ok=True)


def atomic_write(path: str | os.PathLike, write: Callable, mode: str = "w") -> None:
    """Call write(f) on a file-like buffer, then put its content at `path` in one step."""
    import io
    buf = io.BytesIO() if "b" in mode else io.StringIO()
    write(buf)
    commit({Path(path): buf.getvalue()})


def write_text(path: str | os.PathLike, text: str) -> None:
    commit({Path(path): text})


def json_text(obj) -> str:
    """Strict JSON (a NaN or an infinity is a bug, not a value to write)."""
    return json.dumps(obj, indent=2, allow_nan=False) + "\n"


def file_in_the_way(folder: Path) -> Path | None:
    """The file that stands where `folder` or one of its parents must be, if any: the nearest of them
    that exists, when it is not a folder."""
    nearest = next(p for p in (folder, *folder.parents) if os.path.exists(p))
    return None if os.path.isdir(nearest) else nearest


