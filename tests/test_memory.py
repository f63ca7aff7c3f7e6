"""autograd keeps freed memory for the next training step on glibc (autograd/memory.py)."""

import os
import platform
import subprocess
import sys

GLIBC = platform.libc_ver()[0] == "glibc"

# Two warm-up steps of a T=100 tanh RNN with H hidden units, then the minor page faults of
# three more forward + backward passes; ``settings`` runs after the imports.
STEPS = """
import resource, numpy as np
import autograd
from autograd import Tensor
{settings}
H = {hidden}
rng = np.random.default_rng(0)
X = rng.standard_normal((100, 32, 16))
W_xh, W_hh = rng.standard_normal((16, H)) * 0.1, rng.standard_normal((H, H)) * 0.05
def step():
    wx, wh = Tensor(W_xh, requires_grad=True), Tensor(W_hh, requires_grad=True)
    xw = (Tensor(X.reshape(-1, 16)) @ wx).reshape(100, 32, H)
    h = Tensor(np.zeros((32, H)))
    for t in range(100):
        h = (xw[t] + h @ wh).tanh()
    h.sum().backward()
step(); step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
step(); step(); step()
print(autograd.memory.KEEPING_FREED_MEMORY, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 3)
"""


def run(keep: str, settings: str = "", hidden: int = 128):
    env = dict(os.environ, UNROLLGRAD_KEEP_FREED_MEMORY=keep)
    script = STEPS.format(settings=settings, hidden=hidden)
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    flag, faults = out.stdout.split()
    return flag == "True", float(faults)


def test_freed_memory_is_reused_by_the_next_step_on_glibc_and_left_alone_elsewhere():
    keeping, faults = run("1")
    # The setting exists only in glibc; other C libraries are documented to be left alone.
    assert keeping is GLIBC
    if GLIBC:
        # ~8 MB of graph per step: with glibc's defaults each step faults most of it back in
        # (about 2,000+ pages); kept, the next step reuses it.
        assert faults < 300


def test_the_setting_can_be_turned_off():
    keeping, _ = run("0")
    assert keeping is False


def test_a_graph_freeing_more_than_the_trim_threshold_keeps_the_top_pad():
    if not GLIBC:  # other C libraries are documented to be left alone: the call says so
        from autograd.memory import keep_freed_memory

        assert keep_freed_memory(trim_threshold=8 << 20, top_pad=128 << 20) is False
        return
    # About 40 MB of graph per step (256 hidden units) against a trim threshold of 8 MB, the
    # situation of a 1 GB graph against the default 256 MB: without a top pad each step
    # hands its memory back and faults it all in again; with one, what fits stays.
    settings = "autograd.memory.keep_freed_memory(trim_threshold=8 << 20, top_pad={})"
    _, without_pad = run("1", settings.format(0), hidden=256)
    _, with_pad = run("1", settings.format(128 << 20), hidden=256)
    assert without_pad > 5000
    assert with_pad < 300
