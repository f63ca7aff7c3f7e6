"""Benchmarks of unrollgrad against reference engines; run each one as ``python -m benchmarks.<name>``.

The comparisons of engines (``scalar``, ``rnn``) run every measurement in a fresh Python
process (see :mod:`benchmarks._common`), so no engine pays for another's garbage, and the
garbage collector stays at its defaults, as users run it. ``tensor`` and ``viz`` measure in
one process, taking turns.
"""
