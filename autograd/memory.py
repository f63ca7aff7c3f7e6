"""Keeping freed memory for the next training step (glibc only).

A forward pass builds a graph that holds every intermediate array and, after backward,
every gradient; the next step frees all of it and builds the same again. With glibc's
default settings, freeing that much lets malloc hand the top of the heap back to the
system, and the next step faults every page in again. On the machines we measured, those
page faults cost more than the arithmetic: a T=100, 128-unit tanh RNN took 39 ms per
forward + backward with glibc's defaults and 21 ms with the settings below (hand-written
numpy, which allocates far less: 17 ms). See ``python -m benchmarks.tensor``.

So, when the Tensor engine imports this module, autograd raises glibc's trim threshold to
256 MB, keeps a top pad of 256 MB, and fixes its mmap threshold at 32 MB (the ceiling
glibc's own adaptive threshold reaches): up to 256 MB of freed memory stays in the process,
ready for the next step, so the resident size of a training process stays near its peak
instead of shrinking between steps. Set the environment variable
``UNROLLGRAD_KEEP_FREED_MEMORY=0`` before importing to keep glibc's defaults. Other C
libraries (musl, macOS) are left alone.

NOTE: the trim threshold only says when malloc trims (once that much is free at the top of
the heap); the top pad says how much it keeps when it does. With the threshold alone, a
graph that frees more than 256 MB is handed back whole: at 512 hidden units and T = 1000
(about 1 GB of graph) each step then faulted about 50,000 pages in again; with the pad, a
few thousand in the first steps and then none, and the median time per step fell by a
sixth (runs taking turns with numpy's, as in ``benchmarks.rnn``). Graphs whose heap memory
is larger than the pad still fault in what goes past it.
"""

from __future__ import annotations

import ctypes
import os

__all__ = ["KEEPING_FREED_MEMORY", "keep_freed_memory"]

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3  # from glibc's malloc.h
TRIM_THRESHOLD = 256 << 20
TOP_PAD = 256 << 20
MMAP_THRESHOLD = 32 << 20


def keep_freed_memory(trim_threshold: int = TRIM_THRESHOLD, mmap_threshold: int = MMAP_THRESHOLD,
                      top_pad: int = TOP_PAD) -> bool:
    """Ask glibc's malloc to keep up to ``trim_threshold`` bytes of freed memory, to keep
    ``top_pad`` bytes spare whenever it grows or trims the heap, and to serve allocations
    below ``mmap_threshold`` bytes from the heap. Returns whether it applied (False where
    the C library is not glibc)."""
    try:
        libc = ctypes.CDLL(None)  # the symbols already loaded into this process, libc's among them
        mallopt = libc.mallopt
        libc.gnu_get_libc_version  # only glibc has it  # noqa: B018
    except (OSError, AttributeError, TypeError):
        return False
    settings = [(_M_TRIM_THRESHOLD, trim_threshold), (_M_TOP_PAD, top_pad), (_M_MMAP_THRESHOLD, mmap_threshold)]
    return all([bool(mallopt(option, value)) for option, value in settings])


KEEPING_FREED_MEMORY = os.environ.get("UNROLLGRAD_KEEP_FREED_MEMORY", "1") != "0" and keep_freed_memory()
