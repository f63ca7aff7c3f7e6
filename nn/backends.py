"""The two engines a layer can run on, behind one small interface.

A layer is written once, with ``@``, ``+``, ``*``, indexing and the functions of
:mod:`nn.functional`. What differs between engines is only how arrays of numbers become
graph nodes and how their numbers are read back, and that lives here:

* ``engine="tensor"``: a parameter is one :class:`autograd.Tensor`;
* ``engine="value"``: a parameter is a numpy object array whose every entry is its own
  :class:`autograd.Value` (labelled ``W_hh[i,j]``), so each scalar of the unrolled graph
  can be picked out and rendered. numpy's object arrays do the ``@`` and ``+``.

The functions ``data``, ``grad``, ``set_data`` and ``set_grad`` read and write the
numbers of any parameter as float arrays; optimizers, clipping, ``state_dict`` and the
PyTorch interop use only them.
"""

from __future__ import annotations

from numbers import Real

import numpy as np

from autograd import StackBuilder, Tensor, Value, concat, stack
from autograd.graph import note_changed
from autograd.graph import takes_gradient as _node_takes_gradient
from autograd.tensor import RefusedConversion, asarray_keeping_graphs
from autograd.value import _real

__all__ = ["ENGINES", "TensorBackend", "ValueBackend", "backend", "data", "grad", "set_data", "set_grad"]


class TensorBackend:
    """Parameters and inputs are :class:`autograd.Tensor` s."""

    name = "tensor"
    fuse_steps = True  # input projections and readouts of all time steps as one product each

    @staticmethod
    def parameter(array: np.ndarray, name: str) -> Tensor:
        return Tensor(array, requires_grad=True, label=name)

    @staticmethod
    def constant(x) -> Tensor:
        if isinstance(x, Tensor):
            return x
        if isinstance(x, np.ndarray) and x.dtype == object:
            if any(isinstance(v, Value) for v in x.flat):
                raise TypeError("engine='tensor' got a numpy object array of Values; use engine='value' for those")
            raise TypeError("engine='tensor' got a numpy object array; it takes arrays of real numbers "
                            "(x.astype(float) makes one, if the entries are numbers)")
        return Tensor(x)

    @staticmethod
    def zeros(shape, like=None) -> Tensor:
        """Zeros (a constant), in the dtype of the parameter ``like`` if given: a model whose
        weights are float32 keeps its states in float32."""
        return Tensor(np.zeros(shape, np.float64 if like is None else like.data.dtype))

    @staticmethod
    def name_state(x, name: str, made_after: int) -> None:
        """Name ``x`` in drawings and messages (a state H_t) if it is an op result made after
        the creation number ``made_after`` (by this step: not a node the step was given and
        passed on) that has no name yet; a leaf or a constant, which may be the caller's,
        keeps its own."""
        if type(x) is Tensor and _unnamed_result(x, made_after):
            x._label = name

    stack = staticmethod(stack)
    concat = staticmethod(concat)
    stack_builder = StackBuilder  # stack(items, 0) for items that arrive one at a time


class ValueBackend:
    """Parameters and inputs are numpy object arrays of :class:`autograd.Value`."""

    name = "value"
    fuse_steps = False  # keep each step's products inside that step's scope, for rendering

    @staticmethod
    def parameter(array: np.ndarray, name: str) -> np.ndarray:
        out = np.empty(array.shape, dtype=object)
        for index, x in np.ndenumerate(array):
            out[index] = Value(float(x), label=_entry_label(name, index))
        return out

    @staticmethod
    def constant(x) -> np.ndarray:
        if isinstance(x, Tensor):
            raise TypeError("engine='value' got a Tensor; use engine='tensor' for Tensors")
        if isinstance(x, Value):
            return np.array(x, dtype=object)
        arr = _as_numbers(x, "engine='value' ")
        if arr.dtype != object:  # numbers (bools and ints included) become float constants
            arr = real_array(arr)  # complex numbers, strings: an error, as on Tensors
        arr = arr.astype(object)
        out = np.empty(arr.shape, dtype=object)
        for index, v in np.ndenumerate(arr):
            if isinstance(v, Value):
                out[index] = v
                continue
            try:
                out[index] = Value(v)
            except (TypeError, ValueError) as e:  # a string or None among Values, say
                if index == () or type(e) not in (TypeError, ValueError):
                    raise
                raise type(e)(f"entry {index}: {e}") from None
        return out

    @staticmethod
    def zeros(shape, like=None) -> np.ndarray:
        return ValueBackend.constant(np.zeros(shape))

    @staticmethod
    def name_state(x, name: str, made_after: int) -> None:
        """Name each entry of ``x`` ``name[i,j]``, under the rule of
        :meth:`TensorBackend.name_state`."""
        if not isinstance(x, np.ndarray):
            return
        suffixes = _SUFFIXES.get(x.shape)
        if suffixes is None:  # "[i,j]" for every index of this shape, made once
            suffixes = _SUFFIXES[x.shape] = [_entry_label("", index) for index in np.ndindex(x.shape)]
        for v, suffix in zip(x.flat, suffixes):
            if type(v) is Value and _unnamed_result(v, made_after):
                v._label = name + suffix

    @staticmethod
    def stack(items, axis=0):
        return np.stack(items, axis)

    @staticmethod
    def concat(items, axis=0):
        return np.concatenate(items, axis)

    @staticmethod
    def stack_builder(n: int):
        return _Stacking()


