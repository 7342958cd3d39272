"""One compiled target for every x86-64 machine with AVX2 and FMA, so that the engine's bytes do not
follow the CPU.

numba compiles for the CPU it runs on: LLVM's name for it and its features, and with them the vector
width and whether a multiply and an add are fused, so the last bits of a run could follow the host: an
AMD EPYC with AVX-512 (LLVM's znver4) reran the single-run SGD rows of `results/` with losses moved in the
6th digit and two runs one test miss apart. The engine is compiled instead for one target that every
x86-64 CPU with AVX2 and FMA can run (Intel since Haswell, 2013; AMD since Zen, 2017): LLVM's `haswell`
with exactly FEATURES. The same numba and llvmlite then emit the same machine code on all of them. The
order of every sum is the source's on any target: no kernel lets LLVM reassociate (layers.FLAGS).

Elsewhere (another architecture, or an x86-64 CPU without AVX2 or FMA) the engine compiles for the host,
and says so where runs record their versions. LECUN1989_TARGET=host asks for the host anywhere: faster on
some CPUs, and the bytes may then differ from `results/`. The setting is numba's, for the whole process:
set before the engine's first function is compiled (layers.py calls `fix` first thing).
"""

from __future__ import annotations

import os
import platform
import warnings

ENV = "LECUN1989_TARGET"
NAME = "haswell"
# AVX2 and FMA with what every CPU that has them has too; nothing newer (no AVX-512)
FEATURES = ("+64bit,+avx,+avx2,+bmi,+bmi2,+cmov,+cx16,+cx8,+f16c,+fma,+fxsr,+lzcnt,+mmx,+movbe,+pclmul,+popcnt,"
            "+sahf,+sse,+sse2,+sse3,+sse4.1,+sse4.2,+ssse3,+xsave")
_CHOSEN: list[str] = []


def _host() -> str:
    import llvmlite.binding as ll
    return f"host {ll.get_host_cpu_name()}"


def _fits() -> bool:
    """An x86-64 CPU that runs the fixed target's code."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    import llvmlite.binding as ll
    flags = ll.get_host_cpu_features()
    return all(flags.get(name, False) for name in ("avx2", "fma"))


def fix() -> str:
    """Compile the engine for the fixed target where the CPU runs it (or the host, as the module's doc
    says), and return what it compiles for: `haswell`, or `host NAME`."""
    if _CHOSEN:
        return _CHOSEN[0]
    from numba.core import config, registry
    chosen = _host() if os.environ.get(ENV) == "host" or not _fits() else NAME
    if chosen == NAME:
        made = vars(registry.cpu_target).get("_toplevel_target_context")
        if made is not None and made.codegen()._tm_features != FEATURES:
            # numba compiled something for the host before this package was imported: too late to change
            warnings.warn("numba's compiler was set up for this CPU before lecun1989's engine was loaded, so the "
                          "engine compiles for the host and its bytes may differ from other machines'; import "
                          "lecun1989 before compiling other numba code", RuntimeWarning, stacklevel=2)
            chosen = _host()
        else:
            config.CPU_NAME, config.CPU_FEATURES = NAME, FEATURES
    _CHOSEN.append(chosen)
    return chosen


def chosen() -> str | None:
    """What the engine compiles for, once `fix` has run in this process (None before)."""
    return _CHOSEN[0] if _CHOSEN else None
