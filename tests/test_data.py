import bz2
import functools
import gzip
import hashlib
import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lecun1989 import data, paper
from lecun1989.cli import main

USPS_TRAIN_COUNTS = [1194, 1005, 731, 658, 652, 556, 664, 645, 542, 644]
USPS_TEST_COUNTS = [359, 264, 198, 166, 200, 160, 170, 147, 166, 177]
# The processed MNIST-derived set for the default seed: the same bytes on every machine.
MNIST_1337_SHA256 = "07faab42b6211a558f82213cd5f3db4d3bcd09e2dc945bfeeeebe4db25433e35"


def test_usps_counts_classes_and_range(usps):
    assert usps.train.images.shape == (7291, 1, 16, 16) and usps.train.images.dtype == np.float32
    assert usps.test.images.shape == (2007, 1, 16, 16)
    assert np.bincount(usps.train.labels).tolist() == USPS_TRAIN_COUNTS
    assert np.bincount(usps.test.labels).tolist() == USPS_TEST_COUNTS
    for split in (usps.train, usps.test):
        assert split.images.min() == -1.0 and split.images.max() == 1.0
    assert usps.train.labels[0] == 6  # the first training digit is a 6


def test_targets_are_plus_one_for_the_class_minus_one_elsewhere(usps):
    t = usps.test.targets
    assert t.shape == (2007, 10) and t.dtype == np.float32
    assert (t.argmax(1) == usps.test.labels).all()
    assert ((t == 1).sum(1) == 1).all() and ((t == -1).sum(1) == 9).all()


def test_mnist_approximation_shapes_and_pinned_bytes(mnist):
    assert mnist.train.images.shape == (paper.N_TRAIN, 1, 16, 16)
    assert mnist.test.images.shape == (paper.N_TEST, 1, 16, 16)
    assert mnist.train.images.min() >= -1 and mnist.train.images.max() <= 1
    assert mnist.sha256 == MNIST_1337_SHA256


def test_mnist_draw_is_the_reproductions_when_train_comes_first(raw_dir, mnist):
    # The reproduction: np.random.seed(1337), then a permutation per split; 'train' first.
    labels = data.parse_idx(raw_dir / "mnist" / "train-labels-idx1-ubyte.gz", 1)
    np.random.seed(1337)
    picks = np.random.permutation(60000)[:paper.N_TRAIN]
    assert (mnist.train.labels == labels[picks]).all()


def test_mnist_build_is_identical_across_processes_and_hash_seeds(tmp_path, raw_dir):
    code = "from lecun1989 import data; import sys; print(data.load('mnist', home=sys.argv[1]).sha256)"
    digests = set()
    for hash_seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed, data.RAW_DIR_ENV: str(raw_dir)}
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path / hash_seed)], env=env,
                             capture_output=True, text=True, check=True).stdout.strip()
        digests.add(out)
    assert digests == {MNIST_1337_SHA256}


def test_mnist_seed_changes_the_draw(tmp_path, raw_dir, mnist):
    other = data.load("mnist", data_seed=7, home=tmp_path, raw_dir=raw_dir)
    assert other.sha256 != mnist.sha256


def test_resize_matches_torch_bilinear_without_antialiasing():
    x = np.random.RandomState(0).randint(0, 256, (20, 28, 28)).astype(np.float32) / np.float32(127.5) - 1
    ours = data.resize_bilinear(x, 16)
    ref = F.interpolate(torch.from_numpy(x)[:, None], (16, 16), mode="bilinear", align_corners=False)[:, 0]
    np.testing.assert_allclose(ours, ref.numpy(), rtol=0, atol=2e-7)


def test_processed_cache_is_npz_without_pickle_and_corrupt_cache_is_rebuilt(tmp_path, raw_dir):
    first = data.load("usps", home=tmp_path, raw_dir=raw_dir)
    caches = list((tmp_path / "processed").glob("usps-v*.npz"))
    assert len(caches) == 1
    with np.load(caches[0], allow_pickle=False) as z:
        assert set(z.files) == {"train_images", "train_labels", "test_images", "test_labels"}
    caches[0].write_bytes(b"garbage")
    again = data.load("usps", home=tmp_path, raw_dir=raw_dir)
    assert again.sha256 == first.sha256


# --- bad input ----------------------------------------------------------------------------

def _usps_copy(tmp_path: Path, raw_dir: Path, transform=None, name="usps.bz2") -> Path:
    folder = tmp_path / "raw"
    folder.mkdir(exist_ok=True)
    for n in ("usps.bz2", "usps.t.bz2"):
        blob = (raw_dir / "usps" / n).read_bytes()
        if n == name and transform is not None:
            blob = transform(blob)
        (folder / n).write_bytes(blob)
    return folder


def _edit_text(edit):
    return lambda blob: bz2.compress(edit(bz2.decompress(blob).decode()).encode())


