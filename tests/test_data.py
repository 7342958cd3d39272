import bz2
import functools
import gzip
import hashlib
import http.server
import os
import re
import shutil
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

pytestmark = pytest.mark.data   # every test here reads the raw data

USPS_TRAIN_COUNTS = [1194, 1005, 731, 658, 652, 556, 664, 645, 542, 644]
USPS_TEST_COUNTS = [359, 264, 198, 166, 200, 160, 170, 147, 166, 177]
# The processed MNIST-derived set for the default seed: the same bytes on every machine.
MNIST_1337_SHA256 = "fb1b2d228193ab6a913c7dcd6562d455fae83ea06e0feac3ed1b464bd73df539"


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


def test_the_published_draw_is_the_reproductions_when_test_comes_first(raw_dir, session_home, mnist, capsys):
    """mnist-published: the reproduction's draw in the other order of its set {'train', 'test'}: the
    test permutation first, then the train one, from the same seeded generator."""
    published = data.load("mnist-published", home=session_home, raw_dir=raw_dir)
    np.random.seed(1337)
    test_picks = np.random.permutation(10000)[:paper.N_TEST]
    train_picks = np.random.permutation(60000)[:paper.N_TRAIN]
    for split, picks, prefix in ((published.train, train_picks, "train"), (published.test, test_picks, "t10k")):
        labels = data.parse_idx(raw_dir / "mnist" / f"{prefix}-labels-idx1-ubyte.gz", 1)
        assert (split.labels == labels[picks]).all()
    assert published.sha256 == data.PROCESSED_SHA256[("mnist-published", 1337)] != mnist.sha256
    assert not np.array_equal(published.train.labels, mnist.train.labels)
    assert main(["data", "mnist-published"]) == 0
    assert "data mnist-published (seed 1337, the test first draw order)" in capsys.readouterr().out
    assert main(["data", "mnist"]) == 0
    assert "data mnist (seed 1337, the train first draw order)" in capsys.readouterr().out


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


# data.resize_bilinear computes the bytes of PyTorch's AVX2 and AVX-512 bilinear kernels (fused
# multiply-adds); its DEFAULT kernels (CPUs without AVX2) round otherwise, so only those are compared.
FUSED_KERNELS = torch.backends.cpu.get_cpu_capability() in ("AVX2", "AVX512")
needs_fused_kernels = pytest.mark.skipif(
    not FUSED_KERNELS, reason=f"this PyTorch runs its {torch.backends.cpu.get_cpu_capability()} kernels, not the "
                              f"AVX2 / AVX-512 ones whose bytes data.resize_bilinear reproduces")


def reproduction_prepro(raw_dir: Path, test_first: bool) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """{split: (X, Y)} as the best-known reproduction's prepro.py (karpathy/lecun1989-repro) makes
    them: np.random.seed(1337), then per split, in the given order, a permutation of which the first
    7,291 (train) or 2,007 (test) are kept, each digit's bytes as float32 / 127.5 - 1.0 resized by
    F.interpolate(mode='bilinear') to (n, 1, 16, 16), and targets -1 with +1 at the label. prepro.py
    reads the digits through torchvision (np.array of its PIL image: the IDX file's bytes); here they
    come from the IDX files."""
    def idx(name: str) -> np.ndarray:
        raw = gzip.decompress((raw_dir / "mnist" / name).read_bytes())
        return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * raw[3])

    np.random.seed(1337)
    out = {}
    for split in ("test", "train") if test_first else ("train", "test"):
        prefix, n = ("train", 7291) if split == "train" else ("t10k", 2007)
        images = idx(f"{prefix}-images-idx3-ubyte.gz").reshape(-1, 28, 28)
        labels = idx(f"{prefix}-labels-idx1-ubyte.gz")
        rp = np.random.permutation(len(images))[:n]
        xi = torch.from_numpy(np.array(images[rp], dtype=np.float32)) / 127.5 - 1.0
        X = F.interpolate(xi[:, None], (16, 16), mode="bilinear")
        # prepro.py resizes one digit at a time; all at once gives the same bytes (the kernel resizes
        # each digit on its own), as the first few show
        for i in range(8):
            one = F.interpolate(xi[i][None, None], (16, 16), mode="bilinear")
            assert one.numpy().tobytes() == X[i:i + 1].numpy().tobytes()
        Y = torch.full((n, 10), -1.0, dtype=torch.float32)
        Y[torch.arange(n), torch.from_numpy(labels[rp].astype(np.int64))] = 1.0
        out[split] = (X, Y)
    return out


