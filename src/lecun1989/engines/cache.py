"""The compiled engine's disk cache is keyed on all of the sources it is compiled from.

numba keys a compiled function's disk cache on the file that defines it. The engine's functions
(engines/single.py, lanes.py) inline the kernels of layers.py, simd.py and steps.py and read the
constants of network.py and paper.py, so a change to those alone (a `git pull` in an editable install, say) would
leave a stale compiled engine in place. The locators below serve the functions defined in this
folder only, and key them on the contents of exactly the files compiled (COMPILED): editing the
reference engine or this file recompiles nothing.

`first_call` makes a compiled function's first call, compiling it or loading it from the cache,
before the work that needs it (the reader's normalization and forward pass use it), and says how long
a compile took.

The locators extend numba's own classes, which are not public API; if a numba release moves them,
the engine falls back to numba's own keying, with one warning (and the stale-cache risk above).
"""

from __future__ import annotations

import hashlib
import sys
import threading
import time
import warnings
from pathlib import Path

from ..store.atomic import signals_deferred

ENGINE_DIR = Path(__file__).resolve().parent
# relative to this folder; ../paper.py's constants are baked into the compiled code
COMPILED = ("single.py", "lanes.py", "layers.py", "network.py", "simd.py", "steps.py", "../paper.py")


def sources_digest() -> str:
    h = hashlib.sha256()
    for name in COMPILED:
        h.update(name.encode())
        h.update((ENGINE_DIR / name).read_bytes())
    return h.hexdigest()


def _engine_locator(base, digest: str):
    class EngineLocator(base):
        @classmethod
        def from_function(cls, py_func, py_file):
            if Path(py_file).resolve().parent != ENGINE_DIR:
                return None
            return super().from_function(py_func, py_file)

        def get_source_stamp(self):
            return digest

    EngineLocator.__name__ = EngineLocator.__qualname__ = f"Engine{base.__name__.lstrip('_')}"
    return EngineLocator


def key_on_engine_sources() -> None:
    """Put the engine's locators first in numba's list (once), before any engine function is defined."""
    try:
        from numba.core import caching
        impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl")   # the older name
        classes = impl._locator_classes
        if any(getattr(c, "__name__", "").startswith("Engine") for c in classes):
            return
        names = ("UserProvidedCacheLocator", "InTreeCacheLocator", "UserWideCacheLocator")
        bases = [getattr(caching, name, None) or getattr(caching, "_" + name) for name in names]
        digest = sources_digest()
        classes[:0] = [_engine_locator(base, digest) for base in bases]
    except (ImportError, AttributeError, TypeError) as e:
        warnings.warn(f"this numba's cache internals are not the ones lecun1989 knows ({e}); the compiled engine "
                      f"uses numba's own cache keys, so after editing engines/layers.py or simd.py alone, clear "
                      f"the engine's __pycache__", RuntimeWarning, stacklevel=2)


def in_disk_cache(fn, args: tuple) -> bool | None:
    """Whether numba has `fn` compiled for these arguments' types, loaded or in the disk cache, without
    compiling or loading it; None where this numba's cache internals are not the ones known (the same
    that Dispatcher.compile reads: the index of the function's cache file, keyed by the signature)."""
    try:
        sig = tuple(fn.typeof_pyval(a) for a in args)
        if sig in fn.overloads:
            return True
        cache = fn._cache
        return cache._index_key(sig, fn.targetctx.codegen()) in cache._cache_file._load_index()
    except Exception:   # internals moved: nothing is compiled ahead
        return None


def _misses(fn) -> int:
    """How often `fn` missed the disk cache, that is, was compiled; 0 under NUMBA_DISABLE_JIT."""
    stats = getattr(fn, "stats", None)
    return sum(stats.cache_misses.values()) if stats is not None else 0


# An interrupt during a first call is held until the call returns; when that is still a second later,
# numba is compiling (loading from the disk cache takes less), and the command says so.
NOTE_AFTER_S = 1.0


def call_noting_compile(fn, args: tuple, what: str) -> tuple[object, float]:
    """fn(*args) with SIGINT and SIGTERM held: numba cannot stop a compile midway, and an interrupt
    raised inside llvmlite's callbacks during one is swallowed there, numba failing later with a
    traceback. On a first call (a compile, or a load from the disk cache), an interrupt still held after
    NOTE_AFTER_S is said to wait for the compile; where the call compiled `fn`, how long that took is
    said on stderr. (the result, the seconds spent compiling: 0 where nothing was)."""
    from tqdm import tqdm   # its write keeps the note off a progress bar's line
    timers: list[threading.Timer] = []

    def note(signum):
        timers.append(threading.Timer(NOTE_AFTER_S, tqdm.write, (
            f"stopping once numba has compiled {what} (it cannot stop midway)",), {"file": sys.stderr}))
        timers[0].daemon = True
        timers[0].start()
    before, t0 = _misses(fn), time.perf_counter()
    try:
        with signals_deferred(note if not getattr(fn, "overloads", True) else None):
            result = fn(*args)
    finally:
        for timer in timers:
            timer.cancel()
    if _misses(fn) == before:
        return result, 0.0
    seconds = time.perf_counter() - t0
    tqdm.write(f"compiled {what} in {seconds:.1f}s (cached for next time)", file=sys.stderr)
    return result, seconds


def first_call(fn, args: tuple, what: str) -> bool:
    """Call the compiled `fn` once on `args` (inputs that compute nothing), so that it is compiled, or
    loaded from the disk cache, before the work and not inside it (call_noting_compile). False where it
    fails to compile: the caller then runs its code that needs no compiler, and this says so."""
    from numba.core.errors import NumbaError
    from tqdm import tqdm
    if in_disk_cache(fn, args) is False:   # seconds of silence otherwise
        tqdm.write(f"compiling {what}, once (numba caches it)", file=sys.stderr)
    try:
        call_noting_compile(fn, args, what)
    except NumbaError as e:
        tqdm.write(f"note: {what} failed to compile ({type(e).__name__}: {str(e).strip().splitlines()[0]}); "
                   f"going on without it, slower", file=sys.stderr)
        return False
    return True
