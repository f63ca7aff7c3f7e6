"""Deterministic initialisation: every layer draws its weights from a numpy Generator.

``seed`` may be an int (a fresh ``np.random.default_rng(seed)``), a ``Generator`` (shared,
so consecutive layers draw different numbers), or ``None`` (seed 0, so that an
unseeded run is still reproducible). Weights are drawn as float64 arrays *before* they
become parameters, so the same seed gives the same weights on both engines.

Scheme (the one PyTorch uses by default, so that magnitudes match): every weight and
bias of a layer is drawn from U(-k, k) with k = 1/sqrt(fan), where fan is
``in_features`` for ``Linear`` and ``hidden_size`` for recurrent cells.
"""

from __future__ import annotations

import numpy as np

__all__ = ["generator", "uniform"]


def generator(seed=None) -> np.random.Generator:
    """A Generator from an int seed, an existing Generator, or ``None`` (seed 0)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        return np.random.default_rng(0)
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
        if seed < 0:
            raise ValueError(f"seed must be an int >= 0, a numpy Generator or None, got {seed}")
        return np.random.default_rng(int(seed))
    raise TypeError(f"seed must be an int, a numpy Generator or None, got {type(seed).__name__}")


def uniform(rng: np.random.Generator, shape, fan: int) -> np.ndarray:
    """U(-1/sqrt(fan), 1/sqrt(fan)) in float64."""
    k = 1.0 / np.sqrt(fan)
    return rng.uniform(-k, k, size=shape)
