"""The one exception type the CLI turns into a one-line message instead of a traceback."""


class LecunError(Exception):
    """A problem the user can fix: bad input, missing files, an existing output folder."""


class Diverged(LecunError):
    """Some runs diverged: their folders say at which pass; the others' results stand."""
