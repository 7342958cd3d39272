"""The commands that read: predict (the digits in image files, with a trained run) and zipcodes (make
the zip-code benchmark)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

from ..config import MAX_ZIPCODES
from ..errors import LecunError
from .args import add_data_location_args, at_most, location, margin_threshold, seed

def add_commands(sub) -> None:
    """predict, zipcodes."""
    p = sub.add_parser("predict", help="read the digits (a zip code) in image files with a trained run",
                       description="Read a row of handwritten digits in each image with the network of RUN_DIR "
                                   "(a study folder's runs read together). Digits less sure than the threshold (by "
                                   "default the margin at which the run's test digits err at 1%) are shown as '?', "
                                   "and a '?' before the reading says its number of digits is unsure. The network "
                                   "made for reading is `lecun1989 reader`'s (results/reader/reader holds one).")
    p.add_argument("run", metavar="RUN_DIR", help="a run folder (config.json + weights.safetensors), or a study "
                                                  "folder of runs, read as a committee")
    p.add_argument("images", metavar="IMAGE", nargs="*", help="image files (PNG, JPEG, ...; either polarity)")
    p.add_argument("--json", action="store_true", help="print strict JSON instead of lines")
    p.add_argument("--show", metavar="FOLDER", help="save a picture per image: its digits' boxes and 16x16 inputs")
    p.add_argument("--threshold", type=margin_threshold, help="accept a digit when its margin is at least this "
                                                          "(default: the run's 1%%-error margin on its test set) "
                                                          "and it reads as one digit, as tall as the row's (docs/READING.md, step 7)")
    p.add_argument("--digits", type=at_most(1000), help="the number of digits each image holds (e.g. 5 for a zip "
                                                    "code): touching digits are split until there are that many")
    p.add_argument("--no-deslant", dest="deslant", action="store_false", help="do not deslant the digits")
    p.add_argument("--truth", metavar="ZIPCODES_JSON", help="score the images listed in a zipcodes.json (from "
                                                            "`lecun1989 zipcodes`) against their true codes")
    add_data_location_args(p)
    p.set_defaults(func=cmd_predict, more_into="images")   # images after the options are images too

    p = sub.add_parser("zipcodes", help="make the zip-code benchmark: strips of 5 MNIST and USPS test digits",
                       description="Write N images of 5-digit zip codes composed of MNIST and USPS test digits "
                                   "(varied sizes, gaps, slants, touching neighbours, both polarities) and "
                                   "zipcodes.json with their true codes; the same --seed gives the same files.")
    p.add_argument("--out", required=True, metavar="FOLDER", help="a new folder for the images")
    p.add_argument("--n", type=at_most(MAX_ZIPCODES), default=1000,
                   help=f"how many zip codes, at most {MAX_ZIPCODES:,} (default 1000)")
    p.add_argument("--seed", type=seed, default=0, help="the benchmark's seed (default 0)")
    p.add_argument("--photo", action="store_true", help="photographs of the strips instead: colour JPEG, tinted "
                                                        "paper, a shadow, a gradient of light, blur and noise")
    p.add_argument("--force", action="store_true", help="replace a folder this command made before")
    add_data_location_args(p)
    p.set_defaults(func=cmd_zipcodes)


def _picture_names(images: list[str]) -> list[str]:
    names, seen = [], set()
    for path in images:
        stem, k = Path(path).stem or "image", 1
        name = f"{stem}-reading.png"
        while name in seen:
            k += 1
            name = f"{stem}-{k}-reading.png"
        seen.add(name)
        names.append(name)
    return names


def cmd_predict(args) -> None:
    from ..reading.benchmark import score_zipcodes
    from ..reading.images import load_image, read_image, reader
    from ..store.atomic import json_text
    if not args.images and not args.truth:
        raise LecunError("give at least one IMAGE to read (or --truth ZIPCODES_JSON)")
    if args.truth and args.images:
        raise LecunError("--truth reads the images its zipcodes.json lists: give no IMAGE with it")
    if args.truth and args.show:
        raise LecunError("--show draws the images given as IMAGE; it does not go with --truth")
    if args.show:   # before any image is read
        from ..store.folders import check_picture_folder, check_pictures
        check_picture_folder(Path(args.show), "--show")
        check_pictures(Path(args.show), _picture_names(args.images), "--show")
    # every file is opened before the network is loaded; one that cannot be (missing, not an image, or
    # with no ink when read) does not keep the others from being read, and each is named
    failed, greys = [], []
    for path in args.images:
        try:
            greys.append((path, load_image(path)))
        except LecunError as e:
            failed.append((path, str(e)))
    if args.images and not greys:
        _refuse(failed, len(args.images))
    r = reader(Path(args.run), args.threshold, location(args))
    if args.truth:
        scores = score_zipcodes(r, Path(args.truth), deslant=args.deslant, digits=args.digits)
        failed = [(str(Path(args.truth).parent / f["image"]), f["error"]) for f in scores["failed"]]
        if not scores["zips"]:   # nothing to score: every strip failed
            _refuse(failed, len(failed))
        if args.json:
            sys.stdout.write(json_text({"run": str(args.run), "truth": str(args.truth), **scores}))
        else:
            _print_scores(args.truth, scores)
        if failed:
            _refuse(failed, len(failed) + scores["zips"], scored=True)
        return
    read = []
    for path, g in greys:
        try:
            read.append((path, read_image(r, g, deslant=args.deslant, digits=args.digits)))
        except LecunError as e:
            failed.append((path, str(e)))
    failed.sort(key=lambda f: args.images.index(f[0]))
    paths, readings = [p for p, _ in read], [rd for _, rd in read]
    if args.json:
        sys.stdout.write(json_text({"run": str(args.run),
                                    "threshold": r.threshold if math.isfinite(r.threshold) else None,
                                    "digits_asked": args.digits,   # None unless --digits; a reading may have fewer or more
                                    "images": [rd.to_json(str(path)) for path, rd in read],
                                    "failed": [{"image": str(path), "error": e} for path, e in failed]}))
    else:
        how = ("given" if args.threshold is not None else
               f"1% error on the run's test digits, {r.rejection_note()}")
        t = f"{r.threshold:.4f}" if math.isfinite(r.threshold) else "none (no margin reaches 1% error)"
        print(f"margin threshold {t} ({how}); '?' marks a digit below it, or one that reads as no single digit "
              f"or is lower than the row's")
        for path, rd in read:
            each = ", ".join(f"{d.label}{'' if d.accepted else '?'} {d.margin:.2f}" for d in rd.digits)
            short = _count_note(rd, args.digits)
            unsure = "" if rd.count_sure else "   (the leading '?': the number of digits is unsure)"
            print(f"{path}: {rd.text or '(no digits found)'}   [{each}]{short}{unsure}{_sure_but_unsure(rd)}")
    if args.show:
        from ..store.folders import write_pictures
        from ..views.reading import picture
        folder = Path(args.show)
        files = {name: picture(rd, Path(path).name) for name, path, rd in zip(_picture_names(paths), paths, readings)}
        if files:
            written = write_pictures(folder, files, "--show")
            print(f"pictures: {', '.join(map(str, written))}", file=sys.stderr if args.json else sys.stdout)
    if failed:
        _refuse(failed, len(args.images))


def _print_scores(truth: str, scores: dict) -> None:
    """predict --truth's figures, a line for all strips, the separated and the touching, and the speed."""
    pct = lambda v: "n/a" if v is None else f"{100 * v:.2f}%"
    print(f"{truth}: {scores['zips']} zip codes, margin threshold "
          f"{'none' if scores['threshold'] is None else format(scores['threshold'], '.4f')}")
    for name, f in (("all", scores), ("separated digits", scores["separated"]),
                    ("a touching pair", scores["touching"])):
        print(f"  {name} ({f['zips']}): whole-zip accuracy {pct(f['zip_accuracy'])}, digit accuracy "
              f"{pct(f['digit_accuracy'])}, cut into the wrong number of digits {pct(f['miscounted_zips'])}; "
              f"shown with no '?' {pct(f['accepted_zips'])}, of which right {pct(f['accepted_zip_accuracy'])}")
    rate = lambda v: "n/a" if v is None else f"{v:.0f}"
    print(f"speed: {rate(scores['digits_per_second'])} digits a second read from the image (the paper: 10-12), "
          f"{rate(scores['network_digits_per_second'])} by the network once normalized (the paper: 30)")


