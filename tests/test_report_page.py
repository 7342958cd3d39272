"""`lecun1989 report`'s page as a reader sees it: in a real headless browser (Chromium and its driver
from Debian's packages, selenium from PyPI, as tests/test_demo.py; elsewhere skipped with the reason,
and failed under CI), at a desktop's width and a phone's, on a tiny study and a tiny sweep trained
here: no sideways scrolling of the page, pictures and the live panel as wide as the screen at most,
the settings as a table of names and values (no JSON dump)."""

import json
import re

import pytest

from lecun1989.cli import main
from lecun1989.recipes import REPRO
from lecun1989.sweep import sweep
from lecun1989.train import Recipe
from lecun1989.views import report

WIDTHS = (1000, 400)


@pytest.fixture(scope="module")
def folders(raw_dir, usps, tmp_path_factory):
    """A study of 2 seeds (the paper's recipe, by the CLI) and a sweep of 2 learning rates."""
    root = tmp_path_factory.mktemp("report-page")
    assert main(["paper", "--train-size", "200", "--test-size", "100", "--passes", "2", "--seeds", "0-1",
                 "--engine", "torch", "--out", str(root / "study"), "--quiet"]) == 0
    sweep(Recipe(passes=1, net=REPRO.net, engine="torch"), "repro", (0.003, 0.03), None, (0,),
          usps.subset(200, 60), 60, root / "sweep", quiet=True, echo=lambda s: None)
    return root


@pytest.fixture(scope="module")
def page(folders):
    path = folders / "report.html"
    assert main(["report", str(folders / "study"), str(folders / "sweep"), "-o", str(path)]) == 0
    return path


def test_the_page_is_self_contained_and_shows_settings_not_json(page, folders):
    text = page.read_text(encoding="utf-8")
    assert text.startswith(report.HEAD)
    assert "<meta name='viewport' content='width=device-width, initial-scale=1'>" in text
    bare = re.sub(r"base64,[^\"]*", "", text)
    assert not re.search(r"(src|href)=\"(?!data:)", bare.split("<iframe")[0])   # pictures are data: URIs
    assert "<pre" not in bare and '"optimizer": {' not in bare and "&quot;optimizer&quot;: {" not in bare
    config = json.loads((folders / "study" / "lr0.001-seed0" / "config.json").read_text())
    assert f'<td class="t" data-h="setting">optimizer: name</td><td class="t" data-h="value">' \
           f'{config["optimizer"]["name"]}</td>' in bare


def test_settings_are_flattened_into_plain_rows():
    configs = [{"command": "repro", "passes": 3, "optimizer": {"name": "sgd", "schedule": "linear:0.5",
                                                               "betas": [0.9, 0.999]},
                "net": {"output_bias": -1.0, "dropout": 0.0}, "data": {"seed": None, "n_train": 200,
                                                                     "modified": False},
                "git_commit": "abc", "paper": "the citation", "seed": s, "lr": 0.03} for s in (0, 1)]
    rows = dict(report.settings_rows(configs))
    assert list(rows)[:4] == ["command", "passes", "seed", "learning rate"]
    assert rows["seed"] == "0, 1 (by run)" and rows["learning rate"] == "0.03"
    assert rows["optimizer: name"] == "sgd" and rows["optimizer: lr schedule"] == "linear:0.5"
    assert rows["optimizer: betas"] == "0.9, 0.999" and rows["network: output bias"] == "-1"
    assert rows["data: draw seed"] == "none" and rows["data: training digits"] == "200"
    assert rows["data: modified"] == "no" and rows["commit"] == "abc"
    assert "paper" not in rows   # the citation heads the page


@pytest.fixture(scope="module")
def browser(chromium):
    return chromium


