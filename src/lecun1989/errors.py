"""The one exception type the CLI turns into a one-line message instead of a traceback."""


class LecunError(Exception):
    """A problem the user can fix: bad input, missing files, an existing output folder."""


class OutputError(LecunError):
    """An operating-system error writing output (permission, a file in the way, a full disk): exit 1,
    as for the OSErrors the CLI reports itself."""


class Diverged(LecunError):
    """Some runs diverged: their folders say at which pass; the others' results stand."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as an interrupt: the same cleanup, exit status 143."""


def _terminate(signum, frame):
    raise Terminated()


def handle_sigterm():
    """From now on SIGTERM raises Terminated (in the main thread); returns the previous handler."""
    import signal
    import threading
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _terminate)


def interrupt_behind(e: BaseException | None) -> KeyboardInterrupt | None:
    """The interrupt behind an exception: numba's dispatcher turns one raised while compiled code
    returns into a SystemError ("returned a result with an exception set") that wraps it."""
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, KeyboardInterrupt):
            return e
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return None


def interrupted_line(name: str, stop: KeyboardInterrupt) -> tuple[str, int]:
    """The one line an interrupted command ends with, and its exit status."""
    note = getattr(stop, "note", None)
    word, status = ("terminated", 143) if isinstance(stop, Terminated) else ("interrupted", 130)
    return f"{name}: {word}" + (f"; {note}" if note else ""), status
