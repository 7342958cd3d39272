"""`python -m lecun1989` and the `lecun1989` command: an interrupt even while the command line
module loads, or as the command returns, is one line, not a traceback, and so is a character the
terminal cannot show."""

import sys

from .errors import handle_sigterm, interrupted_line


def run() -> int:
    handle_sigterm()
    for stream in (sys.stdout, sys.stderr):   # a terminal that cannot show "±" gets "\xb1", not a traceback
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    try:
        from .cli import main
        return main()
    except KeyboardInterrupt as e:   # while the module loads, or after main's own handler has let go
        line, status = interrupted_line("lecun1989", e)
        print(line, file=sys.stderr)
        return status


if __name__ == "__main__":
    sys.exit(run())
