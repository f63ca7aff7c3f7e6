"""A tiny recurrent network trained with backpropagation through time, one scalar at a time.

The model, in the notation of the lecture notes (row vectors; here x_t has 2 entries and h_t 3):

    h_0 = 0
    h_t = tanh(x_t W_xh + h_{t-1} W_hh + b_h)      t = 1, 2, 3     (H_t = f1(X_t W1 + H_{t-1} Wh1 + b1))
    y   = h_3 W_hy + b_y
    L   = (1/N) sum_n (y_n - target_n)^2

In code: ``W_xh`` is W1 (2x3), ``W_hh`` is Wh1 (3x3), ``b_h`` is b1 (3), ``W_hy`` is the readout
(3x1, kept as a list of 3) and ``b_y`` its bias. Every weight is an ``autograd.Value``; there is
no ``nn`` module here, only the loop over time steps. The nodes of step t are created under
``scope(f"t={t}")``, so each node of the unrolled graph knows which step made it.

The same W_hh is used at every step, so one ``loss.backward()`` leaves in ``W_hh[i][j].grad``
the sum of the three steps' contributions. That sum is backpropagation through time: nothing
here is specific to recurrence. The demo reads each step's share off the intermediate nodes
(every node keeps its gradient) and prints the three matrices next to their sum.

Run it with ``python -m demos.tiny_rnn``.
"""

from __future__ import annotations

import math
import random

from autograd import Value, scope, topological_order

N_INPUTS, N_HIDDEN, N_STEPS, N_SEQUENCES = 2, 3, 3, 8


def setup(seed: int = 0):
    """The dataset and the initial parameters, both drawn from ``seed``.

    Returns ``(data, params)``: ``data`` is a list of ``(xs, target)`` with ``xs`` a list of
    ``N_STEPS`` input rows; ``params`` maps W_xh, W_hh, b_h, W_hy, b_y to (nested lists of) Values.
    The target, ``0.5 * sum_t (x_t[0] - x_t[1])``, needs the network to remember every step.
    """
    rng = random.Random(seed)
    data = []
    for _ in range(N_SEQUENCES):
        xs = [[rng.uniform(-1.0, 1.0) for _ in range(N_INPUTS)] for _ in range(N_STEPS)]
        data.append((xs, 0.5 * math.fsum(x[0] - x[1] for x in xs)))  # fsum: the same bits on every Python

    def matrix(rows, cols, name):
        return [[Value(rng.gauss(0.0, 0.5), f"{name}[{i}][{j}]") for j in range(cols)] for i in range(rows)]

    params = {
        "W_xh": matrix(N_INPUTS, N_HIDDEN, "W_xh"),
        "W_hh": matrix(N_HIDDEN, N_HIDDEN, "W_hh"),
        "b_h": [Value(0.0, f"b_h[{j}]") for j in range(N_HIDDEN)],
        "W_hy": [Value(rng.gauss(0.0, 0.5), f"W_hy[{i}]") for i in range(N_HIDDEN)],
        "b_y": Value(0.0, "b_y"),
    }
    return data, params


def parameters(params) -> list[Value]:
    """Every Value in ``params``, flattened."""
    flat = []
    for p in params.values():
        if isinstance(p, Value):
            flat.append(p)
        else:
            for row in p:
                flat.extend(row if isinstance(row, list) else [row])
    return flat


def rnn(params, xs) -> Value:
    """The network's output y for one input sequence ``xs``."""
    W_xh, W_hh, b_h, W_hy, b_y = (params[k] for k in ("W_xh", "W_hh", "b_h", "W_hy", "b_y"))
    h_prev = [0.0] * N_HIDDEN  # h_0 = 0
    for t, x_t in enumerate(xs, start=1):
        with scope(f"t={t}"):
            h = []
            for j in range(N_HIDDEN):
                a = sum((x_t[k] * W_xh[k][j] for k in range(N_INPUTS)), b_h[j])
                a = sum((h_prev[i] * W_hh[i][j] for i in range(N_HIDDEN)), a)
                h.append(a.tanh())
        h_prev = h
    return sum((h_prev[i] * W_hy[i] for i in range(N_HIDDEN)), b_y)