_SUFFIXES: dict = {}  # shape -> the "[i,j]" of each of its indices, in order (see ValueBackend.name_state)


def _unnamed_result(node, made_after: int) -> bool:
    """Whether ``node`` is a recorded op's result, made after the creation number
    ``made_after``, that has no name yet: what ``name_state`` names."""
    return bool(node._op) and node._id > made_after and not getattr(node, "_label", "")


class _Stacking:
    """The value engine's :class:`autograd.StackBuilder`: ``append`` each item, then ``stack()``."""

    __slots__ = ("items",)

    def __init__(self):
        self.items = []

    def append(self, x) -> None:
        self.items.append(x)

    def stack(self) -> np.ndarray:
        return np.stack(self.items, 0)


ENGINES = {"tensor": TensorBackend, "value": ValueBackend}


def backend(engine):
    """The backend for ``engine`` (``"tensor"`` or ``"value"``)."""
    try:
        return ENGINES[engine]
    except (KeyError, TypeError):
        raise ValueError(f"engine must be one of {sorted(ENGINES)}, got {engine!r}") from None


def _entry_label(name: str, index: tuple) -> str:
    return f"{name}[{','.join(map(str, index))}]" if index else name


def relabel(param, name: str) -> None:
    """Give a parameter (and, for the value engine, each entry) its full name."""
    if isinstance(param, np.ndarray):
        for index, v in np.ndenumerate(param):
            v.label = _entry_label(name, index)
    else:
        param.label = name


def takes_gradient(x) -> bool:
    """A Tensor that requires a gradient, a Value, or an object array of Values; not a
    constant (a detached state, a result made under no_grad), on either engine."""
    if isinstance(x, np.ndarray) and x.dtype == object and x.size > 0:
        x = x.flat[0]
    return isinstance(x, (Tensor, Value)) and _node_takes_gradient(x)


def is_parameter(x) -> bool:
    """What a module counts as a parameter: a leaf that :func:`takes_gradient`, not an op's
    result (a state kept on a module without detaching it)."""
    if not takes_gradient(x):
        return False
    return (x.flat[0] if isinstance(x, np.ndarray) else x).is_leaf


def _values(p):
    return p.flat if isinstance(p, np.ndarray) else (p,)


def data(p) -> np.ndarray:
    """The numbers of a parameter, as a float array (shared for a Tensor, a copy otherwise)."""
    if isinstance(p, Tensor):
        return p.data
    return np.array([v.data for v in _values(p)], dtype=np.float64).reshape(np.shape(p))


def grad(p, what: str = "the gradient") -> np.ndarray:
    """The gradient of a parameter as a float array; zeros where backward has not reached.
    A gradient set by hand to something else than the parameter's shape of real numbers is
    refused, naming ``what`` (an optimizer would otherwise broadcast it, or parse it)."""
    if isinstance(p, Tensor):
        if p.grad is None:
            return np.zeros_like(p.data)
        g = p.grad
        if not isinstance(g, np.ndarray) or g.shape != p.data.shape or g.dtype.kind not in "fiu":
            raise TypeError(f"{what}: expected an array of real numbers of shape {p.data.shape}, got "
                            + (f"an array of shape {g.shape} and dtype {g.dtype}" if isinstance(g, np.ndarray)
                               else f"{type(g).__name__}: {g!r}"))
        return g
    grads = [v.grad if type(v.grad) is float else _real(v.grad, f"{what}{f' at entry {index}' if index else ''}")
             for index, v in zip(np.ndindex(np.shape(p)), _values(p))]
    return np.array(grads, dtype=np.float64).reshape(np.shape(p))


