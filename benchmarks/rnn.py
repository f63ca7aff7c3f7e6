"""A many-to-many RNN trained with softmax cross-entropy: unrollgrad against PyTorch and numpy.

    python -m benchmarks.rnn [--repeats N] [--quick] [--no-scale] [--markdown]

The model: H_t = tanh(X_t W_xh + H_{t-1} W_hh + b_h), logits_t = H_t W_hy + b_y,
L = Σ_t mean over the batch of cross-entropy(logits_t, class_t); one forward and one
backward, float64. Three implementations, measured side by side in one process:

* unrollgrad: ``nn.RNNModel(mode="many_to_many")`` and ``nn.sequence_loss(nn.cross_entropy)``,
  then ``loss.backward()``; every gradient comes from the engine;
* PyTorch on the CPU at its default thread count (``torch.nn.RNN`` + ``torch.nn.Linear``),
  if the optional ``torch`` extra is installed; and, for reference, PyTorch's autograd on
  the same unrolled loop of generic ops that ``nn.RNN`` builds (one input product, then
  ``tanh(xw_t + h W_hh)`` step by step), engine against engine;
* numpy written the fast way, with a hand-derived BPTT: the input projections and the
  readout of all steps as single matrix products, only the recurrence step by step.

Each implementation is timed in fresh processes of its own (rounds interleaved): PyTorch's
worker threads keep spinning after it returns, and in a shared process they slow whatever
runs next. unrollgrad and numpy run as pairs of adjacent processes, several per round:
processes differ more than runs do, so more processes make the ratio more precise, and
they are cheap to start.

Goals at T=100, batch 32, 16 inputs, 128 hidden, 10 classes: at most 0.75x PyTorch's
time, within 1.25x of the fast numpy, and time growing linearly in T (the scale table).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import nn

from ._common import environment_line, fmt_times, format_table, median, progress, reply, run_worker, tanh_rnn_states

GOAL_TORCH, GOAL_NUMPY = 0.75, 1.25
PAIRS = 3  # unrollgrad + numpy process pairs per round at the headline size (see measure)


def problem(T, m, n_in, n_h, n_out, seed=0):
    """Weights (our layout: W is in x out) drawn as nn.RNNModel draws them, inputs, targets."""
    model = nn.RNNModel(n_in, n_h, n_out, mode="many_to_many", seed=seed)
    rng = np.random.default_rng(seed + 1)
    X = rng.standard_normal((T, m, n_in))
    target = rng.integers(0, n_out, size=(T, m))
    return model, X, target


# --- unrollgrad ------------------------------------------------------------------------------
def run_unrollgrad(model, X, target):
    model.zero_grad()
    y, _ = model(X)
    loss, _ = nn.sequence_loss(nn.cross_entropy, y, target)
    loss.backward()
    return loss.item(), model.grad_dict()


# --- numpy, hand-derived BPTT --------------------------------------------------------------
def run_numpy(weights, X, target):
    W_xh, W_hh, b_h, W_hy, b_y = weights
    T, m, n_in = X.shape
    H = W_hh.shape[0]
    hs = tanh_rnn_states(X, W_xh, W_hh, b_h)  # one product for all input projections
    states = hs[1:].reshape(T * m, H)
    logits = states @ W_hy + b_y
    shifted = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    sums = e.sum(axis=1, keepdims=True)
    rows, cls = np.arange(T * m), target.reshape(-1)
    loss = -(shifted[rows, cls] - np.log(sums[:, 0])).sum() / m
    # backward: dL/dlogits = (softmax - onehot) / m, then BPTT through the recurrence
    d_logits = e / sums
    d_logits[rows, cls] -= 1.0
    d_logits /= m
    g_hy, g_by = states.T @ d_logits, d_logits.sum(axis=0)
    d_states = (d_logits @ W_hy.T).reshape(T, m, H)
    deltas = np.empty((T, m, H))
    g_hh = np.zeros_like(W_hh)
    d_next = np.zeros((m, H))
    for t in range(T - 1, -1, -1):
        delta = (d_states[t] + d_next) * (1.0 - hs[t + 1] * hs[t + 1])
        deltas[t] = delta
        g_hh += hs[t].T @ delta
        d_next = delta @ W_hh.T
    flat = deltas.reshape(T * m, H)
    g_xh, g_bh = X.reshape(T * m, n_in).T @ flat, flat.sum(axis=0)
    return loss, {
        "rnn.cells.0.W_xh": g_xh,
        "rnn.cells.0.W_hh": g_hh,
        "rnn.cells.0.b_h": g_bh,
        "W_hy": g_hy,
        "b_y": g_by,
    }


# --- PyTorch ---------------------------------------------------------------------------------
def torch_runner(model, X, target, unrolled=False):
    """A function running the same model in PyTorch, or None if torch is not installed.
    ``unrolled``: the recurrence as a Python loop of autograd ops, as unrollgrad composes
    it, instead of ``torch.nn.RNN``'s built-in kernel."""
    try:
        import torch
    except ImportError:
        return None
    n_in, n_h, n_out = model.rnn.input_size, model.rnn.hidden_size, model.output_size
    rnn = torch.nn.RNN(n_in, n_h, dtype=torch.float64)
    readout = torch.nn.Linear(n_h, n_out, dtype=torch.float64)
    state = nn.to_torch_state_dict(model)
    with torch.no_grad():
        for name, p in [*rnn.named_parameters(prefix="rnn"), *readout.named_parameters(prefix="readout")]:
            p.copy_(torch.from_numpy(state[name]))
    x, y = torch.from_numpy(X), torch.from_numpy(target.reshape(-1))
    T, m = target.shape

    def states():
        if not unrolled:
            return rnn(x)[0]
        xw = x @ rnn.weight_ih_l0.T + (rnn.bias_ih_l0 + rnn.bias_hh_l0)
        h = torch.zeros(m, n_h, dtype=torch.float64)
        hs = []
        for t in range(T):
            h = torch.tanh(xw[t] + h @ rnn.weight_hh_l0.T)
            hs.append(h)
        return torch.stack(hs)

    def run():
        rnn.zero_grad(set_to_none=True)
        readout.zero_grad(set_to_none=True)
        out = states()
        logits = readout(out.reshape(T * m, n_h))
        loss = torch.nn.functional.cross_entropy(logits, y, reduction="sum") / m
        loss.backward()
        return loss.item(), {
            "rnn.cells.0.W_xh": rnn.weight_ih_l0.grad.numpy().T,
            "rnn.cells.0.W_hh": rnn.weight_hh_l0.grad.numpy().T,
            "rnn.cells.0.b_h": rnn.bias_ih_l0.grad.numpy(),
            "W_hy": readout.weight.grad.numpy().T,
            "b_y": readout.bias.grad.numpy(),
        }

    return run, torch


