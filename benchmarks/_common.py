"""What every benchmark needs: fresh-process workers, interleaved repeats, node counts, tables.

A benchmark module is both the conductor and the worker. The conductor calls
:func:`run_worker`, which starts ``python -m <module> --worker ARGS...`` in a fresh process;
the module's ``--worker`` branch measures one thing and hands it back with :func:`reply`
(one JSON line on stdout). A fresh process per measurement means no engine pays for the
garbage, the warm caches or the heap fragmentation that another one left behind.

This machine is noisy, so timings are repeated in :func:`interleaved` rounds (the engines take
turns going first, so slow spells hit both) and summarised by their median.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # workers run from here, so `-m benchmarks.x` resolves


class WorkerFailed(RuntimeError):
    """A worker process exited with an error, or replied with something that is not JSON."""

    def __init__(self, command: list[str], returncode: int, stderr: str):
        self.returncode = returncode
        self.stderr = stderr
        tail = "\n".join(stderr.strip().splitlines()[-15:])
        super().__init__(f"worker `{' '.join(command)}` exited with status {returncode}:\n{tail}")

    @property
    def last_line(self) -> str:
        """The last line of the worker's stderr (usually the exception), or how it died."""
        lines = self.stderr.strip().splitlines()
        if lines:
            return lines[-1]
        if self.returncode < 0:
            return f"killed by signal {-self.returncode}"
        return f"exit status {self.returncode}"


def run_worker(module: str, *args, timeout: float = 600.0) -> dict:
    """Run ``python -m module --worker *args`` in a fresh process and return its :func:`reply`."""
    command = [sys.executable, "-m", module, "--worker", *map(str, args)]
    try:
        proc = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise WorkerFailed(command, -1, f"timed out after {timeout:g} s") from exc
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise WorkerFailed(command, proc.returncode, proc.stderr)
    try:
        return json.loads(lines[-1])
    except json.JSONDecodeError as exc:
        raise WorkerFailed(command, proc.returncode, f"reply is not JSON: {lines[-1]!r}") from exc


def reply(**result) -> None:
    """Hand a worker's measurements back to :func:`run_worker` (the last line of stdout)."""
    print(json.dumps(result), flush=True)


def interleaved(engines: list[str], repeats: int, measure, label: str | None = "") -> dict[str, list]:
    """``measure(engine)`` ``repeats`` times per engine, in rounds whose starting engine rotates.

    Returns ``{engine: [result of round 0, round 1, ...]}``. Each round is reported on stderr
    under ``label``, unless it is None.
    """
    results: dict[str, list] = {engine: [] for engine in engines}
    for r in range(repeats):
        if label is not None:
            progress(f"{label} round {r + 1}/{repeats}")
        k = r % len(engines)
        for engine in engines[k:] + engines[:k]:
            results[engine].append(measure(engine))
    return results


def median(xs) -> float:
    return statistics.median(xs)


def count_nodes(root) -> int:
    """Number of distinct nodes reachable from ``root`` through ``_prev`` (any engine that
    stores parents there: unrollgrad, micrograd). Iterative, so any depth works."""
    seen = {id(root)}
    stack = [root]
    while stack:
        for parent in stack.pop()._prev:
            if id(parent) not in seen:
                seen.add(id(parent))
                stack.append(parent)
    return len(seen)


def progress(message: str) -> None:
    """A status line on stderr, so stdout holds only the report."""
    print(f"  ... {message}", file=sys.stderr, flush=True)


def environment_line(*packages: str) -> str:
    """Python, the given packages' versions, the machine and today's date, on one line."""
    parts = [f"Python {platform.python_version()} ({platform.python_implementation()})"]
    for name in packages:
        try:
            parts.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            parts.append(f"{name} not installed")
    parts.append(f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs ({cpu_model()})")
    parts.append(datetime.date.today().isoformat())
    return ", ".join(parts)


def cpu_model(path: str = "/proc/cpuinfo") -> str:
    """The processor's name, as the system reports it, with its family and model numbers and
    whether it has AVX-512, where the system says. NOTE: they belong beside the figures: the
    relative speed of BLAS products in different layouts, which some of the engine's choices
    rest on, differs between processors (see the README's speed section), and numpy's
    ``tanh`` takes about 2 ns per float64 with AVX-512 and 17 to 20 ns without it, which is
    a third of an RNN benchmark's time on both sides. The machine behind the benchmarks
    changes between sessions, and a virtual machine's "AMD EPYC" names neither."""
    fields = {}
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if not key:  # the end of the first processor's entry
                    break
                fields.setdefault(key, value.strip())
    except OSError:
        pass
    name = fields.get("model name") or platform.processor() or "processor unknown"
    details = []
    if "cpu family" in fields and "model" in fields:
        details.append(f"family {fields['cpu family']} model {fields['model']}")
    if "flags" in fields:
        details.append("AVX-512" if "avx512f" in fields["flags"].split() else "no AVX-512")
    return ", ".join([name, *details])


def format_table(title: str, header: list[str], rows: list[list[str]], markdown: bool = False) -> str:
    """A table with a title; the first column is left-aligned, the others right-aligned."""
    if markdown:
        lines = [f"**{title}**", ""]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "|".join([":---"] + ["---:"] * (len(header) - 1)) + "|")
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(row):
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        return "  ".join(cells).rstrip()

    rule = "-" * len(line(header))
    return "\n".join([title, rule, line(header), rule, *map(line, rows), rule])


