"""The compiled engine against the PyTorch reference, from the same initial weights and data."""

import subprocess
import sys

import numpy as np
import pytest

from lecun1989.engines import initial_runs
from lecun1989.engines.fast import FastEngine, pack, unpack
from lecun1989.engines.torch_ref import TorchEngine
from lecun1989.model import Net1989, NetConfig, connection_table


def specs(net, seeds, lr=0.03):
    return initial_runs(net, [(s, lr) for s in seeds])


def one_pass_each(net, ds, seed, dtype):
    """Both engines from the same initial weights, after one pass over ds."""
    run = specs(net, [seed])
    fast, ref = FastEngine(net, run, ds, dtype=dtype), TorchEngine(net, run, ds, dtype=dtype)
    fast.train_pass()
    ref.train_pass()
    return fast, ref


def test_pack_unpack_round_trip():
    params = Net1989(seed=4).get_params()
    table = connection_table("block")
    back = unpack(pack(params, table, np.float64), table)
    assert all(np.array_equal(params[k], back[k]) and params[k].shape == back[k].shape for k in params)


@pytest.mark.parametrize("activation", ["tanh", "scaled_tanh"])
def test_one_full_pass_float64_equals_reference_within_1e_9(usps, activation):
    net = NetConfig(activation=activation, output_bias=-1.0)
    ds = usps if activation == "tanh" else usps.subset(500, 100)   # the full pass once is enough
    fast, ref = one_pass_each(net, ds, seed=2, dtype="float64")
    a, b = fast.get_params()[0], ref.get_params()[0]
    for name in a:
        assert np.abs(a[name] - b[name]).max() <= 1e-9, name
    ea, eb = fast.evaluate()[0], ref.evaluate()[0]
    for split in ("train", "test"):
        assert ea[split].misses == eb[split].misses
        assert abs(ea[split].loss - eb[split].loss) <= 1e-12


def test_float32_pass_equals_reference_within_1e_4_relative(usps):
    net = NetConfig()
    ds = usps.subset(1000, 100)
    fast, ref = one_pass_each(net, ds, seed=3, dtype="float32")
    a, b = fast.get_params()[0], ref.get_params()[0]
    for name in a:
        assert np.abs(a[name] - b[name]).max() <= 1e-4 * np.abs(b[name]).max(), name


def test_23_pass_float64_run_gives_the_same_misses_after_every_pass(usps):
    net = NetConfig()
    ds = usps.subset(150, 150)
    run = specs(net, [5], lr=0.05)
    fast, ref = FastEngine(net, run, ds, dtype="float64"), TorchEngine(net, run, ds, dtype="float64")
    for _ in range(23):
        fast.train_pass()
        ref.train_pass()
        ea, eb = fast.evaluate()[0], ref.evaluate()[0]
        assert (ea["train"].misses, ea["test"].misses) == (eb["train"].misses, eb["test"].misses)
    assert ea["train"].misses < 15   # it did learn


def test_run_0_of_a_batch_equals_the_same_run_alone(usps):
    net = NetConfig()
    ds = usps.subset(300, 100)
    batch = FastEngine(net, specs(net, [7, 8, 9], lr=0.02) + specs(net, [7], lr=0.05), ds)
    alone = FastEngine(net, specs(net, [7], lr=0.02), ds)
    for _ in range(2):
        batch.train_pass()
        alone.train_pass()
    assert np.array_equal(batch.params[0], alone.params[0])
    assert not np.array_equal(batch.params[0], batch.params[1])
    assert not np.array_equal(batch.params[0], batch.params[3])   # same seed, other learning rate
    assert batch.evaluate()[0] == alone.evaluate()[0]


def test_compiled_code_is_cached_on_disk(usps, raw_dir, session_home):
    code = """
import sys
from lecun1989 import data
from lecun1989.engines import fast
from lecun1989.engines import initial_runs
from lecun1989.model import NetConfig
ds = data.load("usps", home=sys.argv[1], raw_dir=sys.argv[2]).subset(20, 20)
e = fast.FastEngine(NetConfig(), initial_runs(NetConfig(), [(0, 0.03)]), ds)
e.train_pass(); e.evaluate()
print(sum(fast.train_chunk.stats.cache_misses.values()), sum(fast.train_chunk.stats.cache_hits.values()))
"""
    outs = [subprocess.run([sys.executable, "-c", code, str(session_home), str(raw_dir)], capture_output=True,
                           text=True, check=True).stdout.split() for _ in range(2)]
    assert outs[1] == ["0", "1"]   # the second process compiled nothing
