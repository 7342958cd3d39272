"""The commands behind the docs: study (run the studies' rows) and docs (write or check the docs)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from ..errors import LecunError
from .args import add_cluster_arg, add_data_location_args, location, refuse_empty


def cmd_study(args) -> None:
    from ..studies.rows import select
    from ..studies.runner import run
    flags = [flag for name, flag in (("data_home", "--data-home"), ("raw_dir", "--raw-dir"))
             for flag in ([flag, getattr(args, name)] if getattr(args, name) else [])]
    flags += ["--offline"] * bool(args.offline) + ["--allow-modified-data"] * args.allow_modified_data

    def run_row(argv: list[str], command_line: str) -> None:   # a row's command, told where the data is
        args.run_command(argv + flags, command_line)

    refuse_empty(out=args.out, work=args.work)
    at_once = 1
    if args.cluster is not None:   # connected by main(): rows side by side, each spread over the cluster
        from ..engines import cluster
        at_once = cluster.rows_at_once()
    run(select(args.names), Path(args.out), run_row, Path(args.work), location(args), at_once=at_once)


def cmd_docs(args) -> None:
    from ..studies.docs import docs
    t0 = time.perf_counter()
    refuse_empty(root=args.root, results=args.results)
    root = Path(args.root)
    found = docs(root, Path(args.results) if args.results else None, check=args.check, where=location(args))
    if args.check:
        for d in found:
            print(d.line(), file=sys.stderr)
        if found:
            raise LecunError(f"{len(found)} quoted figure{'s' * (len(found) > 1)} differ from the results; "
                             f"`lecun1989 docs` rewrites them from the results")
        print(f"docs match the results ({time.perf_counter() - t0:.1f}s)")
    else:
        print(f"docs written from the results: {len(found)} table row{'s' * (len(found) != 1)} or figure"
              f"{'s' * (len(found) != 1)} changed, pictures redrawn ({time.perf_counter() - t0:.1f}s)")


def add_commands(sub) -> None:
    """study, docs."""
    from ..studies.rows import DEFAULT_WORK, STUDIES
    p = sub.add_parser("study", help="run the studies behind the docs' tables (resumable: finished rows are "
                                     "skipped) and save each row's results")
    p.add_argument("names", nargs="+", metavar="NAME",
                   help="; ".join(f"{s.name}: {s.what}" for s in STUDIES.values()) + "; or all")
    p.add_argument("--out", default="results", help="where each row's study.json goes (default results)")
    p.add_argument("--work", default=str(DEFAULT_WORK),
                   help=f"where the rows train, weights and logs included (default {DEFAULT_WORK})")
    add_cluster_arg(p)
    add_data_location_args(p)
    p.set_defaults(func=cmd_study)

    p = sub.add_parser("docs", help="write the docs' measured tables, figures and pictures from the saved "
                                    "results; --check only compares")
    p.add_argument("--check", action="store_true",
                   help="change nothing; exit non-zero naming each table row or figure that differs")
    p.add_argument("--root", default=".", help="the repository's folder (default: the current one)")
    p.add_argument("--results", help="the results folder (default ROOT/results)")
    add_data_location_args(p)
    p.set_defaults(func=cmd_docs)
