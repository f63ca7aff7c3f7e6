"""Optimizers and gradient clipping, on either engine.

They read and write parameters only through :mod:`nn.backends` (``data``, ``grad``,
``set_data``, ``set_grad``), so one implementation serves Tensors, Values and object arrays
of Values. Updates follow PyTorch's formulas, so results can be compared step by step.
"""

from __future__ import annotations

import math

import numpy as np

from autograd import Tensor, Value
from autograd.value import _real

from . import backends
from .module import Module

__all__ = ["SGD", "Adam", "Optimizer", "clip_grad_norm_", "clip_grad_value_"]


def _param_list(params, who: str) -> list:
    if isinstance(params, Module):
        raise TypeError(f"{who}: expected a list of parameters, got the module {type(params).__name__} itself; "
                        "pass model.parameters()")
    if backends.takes_gradient(params) or isinstance(params, np.ndarray):
        raise TypeError(f"{who}: expected a list of parameters (e.g. model.parameters()), got a single "
                        f"{backends.type_name(params)}; wrap it in a list")
    if not hasattr(params, "__iter__"):
        # model.parameters, not model.parameters(): a method of a module
        uncalled = getattr(params, "__func__", None) in (Module.parameters, Module.named_parameters)
        hint = "; call it: model.parameters()" if uncalled else ""
        raise TypeError(f"{who}: expected a list of parameters (e.g. model.parameters()), "
                        f"got {backends.type_name(params)}{hint}")
    kind = backends.type_name(params) if iter(params) is params else None  # an iterator: list() takes what is left
    params = list(params)
    if not params:
        hint = (f" (a {kind} with nothing left: one already used up? model.parameters() gives a fresh "
                "list each time)") if kind else ""
        raise ValueError(f"{who}: got an empty parameter list{hint}")
    first: dict[int, int] = {}
    entries: dict[int, int] = {}  # id of each Value -> the parameter it is in (views share them)
    for i, p in enumerate(params):
        j = first.setdefault(id(p), i)
        if j != i:
            raise ValueError(f"{who}: parameters {j} and {i} are the same object; each parameter must "
                             "appear once (it would be updated twice)")
        if not backends.takes_gradient(p):  # (an op's result is named below)
            raise TypeError(f"{who}: parameter {i} is a {backends.type_name(p)}; expected a Tensor with "
                            "requires_grad=True, a Value or an object array of Values (model.parameters())")
        if isinstance(p, Tensor):
            if not p.is_leaf:
                raise TypeError(f"{who}: parameter {i} is the result of an op ('{p.op}'), not a leaf tensor")
            continue
        for index, v in np.ndenumerate(np.asarray(p, dtype=object)):  # a Value, or an array of them
            at = f" entry {index}" if index else ""
            if not isinstance(v, Value):
                raise TypeError(f"{who}: parameter {i}{at} is a {type(v).__name__}, not a Value")
            if not v.is_leaf:
                raise TypeError(f"{who}: parameter {i}{at} is the result of an op ('{v.op}'), not a leaf Value")
            j = entries.setdefault(id(v), i)
            if j != i:
                raise ValueError(f"{who}: parameter {i}{at} is also in parameter {j} (a view or an entry of "
                                 "it); each Value must appear once (it would be updated twice)")
    return params


def _number(who: str, name: str, value, finite: bool = True) -> float:
    """``value`` as a float, or a clear error naming the setting if it is not a real number
    (or, with ``finite``, if it is infinite: a step would make the weights inf or NaN)."""
    x = _real(value, f"{who}: {name}")
    if finite and math.isinf(x):
        raise ValueError(f"{who}: {name} must be finite, got {value!r}")
    return x


