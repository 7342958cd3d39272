"""`lecun1989 demo`: the page's forward pass and reading against the Python model and predict, in a
real headless browser (Chromium and its driver from Debian's packages, selenium from PyPI: .ci/run
installs them; elsewhere the browser tests are skipped with the reason, and fail under CI)."""

import math

import numpy as np
import pytest
import torch

from lecun1989.reading import images as reading
from lecun1989.views import demo
from lecun1989.cli import main
from lecun1989.trained import load_net


@pytest.fixture(scope="module")
def run(usps, tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "run"
    assert main(["repro", "--train-size", "2000", "--test-size", "300", "--passes", "3", "--quiet",
                 "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def page(run, tmp_path_factory):
    path = tmp_path_factory.mktemp("page") / "demo.html"
    assert main(["demo", str(run), "-o", str(path)]) == 0
    return path


def test_the_page_is_self_contained_and_holds_the_run(page, run):
    html = page.read_text(encoding="utf-8")
    assert html.startswith(demo.HEAD)
    assert "/*MODEL*/" not in html and "/*READING*/" not in html
    # nothing loaded from elsewhere: no external scripts, styles, fonts or images
    assert "src=\"http" not in html and "href=\"http" not in html and "@import" not in html and "url(" not in html
    model = demo.model_data(run)
    assert math.isclose(model["threshold"], reading.run_threshold(reading.load_trained(run), run)[0])
    assert model["params"]["H1w"]["shape"] == [12, 1, 5, 5]


def test_demo_refuses_what_it_did_not_make(run, tmp_path, capsys):
    mine = tmp_path / "notes.html"
    mine.write_text("<p>my notes</p>", encoding="utf-8")
    assert main(["demo", str(run), "-o", str(mine)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a demo page lecun1989 wrote" in err
    assert mine.read_text(encoding="utf-8") == "<p>my notes</p>"
    assert main(["demo", str(run), "-o", str(tmp_path)]) == 2          # a folder
    assert main(["demo", str(run), "-o", str(tmp_path / "d.png")]) == 2   # a page named as a picture
    assert "give a name ending in .html" in capsys.readouterr().err and not (tmp_path / "d.png").exists()
    assert main(["demo", str(tmp_path / "nothing"), "-o", str(tmp_path / "d.html")]) == 2   # not a run
    assert not (tmp_path / "d.html").exists()
    own = tmp_path / "own.html"
    assert main(["demo", str(run), "-o", str(own), "--threshold", "0.5"]) == 0
    assert main(["demo", str(run), "-o", str(own)]) == 0             # its own page is replaced


@pytest.fixture(scope="module")
def browser(page, chromium):
    chromium.get(page.as_uri())
    return chromium


def test_the_pages_forward_pass_equals_the_model(browser, run, usps):
    net = load_net(run)
    x = usps.test.images[:40].astype(np.float64)
    want = net(torch.from_numpy(x)).detach().numpy()
    got = np.array(browser.execute_script(
        "return arguments[0].map(x => Array.from(lecun1989.forward(Float64Array.from(x)).out));",
        x.reshape(len(x), -1).tolist()))
    assert np.abs(got - want).max() <= 1e-5
    severe = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not severe, severe


def strip(images: np.ndarray, gaps=(6, 3, 9)) -> np.ndarray:
    """Digits (16x16 in [-1, 1]) enlarged 3x side by side on white paper, as grey levels (1 = white)."""
    cols = [np.ones((64, 8))]
    for k, img in enumerate(images):
        big = np.kron((img + 1) / 2, np.ones((3, 3)))
        block = np.zeros((64, 48))
        block[8:56] = big
        cols += [1 - block, np.ones((64, gaps[k % len(gaps)]))]
    return np.concatenate(cols, axis=1)


def test_the_page_reads_an_image_as_predict_does(browser, run, usps):
    grey = strip(usps.test.images[[3, 10, 25, 40, 77], 0])
    want = reading.read_image(run, grey)
    got = browser.execute_script(
        "const r = lecun1989.readGrey(Float64Array.from(arguments[0]), arguments[1], arguments[2]);"
        "return [r.text, r.countSure, r.digits.map(d => ({label: d.label, margin: d.margin, box: d.box, char: d.char, "
        "input: Array.from(d.input)}))];",
        grey.reshape(-1).tolist(), grey.shape[1], grey.shape[0])
    text, sure, got = got
    assert (text, sure) == (want.text, want.count_sure)
    assert len(got) == len(want.digits) >= 4
    for g, w in zip(got, want.digits):
        assert tuple(g["box"]) == tuple(w.box)
        assert np.abs(np.array(g["input"]) - w.input.reshape(-1)).max() <= 1e-5
        assert (g["label"], g["char"]) == (w.label, w.char) and abs(g["margin"] - w.margin) <= 1e-5
    assert ("" if sure else "?") + "".join(g["char"] for g in got) == want.text


def test_the_page_reads_photographs_of_touching_digits_as_predict_does(browser, run, usps):
    """Shadows, tinted paper and touching pairs: the local paper, the cut paths and the cheapest reading
    in the page's JavaScript give predict's reading, box for box and input for input."""
    from PIL import Image
    from lecun1989.reading import benchmark
    digits = benchmark.test_digits()
    checked = 0
    for index in range(12):
        rgb, meta = benchmark.make_zip(digits, 11, index, photo=True)
        if not any(meta["touching"]):
            continue
        grey = reading.image_array(Image.fromarray(rgb, "RGB"))
        want = reading.read_image(run, grey)
        text, sure, got = browser.execute_script(
            "const r = lecun1989.readGrey(Float64Array.from(arguments[0]), arguments[1], arguments[2]);"
            "return [r.text, r.countSure, r.digits.map(d => ({label: d.label, margin: d.margin, box: d.box, "
            "input: Array.from(d.input)}))];", grey.reshape(-1).tolist(), grey.shape[1], grey.shape[0])
        assert [tuple(g["box"]) for g in got] == [tuple(w.box) for w in want.digits], index
        assert [round(g["margin"], 6) for g in got] == [round(w.margin, 6) for w in want.digits], (index, want.threshold)
        assert (text, sure) == (want.text, want.count_sure), index
        for g, w in zip(got, want.digits):
            assert np.abs(np.array(g["input"]) - w.input.reshape(-1)).max() <= 1e-5
            assert g["label"] == w.label and abs(g["margin"] - w.margin) <= 1e-5
        checked += 1
    assert checked >= 4


def test_the_page_drops_a_border_along_the_edge_as_predict_does(browser, run):
    """Ink along the image's edge far taller than the digits (a card's edge, a dark shadow): dropped in
    the page as in predict, the digits read."""
    ink = np.zeros((120, 200))
    for x in (20, 60, 100):
        ink[40:80, x:x + 10] = 1.0
    ink[:, 2:5] = ink[:, -8:] = 1.0
    grey = 1.0 - 0.9 * ink
    want = reading.read_image(run, grey)
    text, boxes = browser.execute_script(
        "const r = lecun1989.readGrey(Float64Array.from(arguments[0]), arguments[1], arguments[2]);"
        "return [r.text, r.digits.map(d => d.box)];", grey.reshape(-1).tolist(), grey.shape[1], grey.shape[0])
    assert [tuple(b) for b in boxes] == [tuple(d.box) for d in want.digits] == [(x, 40, x + 10, 80) for x in (20, 60, 100)]
    assert text == want.text


def test_the_page_takes_ruled_lines_out_as_predict_does(browser, run, usps):
    """Digits written on a line, level or tilted, and a line drawn through them: the line taken out, the
    strokes crossing it kept, in the page as in predict, box for box and input for input."""
    grey = strip(usps.test.images[[3, 10, 25, 40, 77], 0])
    # under the digits, touching their feet; through their middles; under them, a row lower every 40 columns
    for y, fall in ((53, 0), (30, 0), (52, 1 / 40)):
        lined = grey.copy()
        for x in range(4, grey.shape[1] - 4):
            top = y + int(x * fall)
            lined[top:top + 3, x] = 0.1
        want = reading.read_image(run, lined)
        text, got = browser.execute_script(
            "const r = lecun1989.readGrey(Float64Array.from(arguments[0]), arguments[1], arguments[2]);"
            "return [r.text, r.digits.map(d => ({box: d.box, input: Array.from(d.input)}))];",
            lined.reshape(-1).tolist(), lined.shape[1], lined.shape[0])
        assert [tuple(g["box"]) for g in got] == [tuple(w.box) for w in want.digits], y
        assert len(got) >= 5 and max(b[2] - b[0] for b in (g["box"] for g in got)) < 60   # the line is no digit's
        assert text == want.text
        for g, w in zip(got, want.digits):
            assert np.abs(np.array(g["input"]) - w.input.reshape(-1)).max() <= 1e-5


def test_the_page_never_shows_a_stroke_lower_than_the_digits_as_sure(browser, run):
    """A stray stroke beside the row, lower than its digits, is read but shown as '?', in the page as in
    predict."""
    ink = np.zeros((60, 260))
    for x in (20, 60, 100, 140):
        ink[10:50, x:x + 10] = 1.0
    ink[25:45, 200:208] = 1.0
    grey = 1.0 - 0.9 * ink
    want = reading.read_image(run, grey)
    text = browser.execute_script("return lecun1989.readGrey(Float64Array.from(arguments[0]), arguments[1], "
                                  "arguments[2]).text;", grey.reshape(-1).tolist(), grey.shape[1], grey.shape[0])
    assert want.digits[-1].short and text == want.text and text.endswith("?")


def test_the_page_makes_the_count_unsure_for_a_digit_left_out_as_marks(browser, run):
    """Three bars and a digit of two short strokes, left out as marks beside them: the count unsure in
    the page as in predict."""
    ink = np.zeros((60, 220))
    for x in (20, 60, 100):
        ink[10:50, x:x + 10] = 1.0
    ink[10:28, 150:160] = ink[32:50, 165:175] = 1.0
    grey = 1.0 - 0.9 * ink
    want = reading.read_image(run, grey)
    text, sure = browser.execute_script(
        "const r = lecun1989.readGrey(Float64Array.from(arguments[0]), arguments[1], arguments[2]);"
        "return [r.text, r.countSure];", grey.reshape(-1).tolist(), grey.shape[1], grey.shape[0])
    assert not want.count_sure and (text, sure) == (want.text, False)


def test_the_page_finds_the_paper_as_predict_does(browser):
    """Step 2 in the page: a shadow and a gradient (the local paper), a bold tight crop (one level), and
    a blot wider than the window beside digits, its rims dropped."""
    ink = np.zeros((60, 200))
    for x in (20, 60, 100):
        ink[10:50, x:x + 10] = 1.0
    y, x = np.mgrid[0:60, 0:200]
    shadowed = np.where(x + 0.5 * y > 120, 0.45, 1.0) * (0.8 + 0.2 * x / 200) * (0.9 - 0.8 * ink)
    blotted = np.where((y + 0.5 - 30) ** 2 + (x + 0.5 - 160) ** 2 < 24 ** 2, 0.1, 0.9 - 0.8 * ink)
    # a 7 and a 1 drawn with a pen about as wide as the window: rims and strokes whose outlines are
    # 0.1-0.4 dark, either side of the rule's 0.3
    from PIL import Image, ImageDraw
    pen = Image.new("L", (260, 80), 255)
    ImageDraw.Draw(pen).line([(40, 15), (110, 15), (65, 68)], fill=20, width=18, joint="curve")
    ImageDraw.Draw(pen).line([(190, 12), (185, 68)], fill=20, width=18)
    bold = np.asarray(pen, dtype=np.float64) / 255
    for grey in (shadowed, np.pad(np.ones((16, 10)), 8), 1.0 - shadowed, blotted, 1.0 - blotted, bold):
        want, polarity = reading.to_ink(grey)
        got = browser.execute_script(
            "const r = lecun1989.toInk(Float64Array.from(arguments[0]), arguments[1], arguments[2]);"
            "return [Array.from(r.ink), r.polarity];", grey.reshape(-1).tolist(), grey.shape[1], grey.shape[0])
        assert got[1] == polarity and np.abs(np.array(got[0]) - want.reshape(-1)).max() <= 1e-12


def test_strokes_drawn_on_the_canvas_are_read(browser, run, draw):
    from selenium.webdriver.common.by import By
    browser.find_element(By.ID, "clear").click()

    def stroke(points):
        draw.stroke(browser, points)

    stroke([(0.15, 0.15), (0.15, 0.5), (0.15, 0.85)])                                    # a 1
    stroke([(0.5 + 0.07 * math.sin(t * math.pi / 10), 0.5 - 0.35 * math.cos(t * math.pi / 10)) for t in range(21)])
    shown = browser.find_element(By.ID, "reading").text
    # what the page shows is what predict reads from the same pixels
    grey = draw.grey(browser)
    assert shown == reading.read_image(run, grey).text
    assert len(shown) == 2
    assert len(browser.find_elements(By.CSS_SELECTOR, "#digits .digit")) == 2
    assert not browser.find_element(By.ID, "hint").is_displayed()
    # the window resized: the strokes are drawn again at the pad's new size, and those pixels read again
    from selenium.webdriver.support.ui import WebDriverWait
    width = "return document.getElementById('pad').width"
    before = browser.execute_script(width)
    browser.set_window_size(700, 1400)
    try:
        WebDriverWait(browser, 10).until(lambda b: b.execute_script(width) != before)
        again = reading.read_image(run, draw.grey(browser))
        assert browser.find_element(By.ID, "reading").text == again.text
        assert [t.text for t in browser.find_elements(By.CSS_SELECTOR, "#digits .digit .conf")] == \
            [f"{d.margin:.2f}" for d in again.digits]
    finally:
        browser.set_window_size(1000, 1400)
        WebDriverWait(browser, 10).until(lambda b: b.execute_script(width) == before)
    # a digit less sure than the threshold: '?' in the reading, its guess marked in its tile
    browser.execute_script("lecun1989.threshold = 1e9; read();")
    assert browser.find_element(By.ID, "reading").text == "??"
    tiles = browser.find_elements(By.CSS_SELECTOR, "#digits .digit.rej .lab")
    assert len(tiles) == 2 and all(t.text.endswith("?") and t.text[0].isdigit() for t in tiles)
    browser.find_element(By.ID, "clear").click()
    assert browser.find_element(By.ID, "hint").is_displayed() and not browser.find_element(By.ID, "reading").text.strip()


def test_the_report_holds_the_same_live_panel(browser, run, usps, tmp_path):
    from selenium.webdriver.common.by import By
    out = tmp_path / "report.html"
    assert main(["report", str(run), "-o", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert '<iframe title="draw digits" srcdoc="&lt;!DOCTYPE html&gt;' in text
    browser.get(out.as_uri())
    browser.switch_to.frame(browser.find_element(By.CSS_SELECTOR, "iframe[title='draw digits']"))
    x = usps.test.images[:3].astype(np.float64)
    got = np.array(browser.execute_script(
        "return arguments[0].map(x => Array.from(lecun1989.forward(Float64Array.from(x)).out));",
        x.reshape(len(x), -1).tolist()))
    want = load_net(run)(torch.from_numpy(x)).detach().numpy()
    assert np.abs(got - want).max() <= 1e-5
    browser.switch_to.default_content()
