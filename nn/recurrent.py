"""Recurrent networks: one cell, the same parameters at every time step.

In the notation of the lecture notes, with row-vector batches (m x n):

    H_t = f1(X_t W1 + H_{t-1} Wh1 + β1)        (hidden state, t = 1..T, H_0 given or 0)
    Ŷ_t = f2(H_t W2 + β2)                      (readout)
    L   = Σ_t L_t                              (sequence loss)

and in code: W1 = ``W_xh``, Wh1 = ``W_hh``, β1 = ``b_h``, W2 = ``W_hy``, β2 = ``b_y``.

The unrolled loop below is all there is to backpropagation through time: every step
uses the same ``W_hh`` node, so ``loss.backward()`` adds each step's contribution into
its gradient, dL/dW_hh = Σ_t (contribution of step t). Nothing here computes a gradient.

Each step's nodes are created inside ``autograd.scope(f"layer {l}")`` and
``autograd.scope(f"t={t}")``. NOTE: time steps are counted from 1 in scope tags, as in
the notes (H_0 is the initial state), while arrays index from 0: ``out[0]`` is H_1.
"""

from __future__ import annotations

import numpy as np

from autograd import scope
from autograd.graph import flag

from . import functional as F
from . import init
from .backends import backend, swap01
from .layers import check_size
from .module import Module

__all__ = ["RNN", "RNNCell", "RNNModel"]

NONLINEARITIES = ("tanh", "relu")


class RNNCell(Module):
    """One step of an Elman RNN: h_t = f(x_t W_xh + h_prev W_hh + b_h).

    That is H_t = f1(X_t W1 + H_{t-1} Wh1 + β1) with f1 = ``nonlinearity`` ("tanh" or
    "relu"). ``x_t`` is (m, input_size), ``h_prev`` and the result (m, hidden_size).
    Parameters: ``W_xh`` (input x hidden), ``W_hh`` (hidden x hidden), ``b_h`` (hidden), all
    drawn from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)).
    """

    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str = "tanh", bias: bool = True,
                 engine: str = "tensor", seed=None):
        self.input_size = check_size("input_size", input_size)
        self.hidden_size = check_size("hidden_size", hidden_size)
        self.nonlinearity = nonlinearity
        self._f = F.activation(nonlinearity, NONLINEARITIES, "nonlinearity")
        self._backend = backend(engine)
        self.engine = self._backend.name
        rng = init.generator(seed)
        be, H = self._backend, hidden_size
        self.W_xh = be.parameter(init.uniform(rng, (input_size, H), H), "W_xh")
        self.W_hh = be.parameter(init.uniform(rng, (H, H), H), "W_hh")
        self.b_h = be.parameter(init.uniform(rng, (H,), H), "b_h") if flag("bias", bias) else None

    def extra_repr(self) -> str:
        return (f"input_size={self.input_size}, hidden_size={self.hidden_size}, "
                f"nonlinearity={self.nonlinearity!r}, engine={self.engine!r}")

    def forward(self, x_t, h_prev=None):
        """h_t from x_t (m, input_size) and h_prev (m, hidden_size; zeros if None)."""
        x_t = self._constant(x_t, "x_t")
        self._check("x_t", x_t, self.input_size)
        m = np.shape(x_t)[0]
        h_prev = self._backend.zeros((m, self.hidden_size), self.W_hh) if h_prev is None else self._constant(
            h_prev, "h_prev")
        self._check("h_prev", h_prev, self.hidden_size, m)
        return self._step(self._project(x_t), h_prev)

    def project(self, x):
        """The input part of every step at once: x W_xh + b_h for x of shape (..., input_size)."""
        x = self._constant(x, "project: x")
        if np.ndim(x) == 0 or np.shape(x)[-1] != self.input_size:
            raise ValueError(f"{self._where()}: project: x must have shape (..., {self.input_size}), "
                             f"got {np.shape(x)}")
        return self._project(x)

    def step(self, xw_t, h_prev):
        """h_t = f(xw_t + h_prev W_hh), where xw_t = x_t W_xh + b_h from :meth:`project`;
        both (m, hidden_size)."""
        xw_t = self._constant(xw_t, "step: xw_t")
        self._check("step: xw_t", xw_t, self.hidden_size)
        h_prev = self._constant(h_prev, "step: h_prev")
        self._check("step: h_prev", h_prev, self.hidden_size, np.shape(xw_t)[0])
        return self._step(xw_t, h_prev)

    # The two without the checks, for callers that made their inputs themselves.
    def _project(self, x):
        lead = np.shape(x)[:-1]
        x = x.reshape(-1, self.input_size)
        xw = x @ self.W_xh if self.b_h is None else F.addmm(self.b_h, x, self.W_xh)
        return xw.reshape(*lead, self.hidden_size)

    def _step(self, xw_t, h_prev):
        return self._f(F.addmm(xw_t, h_prev, self.W_hh))

    def _check(self, what, x, size, batch=None):
        shape = np.shape(x)
        if len(shape) != 2 or shape[1] != size or shape[0] == 0 or (batch is not None and shape[0] != batch):
            rows = "m" if batch is None else batch
            raise ValueError(f"{self._where()}: {what} must have shape "
                             f"({rows}, {size}) with m >= 1, got {shape}")