def has_grad(p) -> bool:
    """Whether backward has reached ``p`` since its gradient was last cleared: a Tensor's
    gradient is not ``None``; for Values, some entry's gradient is not the "not reached yet"
    ``0.0`` that a new Value and ``set_grad(p, None)`` give (``Value._EMPTY_GRAD``; a pass
    gives every leaf it finds a gradient of its own, a zero included). Optimizers skip the
    others, as PyTorch's skip a ``grad`` of ``None``."""
    if isinstance(p, Tensor):
        return p.grad is not None
    empty = Value._EMPTY_GRAD
    return any(v.grad is not empty for v in _values(p))


def type_name(x) -> str:
    """The name of ``x``'s type for messages, with its package when it is not ours, numpy's
    or Python's: ``torch.Tensor``, not a ``Tensor`` that reads as autograd's."""
    kind = type(x)
    package = (kind.__module__ or "").split(".")[0]
    return kind.__name__ if package in ("builtins", "autograd", "nn", "numpy", "") else f"{package}.{kind.__name__}"


def given(x) -> str:
    """What was given, for error messages: "a numpy array of shape (2, 3)", "a tuple of 2",
    "a torch.Tensor"."""
    if isinstance(x, (tuple, list)):
        return f"a {type(x).__name__} of {len(x)}"
    if isinstance(x, np.ndarray):
        return f"a numpy array of shape {x.shape}"
    return f"a {type_name(x)}" + (f" of shape {tuple(x.shape)}" if hasattr(x, "shape") else "")


def _from_torch(x):
    """A PyTorch tensor's numbers as a numpy array (also one that requires grad, which refuses
    ``np.asarray``); anything else as it is."""
    if not isinstance(x, (np.ndarray, Tensor, Value)) and hasattr(x, "detach") and hasattr(x, "cpu"):
        x = x.detach().cpu()
        try:
            return x.numpy()
        except TypeError:  # a dtype numpy has no counterpart of (bfloat16): its numbers in float64
            return x.double().numpy()
    return x


def plain_array(x, what: str) -> np.ndarray:
    """``x`` as a numpy array of numbers that are not differentiated (a target, a whole input
    sequence to split), or a clear error naming ``what``: for a graph node, or graph nodes
    among its entries, whose numbers alone would cut them from their graph, and for a ragged
    list. A PyTorch tensor gives its numbers."""
    if isinstance(x, (Tensor, Value)):
        raise TypeError(f"{what} must be numbers (a numpy array or list), not a {type(x).__name__}")
    arr = _as_numbers(_from_torch(x), f"{what}: ")
    if arr.dtype == object and any(isinstance(v, (Tensor, Value)) for v in arr.flat):
        raise TypeError(f"{what} must be numbers, not graph nodes (pass plain numbers, e.g. nn.detach(...) or .data)")
    return arr


def _as_numbers(x, where: str) -> np.ndarray:
    """``asarray_keeping_graphs(x)``, its refusals (a list holding Tensors, whose numbers alone
    would cut their graph; a masked array) and a ragged list's error with ``where`` in front."""
    try:
        return asarray_keeping_graphs(x)
    except RefusedConversion as e:
        raise TypeError(f"{where}{e}") from None
    except ValueError as e:  # a ragged list
        raise ValueError(f"{where}expected a regular array of numbers: {e}") from None