def mse_loss(params, data) -> Value:
    """L = (1/N) sum_n (y_n - target_n)^2 over the whole dataset."""
    return sum((rnn(params, xs) - target) ** 2 for xs, target in data) / len(data)


def contributions_by_step(loss: Value, W_hh) -> dict[str, list[list[float]]]:
    """Each time step's share of dL/dW_hh, after ``loss.backward()``.

    At step t the weight W_hh[i][j] enters exactly one product per sequence,
    p = h_{t-1}[i] * W_hh[i][j], and that use contributes dL/dp * h_{t-1}[i]. Summing over
    the products tagged ``t=...`` gives one matrix per step; the matrices add up to W_hh's grad.
    """
    position = {id(w): (i, j) for i, row in enumerate(W_hh) for j, w in enumerate(row)}
    shares: dict[str, list[list[float]]] = {}
    for node in topological_order(loss):
        if node.op != "*":
            continue
        for k, parent in enumerate(node.parents):
            if id(parent) in position:
                i, j = position[id(parent)]
                h_prev_i = node.parents[1 - k].data
                step = node.scope[-1]
                share = shares.setdefault(step, [[0.0] * len(W_hh[0]) for _ in W_hh])
                share[i][j] += node.grad * h_prev_i
    return shares


def main(steps: int = 40, lr: float = 0.2, seed: int = 0, verbose: bool = True):
    """Train with plain gradient descent for ``steps`` updates.

    Returns ``(losses, dL_dW_hh)``: ``losses[k]`` is the loss after k updates (``steps + 1``
    values) and ``dL_dW_hh`` (a 3x3 list of floats) is the gradient at the final weights, so
    ``main(steps=0)`` gives the gradient at the initial weights.
    """
    data, params = setup(seed)
    params_list = parameters(params)
    losses = []
    for step in range(steps + 1):
        loss = mse_loss(params, data)
        for p in params_list:
            p.grad = 0.0  # gradients accumulate across backward calls
        loss.backward()
        losses.append(loss.data)
        if step < steps:
            for p in params_list:
                p.data -= lr * p.grad
    dL_dW_hh = [[w.grad for w in row] for row in params["W_hh"]]
    if verbose:
        _report(losses, dL_dW_hh, contributions_by_step(loss, params["W_hh"]), lr)
    return losses, dL_dW_hh


def _report(losses, dL_dW_hh, shares, lr) -> None:
    n = len(losses) - 1
    print(f"Tiny RNN: {N_STEPS} time steps, {N_INPUTS} inputs, {N_HIDDEN} hidden units (tanh), "
          f"{N_SEQUENCES} sequences; gradient descent, lr={lr:g}\n")
    print(" step      loss")
    for k, loss in enumerate(losses):
        if k % 5 == 0 or k == n:
            print(f"{k:5d}  {loss:.6f}")
    print(f"\ndL/dW_hh after {n} updates, from one loss.backward(). W_hh is shared by the "
          f"{N_STEPS} steps, so its gradient\nis the sum of each step's contribution "
          "(read off the nodes created under scope(\"t=...\")):\n")
    blocks = [(f"t={t}", shares.get(f"t={t}")) for t in range(1, N_STEPS + 1)] + [("dL/dW_hh", dL_dW_hh)]
    width = 3 * 8 + 1
    print("   ".join(title.center(width) for title, _ in blocks).rstrip())
    for i in range(N_HIDDEN):
        cells = ["[" + " ".join(f"{v:+.4f}" for v in m[i]) + "]" for _, m in blocks]
        sep = [" + "] * (len(cells) - 2) + [" = "]
        print("".join(c + s for c, s in zip(cells, sep + [""])))
    print("\n(t=1 adds nothing: at the first step W_hh multiplies h_0 = 0.)")


if __name__ == "__main__":
    main()
