"""The raw data for the tests that need it (marked `data`, or using the raw_dir / usps / mnist fixtures).

$LECUN1989_RAW_DIR names a folder holding the raw files (offline, as CI does); without it they are
downloaded once, through the package's own checksummed downloaders, into the data home
($LECUN1989_HOME or the user cache folder). If neither works, the run stops before any test with one
line saying how to supply the data. Tests that need no data never look for it.
"""

import contextlib
import os
import shutil
import signal
from pathlib import Path

import pytest

from lecun1989 import data

DATA_FIXTURES = {"raw_dir", "usps", "mnist"}


def pytest_configure(config):
    config.addinivalue_line("markers", "data: the test reads the raw data sets")
    # A shell's background job (as CI may be) starts with SIGINT ignored; the tests that interrupt a
    # command in this process need Python's own handler.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # Under pytest-xdist (-n, as the README's command runs) the workers collect the tests and the
    # controller only hands them out: it looks for the data once, before any worker starts, so that
    # missing data is the same one line (unless -m leaves the data tests out).
    if getattr(config.option, "numprocesses", None) and not hasattr(config, "workerinput") \
            and "not data" not in (config.option.markexpr or ""):
        _raw_dir()


@pytest.hookimpl(tryfirst=True)   # before -m selects on the marks
def pytest_collection_modifyitems(items):
    """A test using a data fixture is marked `data` too, so that -m "not data" leaves it out."""
    for item in items:
        if DATA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.data)


def _needs_data(item) -> bool:
    return item.get_closest_marker("data") is not None


def _raw_dir() -> Path:
    """A folder with usps/ and mnist/ raw files, or a usage error: one line, exit 4, no test run."""
    supplied = os.environ.get(data.RAW_DIR_ENV)
    try:
        if supplied:   # absolute: tests run commands in folders of their own
            supplied = Path(supplied).resolve()
            for source in data.RAW_FILES:
                data.raw_paths(source, Path(), raw_dir=supplied)
            return supplied
        home = data.data_home()
        for source in data.RAW_FILES:   # downloads what the data home lacks, MD5-checked, unless offline
            data.raw_paths(source, home, offline=data.env_offline())
        return home / "raw"
    except data.DataError as e:
        if supplied:
            why = str(e)
        elif data.env_offline():
            why = f"the data home {data.data_home()} lacks them and {data.OFFLINE_ENV} forbids downloading"
        else:
            why = f"the data home {data.data_home()} lacks them and they could not be downloaded"
        raise pytest.UsageError(f"the tests need the raw USPS and MNIST files: {why}. Set "
                                f"{data.RAW_DIR_ENV} to a folder holding usps/ and mnist/ in their public formats, "
                                f"or run the tests once with internet (README, Tests)") from None


def pytest_collection_finish(session):
    """After selection (-k, -m, paths): look for the data only when a selected test needs it."""
    session.config.raw_dir = _raw_dir() if any(_needs_data(item) for item in session.items) else None


@pytest.fixture(scope="session")
def raw_dir(request) -> Path:
    return request.config.raw_dir


