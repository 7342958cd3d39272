"""The zip-code benchmark: strips of five MNIST and USPS test digits (varied sizes, gaps, slants,
touching neighbours, both polarities) with their true codes, and their scores read by a run; and
MNIST's test digits read through the reading pipeline (docs/READING.md)."""

from __future__ import annotations

import math
import time
from io import BytesIO
from pathlib import Path

import numpy as np

from ..data import Location, parse_idx
from ..reader_data import touching_column
from ..errors import LecunError
from ..store.atomic import commit, json_text
from ..store.folders import Lock, check_output, marker, replace_contents
from ..store.rundir import read_json
from ..trained import load_trained
from .confidence import margin, rejection_at
from ..digits import crop, normalize
from .images import REJECT_ERROR, NoInk, Reader, load_image, read_image, reader, resize_naive

ZIP_LENGTH = 5
TOUCH_SHARE = 0.25        # the share of neighbouring pairs pushed together until their strokes touch
DARK_ON_LIGHT_SHARE = 0.5
PHOTO_QUALITY = 80


def test_digits(where: Location = Location()) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The digits the benchmark is made of, as ink in [0, 1] (0 = paper): MNIST's 10,000 test digits
    (28x28) and USPS's 2,007 test digits (16x16); neither is in any training set of this package."""
    paths = where.raw_paths("mnist")
    mnist = parse_idx(paths["t10k-images-idx3-ubyte.gz"], 3).astype(np.float64) / 255.0
    mnist_labels = parse_idx(paths["t10k-labels-idx1-ubyte.gz"], 1).astype(np.int64)
    usps = where.load("usps").test
    return {"mnist": (mnist, mnist_labels), "usps": ((usps.images[:, 0].astype(np.float64) + 1.0) / 2.0, usps.labels)}


def _transform(ink: np.ndarray, shear: float, height: int) -> np.ndarray:
    """A digit's ink sheared (x moves by shear * (y - middle)) and scaled to `height` rows (Pillow)."""
    from PIL import Image
    v = crop(ink)
    h, w = v.shape
    pad = math.ceil(abs(shear) * h / 2) + 1
    im = Image.fromarray(np.round(v * 255).astype(np.uint8), "L")
    im = im.transform((w + 2 * pad, h), Image.Transform.AFFINE, (1, shear, -shear * h / 2 - pad, 0, 1, 0),
                      resample=Image.Resampling.BILINEAR)
    v = crop(np.asarray(im, dtype=np.float64) / 255.0)
    h, w = v.shape
    im = Image.fromarray(np.round(v * 255).astype(np.uint8), "L")
    im = im.resize((max(1, round(w * height / h)), height), Image.Resampling.LANCZOS)
    return np.asarray(im, dtype=np.float64) / 255.0


