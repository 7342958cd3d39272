"""The commands that draw pictures: plot (curves, misclassified digits, kernels and feature maps) and
reject (the share of test digits to reject for a given error, with its picture and reject.json)."""

from __future__ import annotations

import sys
from pathlib import Path

from ..data import Location
from ..errors import LecunError
from ..store.folders import check_picture_folder, check_pictures, write_pictures
from .args import add_data_location_args, finite_float, given_out, location


def reject_folder(paths: list[Path]) -> Path:
    """FOLDER/reject, beside what `lecun1989 plot` draws into FOLDER/plots; several folders pool their
    runs into one figure, which belongs to none of them."""
    if len(paths) > 1:
        raise LecunError("the runs of several folders make one figure: name the folder it goes into with --out")
    return Path(paths[0]) / "reject"


def reject(paths: list[Path], out: Path | None = None, error: float = 0.01, where: Location = Location(),
           command: str | None = None):
    """`lecun1989 reject`: measure, then write reject.png, reject.svg and reject.json into `out`
    together, only where pictures of this program's may go (check_picture_folder); returns the
    measured Rejection and the paths written."""
    from ..reading.rejection import check_error, measure, summary
    from ..store.atomic import json_text
    from ..views.rejection import picture
    error = check_error(error)
    target = Path(out) if out is not None else reject_folder(paths)
    if target.exists() and not target.is_dir():   # said before the work, not after
        raise LecunError(f"{target} is a file, not a folder; choose another --out")
    check_picture_folder(target)
    result = measure(paths, error, where)
    files = {**picture(result), "reject.json": json_text(summary(result, command)).encode("utf-8")}
    return result, write_pictures(target, files)


def plot_folders(paths: list[Path], out: Path | None, where: Location):
    """`lecun1989 plot`: every picture of each run, study or sweep folder, into FOLDER/plots or
    OUT/NAME; yields (folder, paths written). A folder's pictures are all drawn before any is written."""
    from ..views.plots import draw_folder
    # NAME is the resolved folder's own name: `RUN/..` is named after the folder it means, not "..",
    # so that nothing lands outside OUT.
    targets = [Path(out) / Path(p).resolve().name if out else Path(p) / "plots" for p in paths]
    seen = {}
    for path, target in zip(paths, targets):
        first = seen.setdefault(target.resolve(), path)
        if Path(first).resolve() != Path(path).resolve():
            raise LecunError(f"{first} and {path} would both be drawn into {target}; plot them into "
                             f"different --out folders")
    for target in targets:
        check_picture_folder(target)
    # every folder drawn, and every name checked, before any is written: a refusal writes nothing
    drawn = [draw_folder(Path(path), where) for path in paths]
    for target, pictures in zip(targets, drawn):
        check_pictures(target, pictures)
    for path, target, pictures in zip(paths, targets, drawn):
        yield path, write_pictures(target, pictures)


def cmd_plot(args) -> None:
    for folder, written in plot_folders([Path(p) for p in args.paths], given_out(args), location(args)):
        print(f"{folder}: " + ", ".join(str(p) for p in written))


def cmd_reject(args) -> None:
    from ..reading.rejection import lines
    result, written = reject([Path(p) for p in args.paths], given_out(args), args.error, location(args),
                             command=args.command_line)
    print("written: " + ", ".join(str(p) for p in written), file=sys.stderr)
    for line in lines(result):
        print(line)


def add_commands(sub) -> None:
    """plot, reject."""
    p = sub.add_parser("plot", help="draw the pictures of finished runs, studies and sweeps (PNG and SVG)")
    p.add_argument("paths", nargs="+", help="run, study or sweep folders")
    p.add_argument("--out", help="write into OUT/NAME instead of each folder's plots/")
    add_data_location_args(p)
    p.set_defaults(func=cmd_plot)

    p = sub.add_parser("reject", help="the share of test digits finished runs must reject, least sure first, to "
                                      "reach a given error (the zip-code work's figure of merit)")
    p.add_argument("paths", nargs="+", help="run, study or sweep folders; their finished runs are pooled")
    p.add_argument("--out", help="the folder of reject.png, reject.svg and reject.json (default: FOLDER/reject; "
                                 "needed when several folders are given)")
    p.add_argument("--error", type=finite_float, default=0.01,
                   help="the error the accepted digits may have, as a fraction (default 0.01: 1%%)")
    add_data_location_args(p)
    p.set_defaults(func=cmd_reject)