@pytest.fixture(scope="session")
def session_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture(scope="session", autouse=True)
def isolated_home(session_home, request):
    """Every test, and every fixture (session-scoped autouse fixtures come before all others), uses a
    private data home and reads the raw files from the folder found above (when the run needs data):
    nothing the tests make lands in the user's own data home."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(data.HOME_ENV, str(session_home))
        if request.config.raw_dir is not None:
            mp.setenv(data.RAW_DIR_ENV, str(request.config.raw_dir))
        else:
            mp.delenv(data.RAW_DIR_ENV, raising=False)
        mp.delenv(data.OFFLINE_ENV, raising=False)
        yield


@pytest.fixture(scope="module")
def module_env(session_home, raw_dir):
    """The environment conftest gives every test, for a module's fixtures (made outside any test's): a
    context manager, so that nothing of it outlasts the fixture that uses it."""
    @contextlib.contextmanager
    def env():
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv(data.HOME_ENV, str(session_home))
            mp.setenv(data.RAW_DIR_ENV, str(raw_dir))
            mp.delenv(data.OFFLINE_ENV, raising=False)
            yield
    return env


@pytest.fixture(scope="session")
def usps(raw_dir, session_home) -> data.Dataset:
    return data.load("usps", home=session_home, raw_dir=raw_dir)


@pytest.fixture(scope="session")
def mnist(raw_dir, session_home) -> data.Dataset:
    return data.load("mnist", home=session_home, raw_dir=raw_dir)


@pytest.fixture(scope="module")
def chromium():
    """A real headless Chromium (Debian's chromium and chromium-driver, driven by selenium), 1000 CSS
    pixels wide; without them the browser tests are skipped with the reason, and under CI they fail."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    try:
        from selenium import webdriver
    except ImportError:
        webdriver = None
    if not (chromium and driver and webdriver):
        reason = "the browser tests need chromium, chromedriver (Debian: apt-get install chromium chromium-driver) " \
                 "and selenium (pip install selenium)"
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service
    options = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-extensions", "--window-size=1000,1400"):
        options.add_argument(arg)
    options.binary_location = chromium
    d = webdriver.Chrome(service=Service(driver), options=options)
    yield d
    d.quit()


def draw_on_pad(browser, points) -> None:
    """One stroke on a demo page's canvas through `points`, (x, y) as fractions of the pad's size, drawn
    with the mouse as a person would."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    pad = browser.find_element(By.ID, "pad")
    w, h = pad.size["width"], pad.size["height"]
    chain = ActionChains(browser)
    (x, y), rest = points[0], points[1:]
    chain.move_to_element_with_offset(pad, round((x - 0.5) * w), round((y - 0.5) * h)).click_and_hold()
    for nx, ny in rest:
        chain.move_by_offset(round((nx - x) * w), round((ny - y) * h))
        x, y = nx, ny
    chain.release().perform()


def pad_grey(browser):
    """The demo page's canvas as predict sees an image of it: grey levels, alpha composited over white."""
    import numpy as np
    w, h, data = browser.execute_script(
        "const p = document.getElementById('pad'); const d = p.getContext('2d').getImageData(0, 0, p.width, p.height);"
        "return [p.width, p.height, Array.from(d.data)];")
    pixels = np.array(data, dtype=np.float64).reshape(h, w, 4) / 255
    return pixels[..., 3] * (pixels[..., :3] @ [0.299, 0.587, 0.114]) + (1 - pixels[..., 3])


@pytest.fixture
def draw():
    """draw.stroke(browser, points): a stroke on the demo page's canvas; draw.grey(browser): its pixels as
    predict reads them."""
    from types import SimpleNamespace
    return SimpleNamespace(stroke=draw_on_pad, grey=pad_grey)


def train_side_by_side(net, optim, runs, ds, kernels, train: int, **engine):
    """The compiled engine (`kernels`) and the PyTorch reference from the same initial runs, in float64,
    after `train` passes each over ds (`engine`: their further settings, e.g. passes); their weights
    are checked to agree within 1e-9 before both are returned."""
    import numpy as np
    from lecun1989.engines.fast import FastEngine
    from lecun1989.engines.torch_ref import TorchEngine
    fast = FastEngine(net, runs, ds, optim, "float64", kernels=kernels, **engine)
    ref = TorchEngine(net, runs, ds, optim, "float64", **engine)
    for _ in range(train):
        fast.train_pass()
        ref.train_pass()
    for a, b in zip(fast.get_params(), ref.get_params()):
        for name in a:
            assert np.abs(a[name] - b[name]).max() <= 1e-9, name
    return fast, ref


@pytest.fixture
def side_by_side():
    """side_by_side(net, optim, runs, ds, kernels, train, **engine): train_side_by_side."""
    return train_side_by_side
