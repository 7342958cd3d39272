import os
from pathlib import Path

import pytest

from lecun1989 import data

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def raw_dir() -> Path:
    """The raw data files: $LECUN1989_RAW_DIR, or ../shared/data beside the repository."""
    path = Path(os.environ.get("LECUN1989_RAW_DIR") or REPO.parent / "shared" / "data")
    assert (path / "usps" / "usps.bz2").is_file(), f"raw data not found in {path}; set LECUN1989_RAW_DIR"
    return path


@pytest.fixture(scope="session")
def session_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("home")


@pytest.fixture(autouse=True)
def isolated_home(monkeypatch, session_home, raw_dir):
    """Every test uses a private data home and reads raw files from the shared folder."""
    monkeypatch.setenv(data.HOME_ENV, str(session_home))
    monkeypatch.setenv(data.RAW_DIR_ENV, str(raw_dir))
    monkeypatch.delenv(data.OFFLINE_ENV, raising=False)


@pytest.fixture(scope="session")
def usps(raw_dir, session_home) -> data.Dataset:
    return data.load("usps", home=session_home, raw_dir=raw_dir)


@pytest.fixture(scope="session")
def mnist(raw_dir, session_home) -> data.Dataset:
    return data.load("mnist", home=session_home, raw_dir=raw_dir)
