"""Feed-forward layers: ``Linear`` and ``MLP``."""

from __future__ import annotations

import numpy as np

from autograd.graph import flag

from . import functional as F
from . import init
from .backends import backend
from .interop import SAME, TRANSPOSED
from .module import Module

__all__ = ["MLP", "Linear", "check_size"]


def check_size(name: str, value, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


class Linear(Module):
    """y = x W + b, on row vectors: ``x`` is (..., in_features), ``y`` (..., out_features).

    Parameters: ``W`` (in_features x out_features) and ``b`` (out_features), both drawn from
    U(-1/sqrt(in_features), 1/sqrt(in_features)) (see :mod:`nn.init`).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, engine: str = "tensor",
                 seed=None):
        self.in_features = check_size("in_features", in_features)
        self.out_features = check_size("out_features", out_features)
        self._backend = backend(engine)
        self.engine = self._backend.name
        rng = init.generator(seed)
        self.W = self._backend.parameter(init.uniform(rng, (in_features, out_features), in_features), "W")
        self.b = self._backend.parameter(init.uniform(rng, (out_features,), in_features), "b") if flag(
            "bias", bias) else None

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, engine={self.engine!r}"

    def forward(self, x):
        x = self._constant(x, "the input")
        if np.ndim(x) == 0 or np.shape(x)[-1] != self.in_features:
            raise ValueError(
                f"{self._where()}: expected input of shape (..., {self.in_features}), "
                f"got {np.shape(x)}"
            )
        return x @ self.W if self.b is None else F.addmm(self.b, x, self.W)

    def _torch_entries(self, prefix: str, ours: str):
        """PyTorch's entries for this layer (see :mod:`nn.interop`): weight = Wᵀ, bias = b."""
        yield prefix + "weight", ours + "W", self.W, TRANSPOSED
        if self.b is not None:
            yield prefix + "bias", ours + "b", self.b, SAME


class MLP(Module):
    """A stack of ``Linear`` layers with ``activation`` between them (none after the last).

    ``MLP(n_in, sizes)``: ``sizes`` lists each layer's output size, e.g. ``MLP(16, [16, 16, 1])``.
    """

    def __init__(self, n_in: int, sizes, activation: str = "tanh", engine: str = "tensor", seed=None):
        if isinstance(sizes, (str, bytes)) or not hasattr(sizes, "__iter__"):
            raise TypeError(f"sizes must be a list of the layers' output sizes, e.g. MLP({n_in!r}, [16, 1]), "
                            f"got {type(sizes).__name__}: {sizes!r}")
        sizes = [check_size(f"sizes[{i}]", size) for i, size in enumerate(sizes)]
        if not sizes:
            raise ValueError("MLP needs at least one layer size")
        check_size("n_in", n_in)
        self._act = F.activation(activation)
        self.activation = activation
        rng = init.generator(seed)
        dims = [n_in, *sizes]
        self.layers = [Linear(a, b, engine=engine, seed=rng) for a, b in zip(dims[:-1], dims[1:])]

    def extra_repr(self) -> str:
        return f"activation={self.activation!r}"

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = self._act(x)
        return x
