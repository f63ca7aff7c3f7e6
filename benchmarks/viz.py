"""Drawing the graph: the time to build the DOT description, for graphs of 1,000 to 100,000 nodes.

    python -m benchmarks.viz [--repeats N] [--quick] [--markdown]

The graph is a scalar RNN on the value engine, ``nn.RNN(1, 8, engine="value")`` unrolled for
T = 7, 66 and 660 steps (about 1,000, 10,000 and 100,000 nodes), with loss = Σ H_T and
``loss.backward()`` done. The time is that of ``draw_graph(loss, max_nodes=None,
max_steps=None, max_edges=None, ...)``, which builds the ``graphviz.Digraph`` and its DOT
text (Graphviz's ``dot`` does not run), in three
modes: the full graph, ``collapse=True`` and ``gradient_view=True`` (which runs each op's
backward once more, to measure the gradient along every edge). Medians of interleaved repeats.
If building is linear in the size of the graph, the time per node stays flat down each column.
``--quick`` skips the largest graph and repeats once.
"""

from __future__ import annotations

import argparse
import gc
import time

import numpy as np

import nn
from autograd import draw_graph, topological_order

from ._common import environment_line, format_table, interleaved, median, progress

STEPS = (7, 66, 660)
MODES = {"full": {}, "collapse": {"collapse": True}, "gradient view": {"gradient_view": True}}


def scalar_rnn_loss(T: int):
    """Σ H_T of a scalar RNN (1 input, 8 hidden units) unrolled for ``T`` steps, after backward."""
    rnn = nn.RNN(1, 8, engine="value", seed=0)
    x = np.random.default_rng(0).standard_normal((T, 1, 1))
    _, h_n = rnn(x)
    loss = sum(h_n.ravel())
    loss.backward()
    return loss


def time_drawing(loss, options: dict) -> float:
    gc.collect()
    start = time.perf_counter()
    draw_graph(loss, max_nodes=None, max_steps=None, max_edges=None, **options)
    return time.perf_counter() - start


def measure(T: int, repeats: int) -> list[list[str]]:
    """One table row per drawing mode for the RNN unrolled ``T`` steps."""
    loss = scalar_rnn_loss(T)
    order = topological_order(loss)
    n, edges = len(order), len({(p, c) for c in order for p in c._prev})
    times = interleaved(list(MODES), repeats, lambda mode: time_drawing(loss, MODES[mode]), f"T={T}")
    rows = []
    for mode, ts in times.items():
        t = median(ts)
        rows.append([f"T={T}", f"{n:,}", f"{edges:,}", mode, f"{t * 1e3:,.1f} ms", f"{t / n * 1e6:.1f} µs"])
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="skip the largest graph, one repeat: a smoke test")
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    steps = STEPS[:-1] if args.quick else STEPS
    repeats = 1 if args.quick else args.repeats

    rows = [row for T in steps for row in measure(T, repeats)]
    progress("done")
    header = ["graph", "nodes", "edges", "drawing", "time", "per node"]
    title = "draw_graph on a scalar RNN (value engine, 1 input, 8 hidden units): building the DOT text"
    print(format_table(title, header, rows, markdown=args.markdown))
    print(environment_line("numpy", "graphviz"))


if __name__ == "__main__":
    main()