@needs_fused_kernels
@pytest.mark.parametrize("source, test_first", [("mnist", False), ("mnist-published", True)])
def test_mnist_sets_are_the_reproductions_tensors_byte_for_byte(raw_dir, session_home, source, test_first):
    ds = data.load(source, home=session_home, raw_dir=raw_dir)
    ref = reproduction_prepro(raw_dir, test_first)
    for split, (X, Y) in ((ds.train, ref["train"]), (ds.test, ref["test"])):
        assert split.images.dtype == np.float32 and split.images.shape == tuple(X.shape)
        assert split.images.tobytes() == X.numpy().tobytes()
        assert split.targets.tobytes() == Y.numpy().tobytes()


@needs_fused_kernels
@pytest.mark.parametrize("shape, size", [((28, 28), 15), ((31, 23), 16), ((100, 64), 16), ((8, 5), 16),
                                         ((29, 29), 61), ((3, 3), 50)])
def test_resize_is_torchs_bilinear_kernel_byte_for_byte(shape, size):
    rng = np.random.RandomState(0)
    for x in (rng.rand(20, *shape) * 2 - 1, rng.randn(20, *shape) * 1e3):
        x = x.astype(np.float32)
        ref = F.interpolate(torch.from_numpy(x)[:, None], (size, size), mode="bilinear", align_corners=False)
        assert data.resize_bilinear(x, size).tobytes() == ref[:, 0].numpy().tobytes()


def test_processed_cache_is_npz_without_pickle_and_corrupt_cache_is_rebuilt(tmp_path, raw_dir):
    first = data.load("usps", home=tmp_path, raw_dir=raw_dir)
    caches = list((tmp_path / "processed").glob("usps-v*.npz"))
    assert len(caches) == 1
    with np.load(caches[0], allow_pickle=False) as z:
        assert set(z.files) == {"train_images", "train_labels", "test_images", "test_labels",
                                "source", "seed", "format", "modified", "sha256"}
        assert str(z["sha256"]) == first.sha256 and int(z["format"]) == data.FORMAT_VERSION
    caches[0].write_bytes(b"garbage")
    again = data.load("usps", home=tmp_path, raw_dir=raw_dir)
    assert again.sha256 == first.sha256


def _unreachable(monkeypatch, source: str) -> None:
    """A closed port on loopback stands in for "no internet"."""
    monkeypatch.setitem(data.RAW_FILES, source, {
        name: ("http://127.0.0.1:9/" + name, md5) for name, (url, md5) in data.RAW_FILES[source].items()})


def _session_cache(session_home: Path, source: str, raw_dir: Path) -> Path:
    """The cache the session fixture of `source` wrote from the raw files (request the fixture first);
    the data home holds others too (other seeds, modified raw files)."""
    seed = data.DEFAULT_DATA_SEED if source in data.MNIST_TRAIN_SIZES else None
    paths = data.raw_paths(source, session_home, raw_dir=raw_dir)
    path = data._cache_path(session_home, source, seed, data.raw_digest(paths))
    assert path.is_file()
    return path


def _tamper(path: Path, restamp: bool) -> None:
    """One pixel changed in a cached set; restamp: its stored digest made to match the change."""
    with np.load(path, allow_pickle=False) as z:
        fields = dict(z)
    fields["test_images"] = fields["test_images"].copy()
    fields["test_images"][0, 0, 0, 0] = 0.5 if fields["test_images"][0, 0, 0, 0] != 0.5 else -0.5
    if restamp:
        fields["sha256"] = np.array(data.Dataset(
            str(fields["source"]), None, data.Split(fields["train_images"], fields["train_labels"]),
            data.Split(fields["test_images"], fields["test_labels"])).sha256)
    np.savez(path, **fields)


