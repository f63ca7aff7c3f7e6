"""One table of op cases, run on every engine: reference floats, ``Value``, ``Tensor``.

A case's ``fn`` uses only operators (with Python numbers on either side), the methods
``exp log tanh sigmoid relu`` and :func:`addmm`, so the same function runs on the
reference floats (:class:`Float`), on ``Value`` and on ``Tensor``. Its ``grads`` are the
closed-form partial derivatives, written with numpy so that they apply elementwise to
arrays as well as to floats. A runner for a new engine is one call per case:

    check_case_on(Tensor, case, case.sample(rng, shape=(3, 2)))
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

import autograd
from autograd import Tensor, gradcheck

__all__ = ["CASES", "Case", "Float", "addmm", "check_case_on"]


def addmm(c, a, b):
    """c + a @ b with every entry a 1 x 1 matrix: on Tensors, ``autograd.addmm`` of the
    entries as a batch of 1 x 1 matrices (the batch axes broadcast); on scalars, where @ of
    1 x 1 matrices is *, c + a b."""
    if isinstance(c, Tensor):
        out = autograd.addmm(*(t.reshape(*t.shape, 1, 1) for t in (c, a, b)))
        return out.reshape(out.shape[:-2])
    return c + a * b


def _binary(op):
    return lambda self, other: Float(op(float(self), float(other)))


def _reflected(op):
    return lambda self, other: Float(op(float(other), float(self)))


class Float(float):
    """The reference engine: operators are plain float arithmetic, methods are the math
    module. No graph, no derivatives: what a case must evaluate to."""

    __add__, __radd__ = _binary(operator.add), _reflected(operator.add)
    __sub__, __rsub__ = _binary(operator.sub), _reflected(operator.sub)
    __mul__, __rmul__ = _binary(operator.mul), _reflected(operator.mul)
    __truediv__, __rtruediv__ = _binary(operator.truediv), _reflected(operator.truediv)
    __pow__, __rpow__ = _binary(operator.pow), _reflected(operator.pow)

    def __neg__(self):
        return Float(-float(self))

    def exp(self):
        return Float(math.exp(self))

    def log(self):
        return Float(math.log(self))

    def tanh(self):
        return Float(math.tanh(self))

    def sigmoid(self):
        return Float(1.0 / (1.0 + math.exp(-self)))

    def relu(self):
        return Float(self if self > 0 else 0.0)


@dataclass(frozen=True)
class Case:
    """``fn(*args)``, its partial derivatives ``grads`` (one per argument, numpy,
    elementwise), and the interval each argument is drawn from.

    ``exact``: an engine that does the same float operations as the reference (the
    scalar ``Value``) must reproduce the reference bit for bit. It is False where the
    engine computes the same number another way (``a / b`` is ``a * b**-1``, ``2 ** x`` is
    ``exp(x log 2)``, sigmoid switches formula for stability).
    """

    name: str
    fn: Callable
    grads: tuple[Callable, ...]
    domain: tuple[tuple[float, float], ...]
    exact: bool = True

    @property
    def arity(self) -> int:
        return len(self.domain)

    def sample(self, rng: np.random.Generator, shape=None) -> tuple:
        """One input per argument, uniform on its interval: floats, or arrays of ``shape``."""
        return tuple(rng.uniform(lo, hi, size=shape) for lo, hi in self.domain)

    def reference(self, *xs):
        """``fn`` on the reference floats; elementwise when the inputs are arrays."""
        def on_floats(*args):
            return float(self.fn(*map(Float, args)))

        if all(np.ndim(x) == 0 for x in xs):
            return on_floats(*xs)
        return np.vectorize(on_floats, otypes=[float])(*xs)

    def expected_grads(self, *xs) -> list[np.ndarray]:
        """The closed-form gradient of ``sum(fn(*xs))`` with respect to each input."""
        shape = np.broadcast_shapes(*map(np.shape, xs))
        return [np.broadcast_to(np.asarray(g(*xs), dtype=float), shape) for g in self.grads]


def check_case_on(wrap: Callable, case: Case, xs: tuple, *, value_rtol: float = 1e-15,
                  grad_rtol: float = 1e-12, exact: bool = False, **gradcheck_options):
    """Run ``case`` on the engine whose leaves ``wrap`` makes (``Value``, ``Tensor``).

    Checks that the value matches the reference floats (bit for bit if ``exact`` and the
    case is exact), that backward gives the closed-form gradient of ``sum(fn(*xs))``,
    and that ``gradcheck`` agrees. Returns the output node.
    """
    nodes = [wrap(x) for x in xs]
    out = case.fn(*nodes)
    expected = case.reference(*xs)
    where = f"{case.name} at {xs}"
    if exact and case.exact:
        np.testing.assert_array_equal(out.data, expected, err_msg=where)
    else:
        np.testing.assert_allclose(out.data, expected, rtol=value_rtol, atol=0, err_msg=where)

    out.backward(None if np.ndim(out.data) == 0 else np.ones_like(out.data))
    for i, (node, grad) in enumerate(zip(nodes, case.expected_grads(*xs))):
        np.testing.assert_allclose(node.grad, grad, rtol=grad_rtol, atol=0,
                                   err_msg=f"d/d(argument {i}) of {where}")

    gradcheck(case.fn, nodes, **gradcheck_options)
    return out


def _ones(*xs):
    return 1.0


def _sech2(x):
    return 1.0 / np.cosh(x) ** 2


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _power(p: float, domain: tuple[float, float]) -> Case:
    return Case(f"x ** {p}", lambda x: x**p, (lambda x: p * np.power(x, p - 1),), (domain,))


WIDE = (-3.0, 3.0)
POSITIVE = (0.5, 3.0)
NARROW = (-1.5, 1.5)  # keeps tanh off saturation, where 1 - tanh^2 loses relative precision

CASES: list[Case] = [
    # binary operators
    Case("x + y", lambda x, y: x + y, (_ones, _ones), (WIDE, WIDE)),
    Case("x - y", lambda x, y: x - y, (_ones, lambda x, y: -1.0), (WIDE, WIDE)),
    Case("x * y", lambda x, y: x * y, (lambda x, y: y, lambda x, y: x), (WIDE, WIDE)),
    Case("x / y", lambda x, y: x / y, (lambda x, y: 1 / y, lambda x, y: -x / y**2), (WIDE, POSITIVE),
         exact=False),
    # a Python number on either side
    Case("-x", lambda x: -x, (lambda x: -1.0,), (WIDE,)),
    Case("x + 2.5", lambda x: x + 2.5, (_ones,), (WIDE,)),
    Case("1.5 + x", lambda x: 1.5 + x, (_ones,), (WIDE,)),
    Case("x - 0.75", lambda x: x - 0.75, (_ones,), (WIDE,)),
    Case("2 - x", lambda x: 2 - x, (lambda x: -1.0,), (WIDE,)),
    Case("3 * x", lambda x: 3 * x, (lambda x: 3.0,), (WIDE,)),
    Case("x / 4", lambda x: x / 4, (lambda x: 0.25,), (WIDE,)),
    Case("2 / x", lambda x: 2 / x, (lambda x: -2 / x**2,), (POSITIVE,), exact=False),
    # powers: integer exponents take any sign of base, fractional ones a positive base
    _power(2, WIDE),
    _power(3, (-2.0, 2.0)),
    _power(-1, POSITIVE),
    _power(-2, (-3.0, -0.5)),
    _power(0.5, (0.1, 4.0)),
    _power(-2.5, POSITIVE),
    _power(0, WIDE),
    Case("2 ** x", lambda x: 2**x, (lambda x: math.log(2) * 2.0**x,), (WIDE,), exact=False),
    Case("0.5 ** x", lambda x: 0.5**x, (lambda x: math.log(0.5) * 0.5**x,), (WIDE,), exact=False),
    # unary functions
    Case("exp(x)", lambda x: x.exp(), (np.exp,), ((-5.0, 5.0),)),
    Case("log(x)", lambda x: x.log(), (lambda x: 1 / x,), ((0.1, 10.0),)),
    Case("tanh(x)", lambda x: x.tanh(), (_sech2,), (WIDE,)),
    Case("sigmoid(x)", lambda x: x.sigmoid(), (lambda x: np.exp(-x) / (1 + np.exp(-x)) ** 2,), ((-6.0, 6.0),),
         exact=False),
    Case("relu(x), x > 0", lambda x: x.relu(), (lambda x: np.heaviside(x, 0.0),), ((0.1, 3.0),)),
    Case("relu(x), x < 0", lambda x: x.relu(), (lambda x: np.heaviside(x, 0.0),), ((-3.0, -0.1),)),
    # c + a @ b as one op on Tensors
    Case("addmm(c, a, b)", addmm, (_ones, lambda c, a, b: b, lambda c, a, b: a), (WIDE, WIDE, WIDE)),
    Case("tanh(addmm(x, x, y))", lambda x, y: addmm(x, x, y).tanh(),
         (lambda x, y: _sech2(x + x * y) * (1 + y), lambda x, y: _sech2(x + x * y) * x), (NARROW, NARROW)),
    # composites: shared nodes, chains, several paths to one input
    Case("x * x * x", lambda x: x * x * x, (lambda x: 3 * x**2,), (WIDE,)),
    Case("tanh(x * y + x)", lambda x, y: (x * y + x).tanh(),
         (lambda x, y: _sech2(x * y + x) * (y + 1), lambda x, y: _sech2(x * y + x) * x), (NARROW, NARROW)),
    Case("log(x * x + 1)", lambda x: (x * x + 1).log(), (lambda x: 2 * x / (x * x + 1),), (WIDE,)),
    Case("exp(-x * x / 2)", lambda x: (-x * x / 2).exp(), (lambda x: -x * np.exp(-x * x / 2),), (WIDE,)),
    Case("x * sigmoid(x)", lambda x: x * x.sigmoid(),
         (lambda x: _sigmoid(x) * (1 + x * (1 - _sigmoid(x))),), (WIDE,), exact=False),
    Case("(x + y) / (x - y)", lambda x, y: (x + y) / (x - y),
         (lambda x, y: -2 * y / (x - y) ** 2, lambda x, y: 2 * x / (x - y) ** 2), ((2.0, 3.0), (-1.0, 1.0)),
         exact=False),
    Case("relu(x * y) + x", lambda x, y: (x * y).relu() + x, (lambda x, y: y + 1, lambda x, y: x),
         (POSITIVE, POSITIVE)),
    Case("x ** 2 * y - y ** 0.5", lambda x, y: x**2 * y - y**0.5,
         (lambda x, y: 2 * x * y, lambda x, y: x**2 - 0.5 / np.sqrt(y)), (WIDE, POSITIVE)),
]
