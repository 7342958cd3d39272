"""The `lecun1989` command: data, info, repro, paper, modern, sweep, plot, reject, predict, zipcodes, demo,
report, study, docs, bench.

The only place with argparse. Each family of commands is a module with `add_commands(sub)`; the
shared argument types and groups are in args.py. A command's implementation is imported when it
runs, so that `--help` and a mistyped option load no more than the parser.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys

from .. import __version__, paper
from ..errors import Diverged, LecunError, OutputError, handle_sigterm, interrupt_behind, interrupted_line
from . import bench, pages, pictures, reading, studies, training


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="lecun1989", description=f"Reproduce {paper.CITATION}.")
    parser.add_argument("--version", action="version", version=f"lecun1989 {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parser.commands = sub.choices   # each command's parser, for errors in its own name
    parser.set_defaults(run_command=run_command)   # how `study` runs its rows, without importing this module
    for family in (training, pictures, reading, pages, studies, bench):   # the order of --help's list
        family.add_commands(sub)
    return parser


def run_command(argv: list[str], command_line: str) -> None:
    """Parse and run one command in this process (the arguments after `lecun1989`), recording
    `command_line` as its command line."""
    args = build_parser().parse_args(argv)
    args.command_line = command_line
    args.func(args)


class Parser(argparse.ArgumentParser):
    def _print_message(self, message, file=None):
        """As argparse's, but a failed write (`--help > /dev/full`) is an error, not ignored."""
        if message:
            file = file or sys.stdout
            file.write(message)
            file.flush()

    def error(self, message):
        """One line, not the usage block: what is wrong, and where to read more."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def main(argv: list[str] | None = None) -> int:
    name = "lecun1989"
    previous = handle_sigterm()
    try:   # everything, imports and parsing included: an interrupt at any moment is one line
        parser = build_parser()
        args, extra = parser.parse_known_args(argv)
        # argparse stops taking a list positional at the first option: `predict RUN --digits 5 a.png b.png`
        # leaves the images over; a command whose positional list may go on after its options takes them
        if extra and getattr(args, "more_into", None) and not any(x.startswith("-") for x in extra):
            getattr(args, args.more_into).extend(extra)
            extra = []
        if extra:   # named by the command it was given to (`lecun1989 modern: error: ...`), not the program
            parser.commands[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
        name = f"lecun1989 {args.command}"
        args.command_line = shlex.join(["lecun1989", *(sys.argv[1:] if argv is None else argv)])
        if getattr(args, "cluster", None) is not None:
            if getattr(args, "engine", "fast") != "fast":   # before Ray starts, or a sweep writes its settings
                raise LecunError("--cluster trains on the compiled engine; drop --engine torch")
            from ..engines import cluster   # Ray only for a command given --cluster
            with cluster.use(args.cluster, echo=lambda line: print(line, file=sys.stderr)):
                args.func(args)
        else:
            args.func(args)
    except LecunError as e:
        print(f"{name}: error: {e}", file=sys.stderr)
        return 3 if isinstance(e, Diverged) else 1 if isinstance(e, OutputError) else 2
    except BrokenPipeError as e:   # `lecun1989 ... | head`: the reader left; stop as if interrupted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())   # nothing more to flush at exit
        note = getattr(e, "note", None)
        print(f"{name}: output closed" + (f"; {note}" if note else ""), file=sys.stderr)
        return 141
    except OSError as e:
        # with no file name, it was the standard output that failed (`> /dev/full`)
        print(f"{name}: error: {e.filename or 'the output'}: {e.strerror or e}", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, SystemError) as e:
        stop = interrupt_behind(e)
        if stop is None:
            raise
        line, status = interrupted_line(name, stop)
        print(line, file=sys.stderr)
        return status
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return 0


if __name__ == "__main__":
    sys.exit(main())
