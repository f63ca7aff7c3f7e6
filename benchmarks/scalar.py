"""The scalar engine against micrograd: speed, memory per node, and the deepest graph backward handles.

Run ``python -m benchmarks.scalar`` (a few minutes); ``--quick`` is a smoke test, ``--markdown``
prints the tables for the README, ``--repeats N`` sets the number of timing rounds.

Both engines build exactly the same graphs, from one piece of code:

* ``rnn``: a scalar relu RNN, H_t = relu(X_t W_xh + H_{t-1} W_hh + b_h) with H_0 = 0, 4 inputs,
  16 hidden units, unrolled for T = 30 steps; loss = the sum of H_T. Written once, using only
  what micrograd has (``+``, ``*``, ``relu``, ``sum``); the inputs X_t are plain floats.
* ``mlp``: micrograd's own ``MLP(16, [16, 16, 1])`` on 32 samples, loss = sum of squared errors.
  micrograd runs ``micrograd.nn``; unrollgrad runs the source of that same module with its own
  ``Value`` in place of micrograd's.

Every measurement runs in a fresh process, with the garbage collector at its defaults:

* time: forward (building the graph from the parameters to the loss) and ``loss.backward()``,
  repeated in interleaved rounds and reported as medians; nodes/s divides the number of nodes
  reachable from the loss by the time. The tables use the CPU time of the thread that runs
  the engine (``time.thread_time``), which equals the wall-clock time on an idle machine but,
  unlike it, leaves out the time spent waiting for a core on a busy one. Not the process's
  CPU time: importing numpy starts OpenBLAS's worker threads, which spin for a moment after
  start-up, and in some runs that doubled the process's CPU time of a forward pass that
  never calls numpy. The wall-clock medians are printed under each table;
* memory: tracemalloc's peak while the parameters and the graph are built (and, separately,
  through backward too), per node, in separate runs because tracing slows everything down;
* depth: the longest chain y_k = y_{k-1} + x whose backward succeeds at the default recursion
  limit (micrograd's recursive topological sort stops near 1,000).
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import math
import random
import sys
import time
import tracemalloc
from pathlib import Path
from types import SimpleNamespace

from benchmarks._common import (
    WorkerFailed,
    count_nodes,
    environment_line,
    fmt_int,
    fmt_ms,
    fmt_rate,
    fmt_times,
    format_table,
    interleaved,
    median,
    progress,
    reply,
    run_worker,
)

MODULE = "benchmarks.scalar"
ENGINES = ["unrollgrad", "micrograd"]
SEED = 0
SPEED_GOAL = 5.0  # forward+backward on the RNN graph, times micrograd's speed


# --- the engines -------------------------------------------------------------------------


def value_class(engine: str):
    """The engine's ``Value``. Only that engine is imported: the garbage collector's schedule
    depends on everything alive in the process, so each worker holds what its users would."""
    if engine == "micrograd":
        from micrograd.engine import Value
    elif engine == "unrollgrad":
        from autograd import Value
    else:
        raise SystemExit(f"unknown engine {engine!r}; expected one of {ENGINES}")
    return Value


@functools.cache
def mlp_class(engine: str):
    """micrograd's ``MLP``, built on the engine's ``Value``."""
    if engine == "micrograd":
        from micrograd.nn import MLP

        return MLP
    return _micrograd_nn_on(value_class(engine)).MLP


def _micrograd_nn_on(Value) -> SimpleNamespace:
    """micrograd's ``nn`` module, executed from its installed source with ``Value`` swapped in."""
    spec = importlib.util.find_spec("micrograd.nn")
    if spec is None or spec.origin is None:
        raise ImportError("micrograd is not installed (pip install micrograd)")
    namespace = {"__name__": "micrograd_nn_on_unrollgrad"}
    exec(compile(Path(spec.origin).read_text(), spec.origin, "exec"), namespace)
    # The module's classes look `Value` up among its globals when they run, so rebinding the
    # name after its `from micrograd.engine import Value` makes every Neuron use ours.
    namespace["Value"] = Value
    return SimpleNamespace(**namespace)


# --- the workloads: one piece of code per graph, for both engines --------------------------

INPUT_SIZE, HIDDEN_SIZE, TIME_STEPS = 4, 16, 30
MLP_SIZES, MLP_SAMPLES = (16, [16, 16, 1]), 32


