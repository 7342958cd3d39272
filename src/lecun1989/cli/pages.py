"""The commands that write a page: demo (draw digits and watch the network read) and report."""

from __future__ import annotations

from pathlib import Path

from .args import add_data_location_args, location, margin_threshold


def write_page(out: Path, head: str, what: str, example: str, make) -> Path:
    """Write the page `make()` returns to `out` (UTF-8), replacing only a page of this kind that this
    program wrote (checked before the page is made), and never half of one."""
    from ..store.folders import check_page, write_files
    check_page(out, head, what, example)
    real = Path(out).resolve()
    write_files(real.parent, {real.name: make().encode("utf-8")})
    return Path(out)


def cmd_demo(args) -> None:
    from ..views import demo
    out = write_page(args.out, demo.HEAD, "demo page", "demo.html",
                     lambda: demo.page(Path(args.run), location(args), args.threshold))
    print(f"demo page written to {out}: open it in a browser and draw digits")


def cmd_report(args) -> None:
    from ..views import report
    out = write_page(args.output, report.HEAD, "report", "report.html",
                     lambda: report.page([Path(p) for p in args.paths], location(args)))
    print(f"report written to {out}")


def add_commands(sub) -> None:
    """demo, report."""
    p = sub.add_parser("demo", help="a self-contained page where anyone draws digits and watches the network read")
    p.add_argument("run", metavar="RUN_DIR", type=Path, help="a run folder (as repro or paper write them), or a study folder, "
                                                           "whose runs then read together")
    p.add_argument("-o", "--out", default="demo.html", help="the HTML file (default demo.html)")
    p.add_argument("--threshold", type=margin_threshold,
                   help="the margin a digit needs to be accepted (default: the run's 1%%-error margin)")
    add_data_location_args(p)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("report", help="one self-contained HTML page for finished runs, studies and sweeps")
    p.add_argument("paths", nargs="+", help="run, study or sweep folders")
    p.add_argument("-o", "--output", default="report.html", help="the HTML file (default report.html)")
    add_data_location_args(p)
    p.set_defaults(func=cmd_report)
