"""``Module``: the base of every layer. It finds its parameters by walking its attributes."""

from __future__ import annotations

import functools
from collections import namedtuple
from collections.abc import Mapping

import numpy as np

from autograd import draw_graph, enable_grad
from autograd.graph import flag
from autograd.tensor import RefusedConversion

from . import backends

__all__ = ["IncompatibleKeys", "Module"]

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Module:
    """Base class of layers and models.

    Subclasses assign parameters and submodules as attributes (directly, or inside
    lists, tuples and dicts) and define ``forward``; calling the module runs it.
    ``parameters()`` finds every parameter by walking those attributes, so no layer
    lists its parameters by hand. A parameter's name is its attribute path, e.g.
    ``cells.0.W_hh``; it is also the label its nodes carry in rendered graphs. Labels are
    given when the outermost constructor finishes and whenever a parameter or submodule is
    assigned as an attribute later; a list or dict changed in place is named again at the
    next such assignment, or by :meth:`draw`.
    """

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        init = cls.__dict__.get("__init__")
        if init is None:
            return

        @functools.wraps(init)
        def __init__(self, *args, **kw):
            try:
                init(self, *args, **kw)
            except (ValueError, TypeError) as e:
                # a bad argument: the message names the class too ("Linear: in_features must
                # be ..."), once, by the outermost constructor
                if type(self).__init__ is __init__ and type(e) in (ValueError, TypeError):
                    raise type(e)(f"{type(self).__name__}: {e}").with_traceback(e.__traceback__) from None
                raise
            if type(self).__init__ is __init__:  # the outermost constructor has finished
                self._refuse_op_results()
                self._relabel()
                object.__setattr__(self, "_built", True)

        cls.__init__ = __init__

    def __setattr__(self, name, value):
        object.__setattr__(self, name, value)
        # a submodule or parameter attached after construction (alone, or in a list, tuple or
        # dict) gets its full names too; a class with no constructor of its own is built at once
        if (self.__dict__.get("_built") or type(self).__init__ is object.__init__) and any(
                isinstance(v, Module) or backends.is_parameter(v) for _, v in _flatten(name, value, [])):
            self._relabel()

    def _refuse_op_results(self) -> None:
        """A clear error for an attribute set in the constructor to an op's result that needs a
        gradient (``self.W = Tensor(w, requires_grad=True) * 0.1``): meant as a parameter, it
        is not one (only leaves are; an optimizer would move the result, not the leaf), and
        left alone it would silently never be trained."""
        for name, value in self._children():
            if backends.takes_gradient(value) and not backends.is_parameter(value):
                node = value.flat[0] if isinstance(value, np.ndarray) else value
                raise TypeError(
                    f"{type(self).__name__}: {name} is the result of an op ('{node.op}'), not a parameter: "
                    "only leaves are parameters. Make it one directly, e.g. Tensor(0.1 * w, "
                    "requires_grad=True), or compute it in forward"
                )

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # --- walking the attributes ---------------------------------------------------------
    def _children(self) -> list:
        """(name, object) for every attribute, with lists, tuples and dicts opened up. Names
        that start with "_" count too, as in PyTorch: ``self._inner = nn.Linear(...)`` is
        trained and saved (a module's own bookkeeping, ``_backend``, holds no parameter)."""
        found = []
        for name, value in vars(self).items():
            _flatten(name, value, found)
        return found

    def named_modules(self, prefix: str = "", _seen=None):
        """(name, module) for this module and every submodule, depth first; a module
        reachable by several paths is listed once, under the first."""
        seen = set() if _seen is None else _seen
        if id(self) in seen:
            return
        seen.add(id(self))
        yield prefix, self
        for name, value in self._children():
            if isinstance(value, Module):
                yield from value.named_modules(f"{prefix}.{name}" if prefix else name, seen)

    def named_parameters(self):
        """(name, parameter) for every parameter, in definition order. A parameter (or a
        module) reachable by several paths, as with tied weights, is listed once, under
        its first name."""
        found = []
        self._collect_parameters("", set(), found)
        return iter(found)

    def _collect_parameters(self, prefix: str, seen: set, found: list) -> None:
        # NOTE: plain recursive walks into lists (here and in _flatten), not nested
        # generators: a training loop walks its model at every step (zero_grad, the
        # optimizer, grad_dict), and the generators' resumptions, one per level per item,
        # cost more than the walk itself.
        seen.add(id(self))
        for name, value in self._children():
            full = prefix + name
            if isinstance(value, Module):
                if id(value) not in seen:
                    value._collect_parameters(full + ".", seen, found)
            elif backends.is_parameter(value) and id(value) not in seen:
                seen.add(id(value))
                found.append((full, value))

    def parameters(self) -> list:
        """Every parameter: Tensors (``engine="tensor"``) or object arrays of Values."""
        return [p for _, p in self.named_parameters()]

    def _relabel(self) -> None:
        """Label every parameter below this module with its full name.

        A name counts from the outermost module: each module keeps the path at which the
        last relabelling from above found it (``_prefix``, ``"rnn.cells.0."``), so that a
        submodule relabelling itself (after an attribute assignment) keeps the full names.
        """
        prefix = self.__dict__.get("_prefix", "")
        for name, module in self.named_modules():
            if name:
                module.__dict__["_prefix"] = f"{prefix}{name}."
        for name, p in self.named_parameters():
            backends.relabel(p, prefix + name)

    # --- numbers in and out ---------------------------------------------------------------
    def num_parameters(self) -> int:
        """How many scalars the parameters hold."""
        return sum(int(np.prod(np.shape(p))) for p in self.parameters())

    def zero_grad(self) -> None:
        """Clear every parameter's gradient (``None`` for a Tensor, 0.0 for each Value, marked
        as not reached: an optimizer leaves alone a parameter no backward reaches after this)."""
        for p in self.parameters():
            backends.set_grad(p, None)

    def state_dict(self) -> dict:
        """Every parameter's numbers as a float numpy array (a copy), by name."""
        return {name: np.array(backends.data(p), copy=True) for name, p in self.named_parameters()}

    def grad_dict(self) -> dict:
        """Every parameter's gradient as a float numpy array, by name, whatever the engine;
        zeros where backward has not reached a parameter."""
        return {name: np.array(backends.grad(p, f"{type(self).__name__}.grad_dict: the gradient of {name}"), copy=True)
                for name, p in self.named_parameters()}

    def load_state_dict(self, state: dict, strict: bool = True) -> IncompatibleKeys:
        """Copy numbers from ``state`` (name -> array) into the parameters, in place.

        Shapes must match. With ``strict`` (the default), the names must match exactly;
        all checks happen before anything is written, so a failed load changes nothing.
        Returns ``(missing_keys, unexpected_keys)``, as PyTorch does: with ``strict=False``,
        the parameters left as they were and the entries of ``state`` not used.
        """
        if not isinstance(state, Mapping):
            raise TypeError(f"{type(self).__name__}.load_state_dict: expected a dict of name -> array "
                            f"(as state_dict() gives), got {type(state).__name__}")
        params = dict(self.named_parameters())
        missing = sorted(set(params) - set(state), key=repr)  # (keys of other types than str sort too)
        unexpected = sorted(set(state) - set(params), key=repr)
        if flag(f"{type(self).__name__}.load_state_dict: strict", strict) and (missing or unexpected):
            raise KeyError(
                f"{type(self).__name__}.load_state_dict: missing {missing}, unexpected {unexpected}"
            )
        arrays = {}
        for name, value in state.items():
            if name not in params:
                continue
            arr = backends.real_array(value, f"{type(self).__name__}.load_state_dict: {name}")
            if arr.shape != np.shape(params[name]):
                raise ValueError(
                    f"{type(self).__name__}.load_state_dict: {name} has shape {np.shape(params[name])}, "
                    f"got {arr.shape}"
                )
            # a copy: the numbers may be a parameter's own (a Tensor given as numbers), which
            # the writes below could change before they are read
            arrays[name] = np.array(arr, copy=True)
        for name, arr in arrays.items():
            backends.set_data(params[name], arr)
        return IncompatibleKeys(missing, unexpected)

    # --- display ---------------------------------------------------------------------------
    def draw(self, x, **kwargs):
        """Run ``self(x)`` and draw the graph of its output(s) (a node, an object array of
        Values, or a tuple such as ``(y, h_n)``) with :func:`autograd.draw_graph`, which
        takes ``kwargs``. The parameters appear under their names (``rnn.cells.0.W_hh``)."""
        if kwargs.get("gradient_view"):
            raise ValueError(
                f"{type(self).__name__}.draw runs a new forward pass, which no backward has reached yet: "
                "for the gradient view, draw the loss after its backward, "
                "draw_graph(loss, gradient_view=True) after loss.backward()"
            )
        self._relabel()  # a list or dict of submodules may have changed in place
        with enable_grad():
            out = self(x)
        return draw_graph(out, **kwargs)

    def extra_repr(self) -> str:
        return ""

    def _where(self) -> str:
        """This module as its error messages name it: ``RNN(input_size=3, hidden_size=8, ...)``."""
        return f"{type(self).__name__}({self.extra_repr()})"

    def _constant(self, x, what: str):
        """``x`` as a constant of this module's engine (nodes of that engine pass through), or
        the engine's error for anything else (strings, complex numbers, nodes of the other
        engine) with this module and ``what`` (``"the input"``, ``"h0"``) named in front."""
        try:
            return self._backend.constant(x)
        except (TypeError, ValueError) as e:
            if type(e) not in (TypeError, ValueError) and not isinstance(e, RefusedConversion):
                raise  # a subclass may not take a message alone
            raise type(e)(f"{self._where()}: {what}: {e}") from None

    def __repr__(self) -> str:
        return self._repr(set())

    def _repr(self, seen: set) -> str:
        """The repr, each module once: one reachable again (a child that points back at its
        owner) is named, not opened."""
        seen.add(id(self))
        lines = [self._where()]
        for name, value in self._children():
            if isinstance(value, Module):
                if id(value) in seen:
                    lines.append(f"  ({name}): {type(value).__name__} (shown above)")
                    continue
                inner = value._repr(seen).replace("\n", "\n  ")
                lines.append(f"  ({name}): {inner}")
            elif backends.is_parameter(value):
                shape = "x".join(map(str, np.shape(value))) or "scalar"
                lines.append(f"  {name}: {shape}")
        if len(lines) == 1:
            return lines[0]
        return lines[0] + " {\n" + "\n".join(lines[1:]) + "\n}"


def _flatten(name: str, value, found: list) -> list:
    """Append to ``found`` (and return it) the (name, object) pairs of ``value``, with
    lists, tuples and dicts opened up: ``cells.0``, ``heads.out``."""
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _flatten(f"{name}.{i}", item, found)
    elif isinstance(value, dict):
        for key, item in value.items():
            _flatten(f"{name}.{key}", item, found)
    else:
        found.append((name, value))
    return found