def rnn_setup(engine: str):
    """Parameters (uniform in ±1/sqrt(fan-in), biases 0) and inputs; returns (forward, parameters)."""
    Value = value_class(engine)
    rng = random.Random(SEED)

    def matrix(rows, cols):
        bound = 1.0 / math.sqrt(rows)
        return [[Value(rng.uniform(-bound, bound)) for _ in range(cols)] for _ in range(rows)]

    W_xh = matrix(INPUT_SIZE, HIDDEN_SIZE)
    W_hh = matrix(HIDDEN_SIZE, HIDDEN_SIZE)
    b_h = [Value(0.0) for _ in range(HIDDEN_SIZE)]
    xs = [[rng.uniform(-1.0, 1.0) for _ in range(INPUT_SIZE)] for _ in range(TIME_STEPS)]
    parameters = [w for row in W_xh + W_hh for w in row] + b_h
    return (lambda: rnn_loss(xs, W_xh, W_hh, b_h)), parameters


def rnn_loss(xs, W_xh, W_hh, b_h):
    """sum_j H_T[j], where H_0 = 0 and
    H_t[j] = relu(sum_i X_t[i] W_xh[i][j] + sum_k H_{t-1}[k] W_hh[k][j] + b_h[j])."""
    units = range(len(b_h))
    h_prev = [0.0] * len(b_h)
    for x_t in xs:
        h_prev = [sum(_terms(x_t, W_xh, j) + _terms(h_prev, W_hh, j), b_h[j]).relu() for j in units]
    return sum(h_prev)


def _terms(v, W, j):
    """The terms v[i] W[i][j] whose sum is (v W)[j]."""
    return [v[i] * W[i][j] for i in range(len(v))]


def mlp_setup(engine: str):
    """micrograd's MLP (weights drawn from the seeded ``random`` module, as micrograd does) and
    32 samples with targets ±1; returns (forward, parameters)."""
    MLP = mlp_class(engine)
    random.seed(SEED)
    model = MLP(*MLP_SIZES)
    rng = random.Random(SEED + 1)
    X = [[rng.uniform(-1.0, 1.0) for _ in range(MLP_SIZES[0])] for _ in range(MLP_SAMPLES)]
    y = [rng.choice((-1.0, 1.0)) for _ in range(MLP_SAMPLES)]
    return (lambda: sum((model(x) - target) ** 2 for x, target in zip(X, y))), model.parameters()


WORKLOADS = {
    "rnn": SimpleNamespace(
        load=value_class,
        setup=rnn_setup,
        title=f"Scalar relu RNN: {INPUT_SIZE} inputs, {HIDDEN_SIZE} hidden units, "
        f"T = {TIME_STEPS} steps, loss = sum of H_T",
    ),
    "mlp": SimpleNamespace(
        load=mlp_class,
        setup=mlp_setup,
        title=f"micrograd's MLP(16, [16, 16, 1]) on {MLP_SAMPLES} samples, loss = sum of squared errors",
    ),
}


# --- the worker: one measurement in a fresh process ----------------------------------------


def worker(mode: str, engine: str, arg: str) -> None:
    if mode == "depth":
        reply(**_chain_backward(value_class(engine), _chain_length(arg)))
        return
    if arg not in WORKLOADS:
        raise SystemExit(f"unknown workload {arg!r}; expected one of {list(WORKLOADS)}")
    WORKLOADS[arg].load(engine)  # imports are neither timed nor traced
    setup = WORKLOADS[arg].setup
    if mode == "time":
        forward, parameters = setup(engine)
        t0, c0 = time.perf_counter(), time.thread_time()
        loss = forward()
        c1 = time.thread_time()
        loss.backward()
        c2, t2 = time.thread_time(), time.perf_counter()
        reply(forward=c1 - c0, backward=c2 - c1, wall=t2 - t0, **_fingerprint(loss, parameters))
    elif mode == "memory":
        tracemalloc.start()
        forward, parameters = setup(engine)
        loss = forward()
        forward_peak = tracemalloc.get_traced_memory()[1]
        loss.backward()
        total_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        reply(forward_peak=forward_peak, total_peak=total_peak, **_fingerprint(loss, parameters))
    else:
        raise SystemExit(f"unknown worker mode {mode!r}; expected time, memory or depth")


def _fingerprint(loss, parameters) -> dict:
    """What must agree between engines if they built the same graph."""
    return {
        "nodes": count_nodes(loss),
        "loss": float(loss.data),
        "grad_norm": math.fsum(abs(p.grad) for p in parameters),
    }


def _chain_length(arg: str) -> int:
    try:
        n = int(arg)
    except ValueError:
        n = 0
    if n < 1:
        raise SystemExit(f"depth worker expects a chain length (a positive int), got {arg!r}")
    return n


def _chain_backward(Value, n: int) -> dict:
    """Backward through y_n, where y_0 = x and y_k = y_{k-1} + x; dy_n/dx must be n + 1."""
    x = Value(1.0)
    y = x
    for _ in range(n):
        y = y + x
    try:
        y.backward()
    except RecursionError:
        return {"ok": False, "error": "RecursionError"}
    del y  # freeing a deep graph must not crash either
    if x.grad != n + 1:
        return {"ok": False, "error": f"wrong gradient {x.grad} (expected {n + 1})"}
    return {"ok": True, "error": None}