def fmt_int(x: float) -> str:
    """``1234567.8`` -> ``'1,234,568'``."""
    return f"{x:,.0f}"


def fmt_rate(x: float) -> str:
    """Three significant figures with a thousands separator: ``1234567`` -> ``'1,230,000'``."""
    return f"{float(f'{x:.3g}'):,.0f}" if x >= 1000 else f"{x:.3g}"


def fmt_ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.1f} ms"


def fmt_times(x: float) -> str:
    """A ratio, ``7.25`` -> ``'7.2x'``."""
    return f"{x:.2f}x" if x < 10 else f"{x:.1f}x"


def aligned(a):
    """A copy of the array ``a`` whose data starts at a multiple of 64 bytes, as the data of
    every Tensor the constructor makes does (``autograd.tensor.ALIGNMENT``).

    NOTE: the numpy references get their weights this way. OpenBLAS multiplies by a
    misaligned right-hand matrix more slowly (an RNN step's H_{t-1} W_hh took 17.5 µs
    instead of 13), and numpy's arrays start at multiples of 16 bytes wherever its
    allocator puts them: a reference run on its weights as they come would be measured
    with that luck, good or bad, against the engine's aligned parameters."""
    from autograd.tensor import _aligned_empty

    out = _aligned_empty(a.shape, a.dtype)
    out[...] = a
    return out


_COPY_FASTER: dict = {}  # (rows of g, shape, dtype) -> whether the copy multiplies faster, in this process


def backward_transpose(W, rows: int):
    """Wᵀ for the products g Wᵀ of a hand-written backward pass (g of ``rows`` rows): the
    transposed view, or an aligned contiguous copy of it where that multiplies faster on
    this machine, as the engine chooses for its own products (``autograd.tensor._transposed``,
    by the same measurement, ``_copy_is_faster``, made once per process, in its untimed
    first run) and under the same rule (no copy past 2**16 entries). Call it once per pass:
    the copy is made anew each time, as the engine makes its own.

    NOTE: on the Intel Xeon of 2026-12-04 g W_hhᵀ for a (32 x 128) g took 21 µs by the view
    and 13 µs by the copy; the references had used the view, so the engine's choice of the
    copy counted as an edge of its own (found by a review), which the numpy of these
    references gets as well now."""
    import numpy as np

    from autograd.tensor import _copy_is_faster

    if W.size > 1 << 16 or rows < 2:
        return W.T
    copy = aligned(W.T)
    key = (rows, W.shape, W.dtype.str)
    faster = _COPY_FASTER.get(key)
    if faster is None:
        g = np.random.default_rng(0).standard_normal((rows, W.shape[1])).astype(W.dtype)
        faster = _COPY_FASTER[key] = _copy_is_faster(g, W.T, copy, rounds=20)
    return copy if faster else W.T


def tanh_rnn_states(X, W_xh, W_hh, b_h):
    """The reference forward both RNN benchmarks hand-write in numpy: the input products of
    all steps as one product, then H_t = tanh(xw_t + H_{t-1} W_hh) step by step.
    Returns H_0..H_T, shape (T + 1, m, hidden), with H_0 = 0.

    NOTE: each tanh writes straight into its row of ``hs``, as the fast way would; it used
    to return a new array, copied in. That copy cost about 2 µs a step, but on the benchmark
    machine (AMD EPYC) a copy of 4 to 64 KB whose destination lies 8 to 24 bytes past the
    source, modulo 4096, takes ten times as long (20 µs for a 32 x 128 state; numpy's copy
    is the C library's memcpy). Where malloc put the step's temporary decided it: in
    processes shared with unrollgrad, half the steps of a pass now and then, mostly of the
    first, untimed one, but nothing kept it from the timed ones. Written in place, the
    reference takes 0 to 3% less time (in one process, taking turns), and never meets that
    copy."""
    import numpy as np

    T, m, n_in = X.shape
    H = W_hh.shape[0]
    xw = (X.reshape(T * m, n_in) @ W_xh + b_h).reshape(T, m, H)
    hs = np.empty((T + 1, m, H))
    hs[0] = 0.0
    for t in range(T):
        np.tanh(xw[t] + hs[t] @ W_hh, out=hs[t + 1])
    return hs