@pytest.mark.parametrize("transform, message", [
    (lambda b: b[: len(b) // 2], "truncated or corrupt"),
    (lambda b: b"not bzip2 at all", "truncated or corrupt"),
    (_edit_text(lambda t: "\n".join(t.splitlines()[:100]) + "\n"), "holds 100 digits, expected 7291"),
    (_edit_text(lambda t: t.replace(" 1:-1 ", " 1:-1.5 ", 1)), "outside [-1, 1]"),
    (_edit_text(lambda t: t.replace(" 256:", " 300:", 1)), "feature index outside"),
    (_edit_text(lambda t: "11" + t[1:]), "label 11 is outside"),
    (_edit_text(lambda t: "x" + t), "not in LIBSVM format"),
])
def test_bad_usps_files_give_clear_errors_and_no_cache(tmp_path, raw_dir, transform, message):
    folder = _usps_copy(tmp_path, raw_dir, transform)
    home = tmp_path / "home"
    with pytest.raises(data.DataError, match="usps.bz2") as e:
        data.load("usps", home=home, raw_dir=folder)
    assert message in str(e.value)
    assert not list(home.rglob("*.npz")) and not list(home.rglob("*.tmp"))


def test_bad_mnist_files_give_clear_errors(tmp_path, raw_dir):
    folder = tmp_path / "mnist"
    folder.mkdir()
    for name in data.RAW_FILES["mnist"]:
        (folder / name).write_bytes((raw_dir / "mnist" / name).read_bytes())
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x03" + b"\x00" * 12))
    with pytest.raises(data.DataError, match="t10k-labels-idx1-ubyte.gz is not an IDX file"):
        data.load("mnist", home=tmp_path / "home", raw_dir=tmp_path)


def test_missing_raw_file_names_it_and_its_source(tmp_path, raw_dir):
    folder = _usps_copy(tmp_path, raw_dir)
    (folder / "usps.t.bz2").unlink()
    with pytest.raises(data.DataError, match=r"usps.t.bz2 not found .*https://www.csie.ntu.edu.tw/"):
        data.load("usps", home=tmp_path / "home", raw_dir=folder)


def test_offline_without_files_names_files_source_and_raw_dir(tmp_path, monkeypatch):
    monkeypatch.delenv(data.RAW_DIR_ENV)
    with pytest.raises(data.DataError) as e:
        data.load("mnist", home=tmp_path, raw_dir=None, offline=True)
    msg = str(e.value)
    assert "train-images-idx3-ubyte.gz" in msg and "https://ossci-datasets.s3.amazonaws.com/mnist/" in msg
    assert "--raw-dir" in msg and "\n" not in msg


def test_unreachable_download_gives_the_offline_error(tmp_path, monkeypatch):
    # A closed port on loopback stands in for "no internet".
    monkeypatch.setitem(data.RAW_FILES, "usps", {
        name: ("http://127.0.0.1:9/" + name, md5) for name, (url, md5) in data.RAW_FILES["usps"].items()})
    monkeypatch.delenv(data.RAW_DIR_ENV)
    with pytest.raises(data.DataError, match=r"usps raw files missing \(usps.bz2\).*--raw-dir"):
        data.load("usps", home=tmp_path)


@pytest.fixture
def local_server(raw_dir):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(raw_dir / "usps"))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_download_checks_md5_and_keeps_files_in_the_data_home(tmp_path, monkeypatch, raw_dir, local_server):
    md5 = {n: hashlib.md5((raw_dir / "usps" / n).read_bytes()).hexdigest() for n in data.RAW_FILES["usps"]}
    monkeypatch.setitem(data.RAW_FILES, "usps", {n: (local_server + n, md5[n]) for n in md5})
    monkeypatch.delenv(data.RAW_DIR_ENV)
    ds = data.load("usps", home=tmp_path)
    assert len(ds.train) == paper.N_TRAIN
    assert sorted(p.name for p in (tmp_path / "raw" / "usps").iterdir()) == ["usps.bz2", "usps.t.bz2"]

    wrong = {n: (local_server + n, "0" * 32) for n in md5}
    monkeypatch.setitem(data.RAW_FILES, "usps", wrong)
    with pytest.raises(data.DataError, match="MD5 check"):
        data.load("usps", home=tmp_path / "other")
    assert not list((tmp_path / "other").rglob("usps*.bz2"))


def test_cli_data_summary(capsys):
    assert main(["data", "usps"]) == 0
    out = capsys.readouterr().out
    assert "train  7291 images" in out and "test   2007 images" in out
    assert " ".join(map(str, USPS_TRAIN_COUNTS)) in out
    assert "values -1.000 .. +1.000" in out and "sha256 " in out


def test_cli_bad_raw_dir_is_one_line_error(tmp_path, capsys):
    assert main(["data", "usps", "--raw-dir", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is not a folder" in err and "Traceback" not in err


def test_mnist50k_extends_the_approximation_with_the_same_test_digits(session_home, raw_dir, mnist):
    big = data.load("mnist50k", home=session_home, raw_dir=raw_dir)
    assert big.train.images.shape == (50_000, 1, 16, 16) and big.seed == mnist.seed
    assert np.array_equal(big.train.images[:paper.N_TRAIN], mnist.train.images)
    assert np.array_equal(big.test.images, mnist.test.images) and np.array_equal(big.test.labels, mnist.test.labels)
    assert big.sha256 != mnist.sha256
