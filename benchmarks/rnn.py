"""A many-to-many RNN trained with softmax cross-entropy: unrollgrad against PyTorch and numpy.

    python -m benchmarks.rnn [--repeats N] [--quick] [--no-scale] [--markdown]

The model: H_t = tanh(X_t W_xh + H_{t-1} W_hh + b_h), logits_t = H_t W_hy + b_y,
L = Σ_t mean over the batch of cross-entropy(logits_t, class_t); one forward and one
backward, float64. Three implementations, measured side by side in one run:

* unrollgrad: ``nn.RNNModel(mode="many_to_many")`` and ``nn.sequence_loss(nn.cross_entropy)``,
  then ``loss.backward()``; every gradient comes from the engine;
* PyTorch on the CPU at its default thread count (``torch.nn.RNN`` + ``torch.nn.Linear``),
  if the optional ``torch`` extra is installed; and, for reference, PyTorch's autograd on
  the same unrolled loop of generic ops that ``nn.RNN`` builds (one input product, then
  per step the slice ``xw[t]``, one ``addmm(xw_t, h, W_hh)`` and ``tanh``: the same three
  nodes), engine against engine;
* numpy written the fast way, with a hand-derived BPTT: the input projections, the readout
  and the weight gradients of all steps as single matrix products, only the recurrence
  (forward, and the δ_t backward) step by step; its weights start at multiples of 64 bytes,
  as the engine's parameters do (``_common.aligned``), so neither side gets the faster
  products by the luck of where numpy put an array, and its δ_t W_hhᵀ uses the faster
  layout of W_hhᵀ here, view or copy, as the engine's does (``_common.backward_transpose``).

Every implementation is timed in fresh processes, in interleaved rounds. PyTorch gets
processes of its own: its worker threads keep spinning after it returns, and in a shared
process they slow whatever runs next. unrollgrad and numpy share a process, their runs
taking turns: on this machine processes differ more than runs do, and runs that take
turns share their process's luck. Each process starts with an untimed run of each
implementation (two in the scale table: see ``SCALE_WARMUPS``).

Goals at T=100, batch 32, 16 inputs, 128 hidden, 10 classes: at most 0.75x PyTorch's
time, within 1.25x of the fast numpy, and time growing linearly in T (the scale table: from
T=100 to T=1000, the time per step grows at most 1.15x as much as numpy's, whose work per
step is fixed; see ``linearity``).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import nn

from ._common import (
    aligned,
    backward_transpose,
    environment_line,
    fmt_times,
    format_table,
    median,
    progress,
    reply,
    run_worker,
    tanh_rnn_states,
)

GOAL_TORCH, GOAL_NUMPY = 0.75, 1.25
GOAL_LINEAR = 1.15  # unrollgrad's growth of time per step in T over numpy's (see linearity)
# Untimed runs per process before the scale table's timed ones. NOTE: at 512 hidden units and
# T=1000 the first two runs of a process are the allocator's warm-up: the first faults in
# about 160,000 pages, and the second, with a few thousand faults, still took 1.2 to 1.7x the
# time of the runs after it, which agreed with T=100's time per step to a few percent. A
# training loop runs in that steady state after its first two steps.
SCALE_WARMUPS = 2


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
    # The gradients themselves, as PyTorch's run hands back its .grad arrays: grad_dict()
    # would copy them, work that no other implementation here does.
    return loss.item(), {name: p.grad for name, p in model.named_parameters()}


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
    # Only the recurrence runs step by step: δ_t = (dL/dH_t + δ_{t+1} W_hhᵀ) ⊙ (1 - H_t²),
    # written straight into its row of deltas. The weight gradients are sums over the steps,
    # Σ_t H_{t-1}ᵀ δ_t and Σ_t X_tᵀ δ_t, each one product over all of them afterwards.
    deltas = np.empty((T, m, H))
    d_h = d_states[T - 1]
    W_hhT = backward_transpose(W_hh, m)  # the faster layout of W_hhᵀ here, as the engine takes
    for t in range(T - 1, -1, -1):
        delta = np.multiply(d_h, 1.0 - hs[t + 1] * hs[t + 1], out=deltas[t])
        if t:
            d_h = d_states[t - 1] + delta @ W_hhT
    flat = deltas.reshape(T * m, H)
    g_hh = hs[:-1].reshape(T * m, H).T @ flat
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
        # Node for node what unrollgrad records: one product for the input projections, then
        # per step the step's slice, one addmm (xw_t + H_{t-1} W_hh) and tanh.
        xw = torch.addmm(rnn.bias_ih_l0 + rnn.bias_hh_l0, x.reshape(T * m, n_in), rnn.weight_ih_l0.T)
        xw = xw.reshape(T, m, n_h)
        w_hh = rnn.weight_hh_l0.T
        h = torch.zeros(m, n_h, dtype=torch.float64)
        hs = []
        for t in range(T):
            h = torch.tanh(torch.addmm(xw[t], h, w_hh))
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
# The implementations that share a process, their runs alternating (see measure).
SHARED = ("unrollgrad", "numpy")


def worker(names: str, T: int, m: int, n_in: int, n_h: int, n_out: int, runs: int, warmups: int = 1) -> None:
    """In a fresh process, for each implementation in ``names`` ("a" or "a+b"): ``warmups``
    untimed runs (the first gives a fingerprint of its loss and gradients), then ``runs``
    timed forward+backward passes; with two, their runs alternate, and which goes first
    alternates too."""
    model, X, target = problem(T, m, n_in, n_h, n_out)
    sd = model.state_dict()
    weights = [aligned(sd[k]) for k in ("rnn.cells.0.W_xh", "rnn.cells.0.W_hh", "rnn.cells.0.b_h", "W_hy", "b_y")]
    ref_loss, ref_grads = run_numpy(weights, X, target)
    runners, out = {}, {}
    for name in names.split("+"):
        if name == "unrollgrad":
            runners[name] = lambda: run_unrollgrad(model, X, target)
        elif name == "numpy":
            runners[name] = lambda: run_numpy(weights, X, target)
        else:
            made = torch_runner(model, X, target, unrolled=name == "pytorch-unrolled")
            if made is None:
                out[name] = {"missing": True}
                continue
            runners[name], torch = made
            out[name] = {"threads": torch.get_num_threads()}
    for name, run in runners.items():  # the first run, against numpy's, every entry of every gradient
        loss, grads = run()
        err = max(float(np.max(np.abs(np.asarray(grads[k]) - g))) for k, g in ref_grads.items())
        out.setdefault(name, {}).update(times=[], grad_err=err, loss_err=abs(loss - ref_loss) / abs(ref_loss))
    order = list(runners)
    for i in range(warmups - 1 + runs):
        for name in order if i % 2 == 0 else order[::-1]:
            t0 = time.perf_counter()
            runners[name]()
            if i >= warmups - 1:
                out[name]["times"].append(time.perf_counter() - t0)
    reply(**out)


def measure(T, m, n_in, n_h, n_out, repeats, runs_per_process=5, names=IMPLEMENTATIONS, shared_runs=10,
            warmups=1):
    """Median seconds per forward+backward of each implementation; how far each is from
    numpy's in its worst process (the largest absolute difference over every entry of every
    gradient, and the relative difference of the loss); and the ratio unrollgrad / numpy of
    each pair of their runs.

    Every implementation runs in fresh processes, one per round, the rounds interleaved and
    their order rotating. Each PyTorch implementation gets a process of its own
    (``runs_per_process`` runs): PyTorch's worker threads keep spinning after it returns,
    and in a shared process they would slow whatever ran next. unrollgrad and numpy share
    one (``shared_runs`` runs of each, taking turns). NOTE: on this machine a process's runs
    agree with each other to a few percent, but the medians of two processes a second apart
    differ by up to 1.4x; two implementations in separate processes compare the processes'
    luck as much as the code, and seven rounds gave the unrollgrad / numpy ratio anywhere
    from 1.10x to 1.47x for the same code. Runs that take turns in one process share its
    luck.
    """
    groups = ["+".join(n for n in SHARED if n in names)] + [n for n in names if n not in SHARED]
    results = {name: [] for name in names}
    replies, paired, agreement = {}, [], {}
    for r in range(repeats):
        k = r % len(groups)
        for group in groups[k:] + groups[:k]:
            if all(replies.get(name, {}).get("missing") for name in group.split("+")):
                continue
            shared = "+" in group
            got = run_worker("benchmarks.rnn", group, T, m, n_in, n_h, n_out,
                             shared_runs if shared else runs_per_process, warmups)
            replies.update(got)
            for name, one in got.items():
                results[name].extend(one.get("times", []))
                if not one.get("missing"):
                    worst = agreement.get(name, (0.0, 0.0))
                    agreement[name] = (max(worst[0], one["grad_err"]), max(worst[1], one["loss_err"]))
            if shared:
                paired += [u / n for u, n in zip(got["unrollgrad"]["times"], got["numpy"]["times"])]
    times = {name: median(ts) for name, ts in results.items() if ts}
    return times, agreement, replies.get("pytorch", {}).get("threads"), paired


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=9,
                        help="rounds, each a fresh process per PyTorch implementation and one for unrollgrad "
                             "and numpy (taking turns), 10 timed runs of each")
    parser.add_argument("--quick", action="store_true", help="few repeats and a small scale table")
    parser.add_argument("--no-scale", action="store_true", help="skip the scale table")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--worker", nargs=8, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        name, *sizes = args.worker
        worker(name, *map(int, sizes))
        return
    repeats = 3 if args.quick else args.repeats
    print(environment_line("numpy", "torch"))
    print()

    progress("headline size")
    t, agree, threads, paired = measure(100, 32, 16, 128, 10, repeats, runs_per_process=10)
    rows = []
    for name, label in [
        ("unrollgrad", "unrollgrad (nn.RNNModel, loss.backward())"),
        ("pytorch", f"PyTorch CPU ({threads} threads), torch.nn.RNN"),
        ("pytorch-unrolled", f"PyTorch CPU ({threads} threads), the same unrolled loop of ops"),
        ("numpy", "numpy, hand-derived BPTT (fast)"),
    ]:
        if name == "numpy":
            rows.append([label, f"{t[name] * 1e3:.2f} ms", fmt_times(t["unrollgrad"] / t[name]), "(reference)", "-"])
        elif name in t:
            ratio = t["unrollgrad"] / t[name]
            grad_err, loss_err = agree[name]
            rows.append([label, f"{t[name] * 1e3:.2f} ms", fmt_times(ratio), f"{grad_err:.1e}", f"{loss_err:.1e}"])
        else:
            rows.append([label, "not installed", "-", "-", "-"])
    print(
        format_table(
            "Many-to-many RNN + softmax cross-entropy, T=100, batch 32, 16 in, 128 hidden, 10 classes, "
            "forward + backward (median; fresh processes: PyTorch alone, unrollgrad and numpy taking turns)",
            ["implementation", "time", "unrollgrad / this", "gradients: max abs difference from numpy",
             "loss: relative difference"],
            rows,
            args.markdown,
        )
    )
    print()
    r_np = t["unrollgrad"] / t["numpy"]
    print(f"goal: within {GOAL_NUMPY}x of the fast numpy -> {r_np:.2f}x {'PASS' if r_np <= GOAL_NUMPY else 'MISS'}")
    q = np.percentile(paired, [0, 25, 50, 75, 100])
    print(f"  unrollgrad / numpy in each of the {len(paired)} pairs of runs that took turns: median {q[2]:.2f}x, "
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
    rows, per_step = [], {}
    for H in Hs:
        for T in Ts:
            progress(f"scale T={T} hidden={H}")
            ts, _, _, paired = measure(T, 32, 16, H, 10, max(3, repeats // 2), runs_per_process=3 if T >= 1000 else 5,
                                       names=("unrollgrad", "pytorch", "numpy"), shared_runs=3 if T >= 1000 else 5,
                                       warmups=SCALE_WARMUPS)
            per_step[H, T] = (ts["unrollgrad"] / T, ts["numpy"] / T, median(paired))
            row = [str(T), str(H), f"{ts['unrollgrad'] * 1e3:.1f} ms", f"{ts['unrollgrad'] / T * 1e6:.0f} us",
                   f"{ts['numpy'] / T * 1e6:.0f} us"]
            for other in ("pytorch", "numpy"):
                row.append(fmt_times(ts["unrollgrad"] / ts[other]) if other in ts else "-")
            rows.append(row)
    print(
        format_table(
            "Scale: batch 32, 16 in, 10 classes, forward + backward (median; fresh processes)",
            ["T", "hidden", "unrollgrad", "per step", "numpy per step", "vs PyTorch", "vs numpy"],
            rows,
            args.markdown,
        )
    )
    print()
    print(linearity(per_step, Ts[-2], Ts[-1]))


def linearity(per_step: dict, short: int, long: int) -> str:
    """The goal line for time linear in T: how the time per step changes from T = ``short``
    to T = ``long`` at each hidden size, unrollgrad's and numpy's. ``per_step[H, T]`` is
    (unrollgrad's time per step, numpy's, the median of unrollgrad / numpy over the pairs of
    runs that took turns in one process).

    NOTE: the hand-derived numpy BPTT does the same work at every step, so its time is linear
    in T by construction; where its time per step grows too, the machine grows it (at 512
    hidden units and T = 1000 each run writes hundreds of megabytes of fresh memory, and what
    that costs varies with the machine's state). So the goal compares the two growths: it
    holds if, at every hidden size, unrollgrad's time per step grows at most GOAL_LINEAR
    times as much as numpy's does. The goal reads that off the pairs: the median ratio
    unrollgrad / numpy at T = ``long`` over the same at T = ``short``, each ratio from two
    runs in one process, which share its luck. The same from the medians of each
    implementation's runs over all processes (the growths printed) is printed beside it:
    there the processes' luck does not cancel, which at 512 hidden units moved it by more
    than the goal's margin between runs of the same code (see the README)."""
    parts, ok = [], True
    for H in sorted({h for h, _ in per_step}):
        (u0, n0, r0), (u1, n1, r1) = per_step[H, short], per_step[H, long]
        relative = r1 / r0
        ok = ok and relative <= GOAL_LINEAR
        parts.append(f"{H} hidden: unrollgrad {u1 / u0 - 1:+.0%}, numpy {n1 / n0 - 1:+.0%} "
                     f"(ratio of the growths {relative:.2f} by the pairs, {(u1 / u0) / (n1 / n0):.2f} by the medians)")
    return (f"goal: time linear in T, per step from T={short} to T={long}: " + "; ".join(parts)
            + f" -> {'PASS' if ok else 'MISS'} (by the pairs: at most {GOAL_LINEAR}x numpy's growth, "
            "whose work per step is fixed)")


if __name__ == "__main__":
    main()