def make_zip(digits: dict, seed: int, index: int, photo: bool = False) -> tuple[np.ndarray, dict]:
    """Zip code `index` of benchmark `seed`: a grey uint8 image and what it holds. It depends on
    (seed, index) only: numpy's Generator(PCG64) seeded with [seed, index] draws, in this order, per
    digit: its set (MNIST or USPS, even odds), its index, its height (H0 x U(0.85, 1.15), H0 drawn
    once, uniform in 24..48 pixels), its shear U(-0.3, 0.3) and its vertical jitter U(-0.08, 0.08) H0;
    per neighbouring pair: touching (TOUCH_SHARE) or a gap U(0.08, 0.5) H0; then the margin
    U(0.2, 0.6) H0, the polarity, the paper and ink grey levels and Gaussian noise (sd 0.015).

    With `photo`, the strip is then photographed instead (`photograph`, drawing on from the same
    generator): an RGB uint8 image, dark ink on paper, the other draws kept as they are."""
    rng = np.random.default_rng([seed, index])
    h0 = int(rng.integers(24, 49))
    picks, inks = [], []
    for _ in range(ZIP_LENGTH):
        source = "mnist" if rng.random() < 0.5 else "usps"
        i = int(rng.integers(len(digits[source][1])))
        height = round(h0 * rng.uniform(0.85, 1.15))
        shear, jitter = rng.uniform(-0.3, 0.3), rng.uniform(-0.08, 0.08) * h0
        picks.append((source, i, int(digits[source][1][i])))
        inks.append((_transform(digits[source][0][i], shear, height), jitter))
    touching = [bool(rng.random() < TOUCH_SHARE) for _ in range(ZIP_LENGTH - 1)]
    gaps = [round(rng.uniform(0.08, 0.5) * h0) for _ in range(ZIP_LENGTH - 1)]
    margin = round(rng.uniform(0.2, 0.6) * h0)
    dark_on_light = bool(rng.random() < DARK_ON_LIGHT_SHARE)
    paper, ink_level = ((rng.uniform(0.75, 1.0), rng.uniform(0.0, 0.35)) if dark_on_light
                        else (rng.uniform(0.0, 0.25), rng.uniform(0.65, 1.0)))
    height = 2 * margin + round(1.5 * h0)
    canvas = np.zeros((height, sum(v.shape[1] for v, _ in inks) + sum(gaps) + 2 * margin + 1))
    x = margin
    for k, (v, jitter) in enumerate(inks):
        top = int(round(height / 2 - v.shape[0] / 2 + jitter))
        if k:
            if touching[k - 1]:
                # the strokes touch in the row where they come closest
                at = touching_column(canvas[top:top + v.shape[0]], v)
                x = x if at is None else at
            else:
                x += gaps[k - 1]
        canvas[top:top + v.shape[0], x:x + v.shape[1]] = np.maximum(canvas[top:top + v.shape[0], x:x + v.shape[1]], v)
        x += v.shape[1]
    cols = np.flatnonzero(canvas.any(0))
    canvas = canvas[:, max(0, cols[0] - margin):cols[-1] + 1 + margin]
    grey = paper + (ink_level - paper) * canvas + rng.normal(0.0, 0.015, canvas.shape)
    meta = {"zip": "".join(str(label) for _, _, label in picks), "sources": [[s, i] for s, i, _ in picks],
            "touching": touching, "polarity": "dark-on-light" if dark_on_light or photo else "light-on-dark"}
    if photo:
        image, meta["photo"] = photograph(canvas, rng)
        return image, meta
    return np.round(np.clip(grey, 0.0, 1.0) * 255).astype(np.uint8), meta