IMPLEMENTATIONS = ("unrollgrad", "pytorch", "pytorch-unrolled", "numpy")


def worker(name: str, T: int, m: int, n_in: int, n_h: int, n_out: int, runs: int) -> None:
    """In a fresh process: ``runs`` timed forward+backward passes of one implementation,
    after one untimed warm-up, and a fingerprint of its loss and gradients."""
    model, X, target = problem(T, m, n_in, n_h, n_out)
    if name == "unrollgrad":
        run = lambda: run_unrollgrad(model, X, target)  # noqa: E731
    elif name == "numpy":
        sd = model.state_dict()
        weights = [sd[k] for k in ("rnn.cells.0.W_xh", "rnn.cells.0.W_hh", "rnn.cells.0.b_h", "W_hy", "b_y")]
        run = lambda: run_numpy(weights, X, target)  # noqa: E731
    else:
        made = torch_runner(model, X, target, unrolled=name == "pytorch-unrolled")
        if made is None:
            reply(missing=True)
            return
        run, torch = made
    loss, grads = run()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    reply(times=times, loss=loss, grads={k: np.asarray(v).ravel()[:50].tolist() for k, v in grads.items()},
          threads=torch.get_num_threads() if name.startswith("pytorch") else None)


def measure(T, m, n_in, n_h, n_out, repeats, runs_per_process=5, names=IMPLEMENTATIONS, pairs=1):
    """Median seconds per forward+backward of each implementation, each measured in fresh
    processes (so that no implementation's threads or garbage affect another's), the
    rounds interleaved; the largest difference of each from numpy's loss and gradients;
    and the ratio unrollgrad / numpy of each pair of adjacent processes.

    Each round runs every implementation, in an order that rotates from round to round,
    with unrollgrad and numpy as ``pairs`` back-to-back pairs (their order alternating)
    in unrollgrad's place. NOTE: a process's runs agree with each other to a few percent,
    but the medians of processes a second apart differ by up to 1.4x on this machine, so
    the precision of a ratio comes from the number of processes. Those two start in a
    third of a second, against two for PyTorch, so they get ``pairs`` processes per round.
    """
    results = {name: [] for name in names}
    replies, paired = {}, []

    def run(name):
        got = run_worker("benchmarks.rnn", name, T, m, n_in, n_h, n_out, runs_per_process)
        replies[name] = got
        if not got.get("missing"):
            results[name].extend(got["times"])
        return got

    others = [name for name in names if name != "numpy"]
    for r in range(repeats):
        k = r % len(others)
        for name in others[k:] + others[:k]:
            if replies.get(name, {}).get("missing"):
                continue
            if name != "unrollgrad" or "numpy" not in names:
                run(name)
                continue
            for i in range(pairs):
                order = ("unrollgrad", "numpy") if (r + i) % 2 == 0 else ("numpy", "unrollgrad")
                got = {each: median(run(each)["times"]) for each in order}
                paired.append(got["unrollgrad"] / got["numpy"])
    ref = replies["numpy"]
    agreement = {}
    for name, got in replies.items():
        if got.get("missing"):
            continue
        err = max(float(np.max(np.abs(np.array(got["grads"][k]) - np.array(ref["grads"][k])))) for k in ref["grads"])
        agreement[name] = max(err, abs(got["loss"] - ref["loss"]))
    times = {name: median(ts) for name, ts in results.items() if ts}
    return times, agreement, replies.get("pytorch", {}).get("threads"), paired


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7,
                        help=f"rounds: one fresh process per PyTorch implementation, {PAIRS} each for unrollgrad "
                             "and numpy (5 runs per process)")
    parser.add_argument("--quick", action="store_true", help="few repeats and a small scale table")
    parser.add_argument("--no-scale", action="store_true", help="skip the scale table")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--worker", nargs=7, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        name, *sizes = args.worker
        worker(name, *map(int, sizes))
        return
    repeats = 3 if args.quick else args.repeats
    print(environment_line("numpy", "torch"))
    print()

    progress("headline size")
    t, agree, threads, paired = measure(100, 32, 16, 128, 10, repeats, pairs=PAIRS)
    rows = []
    for name, label in [
        ("unrollgrad", "unrollgrad (nn.RNNModel, loss.backward())"),
        ("pytorch", f"PyTorch CPU ({threads} threads), torch.nn.RNN"),
        ("pytorch-unrolled", f"PyTorch CPU ({threads} threads), the same unrolled loop of ops"),
        ("numpy", "numpy, hand-derived BPTT (fast)"),
    ]:
        if name in t:
            ratio = t["unrollgrad"] / t[name]
            rows.append([label, f"{t[name] * 1e3:.2f} ms", fmt_times(ratio), f"{agree[name]:.1e}"])
        else:
            rows.append([label, "not installed", "-", "-"])
    print(
        format_table(
            "Many-to-many RNN + softmax cross-entropy, T=100, batch 32, 16 in, 128 hidden, 10 classes, "
            "forward + backward (median; each implementation timed in fresh processes of its own)",
            ["implementation", "time", "unrollgrad / this", "max abs difference"],
            rows,
            args.markdown,
        )
    )
    print()
    r_np = t["unrollgrad"] / t["numpy"]
    print(f"goal: within {GOAL_NUMPY}x of the fast numpy -> {r_np:.2f}x {'PASS' if r_np <= GOAL_NUMPY else 'MISS'}")
    q = np.percentile(paired, [0, 25, 50, 75, 100])
    print(f"  unrollgrad / numpy in each of the {len(paired)} pairs of adjacent processes: median {q[2]:.2f}x, "
          f"middle half {q[1]:.2f}x to {q[3]:.2f}x, all {q[0]:.2f}x to {q[4]:.2f}x")
    if "pytorch" in t:
        r_pt = t["unrollgrad"] / t["pytorch"]
        print(f"goal: at most {GOAL_TORCH}x PyTorch's time -> {r_pt:.2f}x {'PASS' if r_pt <= GOAL_TORCH else 'MISS'}")
    else:
        print("goal vs PyTorch: not measured (install the extra: pip install -e '.[torch]')")

    if args.no_scale:
        return
    print()
    Ts = (10, 100) if args.quick else (10, 100, 1000)
    Hs = (32, 128) if args.quick else (32, 128, 512)
    rows = []
    for H in Hs:
        for T in Ts:
            progress(f"scale T={T} hidden={H}")
            ts, _, _, _ = measure(T, 32, 16, H, 10, max(3, repeats // 2), runs_per_process=3 if T >= 1000 else 5,
                               names=("unrollgrad", "pytorch", "numpy"))
            row = [str(T), str(H), f"{ts['unrollgrad'] * 1e3:.1f} ms", f"{ts['unrollgrad'] / T * 1e6:.0f} us"]
            for other in ("pytorch", "numpy"):
                row.append(fmt_times(ts["unrollgrad"] / ts[other]) if other in ts else "-")
            rows.append(row)
    print(
        format_table(
            "Scale: batch 32, 16 in, 10 classes, forward + backward (median; fresh processes)",
            ["T", "hidden", "unrollgrad", "per step", "vs PyTorch", "vs numpy"],
            rows,
            args.markdown,
        )
    )


if __name__ == "__main__":
    main()
