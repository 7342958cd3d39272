"""The compiled engine's disk cache is keyed on all of the engine's sources.

numba keys a compiled function's disk cache on the file that defines it. The engine's functions
(engines/fast.py) inline the kernels of engines/layers.py and engines/simd.py, so a change to
those alone (a `git pull` in an editable install, say) would leave a stale compiled engine in
place. The locators below serve the functions defined in this folder only, and key them on the
contents of every source file in it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from numba.core import caching

ENGINE_DIR = Path(__file__).resolve().parent


def sources_digest() -> str:
    h = hashlib.sha256()
    for path in sorted(ENGINE_DIR.glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()


_DIGEST = sources_digest()


def _engine_locator(base):
    class EngineLocator(base):
        @classmethod
        def from_function(cls, py_func, py_file):
            if Path(py_file).resolve().parent != ENGINE_DIR:
                return None
            return super().from_function(py_func, py_file)

        def get_source_stamp(self):
            return _DIGEST

    EngineLocator.__name__ = EngineLocator.__qualname__ = f"Engine{base.__name__.lstrip('_')}"
    return EngineLocator


def key_on_engine_sources() -> None:
    """Put the engine's locators first in numba's list (once), before any engine function is defined."""
    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl")   # the older name
    classes = impl._locator_classes
    if any(getattr(c, "__name__", "").startswith("Engine") for c in classes):
        return
    names = ("UserProvidedCacheLocator", "InTreeCacheLocator", "UserWideCacheLocator")
    bases = [getattr(caching, name, None) or getattr(caching, "_" + name) for name in names]
    classes[:0] = [_engine_locator(base) for base in bases]