class RNN(Module):
    """A stack of ``num_layers`` RNN cells unrolled over a sequence.

    ``rnn(x, h0=None)`` returns ``(out, h_n)``: ``x`` is (T, m, input_size) (or
    (m, T, input_size) with ``batch_first``), ``out`` holds the top layer's states
    H_1..H_T, (T, m, hidden_size), and ``h_n`` each layer's last state,
    (num_layers, m, hidden_size). ``h0`` (num_layers, m, hidden_size) is zero unless given.
    Layer l > 0 reads the states of layer l - 1 as its input sequence. The cells are
    ``rnn.cells[l]``; the same parameter objects serve every time step.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, engine: str = "tensor", seed=None):
        self.input_size = check_size("input_size", input_size)
        self.hidden_size = check_size("hidden_size", hidden_size)
        self.num_layers = check_size("num_layers", num_layers)
        self.batch_first = flag("batch_first", batch_first)
        self._backend = backend(engine)
        self.engine = self._backend.name
        rng = init.generator(seed)
        self.cells = [
            RNNCell(input_size if l == 0 else hidden_size, hidden_size, nonlinearity, bias, engine, rng)
            for l in range(num_layers)
        ]

    def extra_repr(self) -> str:
        return (f"input_size={self.input_size}, hidden_size={self.hidden_size}, num_layers={self.num_layers}, "
                f"batch_first={self.batch_first}, engine={self.engine!r}")

    def forward(self, x, h0=None):
        be = self._backend
        x = self._constant(x, "the input")
        check_sequence(self, x, self.input_size, self.batch_first)
        if self.batch_first:
            x = swap01(x)
        T, m = np.shape(x)[:2]
        h0 = check_h0(self, h0, self.num_layers, m, self.hidden_size)

        layer_input, last = x, []
        for l, cell in enumerate(self.cells):
            with scope(f"layer {l}"):
                h = be.zeros((m, self.hidden_size), cell.W_hh) if h0 is None else h0[l]
                xw = cell._project(layer_input) if be.fuse_steps else None
                states = be.stack_builder(T)
                for t in range(T):
                    with scope(f"t={t + 1}"):
                        if be.fuse_steps:
                            h = cell._step(xw[t], h)
                        else:
                            h = cell._step(cell._project(layer_input[t]), h)
                    states.append(h)
                layer_input = states.stack()
                last.append(h)
        out = swap01(layer_input) if self.batch_first else layer_input
        return out, be.stack(last, 0)


class RNNModel(Module):
    """An RNN with a readout: the three topologies of the lecture notes.

        H_t = f1(X_t W_xh + H_{t-1} W_hh + b_h),   Ŷ_t = f2(H_t W_hy + b_y)

    ``mode``:
      * ``"many_to_one"``: reads out only the last step: ``y`` is (m, output_size);
      * ``"many_to_many"``: reads out every step: ``y`` is (T, m, output_size);
      * ``"one_to_many"``: takes one input vector per sequence, ``x`` (m, input_size), and
        unrolls ``steps`` steps: X_1 = x and X_t = 0 for t > 1, so later steps are driven by
        the hidden state alone. ``y`` is (steps, m, output_size).
    (With ``batch_first``, sequences are (m, T, ...) in and out.)

    ``output_activation`` is f2: "identity" (logits, for ``cross_entropy``), "softmax"
    (over the last axis), "sigmoid" or "relu". ``model(x, h0=None)`` returns ``(y, h_n)``.
    Parameters: the RNN's (``rnn.cells.{l}.W_xh`` ...) and ``W_hy`` (hidden x output) and
    ``b_y`` (output), drawn from U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)).
    """

    MODES = ("many_to_one", "many_to_many", "one_to_many")
    OUTPUTS = ("identity", "softmax", "sigmoid", "relu")

    def __init__(self, input_size: int, hidden_size: int, output_size: int, mode: str = "many_to_one",
                 output_activation: str = "identity", num_layers: int = 1, steps: int | None = None,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 engine: str = "tensor", seed=None):
        if mode not in self.MODES:
            raise ValueError(f"mode must be one of {list(self.MODES)}, got {mode!r}")
        if mode == "one_to_many":
            steps = check_size("steps (for mode='one_to_many')", steps)
        elif steps is not None:
            raise ValueError(f"steps is only used by mode='one_to_many', got steps={steps!r} with mode={mode!r}")
        self.mode, self.steps = mode, steps
        self.output_size = check_size("output_size", output_size)
        self.output_activation = output_activation
        self._f2 = F.activation(output_activation, self.OUTPUTS, "output_activation")
        self._backend = backend(engine)
        self.engine = self._backend.name
        self.batch_first = flag("batch_first", batch_first)
        rng = init.generator(seed)
        self.rnn = RNN(input_size, hidden_size, num_layers, nonlinearity, bias, batch_first=False,
                       engine=engine, seed=rng)
        H = hidden_size
        self.W_hy = self._backend.parameter(init.uniform(rng, (H, output_size), H), "W_hy")
        self.b_y = self._backend.parameter(init.uniform(rng, (output_size,), H), "b_y") if flag(
            "bias", bias) else None

    def extra_repr(self) -> str:
        return (f"mode={self.mode!r}, input_size={self.rnn.input_size}, hidden_size={self.rnn.hidden_size}, "
                f"output_size={self.output_size}, output_activation={self.output_activation!r}, "
                f"engine={self.engine!r}")

    def forward(self, x, h0=None):
        be = self._backend
        x = self._constant(x, "the input")
        if self.mode == "one_to_many":
            shape = np.shape(x)
            if len(shape) != 2 or shape[1] != self.rnn.input_size or shape[0] == 0:
                raise ValueError(f"{self._where()}: one_to_many expects one input "
                                 f"vector per sequence, shape (m, {self.rnn.input_size}) with m >= 1, got {shape}")
            rest = be.zeros((self.steps - 1, shape[0], shape[1]), self.rnn.cells[0].W_xh)
            x = be.concat([x.reshape(1, *shape), rest], 0) if self.steps > 1 else x.reshape(1, *shape)
        else:
            check_sequence(self, x, self.rnn.input_size, self.batch_first)
            if self.batch_first:
                x = swap01(x)
        h0 = check_h0(self, h0, self.rnn.num_layers, np.shape(x)[1], self.rnn.hidden_size)  # named as this model
        states, h_n = self.rnn(x, h0)
        if self.mode == "many_to_one":
            with scope("readout"):
                return self._readout(states[-1]), h_n
        y = self._readout_sequence(states)
        return (swap01(y) if self.batch_first else y), h_n

    def _readout(self, h):
        """Ŷ = f2(H W_hy + b_y) for states of shape (..., hidden)."""
        z = h @ self.W_hy if self.b_y is None else F.addmm(self.b_y, h, self.W_hy)
        return self._f2(z)

    def _readout_sequence(self, states):
        be = self._backend
        if be.fuse_steps:  # one product for all steps
            T, m, H = np.shape(states)
            with scope("readout"):
                return self._readout(states.reshape(T * m, H)).reshape(T, m, self.output_size)
        ys = []
        for t in range(np.shape(states)[0]):
            with scope("readout"), scope(f"t={t + 1}"):
                ys.append(self._readout(states[t]))
        return be.stack(ys, 0)


def check_h0(module, h0, num_layers: int, m: int, hidden_size: int):
    """``h0`` as a constant of ``module``'s engine (None stays None), or a clear error naming
    ``module`` unless it is (num_layers, m, hidden_size), whatever ``batch_first`` says (as
    in PyTorch)."""
    if h0 is None:
        return None
    h0 = module._constant(h0, "h0")
    if np.shape(h0) != (num_layers, m, hidden_size):
        raise ValueError(f"{module._where()}: h0 must have shape "
                         f"({num_layers}, {m}, {hidden_size}), got {np.shape(h0)} (h0 is layers x batch x hidden)")
    return h0


def check_sequence(module, x, input_size: int, batch_first: bool) -> None:
    """A clear error, naming ``module`` and the shape given, unless ``x`` is a non-empty
    (T, m, input_size) sequence ((m, T, input_size) if ``batch_first``)."""
    shape = np.shape(x)
    order = "(m, T, {})" if batch_first else "(T, m, {})"
    where = module._where()
    if len(shape) != 3 or shape[2] != input_size:
        raise ValueError(f"{where}: the input must have shape {order.format(input_size)}, got {shape}")
    T, m = (shape[1], shape[0]) if batch_first else shape[:2]
    if T == 0:
        raise ValueError(f"{where}: the input sequence is empty (T = 0), shape {shape}")
    if m == 0:
        raise ValueError(f"{where}: the batch is empty (m = 0), shape {shape}")