class Optimizer:
    """Base class: holds the parameters; ``zero_grad()`` clears their gradients."""

    def __init__(self, params, lr: float):
        who = type(self).__name__
        self.params = _param_list(params, who)
        if not _number(who, "lr", lr) > 0:
            raise ValueError(f"{who}: lr must be positive, got {lr!r}")
        self.lr = float(lr)
        self.steps = 0

    def zero_grad(self) -> None:
        for p in self.params:
            backends.set_grad(p, None)

    def step(self) -> None:
        """Update every parameter that has a gradient, from its gradient. Every gradient is
        read, and checked, before any parameter or any state of the optimizer changes."""
        who = type(self).__name__
        grads = [(i, p, backends.grad(p, f"{who}.step: the gradient of parameter {i}"))
                 for i, p in enumerate(self.params) if backends.has_grad(p)]
        self.steps += 1
        for i, p, g in grads:
            backends.set_data(p, self._update(i, backends.data(p), g))

    def _update(self, i: int, x: np.ndarray, g: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum and weight decay:

        g ← g + weight_decay · θ;   v ← momentum · v + g (v = g at the first step);   θ ← θ - lr · v
    """

    def __init__(self, params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0):
        super().__init__(params, lr)
        momentum, weight_decay = _number("SGD", "momentum", momentum), _number("SGD", "weight_decay", weight_decay)
        if not (momentum >= 0 and weight_decay >= 0):  # NaN fails too
            raise ValueError(f"SGD: momentum and weight_decay must be >= 0, got {momentum}, {weight_decay}")
        self.momentum, self.weight_decay = float(momentum), float(weight_decay)
        self.velocity: dict[int, np.ndarray] = {}

    def _update(self, i, x, g):
        if self.weight_decay:
            g = g + self.weight_decay * x
        if self.momentum:
            v = self.velocity.get(i)
            v = g.copy() if v is None else self.momentum * v + g
            self.velocity[i] = v
            g = v
        return x - self.lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba), with bias correction:

        m ← β1 m + (1 - β1) g;   v ← β2 v + (1 - β2) g²
        θ ← θ - lr · m̂ / (sqrt(v̂) + eps),   m̂ = m / (1 - β1^t),  v̂ = v / (1 - β2^t)
    """

    def __init__(self, params, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8):
        super().__init__(params, lr)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"Adam: betas must be two numbers in [0, 1), such as (0.9, 0.999), got {betas!r}")
        if not all(0 <= _number("Adam", "betas", b) < 1 for b in betas):
            raise ValueError(f"Adam: betas must be two numbers in [0, 1), got {betas}")
        if not _number("Adam", "eps", eps) >= 0:
            raise ValueError(f"Adam: eps must be >= 0, got {eps!r}")
        self.betas, self.eps = (float(betas[0]), float(betas[1])), float(eps)
        self.m: dict[int, np.ndarray] = {}
        self.v: dict[int, np.ndarray] = {}
        self.t: dict[int, int] = {}  # steps taken by each parameter, for its bias correction

    def _update(self, i, x, g):
        b1, b2 = self.betas
        t = self.t[i] = self.t.get(i, 0) + 1
        m = self.m[i] = b1 * self.m.get(i, 0.0) + (1 - b1) * g
        v = self.v[i] = b2 * self.v.get(i, 0.0) + (1 - b2) * g * g
        m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        return x - self.lr * m_hat / (np.sqrt(v_hat) + self.eps)


def clip_grad_norm_(params, max_norm: float) -> float:
    """Scale all gradients together so that their joint L2 norm is at most ``max_norm``.

    The norm is taken over every entry of every gradient, ||g|| = sqrt(Σ g²). If it exceeds
    ``max_norm``, every gradient is multiplied by max_norm / (||g|| + 1e-6), PyTorch's
    factor. NOTE: PyTorch applies that factor whenever it is below 1, so where max_norm is
    near 1e-6 it also shrinks gradients whose norm is below max_norm; here a norm at most
    ``max_norm`` leaves every gradient as it is, as clipping by norm is defined. Returns the
    norm *before* clipping (inf or nan if a gradient is not finite; then nothing is changed).
    """
    params = _param_list(params, "clip_grad_norm_")
    if not _number("clip_grad_norm_", "max_norm", max_norm, finite=False) > 0:
        raise ValueError(f"clip_grad_norm_: max_norm must be positive, got {max_norm!r}")
    grads = [backends.grad(p, f"clip_grad_norm_: the gradient of parameter {i}") for i, p in enumerate(params)]
    # scaled by the largest entry, so that squaring huge (finite) gradients cannot overflow
    big = max((float(np.max(np.abs(g))) for g in grads if g.size), default=0.0)
    if big == 0.0 or not math.isfinite(big):
        total = big
    else:
        # fsum: the sum correctly rounded, the same bits on every Python (the built-in sum of
        # floats rounds differently from 3.12 on, and training amplifies the last bit)
        total = big * math.sqrt(math.fsum(float(np.sum((g / big) ** 2)) for g in grads))
    if any(not np.isfinite(g).all() for g in grads):
        total = float("nan") if any(np.isnan(g).any() for g in grads) else float("inf")
    if math.isfinite(total) and total > max_norm:
        scale = max_norm / (total + 1e-6)
        for p, g in zip(params, grads):
            if backends.has_grad(p):
                backends.set_grad(p, g * scale)
    return total


def clip_grad_value_(params, clip_value: float) -> None:
    """Limit every gradient entry to [-clip_value, clip_value]."""
    params = _param_list(params, "clip_grad_value_")
    if not _number("clip_grad_value_", "clip_value", clip_value, finite=False) > 0:
        raise ValueError(f"clip_grad_value_: clip_value must be positive, got {clip_value!r}")
    grads = [backends.grad(p, f"clip_grad_value_: the gradient of parameter {i}") if backends.has_grad(p) else None
             for i, p in enumerate(params)]  # all checked before any is changed
    for p, g in zip(params, grads):
        if g is not None:
            backends.set_grad(p, np.clip(g, -clip_value, clip_value))