def _open(browser, page, width: int) -> None:
    """The page in a window whose viewport is `width` CSS pixels wide."""
    browser.set_window_size(width, 900)
    inner = browser.execute_script("return window.innerWidth")
    if inner != width:   # the window's frame, where there is one
        browser.set_window_size(2 * width - inner, 900)
    browser.get(page.as_uri())
    browser.execute_script("return document.fonts.ready")
    assert browser.execute_script("return window.innerWidth") == width


LAYOUT = """
const view = document.documentElement.clientWidth, box = e => e.getBoundingClientRect();
return {view, inner: window.innerWidth, scroll: document.documentElement.scrollWidth,
        body: document.body.scrollWidth,
        images: Array.from(document.images).map(i => [i.alt, i.complete && i.naturalWidth > 0,
                                                       box(i).left, box(i).right]),
        frames: Array.from(document.querySelectorAll("iframe")).map(f => [box(f).left, box(f).right,
                                                                         box(f).height]),
        boxes: Array.from(document.querySelectorAll("table")).map(t => {
            const b = t.closest(".scroll"); return b ? [box(b).left, box(b).right] : [box(t).left, box(t).right]; }),
        settings: Array.from(document.querySelectorAll("table.settings tbody tr")).map(
            r => Array.from(r.cells).map(c => c.textContent)),
        pre: Array.from(document.querySelectorAll("pre")).map(p => p.textContent),
        height: document.documentElement.scrollHeight};
"""


@pytest.mark.parametrize("width", WIDTHS)
def test_the_page_fits_the_screen(browser, page, folders, width, tmp_path_factory):
    _open(browser, page, width)
    got = browser.execute_script(LAYOUT)
    # the page never scrolls sideways: wide tables scroll inside their own boxes
    assert got["scroll"] <= got["view"] <= got["inner"], got
    assert got["body"] <= got["view"], got
    # the study's curves, misclassified digits, features and rejection; the sweep's own picture too
    names = [alt for alt, *_ in got["images"]]
    assert names == ["curves", "misclassified", "features", "reject", "sweep", "curves", "misclassified", "features",
                     "reject"], names
    for alt, loaded, left, right in got["images"]:
        assert loaded and 0 <= left and right <= got["view"], (alt, left, right, got["view"])
    for left, right in got["boxes"]:
        assert 0 <= left and right <= got["view"], (left, right, got["view"])
    assert len(got["frames"]) == 2
    for left, right, height in got["frames"]:
        assert 0 <= left and right <= got["view"] and height > 300
    # the settings: a table of names and values, one for each folder, not a JSON dump
    assert not any("{" in p for p in got["pre"])
    assert got["settings"] and all(len(r) == 2 and r[0] and r[1] for r in got["settings"])
    tables = browser.execute_script(
        "return Array.from(document.querySelectorAll('table.settings')).map("
        "t => Object.fromEntries(Array.from(t.tBodies[0].rows).map(r => [r.cells[0].textContent, r.cells[1].textContent])))")
    study, swept = tables
    assert study["optimizer: name"] == "sdlm" and study["seed"] == "0, 1 (by run)" and study["passes"] == "2"
    assert study["command"] == "paper" and study["data: training digits"] == "200" and study["engine"] == "torch"
    assert swept["optimizer: name"] == "sgd" and swept["seed"] == "0"
    # the live panel inside fits its frame too
    from selenium.webdriver.common.by import By
    browser.switch_to.frame(browser.find_elements(By.CSS_SELECTOR, "iframe[title='draw digits']")[0])
    inner = browser.execute_script("return [document.documentElement.scrollWidth, document.documentElement.clientWidth]")
    browser.switch_to.default_content()
    assert inner[0] <= inner[1], inner
    # a picture of the whole page, for a person to look at
    browser.set_window_size(browser.get_window_size()["width"], min(got["height"] + 200, 16000))
    shot = tmp_path_factory.getbasetemp() / f"report-{width}.png"
    assert browser.save_screenshot(str(shot)) and shot.read_bytes()[:4] == b"\x89PNG"
