"""Moving weights and gradients to and from PyTorch's names and layouts (pure numpy).

PyTorch stores ``Linear.weight`` as (out x in) and computes x Wᵀ + b; we store ``W`` as
(in x out) and compute x W + b. Its RNN has two biases per layer, ``bias_ih`` and
``bias_hh``, that are always added together; we keep their sum, ``b_h``.

=========================  =====================================  ======================
ours                       PyTorch                                conversion
=========================  =====================================  ======================
Linear ``W``, ``b``         ``weight``, ``bias``                   weight = Wᵀ
RNN ``cells.k.W_xh``        ``weight_ih_l{k}``                     transposed
RNN ``cells.k.W_hh``        ``weight_hh_l{k}``                     transposed
RNN ``cells.k.b_h``         ``bias_ih_l{k}``, ``bias_hh_l{k}``     export b_h and 0; import their sum
RNNCell                    ``weight_ih``, ``weight_hh``, ...      as for one RNN layer
RNNModel                   ``rnn.*`` and ``readout.weight/bias``  a torch module with attributes
                                                                  ``rnn`` (nn.RNN) and ``readout`` (nn.Linear)
any other Module           its submodules' entries, prefixed by their attribute paths
=========================  =====================================  ======================

A gradient exported with ``grads=True`` goes to every PyTorch entry its parameter feeds:
the gradient of ``b_h`` is both ``bias_ih``'s and ``bias_hh``'s, as PyTorch computes them.

Each layer with a PyTorch counterpart says how its parameters map, next to them, in a
method ``_torch_entries(prefix, ours)`` that yields ``(torch name, our path, parameter,
relation)``, the relation being one of ``SAME``, ``TRANSPOSED``, ``BIAS_IH`` and
``BIAS_HH`` below; a recurrent cell's is its RNN's layout, which every cell with a single
bias per layer shares (``RecurrentCell._torch_entries``), and a stack adds ``_l{k}``.
"""

from __future__ import annotations

import numpy as np

from autograd.graph import flag

from . import backends
from .module import Module

__all__ = ["from_torch_state_dict", "to_torch_state_dict"]

# How one PyTorch entry relates to one of our parameters.
SAME, TRANSPOSED, BIAS_IH, BIAS_HH = "same", "transposed", "bias_ih", "bias_hh"


def _all_rows(module: Module) -> list:
    """:func:`_rows` of ``module``, or a clear error if some parameter of it has no PyTorch
    entry (a subclass of a layer that adds parameters of its own): it would be left out of
    the export and not loaded, without a word."""
    if not isinstance(module, Module):
        raise TypeError(f"to/from_torch_state_dict: expected a module (nn.Linear, nn.RNN, nn.RNNModel, ...), "
                        f"got {type(module).__name__}")
    rows = list(_rows(module))
    covered = {id(param) for _, _, param, _ in rows}
    left = [name for name, p in module.named_parameters() if id(p) not in covered]
    if left:
        raise TypeError(f"to/from_torch_state_dict: no PyTorch layout is defined for parameter(s) {left} of "
                        f"{type(module).__name__}")
    return rows


def _rows(module: Module, prefix: str = "", ours: str = ""):
    """(torch name, our parameter's path, the parameter, relation) for every PyTorch entry
    of ``module``: what its ``_torch_entries(prefix, ours)`` yields, for a layer that has a
    PyTorch counterpart (each such layer writes its own, next to its parameters), else its
    submodules' entries. A parameter or module reachable by several paths (tied weights)
    has entries under each of them, as a PyTorch module tied the same way has in its
    ``state_dict()``."""
    entries = getattr(module, "_torch_entries", None)
    if entries is not None:
        yield from entries(prefix, ours)
    else:
        for name, child in module._children():
            if isinstance(child, Module):
                yield from _rows(child, f"{prefix}{name}.", f"{ours}{name}.")
            elif backends.is_parameter(child):
                raise TypeError(f"to/from_torch_state_dict: no PyTorch layout is defined for parameter "
                                f"{ours}{name} of {type(module).__name__}")


def to_torch_state_dict(module: Module, grads: bool = False) -> dict:
    """The module's parameters (or, with ``grads=True``, their gradients) as numpy arrays
    under PyTorch's names and layouts; see the table in :mod:`nn.interop`."""
    grads = flag("to_torch_state_dict: grads", grads)
    out = {}
    for torch_name, ours, param, relation in _all_rows(module):
        if grads:
            numbers = backends.grad(param, f"to_torch_state_dict: the gradient of {ours}")
        else:
            numbers = backends.data(param)
        x = np.array(numbers, dtype=np.float64, copy=True)
        if relation == TRANSPOSED:
            x = x.T.copy()
        elif relation == BIAS_HH and not grads:
            x = np.zeros_like(x)
        out[torch_name] = x
    return out


def from_torch_state_dict(module: Module, state) -> None:
    """Load PyTorch-named weights (numpy arrays, or anything ``np.asarray`` takes, such as
    torch tensors) into ``module`` in place. Names must match exactly and shapes must be
    PyTorch's; everything is checked before anything is written. A tied parameter (one
    reachable by several paths) has an entry under each, and they must agree."""
    rows = _all_rows(module)
    if not hasattr(state, "keys"):
        raise TypeError(f"from_torch_state_dict: state must be a dict of arrays, got {type(state).__name__}")
    expected = {name for name, _, _, _ in rows}
    missing, unexpected = sorted(expected - set(state), key=repr), sorted(set(state) - expected, key=repr)
    if missing or unexpected:
        raise KeyError(
            f"from_torch_state_dict({type(module).__name__}): missing {missing}, unexpected {unexpected}"
        )
    new: dict[str, tuple] = {}  # our path -> (parameter, its new numbers, the torch names they came from)
    for torch_name, ours, param, relation in rows:
        x = backends.real_array(state[torch_name], f"from_torch_state_dict: {torch_name}")
        shape = np.shape(param)
        want = shape[::-1] if relation == TRANSPOSED else shape
        if x.shape != want:
            raise ValueError(f"from_torch_state_dict: {torch_name} should have shape {want} "
                             f"(for {ours} {shape}), got {x.shape}")
        x = np.array(x.T if relation == TRANSPOSED else x, copy=True)  # (it may be a parameter's own numbers)
        if relation == BIAS_HH:  # b_h = bias_ih + bias_hh
            _, ih, names = new[ours]
            new[ours] = (param, ih + x, f"{names} + {torch_name}")
        else:
            new[ours] = (param, x, torch_name)
    first: dict[int, tuple] = {}  # id(parameter) -> (path, numbers, torch names, parameter) of its first path
    for ours, (param, x, names) in new.items():
        seen = first.setdefault(id(param), (ours, x, names, param))
        if seen[0] != ours and not np.array_equal(seen[1], x, equal_nan=True):
            raise ValueError(f"from_torch_state_dict: {seen[0]} and {ours} are the same (tied) parameter, "
                             f"but {seen[2]} and {names} hold different numbers")
    for _, x, _, param in first.values():
        backends.set_data(param, x)