# --- the conductor -------------------------------------------------------------------------


def measure_time(workload: str, repeats: int) -> dict[str, list[dict]]:
    return interleaved(
        ENGINES, repeats, lambda engine: run_worker(MODULE, "time", engine, workload), f"{workload} time"
    )


def measure_memory(workload: str) -> dict[str, dict]:
    progress(f"{workload} memory")
    return {engine: run_worker(MODULE, "memory", engine, workload) for engine in ENGINES}


def _chain_ok(engine: str, n: int) -> tuple[bool, str | None]:
    try:
        result = run_worker(MODULE, "depth", engine, n)
    except WorkerFailed as exc:
        return False, exc.last_line
    return result["ok"], result["error"]


def deepest_chain(engine: str, lengths: list[int], precision: float) -> dict:
    """The longest chain in ``lengths`` that backward handles; after a failure, bisect
    between the last success and the failure until they are within ``precision``."""
    progress(f"{engine} chain depth")
    best, failed, reason = 0, None, None
    for n in lengths:
        ok, why = _chain_ok(engine, n)
        if not ok:
            failed, reason = n, why
            break
        best = n
    if failed is not None:
        lo, hi = best, failed
        while hi - lo > max(1, int(lo * precision)):
            mid = (lo + hi) // 2
            ok, why = _chain_ok(engine, mid)
            if ok:
                lo = mid
            else:
                hi, reason = mid, why
        best, failed = lo, hi
    return {"best": best, "failed": failed, "reason": reason, "limit": lengths[-1]}


def _same_graph(a: dict, b: dict) -> bool:
    return (
        a["nodes"] == b["nodes"]
        and math.isclose(a["loss"], b["loss"], rel_tol=1e-9, abs_tol=1e-12)
        and math.isclose(a["grad_norm"], b["grad_norm"], rel_tol=1e-9, abs_tol=1e-12)
    )


def summarise(workload: str, times: dict, memory: dict) -> dict:
    """Medians, ranges and memory per node for one workload; raises if the engines' graphs differ."""
    runs = [r for engine in ENGINES for r in times[engine]] + list(memory.values())
    if not all(_same_graph(runs[0], r) for r in runs):
        seen = {e: (times[e][0]["nodes"], times[e][0]["loss"], times[e][0]["grad_norm"]) for e in ENGINES}
        raise RuntimeError(f"{workload}: the engines built different graphs (nodes, loss, sum |grad|) {seen}")
    nodes = runs[0]["nodes"]
    out = {"nodes": nodes, "loss": runs[0]["loss"], "grad_norm": runs[0]["grad_norm"]}
    for engine in ENGINES:
        totals = [r["forward"] + r["backward"] for r in times[engine]]
        out[engine] = {
            "forward": median(r["forward"] for r in times[engine]),
            "backward": median(r["backward"] for r in times[engine]),
            "total": median(totals),
            "total_range": (min(totals), max(totals)),
            "wall": median(r["wall"] for r in times[engine]),
            "forward_bytes": memory[engine]["forward_peak"] / nodes,
            "total_bytes": memory[engine]["total_peak"] / nodes,
        }
    out["round_speedups"] = [
        (m["forward"] + m["backward"]) / (u["forward"] + u["backward"])
        for u, m in zip(times["unrollgrad"], times["micrograd"])
    ]
    out["speedup"] = out["micrograd"]["total"] / out["unrollgrad"]["total"]
    out["best_speedup"] = out["micrograd"]["total_range"][0] / out["unrollgrad"]["total_range"][0]
    return out