def photograph(ink: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """Ink (0 = paper) as a phone's photo of it (RGB uint8) and what was drawn, in this order: a paper
    tint (each channel U(0.78, 1)), an ink colour (each channel U(0, 0.3), with even odds blue: its
    blue U(0.35, 0.6)), a gradient of light (U(0.7, 1) at one end to 1 at the other, across the strip at
    an angle U(0, 2 pi)), a shadow (darkening by U(0.35, 0.65) beyond a line through a point U(0.2, 0.8)
    of the width and height at an angle U(0, pi), its edge soft over U(0.02, 0.15) of the height), a
    blur (Gaussian, sd U(0.3, 1.2) pixels, per channel) and noise (sd 0.02 per channel)."""
    from scipy.ndimage import gaussian_filter
    h, w = ink.shape
    tint = rng.uniform(0.78, 1.0, 3)
    colour = rng.uniform(0.0, 0.3, 3)
    if rng.random() < 0.5:
        colour[2] = rng.uniform(0.35, 0.6)
    low, angle = rng.uniform(0.7, 1.0), rng.uniform(0.0, 2 * math.pi)
    depth, px, py, tilt = rng.uniform(0.35, 0.65), rng.uniform(0.2, 0.8) * w, rng.uniform(0.2, 0.8) * h, \
        rng.uniform(0.0, math.pi)
    soft = rng.uniform(0.02, 0.15) * h
    sd = rng.uniform(0.3, 1.2)
    y, x = np.mgrid[0:h, 0:w] + 0.5
    along = (x - w / 2) * math.cos(angle) + (y - h / 2) * math.sin(angle)
    span = max(1e-9, np.abs(along).max())
    light = low + (1 - low) * (along + span) / (2 * span)
    side = (x - px) * math.sin(tilt) - (y - py) * math.cos(tilt)
    light = light * (1 - depth / (1 + np.exp(-side / max(soft / 4, 1e-9))))
    rgb = light[..., None] * (tint * (1 - ink[..., None]) + colour * ink[..., None])
    rgb = np.stack([gaussian_filter(rgb[..., c], sd) for c in range(3)], axis=-1)
    rgb = rgb + rng.normal(0.0, 0.02, rgb.shape)
    return np.round(np.clip(rgb, 0.0, 1.0) * 255).astype(np.uint8), {
        "shadow": round(float(depth), 3), "light_low": round(float(low), 3), "blur": round(float(sd), 3)}


def make_zipcodes(out: Path, n: int, seed: int, where: Location = Location(), force: bool = False,
                  photo: bool = False) -> Path:
    """Write `n` zip-code strips zip-NNNNN.png and zipcodes.json (their true codes) into `out`; with
    `photo`, photographs of them, zip-NNNNN.jpg (JPEG, quality 80, as a phone saves)."""
    from PIL import Image
    out = Path(out)
    state = check_output(out, force=force, resumable=False, kinds=("zipcodes",))
    digits = test_digits(where)
    files, zips = {}, []
    for i in range(n):
        image, meta = make_zip(digits, seed, i, photo)
        buf = BytesIO()
        if photo:
            Image.fromarray(image, "RGB").save(buf, format="JPEG", quality=PHOTO_QUALITY)
        else:
            Image.fromarray(image, "L").save(buf, format="PNG")
        name = f"zip-{i:05d}.{'jpg' if photo else 'png'}"
        files[out / name] = buf.getvalue()
        zips.append({"file": name, **meta})
    files[out / "zipcodes.json"] = json_text({
        "made_by": f"lecun1989 zipcodes --n {n} --seed {seed}{' --photo' if photo else ''}", "seed": seed, "n": n,
        "photo": photo,
        "digits": "MNIST test (10,000) and USPS test (2,007) digits, never in training", "zips": zips})
    with Lock(out):
        if state == "replace":
            replace_contents(out)
        commit({**files, **marker(out, "zipcodes")})
    return out / "zipcodes.json"


def read_truth(path: Path) -> list[dict]:
    """The strips of a zipcodes.json, each a file inside its folder (a name that leads elsewhere, such
    as ../x.png or an absolute path, is refused: the truth file names its own images only)."""
    path = Path(path)
    if path.is_dir():
        hint = f"; give {path / 'zipcodes.json'}" if (path / "zipcodes.json").is_file() else ""
        raise LecunError(f"{path} is a folder, not a zipcodes.json written by `lecun1989 zipcodes`{hint}")
    if not path.exists():
        raise LecunError(f"{path}: no such file; give the zipcodes.json that `lecun1989 zipcodes --out DIR` wrote "
                         f"into DIR")
    try:
        truth = read_json(path)
    except LecunError as e:
        if not path.is_file():
            raise
        raise LecunError(f"{path} is not a zipcodes.json written by `lecun1989 zipcodes` ({e}); give the one beside "
                         f"its images") from None
    zips = truth.get("zips") if isinstance(truth, dict) else None
    if not isinstance(zips, list) or not all(isinstance(z, dict) and isinstance(z.get("file"), str)
                                             and isinstance(z.get("zip"), str) for z in zips):
        raise LecunError(f"{path} is not a zipcodes.json written by `lecun1989 zipcodes`")
    if not zips:
        raise LecunError(f"{path} lists no strips to score; give a zipcodes.json written by `lecun1989 zipcodes`")
    folder = path.parent.resolve()
    for z in zips:
        if "\0" in z["file"] or Path(z["file"]).is_absolute() or folder not in (folder / z["file"]).resolve().parents:
            raise LecunError(f"{path} names {z['file']!r}, which is not a file in its folder; give a zipcodes.json "
                             f"written by `lecun1989 zipcodes`, beside its images")
    return zips


def _figures(rows: list[dict]) -> dict:
    """The scores of some strips (rows of `score_zipcodes`); None where a figure has no strip to count."""
    n = len(rows)
    cut = [r for r in rows if r["read"] is not None]
    digits = sum(len(r["zip"]) for r in rows)
    accepted = [r for r in rows if r["accepted"]]
    accepted_digits = sum(sum(r["ok"]) for r in cut)
    share = lambda k, of: k / of if of else None
    return {"zips": n,
            "digit_accuracy": share(sum(sum(a == b for a, b in zip(r["read"], r["zip"])) for r in cut), digits),
            "zip_accuracy": share(sum(r["read"] == r["zip"] for r in cut), n),
            "miscounted_zips": share(n - len(cut), n),
            "accepted_zips": share(len(accepted), n),
            "accepted_zip_accuracy": share(sum(r["read"] == r["zip"] for r in accepted), len(accepted)),
            "accepted_digit_error": share(sum(o and a != b for r in cut for a, b, o in zip(r["read"], r["zip"], r["ok"])),
                                          accepted_digits)}


def score_zipcodes(net_or_run, truth_path: Path, threshold: float | None = None, deslant: bool = True,
                   digits: int | None = None, where: Location = Location()) -> dict:
    """Digit accuracy, whole-zip accuracy and whole-zip accuracy among the zips shown with no '?' (every
    digit accepted and the count sure), over all strips and apart for those whose digits are all
    separated and those with a touching pair. A zip cut into another number of digits than its code has
    counts all its digits as wrong (and as a wrong zip when accepted); the error of accepted digits is
    over the zips cut right. And the speed: digits read per second, whole (the image read, cut and
    normalized, the candidates read) and by the network alone (the candidates' forward passes); and per
    strip its reading ("strips"). A strip whose file cannot be read (missing, damaged) is not scored but
    named in "failed" with its error; one with no ink in it reads as no digits."""
    r = reader(net_or_run, threshold, where)
    truth_path = Path(truth_path)
    rows, failed, seconds, network = [], [], 0.0, 0.0
    for z in read_truth(truth_path):
        try:
            grey = load_image(truth_path.parent / z["file"])
        except LecunError as e:
            failed.append({"image": z["file"], "error": str(e)})
            continue
        t0 = time.perf_counter()
        try:
            reading = read_image(r, grey, deslant=deslant, digits=digits)
            digits_read, text, sure = reading.digits, reading.text, reading.count_sure
            network += reading.network_seconds
        except NoInk:   # a blank strip: read as no digits
            digits_read, text, sure = [], "", True
        seconds += time.perf_counter() - t0
        labels = "".join(str(d.label) for d in digits_read)
        ok = [d.accepted for d in digits_read]
        rows.append({"file": z["file"], "zip": z["zip"], "text": text,
                     "read": labels if len(labels) == len(z["zip"]) else None, "ok": ok,
                     "accepted": bool(ok) and all(ok) and sure, "touching": any(z.get("touching") or [])})
    n_digits = sum(len(row["zip"]) for row in rows)
    return {"threshold": r.threshold if math.isfinite(r.threshold) else None, **_figures(rows),
            "separated": _figures([row for row in rows if not row["touching"]]),
            "touching": _figures([row for row in rows if row["touching"]]),
            "digits_per_second": n_digits / seconds if seconds > 0 else None,
            "network_digits_per_second": n_digits / network if network > 0 else None,
            "strips": [{"file": row["file"], "zip": row["zip"], "text": row["text"], "right": row["read"] == row["zip"],
                        "shown_whole": row["accepted"]} for row in rows],
            "failed": failed}


def accepted_error(r: Reader, inputs: np.ndarray, labels: np.ndarray) -> dict:
    """Digits (16x16 inputs) read at the reader's threshold: the error of all, the share rejected and the
    error of the accepted."""
    out = r.outputs(inputs)
    right = out.argmax(1) == labels
    accepted = margin(out) >= r.threshold
    return {"digits": int(len(labels)), "error": float(1 - right.mean()), "rejected": float(1 - accepted.mean()),
            "accepted_error": float(1 - right[accepted].mean()) if accepted.any() else None}


def mnist_inputs(where: Location = Location()) -> tuple[np.ndarray, np.ndarray]:
    """MNIST's 10,000 test digits through predict's normalization, and their labels: other writers than
    any USPS digit, and none in any training set here."""
    images, labels = test_digits(where)["mnist"]
    return np.array([normalize(x) for x in images]), labels


def measure_mnist(run_dirs: list[Path], where: Location = Location()) -> dict:
    """MNIST's 10,000 test digits read by each run three ways: predict's normalization with and
    without deslanting, and the whole 28x28 image resized bilinearly to 16x16 (`resize_naive`).
    Per way: accuracy and the share rejected for 1% error, mean and std over the runs, and per run."""
    images, labels = test_digits(where)["mnist"]
    ways = {"normalized, deslanted": np.array([normalize(x, True) for x in images]),
            "normalized, not deslanted": np.array([normalize(x, False) for x in images]),
            "naive bilinear 28->16": resize_naive(images)}
    table = {way: {"accuracy": [], "rejection_at_1pct": []} for way in ways}
    for run in run_dirs:
        r = Reader(load_trained(Path(run)), 0.0)
        for way, inputs in ways.items():
            out = r.outputs(inputs)
            correct = out.argmax(1) == labels
            table[way]["accuracy"].append(float(correct.mean()))
            table[way]["rejection_at_1pct"].append(rejection_at(margin(out), correct, REJECT_ERROR)[0])
    return {way: {k: {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
                      "runs": v} for k, v in figures.items()} for way, figures in table.items()}
