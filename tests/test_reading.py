"""Reading digits and zip codes from images: polarity, normalization, segmentation, `predict`, `zipcodes`."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lecun1989 import cli, digits, segment
from lecun1989.reading import benchmark, images as reading


def strict_json(text: str):
    def refuse(name):
        raise ValueError(f"not strict JSON: {name}")
    return json.loads(text, parse_constant=refuse)


def command(argv: list[str], capsys) -> tuple[int, str, str]:
    """The predict/zipcodes commands as `lecun1989` runs them: (status, stdout, stderr)."""
    from lecun1989.cli import main
    status = main(argv)
    out = capsys.readouterr()
    return status, out.out, out.err


def bar_digit(h=40, w=10, shape=(60, 70), top=8, left=30, shear=0.0) -> np.ndarray:
    """Ink (0 = paper): a filled bar h x w, sheared by `shear` columns per row."""
    ink = np.zeros(shape)
    for i in range(h):
        x = left + int(round(shear * (i - h / 2)))
        ink[top + i, x:x + w] = 1.0
    return ink


# --- polarity ----------------------------------------------------------------------------------------

def test_polarity_either_way_gives_the_same_ink():
    ink = bar_digit()
    dark_on_light = 0.9 - 0.8 * ink          # grey: paper 0.9, ink 0.1
    light_on_dark = 0.1 + 0.8 * ink
    a, pa = reading.to_ink(dark_on_light)
    b, pb = reading.to_ink(light_on_dark)
    assert (pa, pb) == ("dark-on-light", "light-on-dark")
    np.testing.assert_allclose(a, ink, atol=1e-12)
    np.testing.assert_allclose(b, ink, atol=1e-12)


def test_image_files_rgb_rgba_grey_load_alike(tmp_path):
    ink = bar_digit()
    grey = np.round((1 - ink) * 255).astype(np.uint8)
    Image.fromarray(grey, "L").save(tmp_path / "l.png")
    Image.fromarray(np.stack([grey] * 3, -1), "RGB").save(tmp_path / "rgb.jpg", quality=95)
    # black strokes on a transparent canvas: alpha over white
    rgba = np.zeros(ink.shape + (4,), np.uint8)
    rgba[..., 3] = np.round(ink * 255).astype(np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    for name in ("l.png", "rgb.jpg", "rgba.png"):
        got, polarity = reading.to_ink(reading.load_image(tmp_path / name))
        assert polarity == "dark-on-light"
        assert np.abs(got - ink).max() < 0.1, name


# --- normalization -----------------------------------------------------------------------------------

def test_normalize_fits_16_keeps_aspect_and_centres():
    x = digits.normalize(bar_digit(h=40, w=10), deslant_=False)
    assert x.shape == (16, 16)
    assert x.min() == -1.0 and x.max() == 1.0
    ink = x > -1
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    assert (rows[0], rows[-1]) == (0, 15)                 # the longer side fills 16
    assert (cols[0], cols[-1]) == (6, 9)                   # 10/40 of 16 = 4 columns, centred: (16 - 4) / 2
    assert (x[:, :6] == -1).all() and (x[:, 10:] == -1).all()   # the background exactly -1
    np.testing.assert_allclose(x[ink], 1.0)               # a uniform bar stays uniform


def test_area_resample_keeps_thin_strokes_and_fractional_offsets():
    # a 1-pixel line in a 64-tall digit: 1/4 of an output pixel of ink, kept, not dropped
    ink = np.zeros((64, 64))
    ink[:, 0] = ink[:, 63] = ink[0, :] = ink[63, :] = 1.0   # a square outline
    x = digits.normalize(ink, deslant_=False)
    assert x[8, 0] > -1 and x[8, 8] == -1.0
    # the weights of the box filter sum to the scale over each input pixel, and to 1 over each
    # output pixel the input covers fully
    a = digits.area_weights(5, 16 / 5, 0.0)
    np.testing.assert_allclose(a.sum(0), 16 / 5)
    np.testing.assert_allclose(a.sum(1), 1.0)


def test_compiled_normalization_agrees_with_the_numpy_steps():
    # strokes of every size and slant, tall and wide, upsampled and downsampled, one pixel to 90, and
    # symmetric ones
    rng = np.random.default_rng(3)
    for k in range(300):
        h, w = rng.integers(1, 90, size=2)
        ink = np.zeros((h + 4, w + 4))
        for _ in range(rng.integers(1, 6)):
            y, x = rng.integers(0, h, size=2)
            ink[2 + y, 2 + x:2 + min(w, x + rng.integers(1, 12))] = rng.uniform(0.05, 1.0)
        ink = digits.crop(np.maximum(ink, (rng.random(ink.shape) < 0.02) * rng.random(ink.shape)))
        if k % 3 == 0:   # symmetric about its axis: slant 0, which the two sum orders round apart
            ink = digits.crop(np.maximum(ink, ink[:, ::-1]))
        for deslant_ in (True, False):
            np.testing.assert_allclose(digits.normalized(ink, deslant_), digits.reference(ink, deslant_),
                                       rtol=0, atol=1e-12, err_msg=f"case {k}, deslant {deslant_}")


def test_the_compiled_forward_pass_agrees_with_the_torch_network():
    from lecun1989.model import Net1989, NetConfig
    from lecun1989.trained import TrainedNet
    x = np.random.default_rng(5).uniform(-1, 1, (9, 16, 16))
    for activation in ("scaled_tanh", "tanh", "relu"):
        for loss in ("mse", "ce"):
            for table in ("block", "cyclic"):
                net = Net1989(NetConfig(activation=activation, loss=loss, table=table), seed=3).double()
                with torch.no_grad():   # biases drawn too, so that a bias read at the wrong unit shows
                    for name in ("H1b", "H2b", "H3b", "outb"):
                        getattr(net, name).uniform_(-0.5, 0.5)
                trained = TrainedNet(net.config, net.get_params())
                np.testing.assert_allclose(trained.read(x), net.outputs(x), rtol=0, atol=1e-12,
                                           err_msg=f"{activation}, {loss}, {table}")
                # a Reader made with the torch module reads with its weights, compiled
                assert np.array_equal(reading.Reader(net, 0.0).outputs(x), trained.read(x))


def test_without_numba_networks_read_with_torch_one_at_a_time(monkeypatch):
    """Where numba cannot be loaded a TrainedNet reads with torch's forward pass; a committee's networks,
    read in threads on a test set's worth of images, take their turns, so that torch's one thread holds."""
    from lecun1989 import trained
    from lecun1989.model import Net1989
    nets = tuple(trained.TrainedNet(net.config, net.get_params()) for net in (Net1989(seed=3), Net1989(seed=4)))
    x = np.random.default_rng(6).uniform(-1, 1, (reading.SIDE_BY_SIDE_AT, 16, 16))
    compiled = [net.read(x) for net in nets]
    monkeypatch.setattr(trained, "compiled_forward", lambda: None)
    before = torch.get_num_threads()
    by_torch = reading.Reader(nets, 0.0).outputs(x)
    assert torch.get_num_threads() == before   # each call's one thread undone, in turn
    assert np.array_equal(by_torch, np.mean([net.torch().outputs(x) for net in nets], axis=0))
    np.testing.assert_allclose(by_torch, np.mean(compiled, axis=0), rtol=0, atol=1e-12)


def test_deslant_makes_a_slanted_bar_upright():
    slanted = bar_digit(h=40, w=6, shape=(60, 90), left=40, shear=0.5)
    assert abs(digits.slant(slanted[8:48, 20:70])) > 0.4
    upright = digits.deslant(digits.crop(slanted))
    assert abs(digits.slant(upright)) < 0.02
    plain = digits.normalize(slanted, deslant_=False)
    fixed = digits.normalize(slanted, deslant_=True)
    assert (fixed > -1).any(0).sum() < (plain > -1).any(0).sum()


# --- segmentation -------------------------------------------------------------------------------------

def test_atoms_merge_pieces_drop_specks_and_cut_wide_parts():
    ink = np.zeros((50, 200))
    ink[10:40, 10:22] = 1          # digit 1
    ink[10:40, 40:52] = 1          # digit 2, with a detached bar above it (like a 5's)
    ink[4:7, 44:58] = 1
    ink[45, 80] = 1                # a speck
    ink[10:40, 100:112] = 1        # digits 3 and 4 touching through a thin bridge
    ink[24:26, 112:120] = 1
    ink[10:40, 120:132] = 1
    pieces, groups, href = segment.atoms(ink)
    assert href == 30 and groups[:2] == [0, 1] and set(groups[2:]) == {2}
    assert [p.box for p in pieces[:2]] == [(10, 10, 22, 40), (40, 4, 58, 40)]
    # the bridged pair is cut at its columns of least ink, the bridge's among them
    cuts = [p.box[0] for p in pieces[3:]]
    assert any(112 <= c <= 120 for c in cuts) and pieces[2].box[0] == 100 and pieces[-1].box[2] == 132
    # a known count the usual atoms cannot give is met with finer ones
    fine, _, _ = segment.atoms(ink, finer=True)
    assert len(fine) > len(pieces)


def test_components_are_8_connected():
    mask = np.zeros((5, 5), bool)
    mask[0, 0] = mask[1, 1] = mask[2, 2] = True   # a diagonal: one component
    mask[4, 4] = True
    labels, n = segment.components(mask)
    assert n == 2 and labels[0, 0] == labels[2, 2] != labels[4, 4]


# --- reading real digits with a network trained here ---------------------------------------------------

@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, usps):
    out = tmp_path_factory.mktemp("read") / "run"
    assert cli.main(["repro", "--train-size", "2000", "--test-size", "200", "--passes", "3", "--quiet",
                     "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def strips(tmp_path_factory, usps):
    """8 zip codes from real test digits (seed 7), as PNG files, and their codes."""
    folder = tmp_path_factory.mktemp("zips")
    digits = benchmark.test_digits()
    paths, codes = [], []
    for i in range(8):
        image, meta = benchmark.make_zip(digits, 7, i)
        Image.fromarray(image, "L").save(folder / f"z{i}.png")
        paths.append(folder / f"z{i}.png")
        codes.append(meta["zip"])
    return paths, codes


def test_reads_zip_codes_from_real_test_digits(run_dir, strips):
    paths, codes = strips
    right = total = 0
    for path, code in zip(paths, codes):
        r = reading.read_image(run_dir, reading.load_image(path), digits=5)
        assert len(r.digits) == 5
        assert all(d.input.shape == (16, 16) and d.input.min() == -1.0 for d in r.digits)
        assert [d.box[0] for d in r.digits] == sorted(d.box[0] for d in r.digits)   # left to right
        assert all((c == "?") == (not d.accepted) for c, d in zip(r.text, r.digits))
        right += sum(str(d.label) == c for d, c in zip(r.digits, code))
        total += 5
    assert right / total >= 0.6, f"{right}/{total} digits right"


def test_threshold_is_the_runs_1pct_margin(run_dir):
    from lecun1989.reading import confidence
    from lecun1989.trained import load_run
    net, ds = load_run(run_dir)
    r = reading.reader(run_dir)
    out = r.outputs(ds.test.images)
    assert r.threshold == confidence.rejection_at(confidence.margin(out), out.argmax(1) == ds.test.labels)[1]
    assert reading.reader(run_dir) is r                    # once per run
    assert reading.reader(run_dir, threshold=0.5).threshold == 0.5


def test_predict_prints_json_and_pictures(run_dir, strips, tmp_path, capsys):
    paths, codes = strips
    status, out, err = command(["predict", str(run_dir), *map(str, paths[:3]), "--json", "--threshold", "0.3",
                                "--show", str(tmp_path / "pics")], capsys)
    assert status == 0, err
    got = strict_json(out)
    assert got["threshold"] == 0.3 and len(got["images"]) == 3
    for item in got["images"]:
        assert len(item["text"]) == len(item["digits"]) + (not item["count_sure"])
        for d in item["digits"]:
            assert d["accepted"] == (d["margin"] >= 0.3 and d["unlikeness"] <= reading.MAX_UNLIKENESS["mse"])   # repro: MSE
            assert len(d["box"]) == 4
    assert sorted(p.name for p in (tmp_path / "pics").glob("*.png")) == ["z0-reading.png", "z1-reading.png",
                                                                         "z2-reading.png"]
    status, out, err = command(["predict", str(run_dir), str(paths[0])], capsys)
    assert status == 0 and "margin threshold" in out and str(paths[0]) in out


def test_a_picture_of_an_image_whose_name_is_not_utf8(run_dir, strips, tmp_path):
    """A file name of bytes that are not UTF-8 (a Linux file system allows any) is read, drawn, and
    printed with the byte escaped, as any character the terminal cannot show (in a process of its own,
    as a user runs it)."""
    odd = Path(os.fsdecode(os.fsencode(str(tmp_path)) + b"/zip\xff.png"))
    odd.write_bytes(Path(strips[0][0]).read_bytes())
    done = subprocess.run([sys.executable, "-m", "lecun1989", "predict", str(run_dir), str(odd), "--threshold", "0.5",
                           "--show", str(tmp_path / "pics")], capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    assert os.fsencode(str(tmp_path)) + b"/zip\\udcff.png: " in done.stdout
    assert [p.name for p in (tmp_path / "pics").glob("*.png")] == [odd.stem + "-reading.png"]


def test_predict_leaves_foreign_files_alone(run_dir, strips, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "z0-reading.png").write_bytes(b"my own")
    status, _, err = command(["predict", str(run_dir), str(strips[0][0]), "--show", str(mine)], capsys)
    assert status == 2 and "not pictures lecun1989 drew" in err and "--show" in err
    assert (mine / "z0-reading.png").read_bytes() == b"my own"


def test_predict_replaces_only_its_own_pictures_in_a_folder_it_drew(run_dir, strips, tmp_path, capsys):
    """In a folder --show made, its own picture is drawn again; a file put there by someone else under
    a name it would write, or its picture changed since, is left as it is (one line, nothing written)."""
    paths, _ = strips
    pics = tmp_path / "pics"
    assert command(["predict", str(run_dir), str(paths[0]), "--show", str(pics)], capsys)[0] == 0
    assert command(["predict", str(run_dir), str(paths[0]), "--show", str(pics)], capsys)[0] == 0   # its own: redrawn
    for name in ("z0-reading.png", "z1-reading.png"):    # changed since, or never drawn
        (pics / name).write_bytes(b"mine")
        status, _, err = command(["predict", str(run_dir), str(paths[0]), str(paths[1]), "--show", str(pics)], capsys)
        assert status == 2 and err.count("\n") == 1 and "is not a file lecun1989 drew" in err
        assert (pics / name).read_bytes() == b"mine"
        (pics / name).unlink()


def test_a_link_or_a_legacy_pictures_folder_is_not_replaced_blindly(run_dir, strips, tmp_path, capsys):
    """A link under a picture's name is never replaced, whatever the marker says; in a folder whose
    marker predates the record of drawn files, the files there are taken as drawn, and recorded."""
    import os
    paths, _ = strips
    pics = tmp_path / "pics"
    pics.mkdir()
    (pics / ".lecun1989").write_text(json.dumps({"kind": "plots", "made_by": "lecun1989 0.0.9"}))
    (pics / "z1-reading.png").write_bytes(b"drawn before the record")
    os.symlink(tmp_path / "nowhere.png", pics / "z0-reading.png")
    status, _, err = command(["predict", str(run_dir), str(paths[0]), "--show", str(pics)], capsys)
    assert status == 2 and "z0-reading.png is not a file lecun1989 drew" in err
    assert (pics / "z0-reading.png").is_symlink()
    (pics / "z0-reading.png").unlink()
    assert command(["predict", str(run_dir), str(paths[0]), "--show", str(pics)], capsys)[0] == 0
    drawn = json.loads((pics / ".lecun1989").read_text())["drawn"]
    assert set(drawn) == {"z0-reading.png", "z1-reading.png"}
    assert command(["predict", str(run_dir), str(paths[1]), "--show", str(pics)], capsys)[0] == 0   # z1: recorded


@pytest.mark.parametrize("case", ["missing", "unreadable", "truncated", "folder-image", "not-a-run", "no-image"])
def test_predict_bad_input_is_one_line(case, run_dir, tmp_path, capsys):
    good = tmp_path / "good.png"
    Image.fromarray(np.full((20, 20), 255, np.uint8)).save(good)
    (tmp_path / "bad.png").write_text("not an image")
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 200), dtype=np.uint8)).save(tmp_path / "cut.png")
    (tmp_path / "cut.png").write_bytes((tmp_path / "cut.png").read_bytes()[:5000])   # a PNG whose end was lost
    (tmp_path / "notrun").mkdir()
    argv = {"missing": [str(run_dir), str(tmp_path / "nothing.png")],
            "unreadable": [str(run_dir), str(tmp_path / "bad.png")],
            "truncated": [str(run_dir), str(tmp_path / "cut.png")],
            "folder-image": [str(run_dir), str(tmp_path)],
            "not-a-run": [str(tmp_path / "notrun"), str(good)],
            "no-image": [str(run_dir)]}[case]
    status, out, err = command(["predict", *argv], capsys)
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert {"missing": "no such image file", "unreadable": "not an image file", "truncated": "cannot be read as an image",
            "folder-image": "is a folder", "not-a-run": "is not a run folder", "no-image": "at least one IMAGE"}[case] in err
    assert err.count(str(argv[-1])) <= 1   # the image is named once


def test_blank_image_is_one_line(run_dir, tmp_path, capsys):
    Image.fromarray(np.full((20, 20), 255, np.uint8)).save(tmp_path / "blank.png")
    status, _, err = command(["predict", str(run_dir), str(tmp_path / "blank.png")], capsys)
    assert status == 2 and "no ink" in err and err.count("\n") == 1


def test_an_image_without_ink_does_not_keep_the_others_from_being_read(run_dir, strips, tmp_path, capsys):
    Image.fromarray(np.full((20, 20), 255, np.uint8)).save(tmp_path / "blank.png")
    good = [str(p) for p in strips[0][:2]]
    status, out, err = command(["predict", str(run_dir), good[0], str(tmp_path / "blank.png"), good[1]], capsys)
    assert status == 2 and err.count("\n") == 1 and "blank.png: the image holds no ink" in err
    assert [line.split(":")[0] for line in out.splitlines()[1:]] == good
    status, out, _ = command(["predict", str(run_dir), good[0], str(tmp_path / "blank.png"), "--json"], capsys)
    result = strict_json(out)
    assert status == 2 and [i["image"] for i in result["images"]] == good[:1]
    assert result["failed"] == [{"image": str(tmp_path / "blank.png"), "error": "the image holds no ink (it is one flat grey)"}]


def test_every_image_that_cannot_be_read_is_named_and_the_others_are_read(run_dir, strips, tmp_path, capsys):
    Image.fromarray(np.full((20, 20), 255, np.uint8)).save(tmp_path / "blank.png")
    (tmp_path / "bad.png").write_text("not an image")
    good = [str(p) for p in strips[0][:2]]
    bad = [str(tmp_path / "bad.png"), str(tmp_path / "nothing.png"), str(tmp_path / "blank.png")]
    argv = ["predict", str(run_dir), bad[0], good[0], bad[1], bad[2], good[1]]
    status, out, err = command(argv, capsys)
    assert status == 2 and "Traceback" not in err
    assert [line.split(":")[0] for line in out.splitlines()[1:]] == good
    lines = err.splitlines()
    # each line names its image first, once
    assert all(line.startswith(path) and line.count(path) == 1 for line, path in zip(lines[:3], bad))
    assert "3 of the 5 images could not be read" in lines[3]
    result = strict_json(command(argv + ["--json"], capsys)[1])
    assert [i["image"] for i in result["images"]] == good and [f["image"] for f in result["failed"]] == bad
    assert result["digits_asked"] is None
    # when none can be read, nothing is loaded and each is named
    status, out, err = command(["predict", str(run_dir), *bad[:2]], capsys)
    assert status == 2 and out == "" and len(err.splitlines()) == 3 and "2 of the 2 images" in err


def test_zipcodes_are_deterministic_and_scored(run_dir, tmp_path, capsys, usps):
    a, b = tmp_path / "a", tmp_path / "b"
    for folder in (a, b):
        status, _, err = command(["zipcodes", "--out", str(folder), "--n", "6", "--seed", "3"], capsys)
        assert status == 0, err
    names = sorted(p.name for p in a.iterdir() if not p.name.startswith("."))
    assert names == ["zip-00000.png", "zip-00001.png", "zip-00002.png", "zip-00003.png", "zip-00004.png",
                     "zip-00005.png", "zipcodes.json"]
    assert all((a / n).read_bytes() == (b / n).read_bytes() for n in names)
    truth = strict_json((a / "zipcodes.json").read_text())
    assert [len(z["zip"]) for z in truth["zips"]] == [5] * 6
    status, out, err = command(["predict", str(run_dir), "--truth", str(a / "zipcodes.json"), "--digits", "5",
                                "--json"], capsys)
    assert status == 0, err
    scores = strict_json(out)
    assert scores["zips"] == 6 and scores["miscounted_zips"] == 0 and 0 <= scores["digit_accuracy"] <= 1
    assert scores["failed"] == []
    # a strip lost is named after the others' scores, which are printed; a blank one reads as no digits
    (a / "zip-00001.png").unlink()
    Image.new("L", (80, 20), 255).save(a / "zip-00004.png")
    for json_flag in ([], ["--json"]):
        status, out, err = command(["predict", str(run_dir), "--truth", str(a / "zipcodes.json"), *json_flag], capsys)
        assert status == 2 and len(err.splitlines()) == 1 and str(a / "zip-00001.png") in err
        assert "5 others scored without it" in err
    scores = strict_json(out)
    assert scores["zips"] == 5 and [f["image"] for f in scores["failed"]] == ["zip-00001.png"]
    assert [s["text"] for s in scores["strips"] if s["file"] == "zip-00004.png"] == [""]
    assert scores["miscounted_zips"] >= 1 / 5
    # an existing folder of someone else's is refused; one of ours needs --force
    status, _, err = command(["zipcodes", "--out", str(a), "--n", "2"], capsys)
    assert status == 2 and "--force" in err and "--resume" not in err   # zipcodes has no --resume
    other = tmp_path / "other"
    other.mkdir()
    (other / "x.txt").write_text("mine")
    status, _, err = command(["zipcodes", "--out", str(other), "--n", "2", "--force"], capsys)
    assert status == 2 and (other / "x.txt").read_text() == "mine"


def test_a_touching_digit_never_starts_left_of_the_strip(usps):
    """Benchmark 0's strip 123011: placed by the touching rule alone, one of its digits began before
    column 0 (a crash)."""
    image, meta = benchmark.make_zip(benchmark.test_digits(), 0, 123011)
    assert image.dtype == np.uint8 and image.shape[0] > 16 and len(meta["zip"]) == benchmark.ZIP_LENGTH


def test_a_count_the_ink_cannot_give_is_said_not_hidden(run_dir, strips, capsys):
    paths, _ = strips
    assert cli.main(["predict", str(run_dir), str(paths[0]), "--digits", "300"]) == 0
    line = capsys.readouterr().out.splitlines()[-1]
    n = len(line.split("[")[1].split("]")[0].split(","))
    assert n < 300 and f"(only {n} of the 300 digits asked: the ink has no more places to cut)" in line
