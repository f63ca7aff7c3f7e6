"""Tensor engine against bare numpy: per-op overhead, and a tanh RNN forward + backward.

    python -m benchmarks.tensor [--repeats N] [--quick] [--markdown]

(1) Per-op overhead: the time of one recorded Tensor op on small arrays against the numpy
    call it wraps. (2) The forward and backward of a tanh RNN step sequence,
    h_t = tanh(x_t W_xh + h_{t-1} W_hh + b_h), loss = Σ_t Σ h_t, written with Tensor ops,
    against the same computation hand-written in numpy with a hand-derived backward, in two
    formulations, each the same on both sides: as nn.RNN composes it (the input products of
    all steps as one product) and naively (8 ops per step).
Both sides run in the same process, interleaved, and the medians are compared; both get
their weights 64-byte aligned (``_common.aligned``), as the engine's parameters are.
Goal: the Tensor RNN, as nn.RNN composes it, at most 1.25x the hand-written numpy time.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from autograd import Tensor, addmm, stack
from autograd.tensor import _sigmoid

from ._common import (
    aligned,
    backward_transpose,
    environment_line,
    fmt_times,
    format_table,
    interleaved,
    median,
    tanh_rnn_states,
)

GOAL = 1.25


# --- (1) per-op overhead ------------------------------------------------------------------
def _op_cases(rng):
    a = rng.standard_normal((4, 4))
    b = rng.standard_normal((4, 4))
    v = rng.standard_normal(4)
    A, B = Tensor(a, requires_grad=True), Tensor(b, requires_grad=True)
    return [
        ("a + b", lambda: A + B, lambda: np.add(a, b)),
        ("a * b", lambda: A * B, lambda: np.multiply(a, b)),
        ("a + v (broadcast)", lambda: A + v, lambda: np.add(a, v)),
        ("a @ b", lambda: A @ B, lambda: np.matmul(a, b)),
        ("tanh(a)", lambda: A.tanh(), lambda: np.tanh(a)),
        ("sigmoid(a)", lambda: A.sigmoid(), lambda: _sigmoid(a)),  # the stable formula the op wraps
        ("a.sum(axis=0)", lambda: A.sum(axis=0), lambda: np.sum(a, axis=0)),
        ("a[1]", lambda: A[1], lambda: a[1]),
        ("a.reshape(16)", lambda: A.reshape(16), lambda: a.reshape(16)),
        ("stack([a, b])", lambda: stack([A, B]), lambda: np.stack([a, b])),
    ]


def _per_call(fn, number: int) -> float:
    t0 = time.perf_counter()
    for _ in range(number):
        fn()
    return (time.perf_counter() - t0) / number


def op_overhead(repeats: int, number: int, rng) -> list[list[str]]:
    rows = []
    for name, ours, bare in _op_cases(rng):
        fns = {"ours": ours, "bare": bare}
        times = interleaved(list(fns), repeats, lambda which, fns=fns: _per_call(fns[which], number), label=None)
        mo, mb = median(times["ours"]), median(times["bare"])
        rows.append([name, f"{mo * 1e6:.2f}", f"{mb * 1e6:.2f}", f"{(mo - mb) * 1e6:.2f}", fmt_times(mo / mb)])
    return rows


# --- (2) a tanh RNN, forward and backward ------------------------------------------------
def rnn_problem(T: int, m: int, n_in: int, n_h: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((T, m, n_in))
    k = 1 / np.sqrt(n_h)
    W_xh, W_hh, b_h = (rng.uniform(-k, k, s) for s in [(n_in, n_h), (n_h, n_h), (n_h,)])
    return X, W_xh, W_hh, b_h


def rnn_autograd(X, W_xh0, W_hh0, b_h0):
    """The RNN with Tensor ops, the way nn.RNN composes them: the input projections of all
    steps as one product, then h_t = tanh(xw_t + h_{t-1} W_hh) step by step, each sum with
    its product one addmm; L = Σ h_T (sequence to vector). BPTT is L.backward()."""
    T, m, n_in = X.shape
    W_xh = Tensor(W_xh0, requires_grad=True)
    W_hh = Tensor(W_hh0, requires_grad=True)
    b_h = Tensor(b_h0, requires_grad=True)
    xw = addmm(b_h, Tensor(X.reshape(T * m, n_in)), W_xh).reshape(T, m, -1)
    h = Tensor(np.zeros((m, W_hh0.shape[0])))
    for t in range(T):
        h = addmm(xw[t], h, W_hh).tanh()
    h.sum().backward()
    return W_xh.grad, W_hh.grad, b_h.grad


def rnn_numpy(X, W_xh, W_hh, b_h):
    """The same RNN in numpy, with the hand-derived BPTT for L = Σ h_T: δ_t = (dL/dh_t) ⊙
    (1 - h_t²), dL/dh_T = 1, dL/dh_{t-1} = δ_t W_hhᵀ, dL/dW_hh = Σ_t h_{t-1}ᵀ δ_t,
    dL/dW_xh = Σ_t x_tᵀ δ_t, dL/db_h = Σ_t Σ_rows δ_t; the products over all steps as one."""
    T, m, n_in = X.shape
    H = W_hh.shape[0]
    hs = tanh_rnn_states(X, W_xh, W_hh, b_h)
    deltas = np.empty((T, m, H))
    dh = np.ones((m, H))
    W_hhT = backward_transpose(W_hh, m)  # the faster layout of W_hhᵀ here, as the engine takes
    for t in range(T, 0, -1):  # only the recurrence step by step
        delta = np.multiply(dh, 1.0 - hs[t] * hs[t], out=deltas[t - 1])
        if t > 1:
            dh = delta @ W_hhT
    flat = deltas.reshape(T * m, H)
    return X.reshape(T * m, n_in).T @ flat, hs[:-1].reshape(T * m, H).T @ flat, flat.sum(axis=0)


def rnn_autograd_per_step(X, W_xh0, W_hh0, b_h0):
    """The naive loop: every step computes x_t W_xh, adds b_h and its own h_t.sum() (8 ops)."""
    W_xh = Tensor(W_xh0, requires_grad=True)
    W_hh = Tensor(W_hh0, requires_grad=True)
    b_h = Tensor(b_h0, requires_grad=True)
    x = Tensor(X)
    h = Tensor(np.zeros((X.shape[1], W_hh0.shape[0])))
    loss = 0.0
    for t in range(X.shape[0]):
        h = (x[t] @ W_xh + h @ W_hh + b_h).tanh()
        loss = loss + h.sum()
    loss.backward()
    return W_xh.grad, W_hh.grad, b_h.grad


def rnn_numpy_per_step(X, W_xh, W_hh, b_h):
    """The naive loop by hand: x_t W_xh at every step, forward and backward."""
    T, m, _ = X.shape
    hs = [np.zeros((m, W_hh.shape[0]))]
    for t in range(T):
        hs.append(np.tanh(X[t] @ W_xh + hs[-1] @ W_hh + b_h))
    g_xh, g_hh, g_b = np.zeros_like(W_xh), np.zeros_like(W_hh), np.zeros_like(b_h)
    dh = np.zeros_like(hs[0])
    W_hhT = backward_transpose(W_hh, m)
    for t in range(T, 0, -1):
        delta = (dh + 1.0) * (1.0 - hs[t] * hs[t])
        g_xh += X[t - 1].T @ delta
        g_hh += hs[t - 1].T @ delta
        g_b += delta.sum(axis=0)
        dh = delta @ W_hhT
    return g_xh, g_hh, g_b


def rnn_comparison(repeats: int, ours, reference, T: int, m: int, n_in: int, n_h: int):
    """Median seconds of ``ours`` and ``reference`` on the same problem, interleaved, and
    the largest relative difference between their gradients."""
    problem = [aligned(a) for a in rnn_problem(T, m, n_in, n_h)]
    err = max(float(np.max(np.abs(a - b) / (1 + np.abs(b)))) for a, b in zip(ours(*problem), reference(*problem)))
    fns = {"ours": ours, "reference": reference}

    def timed(which):
        t0 = time.perf_counter()
        fns[which](*problem)
        return time.perf_counter() - t0

    times = interleaved(list(fns), repeats, timed, ours.__name__)
    return median(times["ours"]), median(times["reference"]), err


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--quick", action="store_true", help="fewer repeats, a smoke test")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    repeats = 5 if args.quick else args.repeats
    number = 200 if args.quick else 2000
    print(environment_line("numpy"))
    print()
    rows = op_overhead(repeats, number, np.random.default_rng(0))
    print(format_table("Per-op time on 4x4 float64 arrays (microseconds, median)",
                       ["op", "autograd", "numpy", "overhead", "ratio"], rows, args.markdown))
    print()
    T, m, n_in, n_h = 100, 32, 16, 128
    rows, results = [], {}
    for label, ours, reference in [
        ("as nn.RNN: one input product; L = sum of H_T", rnn_autograd, rnn_numpy),
        ("naive: x_t W_xh, + b_h, h_t.sum() every step; L = sum of all H_t", rnn_autograd_per_step,
         rnn_numpy_per_step),
    ]:
        t_ours, t_np, err = rnn_comparison(repeats, ours, reference, T, m, n_in, n_h)
        results[label] = t_ours / t_np
        rows.append([label, f"{t_ours * 1e3:.2f} ms", f"{t_np * 1e3:.2f} ms", fmt_times(t_ours / t_np), f"{err:.0e}"])
    title = f"tanh RNN forward + backward, T={T}, batch {m}, {n_in} inputs, {n_h} hidden, float64 (median)"
    print(format_table(title, ["formulation (same on both sides)", "autograd", "numpy by hand", "ratio",
                               "max rel. diff"], rows, args.markdown))
    ratio = next(iter(results.values()))
    verdict = "PASS" if ratio <= GOAL else "MISS"
    print(f"\ngoal: autograd at most {GOAL}x the hand-written numpy time (the nn.RNN formulation) -> "
          f"{ratio:.2f}x {verdict}")


if __name__ == "__main__":
    main()