@pytest.mark.parametrize("restamp", [False, True], ids=["stale-digest", "restamped-digest"])
def test_tampered_cache_is_neither_used_nor_kept(tmp_path, monkeypatch, raw_dir, session_home, usps, restamp):
    # A restamped digest passes the cache's own check; the pinned digest of the standard set does not.
    cache = tmp_path / "processed" / _session_cache(session_home, "usps", raw_dir).name
    cache.parent.mkdir()
    shutil.copy(_session_cache(session_home, "usps", raw_dir), cache)
    _tamper(cache, restamp)
    monkeypatch.delenv(data.RAW_DIR_ENV)
    # offline, without the raw files, the cache is what is named: damaged, and how to rebuild it
    with pytest.raises(data.DataError, match=f"the processed cache {re.escape(str(cache))} is damaged .* the raw "
                                             f"files to rebuild it are missing: rebuild it with `lecun1989 data usps`"):
        data.load("usps", home=tmp_path, offline=True)
    rebuilt = data.load("usps", home=tmp_path, raw_dir=raw_dir)
    assert rebuilt.sha256 == usps.sha256 and not rebuilt.modified
    with np.load(cache, allow_pickle=False) as z:
        assert str(z["sha256"]) == usps.sha256
    assert data.load("usps", home=tmp_path, offline=True).sha256 == usps.sha256


@pytest.mark.parametrize("source", ["usps", "mnist"])
def test_a_verified_cache_serves_without_raw_files(tmp_path, monkeypatch, session_home, raw_dir, request, source):
    ds = request.getfixturevalue(source)
    (tmp_path / "processed").mkdir()
    shutil.copy(_session_cache(session_home, source, raw_dir), tmp_path / "processed")
    monkeypatch.delenv(data.RAW_DIR_ENV)
    cached = data.load(source, home=tmp_path, offline=True)
    assert cached.sha256 == ds.sha256 and cached.seed == ds.seed and not cached.modified
    # Not offline either: the cache comes first, so an unreachable source is never asked.
    _unreachable(monkeypatch, data.raw_source(source))
    assert data.load(source, home=tmp_path).sha256 == ds.sha256
    if source == "mnist":  # a cache is for its own seed only
        with pytest.raises(data.DataError, match="raw files missing"):
            data.load(source, data_seed=7, home=tmp_path, offline=True)


@pytest.mark.parametrize("value, offline", [
    ("1", True), ("true", True), ("YES", True), ("On", True),
    ("", False), ("0", False), ("false", False), ("No", False), ("off", False),
])
def test_offline_env_values(monkeypatch, value, offline):
    monkeypatch.setenv(data.OFFLINE_ENV, value)
    assert data.env_offline() is offline


@pytest.mark.parametrize("value, downloads", [("false", True), ("true", False)])
def test_offline_env_decides_whether_load_downloads(tmp_path, monkeypatch, value, downloads):
    _unreachable(monkeypatch, "usps")
    monkeypatch.delenv(data.RAW_DIR_ENV)
    monkeypatch.setenv(data.OFFLINE_ENV, value)
    with pytest.raises(data.DataError, match="raw files missing") as e:
        data.load("usps", home=tmp_path)
    assert ("download failed" in str(e.value)) is downloads


@pytest.mark.parametrize("value", ["2", "offline", "y"])
def test_unknown_offline_env_value_is_an_error(tmp_path, monkeypatch, value):
    monkeypatch.setenv(data.OFFLINE_ENV, value)
    with pytest.raises(data.DataError, match=f"LECUN1989_OFFLINE='{value}' is not understood.*1, true, yes or on"):
        data.load("usps", home=tmp_path)


@pytest.mark.parametrize("seed", [-1, 2**32, 1.5, "7", True, None])
def test_data_seed_outside_numpys_range_is_an_error(tmp_path, seed):
    with pytest.raises(data.DataError,
                       match=r"data seed \(--data-seed\) must be a whole number from 0 to 4294967295"):
        data.load("mnist", data_seed=seed, home=tmp_path)


def test_data_seed_range_ends_are_accepted():
    assert data.check_data_seed(0) == 0 and data.check_data_seed(np.uint32(2**32 - 1)) == 2**32 - 1


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


def _row(label: str = "7", pixels: list[str] | None = None) -> str:
    return " ".join([label, *(pixels if pixels is not None else [f"{i}:-1" for i in range(1, 257)])])


_PIXELS = [f"{i}:-1" for i in range(1, 257)]