def real_array(x, what: str = "") -> np.ndarray:
    """``x`` (an array, or anything ``np.asarray`` takes) as a float64 array; a clear error,
    naming ``what`` (if given), for complex numbers, strings and other non-real data, which a cast
    would silently mangle (complex numbers would lose their imaginary part). A PyTorch tensor
    gives its numbers, also one that requires grad (which refuses ``np.asarray``)."""
    x = _from_torch(x)
    if isinstance(x, Tensor):  # a Tensor given as numbers (a state value): its numbers
        x = x.data
    where = f"{what}: " if what else ""
    arr = _as_numbers(x, where)
    if arr.dtype.kind not in "biufO":
        raise TypeError(f"{where}expected real numbers, got an array of dtype {arr.dtype}")
    if arr.dtype.kind == "O":  # numpy's cast would make None a NaN, parse "2.5" and read a Value's number
        for index, v in np.ndenumerate(arr):
            if not isinstance(v, Real) or isinstance(v, (Tensor, Value)):
                at = f" at entry {index}" if arr.ndim else ""
                hint = " (a graph node: pass plain numbers, e.g. nn.detach(...) or its .data)" if isinstance(
                    v, (Tensor, Value)) else ""
                raise TypeError(f"{where}expected real numbers, got {type(v).__name__} {v!r}{at}{hint}")
    try:
        return arr.astype(np.float64, copy=False)
    except (TypeError, ValueError, OverflowError) as e:  # an int past float64's range, say
        raise TypeError(f"{where}expected real numbers, got {type(x).__name__}: {e}") from None


def set_data(p, new) -> None:
    """Overwrite a parameter's numbers in place (the parameter objects stay the same)."""
    new = real_array(new, "set_data")
    if new.shape != np.shape(p):
        raise ValueError(f"expected an array of shape {np.shape(p)}, got {new.shape}")
    if isinstance(p, Tensor):
        p.data[...] = new
        note_changed(p)
    else:
        for v, x in zip(_values(p), new.flat):
            v.data = float(x)
            note_changed(v)


def set_grad(p, new) -> None:
    """Set a parameter's gradient to ``new`` (``None`` clears it), which must be real numbers
    of the parameter's shape. A Tensor's gradient array is written in place where it has one
    of the parameter's shape and dtype, as PyTorch's clipping does, so that a reference to
    ``p.grad`` taken before sees the new numbers."""
    if new is not None:
        new = real_array(new, "set_grad")
        if new.shape != np.shape(p):
            raise ValueError(f"set_grad: expected a gradient of the parameter's shape {np.shape(p)}, got {new.shape}")
    if isinstance(p, Tensor):
        g = p.grad
        if new is None:
            p.grad = None
        elif (type(g) is np.ndarray and g.shape == p.data.shape and g.dtype == p.data.dtype
              and g.flags.writeable):
            g[...] = new
        else:
            p.grad = np.array(new, dtype=p.data.dtype)
        return
    if new is None:
        for v in _values(p):
            v.grad = Value._EMPTY_GRAD  # 0.0, and marked as not reached (see has_grad)
        return
    for v, g in zip(_values(p), np.asarray(new, dtype=np.float64).flat):
        v.grad = float(g)


def swap01(x):
    """Swap the first two axes (batch-first <-> time-first) of a Tensor or an object array."""
    return np.swapaxes(x, 0, 1) if isinstance(x, np.ndarray) else x.transpose(1, 0, *range(2, x.ndim))


_DETACH = np.frompyfunc(Value.detach, 1, 1)


def _detach_values(x: np.ndarray) -> np.ndarray:
    return _DETACH(x) if x.ndim else np.array(x.item().detach(), dtype=object)


def each_value(f, x: np.ndarray, name: str):
    """``f(x)`` for ``f`` a numpy ufunc of Value methods (``np.frompyfunc``) and ``x`` an object
    array, which must hold Values: a clear error naming the first entry that is not one,
    where the method would fail on it with the error of a float or an array."""
    try:
        return f(x)
    except (TypeError, AttributeError, ValueError):  # (a Value's own errors, log(-1), are raised as they were)
        for index, v in np.ndenumerate(x):
            if not isinstance(v, Value):
                raise TypeError(f"{name}() expects an object array of Values, got {type(v).__name__} "
                                f"{v!r} at entry {index}") from None
        raise


def detach(x):
    """The same numbers with no graph behind them: gradients stop here (truncated BPTT).
    A state of several parts (an LSTM's (h, c)) as a tuple, a named tuple or a list gives the
    same kind of container of their detached copies."""
    if isinstance(x, (Tensor, Value)):
        return x.detach()
    if isinstance(x, np.ndarray) and x.dtype == object:
        return each_value(_detach_values, x, "detach")
    if isinstance(x, (tuple, list)):
        parts = [detach(part) for part in x]
        if hasattr(x, "_fields"):  # a named tuple: State(h=..., c=...)
            return type(x)(*parts)
        return tuple(parts) if isinstance(x, tuple) else parts
    raise TypeError("detach() expects a Tensor, a Value, an object array of Values, or a tuple or list of "
                    f"them, got {type(x).__name__}")
