"""Differentiable functions that work on both engines.

Each takes a :class:`autograd.Tensor` (and calls its op), a :class:`autograd.Value`, or a
numpy object array of Values (and applies the Value op to every entry). They have no
derivative code: gradients come from the engine's primitives.
"""

from __future__ import annotations

import operator

import numpy as np

from autograd import Tensor, Value, tensor

from .backends import each_value, type_name

_addmm = tensor.ADDMM.apply  # autograd.addmm, one call fewer (an RNN step makes one)

__all__ = [
    "ACTIVATIONS", "activation", "addmm", "clip", "exp", "log", "log_softmax", "relu", "sigmoid", "softmax",
    "tanh",
]


def _elementwise(name: str):
    on_tensor = getattr(Tensor, name)
    per_entry = np.frompyfunc(operator.methodcaller(name), 1, 1)

    def on_values(x):
        return per_entry(x) if x.ndim else getattr(x.item(), name)()

    def f(x):
        if type(x) is Tensor:  # first, and without a lookup by name: an RNN step calls this
            return on_tensor(x)
        x = _values_array(x)
        if isinstance(x, (Tensor, Value)):
            return getattr(x, name)()
        if isinstance(x, np.ndarray) and x.dtype == object:
            return each_value(on_values, x, name)
        raise _not_a_node(name, x)

    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"Elementwise ``{name}`` on either engine."
    return f


tanh = _elementwise("tanh")
sigmoid = _elementwise("sigmoid")
relu = _elementwise("relu")
exp = _elementwise("exp")
log = _elementwise("log")


def identity(x):
    """f(x) = x."""
    return x


def clip(x, low: float, high: float):
    """``x`` limited to ``[low, high]``; the gradient is zero where it was limited."""
    x = _values_array(x)
    if isinstance(x, (Tensor, Value)):
        return x.clip(low, high)
    if isinstance(x, np.ndarray) and x.dtype == object:
        return each_value(np.frompyfunc(lambda v: v.clip(low, high), 1, 1), x, "clip")
    raise _not_a_node("clip", x)


def _values_array(x):
    """A list or tuple of Values (nested, as micrograd's layers return them) as an object
    array of them, which every function here takes; anything else as it is."""
    if not isinstance(x, (list, tuple)):
        return x
    pending, found = [x], 0
    while pending:
        item = pending.pop()
        if isinstance(item, (list, tuple)):
            pending.extend(item)
        elif isinstance(item, Value):
            found += 1
        else:
            return x
    return np.array(x, dtype=object) if found else x


def _not_a_node(name: str, x, what: str = "a Tensor, a Value or an object array of Values") -> TypeError:
    """The error for ``name(x)`` on something that is neither engine's: plain numbers, say,
    which would have no graph to differentiate."""
    given = f"a numpy {x.dtype} array" if isinstance(x, np.ndarray) else f"a {type_name(x)}"
    if isinstance(x, (list, tuple)) and any(isinstance(v, Tensor) for v in x):
        hint = ": join Tensors into one with autograd.stack(...) first"
    elif isinstance(x, (np.ndarray, list, tuple, int, float)):
        hint = (": plain numbers have no graph; make them a Tensor first (Tensor(x, requires_grad=True)) "
                "or use numpy for values alone")
    elif isinstance(x, Value):  # (softmax of one number is 1)
        hint = ": put the Values along the axis in an object array, np.array([v1, v2, v3], dtype=object)"
    else:
        hint = ""
    return TypeError(f"{name}() expects {what}, got {given}{hint}")


def _data_of_values(z, name: str) -> np.ndarray:
    """The numbers of an object array of Values (softmax's constant shift), refusing anything else."""
    if not (isinstance(z, np.ndarray) and z.dtype == object):
        raise _not_a_node(name, z, "a Tensor or an object array of Values (it runs along an axis)")
    return each_value(np.frompyfunc(lambda v: v.data, 1, 1), z, name).astype(float)


def addmm(c, a, b):
    """``c + a @ b``: one op on Tensors (:func:`autograd.addmm`); on arrays of Values,
    ``a @ b + c``, so that each sum's parents read as in x W + b."""
    if isinstance(c, Tensor) or isinstance(a, Tensor) or isinstance(b, Tensor):
        return _addmm(c, a, b)
    return a @ b + c


def log_softmax(z, axis: int = -1):
    """log softmax(z) along ``axis``, computed stably:
    z - max(z) - log(sum(exp(z - max(z)))), where max(z) is a constant shift."""
    if isinstance(z, Tensor):
        return z.log_softmax(axis)
    z = _values_array(z)
    shift = _data_of_values(z, "log_softmax").max(axis=axis, keepdims=True)
    shifted = z - shift
    return shifted - log(exp(shifted).sum(axis=axis, keepdims=True))


def softmax(z, axis: int = -1):
    """softmax(z) = exp(z - max z) / sum(exp(z - max z)) along ``axis``."""
    if isinstance(z, Tensor):
        return z.softmax(axis)
    z = _values_array(z)
    shift = _data_of_values(z, "softmax").max(axis=axis, keepdims=True)
    e = exp(z - shift)
    return e / e.sum(axis=axis, keepdims=True)


ACTIVATIONS = {
    "tanh": tanh,
    "relu": relu,
    "sigmoid": sigmoid,
    "identity": identity,
    "softmax": lambda z: softmax(z, axis=-1),
}


def activation(name: str, allowed=None, what: str = "activation"):
    """The activation called ``name`` (one of ``ACTIVATIONS``, or of ``allowed``); ``what``
    names the argument in the error message."""
    choices = allowed or tuple(ACTIVATIONS)
    if name not in choices:
        raise ValueError(f"{what} must be one of {list(choices)}, got {name!r}")
    return ACTIVATIONS[name]
