"""Compiling ahead: the kernels a command will need that the disk cache lacks, compiled side by side.

numba compiles a kernel when it is first called, under one lock for the whole process, so threads
cannot compile two at once. A first pass needs up to three kernels (SDLM's curvature estimate, the
training kernel, the evaluation), each seconds of compiling. When the disk cache (cache.py) lacks the
training kernel, the longest to compile, and another, and the engine may use a second core, it
compiles the training kernel at once and hands the others to one child process meanwhile. The child
builds an engine of the same settings on one synthetic example and calls each of those kernels on no
examples: the same argument types, so the same compiled code, which it writes to the disk cache.
Before the engine first calls one of them, it waits for the child, then loads the kernel from the
cache. Nothing is computed differently; a child that fails, or a numba whose cache internals are not
the ones known, only means that the engine compiles the kernel itself, as it would without this module.

A command that will need other compiled code once training is done (`paper`'s rejection measure: the
forward pass of model_compiled.py) names it with `also`; the child compiles it after the engine's
kernels, while the command trains, and the command waits for it (`wait_also`) rather than compile it a
second time.
"""

from __future__ import annotations

import atexit
import importlib
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

from .cache import NOTE_AFTER_S, in_disk_cache

COMPILED_LINE = "compiled "   # the start of a line the engine prints for a kernel it compiled
KERNELS_DONE = "ahead: the engine's kernels are compiled"   # the child's line between the kernels and `also`
WAIT_S = 600   # the longest a child is waited for: its kernels take seconds to a minute


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:   # not on Linux
        return os.cpu_count() or 1


class Ahead:
    """Of the kernels of `calls` (name, kernel, arguments, in the order a pass first calls them) that the
    disk cache lacks: the one named `here` for the engine to compile at once (`here_calls`), the others
    compiled meanwhile by a child process started with `child` + the JSON of `spec` + their names, where
    the engine may use `threads` cores and the machine has a second."""

    def __init__(self, calls: list[tuple[str, object, tuple]], here: str, child: list[str], spec: dict,
                 threads: int):
        self.pending: dict = {}   # kernel -> name, while the child may still be compiling it
        self.process: subprocess.Popen | None = None
        self.here_calls: list[tuple[object, tuple]] = []
        self.said = 0             # the child's lines read so far
        if min(threads - 1, cores() - 1) < 1:
            return
        missing = [(name, fn, args) for name, fn, args in calls if in_disk_cache(fn, args) is False]
        others = {fn: name for name, fn, args in missing if name != here}
        # the kernels side by side where the engine compiles its training kernel meanwhile; what `also`
        # named (missing from the cache, as `also` was told) while the engine trains
        if len(others) == len(missing):
            others = {}
        also = list(_ALSO)
        if not others and not also:
            return
        # its standard error in a file, which no amount of it can fill; its standard input a pipe
        # this process never writes, so that it stops when this process ends, however it ends
        self.err = tempfile.TemporaryFile("w+", encoding="utf-8")
        try:
            self.process = subprocess.Popen([*child, json.dumps({**spec, "also": also}), *others.values()],
                                            stdin=subprocess.PIPE,
                                            stdout=subprocess.DEVNULL, stderr=self.err, text=True)
        except OSError:   # no child: the engine compiles them itself
            self.err.close()
            return
        _RUNNING.add(self.process)
        _ALSO.clear()   # handed over: another engine of this command need not compile them again
        self.pending = others
        self.here_calls = [(fn, args) for name, fn, args in missing if name == here and others]
        if also:
            _ALSO_CHILDREN.append(self)

    def wait_for(self, fn) -> float:
        """Before the kernel's first call: if the child compiles it, wait until the child has compiled the
        engine's kernels (it compiles them in turn) and say what it compiled; the seconds waited. A child
        that goes on with `also` is left to it (wait_also)."""
        if fn not in self.pending:
            return 0.0
        t0 = time.perf_counter()
        self._wait(lambda: KERNELS_DONE in self._lines())
        self.pending = {}
        self.said = _say_compiled(self._lines(), 0)
        if self.process.poll() is not None:
            self.close()
        return time.perf_counter() - t0

    def _wait(self, done, note: str | None = None) -> None:
        """Until the child ends or `done()`; `note` said once it has taken NOTE_AFTER_S. A child still at it
        after WAIT_S is stuck: it is killed, and the command compiles what it was to compile itself."""
        t0, noted = time.perf_counter(), False
        while self.process.poll() is None and not done():
            waited = time.perf_counter() - t0
            if note and not noted and waited > NOTE_AFTER_S:
                from tqdm import tqdm   # its write keeps the note off a progress bar's line
                tqdm.write(note, file=sys.stderr)
                noted = True
            if waited > WAIT_S:
                self.process.kill()
                self.process.wait()
                return
            time.sleep(0.02)

    def _lines(self) -> list[str]:
        self.err.seek(0)
        return self.err.read().splitlines()

    def close(self) -> None:
        if self.process in _RUNNING:
            self.process.wait()
            self.process.stdin.close()
            _RUNNING.discard(self.process)
            self.err.close()
        if self in _ALSO_CHILDREN:
            _ALSO_CHILDREN.remove(self)


def _say_compiled(lines: list[str], said: int) -> int:
    """Print the child's lines about what it compiled, from line `said` on; the lines seen."""
    from tqdm import tqdm   # its write keeps the note off a progress bar's line
    for line in lines[said:]:
        if line.startswith(COMPILED_LINE):
            tqdm.write(line, file=sys.stderr)
    return len(lines)


def also(target: str) -> None:
    """Have a child that compiles ahead also call `target`, "module:function", after the engine's kernels:
    a function of no arguments that compiles into the disk cache what the command needs once it has
    trained. Name only what the disk cache lacks: a child is started for it alone if need be."""
    if target not in _ALSO:
        _ALSO.append(target)


def compile_also(targets: list[str]) -> None:
    """In the child, once the engine's kernels are compiled: say so, then call each of `also`'s targets."""
    print(KERNELS_DONE, file=sys.stderr, flush=True)
    for target in targets:
        module, _, name = target.partition(":")
        getattr(importlib.import_module(module), name)()


def wait_also() -> None:
    """Before compiling what `also` named: wait for a child still compiling it (saying so after a second),
    and say what it compiled. In the main thread, so that an interrupt stops the wait."""
    while _ALSO_CHILDREN:
        job = _ALSO_CHILDREN[-1]
        job._wait(lambda: False, "waiting for the child process that compiles ahead to finish")
        job.said = _say_compiled(job._lines(), job.said)
        job.close()


_ALSO: list[str] = []
_ALSO_CHILDREN: list[Ahead] = []


def end_with_parent() -> None:
    """In the child: stop at once when the parent ends (its end of the standard input closes), even
    killed, rather than compile on for a command that is gone."""
    def watch():
        sys.stdin.read()
        os._exit(1)
    threading.Thread(target=watch, daemon=True).start()


_RUNNING: set[subprocess.Popen] = set()


@atexit.register
def _stop_children() -> None:
    """A command that ends before it needed them (an error, an interrupt) leaves no child compiling."""
    for process in list(_RUNNING):
        process.kill()
        process.wait()