@pytest.mark.parametrize("row, message", [
    (_row(pixels=_PIXELS[:100]), "100 features, expected all 256"),
    (_row(pixels=_PIXELS[:5] + ["5:-1"] + _PIXELS[6:]), "feature 5 is given more than once"),
    (_row(pixels=_PIXELS + ["17:-1"]), "feature 17 is given more than once"),
    (_row(pixels=["1:nan"] + _PIXELS[1:]), "pixel value nan is not a finite number"),
    (_row(pixels=_PIXELS[:-1] + ["256:-inf"]), "pixel value -inf is not a finite number"),
    (_row(pixels=_PIXELS[:-1] + ["256:inf"]), "pixel value inf is not a finite number"),
    (_row(label="3.5"), "label 3.5 is not a whole number"),
    (_row(pixels=_PIXELS[:-1] + ["256:1:1"]), "not in LIBSVM format"),
], ids=["missing", "duplicate", "too-many", "nan", "-inf", "inf", "fractional-label", "two-colons"])
def test_bad_usps_rows_name_the_file_and_line(tmp_path, row, message):
    folder = tmp_path / "raw"
    folder.mkdir()
    # The bad row is on line 4, after a blank line: numbers are the file's, blank lines included.
    (folder / "usps.bz2").write_bytes(bz2.compress(f"{_row()}\n\n{_row()}\n{row}\n{_row()}\n".encode()))
    (folder / "usps.t.bz2").write_bytes(bz2.compress(f"{_row()}\n".encode()))
    home = tmp_path / "home"
    with pytest.raises(data.DataError) as e:
        data.load("usps", home=home, raw_dir=folder)
    assert str(e.value).startswith(f"{folder / 'usps.bz2'}, line 4: ") and message in str(e.value)
    assert "\n" not in str(e.value) and not list(home.rglob("*.npz"))


@pytest.fixture(scope="module")
def modified_usps(tmp_path_factory, raw_dir) -> Path:
    """The USPS files with one test pixel changed: valid, but not the published set."""
    return _usps_copy(tmp_path_factory.mktemp("modified"), raw_dir,
                      _edit_text(lambda t: t.replace(" 1:-1 ", " 1:-0.5 ", 1)), name="usps.t.bz2")


def test_modified_data_is_refused_unless_allowed(tmp_path, modified_usps, usps):
    home = tmp_path / "home"
    with pytest.raises(data.DataError) as e:
        data.load("usps", home=home, raw_dir=modified_usps)
    msg = str(e.value)
    assert msg.startswith(f"{modified_usps / 'usps.t.bz2'}: its digits differ from the published USPS set "
                          f"(sha256 ")
    assert "--allow-modified-data" in msg and "\n" not in msg and not list(home.rglob("*.npz"))

    ds = data.load("usps", home=home, raw_dir=modified_usps, allow_modified=True)
    assert ds.modified and ds.subset(10, 10).modified and ds.validation(100).modified
    assert ds.test.images[0, 0, 0, 0] == -0.5 and np.array_equal(ds.train.images, usps.train.images)
    assert not usps.modified and not usps.subset(10).modified
    # The cache remembers: without allow_modified it is refused again, with it the flag comes back.
    with pytest.raises(data.DataError, match="usps.t.bz2: its digits differ"):
        data.load("usps", home=home, raw_dir=modified_usps)
    assert data.load("usps", home=home, raw_dir=modified_usps, allow_modified=True).modified


def test_published_md5_is_proof_enough_and_lets_rows_omit_zeros(tmp_path, monkeypatch, raw_dir, usps):
    # The copies here list every pixel, zeros included; the published file may omit zeros, as
    # LIBSVM files do: a file with its MD5 is accepted as it is.
    folder = _usps_copy(tmp_path, raw_dir, _edit_text(lambda t: re.sub(r" \d+:0(?=\s)", "", t)), name="usps.t.bz2")
    with pytest.raises(data.DataError, match=r"usps.t.bz2, line \d+: 25\d features, expected all 256"):
        data.load("usps", home=tmp_path / "home", raw_dir=folder)
    md5 = hashlib.md5((folder / "usps.t.bz2").read_bytes()).hexdigest()
    monkeypatch.setitem(data.RAW_FILES["usps"], "usps.t.bz2", (data.RAW_FILES["usps"]["usps.t.bz2"][0], md5))
    ds = data.load("usps", home=tmp_path / "home", raw_dir=folder)
    assert ds.sha256 == usps.sha256 and not ds.modified


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
    _unreachable(monkeypatch, "usps")
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