def workload_table(workload: str, s: dict, repeats: int, markdown: bool) -> str:
    n, u, m = s["nodes"], s["unrollgrad"], s["micrograd"]
    rows = [["nodes in the graph", fmt_int(n), fmt_int(n), "same graph"]]
    for key, name in [("forward", "forward"), ("backward", "backward"), ("total", "forward + backward")]:
        advantage = fmt_times(m[key] / u[key])
        rows.append([f"{name}, median time", fmt_ms(u[key]), fmt_ms(m[key]), advantage])
        rows.append([f"{name}, nodes/s", fmt_rate(n / u[key]), fmt_rate(n / m[key]), advantage])
    # Noise on a shared machine only ever adds time, so the fastest run of each is the
    # estimate least disturbed by it.
    (ubest, _), (mbest, _) = u["total_range"], m["total_range"]
    rows.append(["forward + backward, best run", fmt_ms(ubest), fmt_ms(mbest), fmt_times(mbest / ubest)])
    for key, name in [("forward_bytes", "forward"), ("total_bytes", "forward + backward")]:
        advantage = fmt_times(m[key] / u[key])
        rows.append([f"peak bytes/node, {name}", fmt_int(u[key]), fmt_int(m[key]), advantage])
    header = ["metric", "unrollgrad", "micrograd", "unrollgrad advantage"]
    table = format_table(WORKLOADS[workload].title, header, rows, markdown)
    (ulo, uhi), (mlo, mhi) = u["total_range"], m["total_range"]
    speedups = s["round_speedups"]
    note = (
        f"CPU time of the engine's thread, medians of {repeats} fresh processes per engine; "
        f"forward + backward ranged over "
        f"{fmt_ms(ulo)} to {fmt_ms(uhi)} (unrollgrad) and {fmt_ms(mlo)} to {fmt_ms(mhi)} (micrograd), "
        f"the speed-up per round over {fmt_times(min(speedups))} to {fmt_times(max(speedups))}. "
        f"Wall clock, medians: {fmt_ms(u['wall'])} and {fmt_ms(m['wall'])}, a speed-up of "
        f"{fmt_times(m['wall'] / u['wall'])}. "
        f"Advantage: micrograd's time or bytes over unrollgrad's (above 1 favours unrollgrad). "
        f"Same result in both engines: loss {s['loss']:.10g}, sum of |grad| over the parameters "
        f"{s['grad_norm']:.10g}."
    )
    return f"{table}\n\n{note}"


def depth_table(depths: dict, markdown: bool) -> str:
    rows = []
    for engine, d in depths.items():
        if d["failed"] is None:
            rows.append([engine, fmt_int(d["best"]), f"none up to {fmt_int(d['limit'])} (the probe's limit)"])
        else:
            rows.append([engine, fmt_int(d["best"]), f"{d['reason']} at {fmt_int(d['failed'])}"])
    title = "Deepest chain y_k = y_{k-1} + x that backward handles, at the default recursion limit"
    return format_table(title, ["engine", "longest chain", "first failure"], rows, markdown)


def goals(summaries: dict, markdown: bool) -> str:
    speedup, best = summaries["rnn"]["speedup"], summaries["rnn"]["best_speedup"]
    memory = {}  # unrollgrad's peak bytes per node while building, as a fraction of micrograd's
    for workload, s in summaries.items():
        memory[workload] = s["unrollgrad"]["forward_bytes"] / s["micrograd"]["forward_bytes"]
    lines = [
        f"Goal: forward + backward on the RNN graph at least {SPEED_GOAL:g}x as fast as micrograd: "
        f"{fmt_times(speedup)} by the medians, {fmt_times(best)} by the best runs -> "
        f"{'PASS' if min(speedup, best) >= SPEED_GOAL else 'MISS'}",
        "Goal: no more memory per node than micrograd (peak while building the graph): "
        + ", ".join(f"{w} {r:.2f} of micrograd's" for w, r in memory.items())
        + f" -> {'PASS' if all(r <= 1.0 for r in memory.values()) else 'MISS'}",
    ]
    return "\n".join(f"- {line}" for line in lines) if markdown else "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scalar", description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, help="timing rounds per workload (default 15; 3 with --quick)")
    parser.add_argument("--quick", action="store_true", help="a smoke test: 3 rounds, chains up to 10^4")
    parser.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    parser.add_argument("--worker", nargs=3, metavar=("MODE", "ENGINE", "ARG"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(*args.worker)
        return 0
    repeats = args.repeats if args.repeats is not None else (3 if args.quick else 15)
    if repeats < 1:
        parser.error(f"--repeats expects a positive number of rounds, got {repeats}")
    if importlib.util.find_spec("micrograd") is None:
        print("error: the scalar benchmark compares with micrograd, which is not installed;", file=sys.stderr)
        print("       run `make bench`, or `pip install micrograd` in this environment", file=sys.stderr)
        return 1
    started = time.perf_counter()
    try:
        summaries = {w: summarise(w, measure_time(w, repeats), measure_memory(w)) for w in WORKLOADS}
        lengths = [10**k for k in range(2, (4 if args.quick else 6) + 1)]
        depths = {engine: deepest_chain(engine, lengths, precision=0.01) for engine in ENGINES}
    except RuntimeError as exc:  # a worker failed (WorkerFailed), or the engines built different graphs
        print(f"error: {exc}", file=sys.stderr)
        return 1

    sections = [f"Environment: {environment_line('numpy', 'micrograd')}"]
    sections += [workload_table(w, s, repeats, args.markdown) for w, s in summaries.items()]
    sections += [depth_table(depths, args.markdown), goals(summaries, args.markdown)]
    print("\n\n".join(sections))
    progress(f"done in {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