def _sure_but_unsure(rd) -> str:
    """Why a '?' whose margin reaches the threshold is one: it is lower than the row's digits, or its
    outputs are not one digit's (its unlikeness)."""
    sure = [d for d in rd.digits if not d.accepted and d.margin >= rd.threshold]
    note = ""
    for why, ds in (("lower than the row's digits", [d for d in sure if d.short]),
                    ("not reading as one digit", [d for d in sure if not d.short])):
        if ds:
            note += f"   ({', '.join(f'{d.label} {d.margin:.2f}' for d in ds)}: sure enough, but {why})"
    return note


def _count_note(rd, asked: int | None) -> str:
    """What predict adds to a reading kept to a count asked that it could not keep, or may have kept by
    leaving a digit out."""
    if not asked:
        return ""
    if len(rd.digits) < asked:
        return f"   (only {len(rd.digits)} of the {asked} digits asked: the ink has no more places to cut)"
    if len(rd.digits) > asked:
        return (f"   ({len(rd.digits)} digits where {asked} {'was' if asked == 1 else 'were'} asked: the ink holds "
                f"more groups than can be read as {asked})")
    if rd.best_count > len(rd.digits):
        return f"   (without --digits it reads best as {rd.best_count} digits: one may be left out)"
    return ""


def _refuse(failed: list[tuple[str, str]], given: int, scored: bool = False) -> None:
    """The images predict could not read: one alone is its error; several are named a line each on
    stderr, then counted in the error. `scored`: the others' scores were printed without them."""
    def named(path: str, error: str) -> str:   # most errors name their image first already
        return error if error.startswith((f"{path} ", f"{path}:")) else f"{path}: {error}"
    after = f" ({given - len(failed)} others scored without {'it' if len(failed) == 1 else 'them'})" if scored else ""
    if len(failed) == 1:
        raise LecunError(named(*failed[0]) + after)
    for path, error in failed:
        print(named(path, error), file=sys.stderr)
    raise LecunError(f"{len(failed)} of the {given} images could not be read (each is named above){after}")


def cmd_zipcodes(args) -> None:
    from ..reading.benchmark import make_zipcodes
    path = make_zipcodes(Path(args.out), args.n, args.seed, location(args), force=args.force, photo=args.photo)
    print(f"{args.n} zip codes written to {args.out}; their true codes in {path}")
