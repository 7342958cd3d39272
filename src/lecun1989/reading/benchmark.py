"""The zip-code benchmark: strips of five MNIST and USPS test digits (varied sizes, gaps, slants,
touching neighbours, both polarities) with their true codes, and their scores read by a run; and
MNIST's test digits read through the reading pipeline (docs/READING.md)."""

from __future__ import annotations

import math
from io import BytesIO
from pathlib import Path

import numpy as np

from ..data import Location, parse_idx
from ..errors import LecunError
from ..store.atomic import commit, json_text
from ..store.folders import Lock, check_output, marker, replace_contents
from ..store.rundir import read_json
from ..trained import load_net
from .confidence import margin, rejection_at
from .images import REJECT_ERROR, Reader, crop, load_image, normalize, read_image, reader, resize_naive

ZIP_LENGTH = 5
TOUCH_SHARE = 0.25        # the share of neighbouring pairs pushed together until their strokes touch
DARK_ON_LIGHT_SHARE = 0.5
MAX_ZIPCODES = 100_000    # the files are named zip-00000.png .. zip-99999.png


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


def make_zip(digits: dict, seed: int, index: int) -> tuple[np.ndarray, dict]:
    """Zip code `index` of benchmark `seed`: a grey uint8 image and what it holds. It depends on
    (seed, index) only: numpy's Generator(PCG64) seeded with [seed, index] draws, in this order, per
    digit: its set (MNIST or USPS, even odds), its index, its height (H0 x U(0.85, 1.15), H0 drawn
    once, uniform in 24..48 pixels), its shear U(-0.3, 0.3) and its vertical jitter U(-0.08, 0.08) H0;
    per neighbouring pair: touching (TOUCH_SHARE) or a gap U(0.08, 0.5) H0; then the margin
    U(0.2, 0.6) H0, the polarity, the paper and ink grey levels and Gaussian noise (sd 0.015)."""
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
                # leftmost strong ink of the new digit one column right of the rightmost strong ink
                # already there, in the row where they come closest: the strokes touch in that row
                prev = canvas[top:top + v.shape[0]] >= 0.5
                new = v >= 0.5
                rows = prev.any(1) & new.any(1)
                if rows.any():
                    right = np.array([np.flatnonzero(r)[-1] for r in prev[rows]])
                    left = np.array([np.flatnonzero(r)[0] for r in new[rows]])
                    # never left of the canvas: a new digit whose ink starts far right in its box,
                    # touching a narrow one, would otherwise start before column 0
                    x = max(0, int((right + 1 - left).max()))
            else:
                x += gaps[k - 1]
        canvas[top:top + v.shape[0], x:x + v.shape[1]] = np.maximum(canvas[top:top + v.shape[0], x:x + v.shape[1]], v)
        x += v.shape[1]
    cols = np.flatnonzero(canvas.any(0))
    canvas = canvas[:, max(0, cols[0] - margin):cols[-1] + 1 + margin]
    grey = paper + (ink_level - paper) * canvas + rng.normal(0.0, 0.015, canvas.shape)
    image = np.round(np.clip(grey, 0.0, 1.0) * 255).astype(np.uint8)
    return image, {"zip": "".join(str(label) for _, _, label in picks),
                   "sources": [[s, i] for s, i, _ in picks], "touching": touching,
                   "polarity": "dark-on-light" if dark_on_light else "light-on-dark"}


def make_zipcodes(out: Path, n: int, seed: int, where: Location = Location(), force: bool = False) -> Path:
    """Write `n` zip-code strips zip-NNNNN.png and zipcodes.json (their true codes) into `out`."""
    from PIL import Image
    out = Path(out)
    state = check_output(out, force=force, resumable=False, kinds=("zipcodes",))
    digits = test_digits(where)
    files, zips = {}, []
    for i in range(n):
        image, meta = make_zip(digits, seed, i)
        buf = BytesIO()
        Image.fromarray(image, "L").save(buf, format="PNG")
        name = f"zip-{i:05d}.png"
        files[out / name] = buf.getvalue()
        zips.append({"file": name, **meta})
    files[out / "zipcodes.json"] = json_text({
        "made_by": f"lecun1989 zipcodes --n {n} --seed {seed}", "seed": seed, "n": n,
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
    truth = read_json(path)
    zips = truth.get("zips") if isinstance(truth, dict) else None
    if not isinstance(zips, list) or not all(isinstance(z, dict) and isinstance(z.get("file"), str)
                                             and isinstance(z.get("zip"), str) for z in zips):
        raise LecunError(f"{path} is not a zipcodes.json written by `lecun1989 zipcodes`")
    folder = path.parent.resolve()
    for z in zips:
        if "\0" in z["file"] or Path(z["file"]).is_absolute() or folder not in (folder / z["file"]).resolve().parents:
            raise LecunError(f"{path} names {z['file']!r}, which is not a file in its folder; give a zipcodes.json "
                             f"written by `lecun1989 zipcodes`, beside its images")
    return zips


def score_zipcodes(net_or_run, truth_path: Path, threshold: float | None = None, deslant: bool = True,
                   digits: int | None = None, where: Location = Location()) -> dict:
    """Digit accuracy, whole-zip accuracy and whole-zip accuracy among zips with no rejected digit.
    A zip cut into another number of digits than its code has counts all its digits as wrong (and as
    a wrong zip when accepted); the error of accepted digits is over the zips cut right."""
    r = reader(net_or_run, threshold, where)
    truth_path = Path(truth_path)
    zips = read_truth(truth_path)
    right_digits = whole = accepted = accepted_right = miscount = accepted_digits = accepted_digits_right = 0
    n_digits = 0
    for z in zips:
        reading = read_image(r, load_image(truth_path.parent / z["file"]), deslant=deslant, digits=digits)
        labels = "".join(str(d.label) for d in reading.digits)
        ok = [d.accepted for d in reading.digits]
        n_digits += len(z["zip"])
        # a zip read with no '?' is accepted, whether or not it was cut into the right number of digits
        accepted += bool(ok) and all(ok)
        if len(labels) != len(z["zip"]):
            miscount += 1
            continue
        hits = [a == b for a, b in zip(labels, z["zip"])]
        right_digits += sum(hits)
        whole += all(hits)
        accepted_digits += sum(ok)
        accepted_digits_right += sum(h for h, o in zip(hits, ok) if o)
        accepted_right += all(ok) and all(hits)
    n = len(zips)
    return {"zips": n, "threshold": r.threshold if math.isfinite(r.threshold) else None,
            "digit_accuracy": right_digits / n_digits if n_digits else None,
            "zip_accuracy": whole / n if n else None,
            "miscounted_zips": miscount / n if n else None,
            "accepted_zips": accepted / n if n else None,
            "accepted_zip_accuracy": accepted_right / accepted if accepted else None,
            "accepted_digit_error": 1 - accepted_digits_right / accepted_digits if accepted_digits else None}


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
        r = Reader(load_net(Path(run)), 0.0)
        for way, inputs in ways.items():
            out = r.outputs(inputs)
            correct = out.argmax(1) == labels
            table[way]["accuracy"].append(float(correct.mean()))
            table[way]["rejection_at_1pct"].append(rejection_at(margin(out), correct, REJECT_ERROR)[0])
    return {way: {k: {"mean": float(np.mean(v)), "std": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
                      "runs": v} for k, v in figures.items()} for way, figures in table.items()}
